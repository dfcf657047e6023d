package metal

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
)

// tinyModel writes the synthetic tiny model as GGUF or MLX and loads it (a file mapping).
func tinyModel(t *testing.T, mlx bool) *runtime.Model {
	p := filepath.Join(t.TempDir(), "tiny")
	var err error
	if mlx {
		err = synth.Tiny().WriteMLX(p)
	} else {
		err = synth.Tiny().WriteGGUF(p)
	}
	require.NoError(t, err)
	m, err := runtime.Load(p)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func matrices(m *runtime.Model) []*q1.Matrix {
	mats := []*q1.Matrix{m.Embed, m.Output}
	for _, L := range m.Layers {
		mats = append(mats, L.Proj[:]...)
	}
	return mats
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// TestPlaceWrapsFileMappings: on Linux the model file is mapped, so every view must be wrapped
// in a page-aligned span at the right offset, aliasing the host bytes.
func TestPlaceWrapsFileMappings(t *testing.T) {
	if goruntime.GOOS != "linux" {
		t.Skip("fileBacked reads /proc/self/maps; the darwin path is tested by TestNoCopyWeights")
	}
	for _, mlx := range []bool{false, true} {
		m := tinyModel(t, mlx)
		page := os.Getpagesize()
		ws := newWeights(&emuDevice{}, page, fileBacked)
		for _, mat := range matrices(m) {
			_, err := ws.add(mat)
			require.NoError(t, err)
		}
		wrapped, copied := ws.stats()
		require.Zero(t, copied)
		require.Equal(t, 2*(len(matrices(m))-btoi(m.Tied)), wrapped)
		for _, s := range ws.spans {
			require.Zero(t, s.lo%uintptr(page))
			require.Zero(t, (s.hi-s.lo)%uintptr(page))
		}
		for _, w := range ws.order {
			for _, v := range []view{w.bits, w.scales} {
				require.Equal(t, addr(v.host), addr(v.buf.bytes())+uintptr(v.off), "view of %s aliases the host bytes", w.m.Name)
			}
		}
		ws.release()
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestPlaceCopiesHeapMemory: Go-heap matrices are copied, and refresh re-uploads them.
func TestPlaceCopiesHeapMemory(t *testing.T) {
	data := make([]byte, 3*2*q1.BlockBytes) // 3 rows x 256 columns
	for i := range data {
		data[i] = byte(i * 7)
	}
	mat, err := q1.FromQ1_0("heap", 3, 256, data)
	require.NoError(t, err)
	ws := newWeights(&emuDevice{}, os.Getpagesize(), fileBacked)
	defer ws.release()
	w, err := ws.add(mat)
	require.NoError(t, err)
	w2, err := ws.add(mat)
	require.NoError(t, err)
	require.Same(t, w, w2, "a matrix is placed once")
	require.True(t, w.bits.copied)
	require.True(t, w.scales.copied)
	require.Equal(t, mat.Bits, w.bits.buf.bytes()[w.bits.off:][:len(mat.Bits)])

	mat.Flip(2, -1, -1)
	require.NotEqual(t, mat.Bits, w.bits.buf.bytes()[:len(mat.Bits)])
	require.NoError(t, ws.refresh([]*q1.Matrix{mat}))
	require.Equal(t, mat.Bits, w.bits.buf.bytes()[:len(mat.Bits)])

	other, err := q1.FromQ1_0("other", 3, 256, make([]byte, len(data)))
	require.NoError(t, err)
	require.ErrorContains(t, ws.refresh([]*q1.Matrix{other}), `matrix "other" is not part`)
}
