//go:build darwin && !nometal

package metal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/shaders"
)

func gpuForTest(t *testing.T) *metalGPU {
	if err := Available(); err != nil {
		t.Skipf("Metal not available: %v", err)
	}
	g, err := openMetal()
	require.NoError(t, err)
	t.Cleanup(g.close)
	t.Log("device:", g.name())
	return g
}

// mapFile maps a temporary file of n pages copy-on-write and writable, as the model loaders do.
func mapFile(t *testing.T, pages int) []byte {
	size := pages * os.Getpagesize()
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, make([]byte, size), 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

// TestShaderCompileError checks that a compiler error comes back as a Go error with the log.
func TestShaderCompileError(t *testing.T) {
	g := gpuForTest(t)
	err := withPool(func() error {
		lib, err := g.dev.newLibrary("kernel void broken(device float *x [[buffer(0)]]) { x[0] = undeclared; }")
		if err == nil {
			lib.release()
		}
		return err
	})
	require.ErrorContains(t, err, "metal: compile shaders:")
	require.ErrorContains(t, err, "undeclared")
}

// TestNoCopyWrap wraps a file mapping without copying and checks both directions: the GPU reads
// what the host writes after wrapping, and the host reads what the GPU writes.
func TestNoCopyWrap(t *testing.T) {
	g := gpuForTest(t)
	mem := mapFile(t, 2)
	w := g.wrap(mem)
	require.NotNil(t, w, "newBufferWithBytesNoCopy refused a page-aligned file mapping")
	defer w.release()
	require.Equal(t, addr(mem), addr(w.bytes()))

	n := len(mem) / 4
	host := floats(mem)
	for i := range host {
		host[i] = float32(i) // written after the wrap, through the private mapping
	}
	dst, err := g.newBuffer(len(mem))
	require.NoError(t, err)
	defer dst.release()
	clear(dst.bytes())
	require.NoError(t, g.run(func(e encoder) {
		encAdd(e, ref{dst, 0}, ref{w, 0}, n) // dst = 0 + host values
		e.barrier()
		encAdd(e, ref{w, 0}, ref{w, 0}, n) // the GPU doubles the mapping in place
	}))
	for i, v := range floats(dst.bytes()) {
		require.Equal(t, float32(i), v, "GPU read of host write at %d", i)
	}
	for i, v := range host {
		require.Equal(t, float32(2*i), v, "host read of GPU write at %d", i)
	}
}

func TestFileBackedDarwin(t *testing.T) {
	if err := load(); err != nil {
		t.Skip(err)
	}
	mem := mapFile(t, 3)
	require.True(t, fileBacked(addr(mem), addr(mem)+uintptr(len(mem))))
	heap := make([]byte, 1<<20)
	require.False(t, fileBacked(addr(heap), addr(heap)+4096))
}

// TestNoCopyWeights checks that a loaded model's weights are wrapped, not copied, and that the
// coherence probe passed (patches then need no upload).
func TestNoCopyWeights(t *testing.T) {
	gpuForTest(t)
	for _, mlx := range []bool{false, true} {
		m := tinyModel(t, mlx)
		rb, err := New(m)
		require.NoError(t, err)
		b := rb.(*backend)
		wrapped, copied := b.w.stats()
		t.Log(b.Describe())
		require.True(t, b.coherent, b.Describe())
		require.Zero(t, copied, b.Describe())
		require.Equal(t, 2*len(b.w.order), wrapped)
		require.NoError(t, b.Close())
	}
}

// TestDispatchGeometry runs attention, whose grid is two-dimensional (heads x queries), against
// its Go twin: a mix-up in either MTLSize argument would leave heads or queries unwritten.
func TestDispatchGeometry(t *testing.T) {
	g := gpuForTest(t)
	k := &KernelRunner{dev: g}
	const n, ctx, heads, kvHeads, dim = 3, 9, 4, 2, 64
	q := make([]float32, n*heads*dim)
	for i := range q {
		q[i] = float32(i%7) - 3
	}
	kv := make([]float32, ctx*kvHeads*dim)
	for i := range kv {
		kv[i] = float32(i%5) - 2
	}
	got, err := k.Attention(q, kv, kv, n, ctx, heads, kvHeads, dim)
	require.NoError(t, err)
	want := make([]float32, len(q))
	cpu.Attention(want, q, kv, kv, n, ctx, heads, kvHeads, dim, make([]float32, ctx))
	require.InDeltaSlice(t, want, got, 1e-4)
	require.Equal(t, [3]int{heads, n, 1}, shaders.AttentionGrid(n, heads).Groups)
}
