package metal

import (
	"math"

	"github.com/bankai-metal/bankai-metal/shaders"
)

// probe checks that the GPU sees host writes through the wrapped (no-copy) views, which is what
// lets WeightsChanged skip them. It flips the first sign byte of every wrapped matrix in host
// memory, has embed_q1 dequantise row 0 of each, restores the bytes and compares bit for bit.
//
// Why it can fail: the model is a private copy-on-write mapping. If Metal pinned the file's
// pages read-only, a later host write would land in a fresh private copy of the page that the
// GPU never sees. Then every view is copied instead and coherent reports false. New must not
// run concurrently with other users of the model's memory (the bytes are flipped briefly).
func (ws *weights) probe() (coherent bool, err error) {
	var probed []*weight
	total := 0
	for _, w := range ws.order {
		if !w.bits.copied {
			probed = append(probed, w)
			total += w.m.Cols
		}
	}
	if len(probed) == 0 {
		return true, nil
	}
	out, err := ws.dev.newBuffer(4 * total) // (Σ cols): row 0 of every probed matrix
	if err != nil {
		return false, err
	}
	defer out.release()
	tok, err := ws.dev.newBuffer(4) // token 0
	if err != nil {
		return false, err
	}
	defer tok.release()

	want := make([]float32, total)
	for _, w := range probed {
		w.m.Bits[0] ^= 0xff
	}
	restored := false
	restore := func() {
		if !restored {
			for _, w := range probed {
				w.m.Bits[0] ^= 0xff
			}
			restored = true
		}
	}
	defer restore()
	off := 0
	for _, w := range probed {
		w.m.DequantRow(0, want[off:off+w.m.Cols])
		off += w.m.Cols
	}
	err = ws.dev.run(func(e encoder) {
		off := 0
		for _, w := range probed {
			args := shaders.Q1Args{W: w.layout(), N: 1}
			e.dispatch(shaders.KernelEmbed, shaders.Bytes(&args), shaders.EmbedGrid(w.m.Cols, 1),
				bind{1, w.bits.buf, 0}, bind{2, w.scales.buf, 0}, bind{3, tok, 0}, bind{4, out, 4 * off})
			off += w.m.Cols
		}
	})
	restore()
	if err != nil {
		return false, err
	}
	got := floats(out.bytes())
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return false, ws.copyAll()
		}
	}
	return true, nil
}
