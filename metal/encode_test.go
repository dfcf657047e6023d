package metal

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/shaders"
)

// panicEmulator fails the test if a command list reaches it.
type panicEmulator struct{ t *testing.T }

func (p panicEmulator) Run([]shaders.Buf, []shaders.Dispatch) error {
	p.t.Error("a command list whose encoding panicked was submitted")
	return nil
}

// TestEncodePanicEndsEncoder: a panic inside an encode callback still ends the encoder, is not
// submitted, and reaches the caller.
func TestEncodePanicEndsEncoder(t *testing.T) {
	d := &emuDevice{em: panicEmulator{t}}
	var kept encoder
	require.PanicsWithValue(t, "boom", func() {
		_ = d.run(func(e encoder) {
			kept = e
			panic("boom")
		})
	})
	require.True(t, kept.(*emuEncoder).ended, "the encoder was left open")
	require.Panics(t, func() { kept.barrier() }, "an ended encoder refuses work")
}

// refusingDevice is an emulator device whose no-copy wraps all fail.
type refusingDevice struct{ emuDevice }

func (refusingDevice) wrap([]byte) buffer { return nil }

// TestPlaceCopiesWhenWrapRefused: a span the device refuses to wrap is copied instead.
func TestPlaceCopiesWhenWrapRefused(t *testing.T) {
	m := tinyModel(t, false)
	ws := newWeights(&refusingDevice{}, os.Getpagesize(), func(lo, hi uintptr) bool { return true })
	defer ws.release()
	for _, mat := range []*q1.Matrix{m.Embed, m.Layers[0].Proj[0]} {
		w, err := ws.add(mat)
		require.NoError(t, err)
		require.True(t, w.bits.copied && w.scales.copied)
		require.Equal(t, mat.Bits, w.bits.buf.bytes()[w.bits.off:][:len(mat.Bits)])
	}
	require.Empty(t, ws.spans)
}
