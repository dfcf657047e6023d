package metal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/shaders"
	"github.com/bankai-metal/bankai-metal/shaders/shim/shimtest"
)

// mapPrivate maps a new file of pages pages (byte i of page p is p) copy-on-write, as the model
// loaders do, with the given protection.
func mapPrivate(t *testing.T, pages, prot int) []byte {
	page := os.Getpagesize()
	data := make([]byte, pages*page)
	for i := range data {
		data[i] = byte(i / page)
	}
	p := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(p, data, 0o644))
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, len(data), prot, unix.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Munmap(mem) })
	return mem
}

func requirePagemap(t *testing.T) {
	mem := mapPrivate(t, 1, unix.PROT_READ|unix.PROT_WRITE)
	if _, ok := privatePages(mem, os.Getpagesize()); !ok {
		t.Skip("/proc/self/pagemap is not readable: the emulator cannot model pinned pages")
	}
}

// TestEmulatorPinsFilePages checks the emulator's model of a no-copy buffer (pins): a page the
// host had not written when the device first used the buffer stays frozen for the device after
// a host write, unless makePrivate ran first.
func TestEmulatorPinsFilePages(t *testing.T) {
	requirePagemap(t)
	page := os.Getpagesize()
	for _, private := range []bool{false, true} {
		mem := mapPrivate(t, 3, unix.PROT_READ|unix.PROT_WRITE)
		mem[0] ^= 0x80 // page 0 written before the device sees it, like the probe's byte
		if private {
			require.True(t, makePrivate(mem, page))
		}
		b := (&emuDevice{}).wrap(mem).(*emuBuffer)
		e := &emuEncoder{index: map[*emuBuffer]int{}}
		e.dispatch("k", nil, shaders.Grid{}, bind{1, b, 0}) // first use: the device pins the pages
		mem[page+1] ^= 0xff                                 // a patch on page 1, never written before
		mem[1] ^= 0xff                                      // and one on page 0
		view := b.deviceView()
		require.Equal(t, mem[1], view[1], "page 0 was private when pinned")
		if private {
			require.Equal(t, mem[page+1], view[page+1], "private=%v", private)
		} else {
			require.Equal(t, byte(1), view[page+1], "a GPU holding the file's page reads the old byte")
		}
	}
}

// TestMakePrivateReadOnly: a read-only mapping cannot be made private; the fault is recovered.
func TestMakePrivateReadOnly(t *testing.T) {
	mem := mapPrivate(t, 2, unix.PROT_READ)
	require.False(t, makePrivate(mem, os.Getpagesize()))
	require.False(t, makePrivate(mem[:1], os.Getpagesize()), "not whole pages")
	rw := mapPrivate(t, 2, unix.PROT_READ|unix.PROT_WRITE)
	require.True(t, makePrivate(rw, os.Getpagesize()))
	priv, ok := privatePages(rw, os.Getpagesize())
	if ok {
		require.Equal(t, []bool{true, true}, priv)
	}
	require.Equal(t, byte(1), rw[os.Getpagesize()], "contents unchanged")
}

// TestPatchOnUntouchedPage is acceptance 1 of issue 13: a sign bit flipped in host memory on a
// page nothing wrote before (not a probed page) after the device has run the model reaches the
// device through the no-copy view. Without makePrivate the emulator, which pins pages like a
// GPU may, shows the stale bits.
func TestPatchOnUntouchedPage(t *testing.T) {
	requirePagemap(t)
	_, h := shimtest.ForTest(t)
	for _, private := range []bool{true, false} {
		t.Run(map[bool]string{true: "private", false: "not-private"}[private], func(t *testing.T) {
			privatizeWraps = private
			defer func() { privatizeWraps = true }()
			m := tinyModel(t, false)
			b, err := newBackend(m, &emuDevice{em: h}, "metal-emu", fileBacked)
			require.NoError(t, err)
			defer b.Close()
			wrapped, copied := b.w.stats()
			require.Zero(t, copied, b.Describe())
			require.NotZero(t, wrapped)
			require.True(t, b.coherent, b.Describe())

			// A row on a page that holds no matrix's first sign byte (which the probe writes).
			page := uintptr(os.Getpagesize())
			probed := map[uintptr]bool{}
			for _, w := range b.w.order {
				probed[addr(w.m.Bits)/page] = true
			}
			var mat *q1.Matrix
			row := -1
			for _, w := range b.w.order {
				for r := w.m.Rows - 1; r >= 0 && row < 0; r-- {
					signs := w.m.Bits[r*w.m.Groups*w.m.BitStride:][:(w.m.Groups-1)*w.m.BitStride+16]
					if !probed[addr(signs)/page] && !probed[(addr(signs)+uintptr(len(signs))-1)/page] {
						mat, row = w.m, r
					}
				}
			}
			require.NotNil(t, mat, "no row of the model lies on an unprobed page")

			tokens := []int32{1, 2, 3, 4, 5}
			forward := func(be runtime.Backend) []float32 {
				s, err := be.NewSession(len(tokens))
				require.NoError(t, err)
				defer s.Close()
				out, err := s.Forward(tokens, true)
				require.NoError(t, err)
				return out
			}
			cpu := runtime.NewCPU(m)
			require.InDeltaSlice(t, forward(cpu), forward(b), 1e-3) // the device has used every page
			mat.Flip(row, -1, -1)
			defer mat.Flip(row, -1, -1)
			require.NoError(t, b.WeightsChanged(mat))
			want, got := forward(cpu), forward(b)
			diff := nmse(got, want)
			if private {
				require.Less(t, diff, 1e-6, "the device must see the flipped row")
			} else {
				require.Greater(t, diff, 1e-6, "without makePrivate the emulated device should miss the flip")
			}
		})
	}
}

func nmse(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i] - want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	return num / den
}
