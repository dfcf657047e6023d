package metal

import (
	"fmt"
	"math"
	"slices"

	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
	"github.com/bankai-metal/bankai-metal/shaders"
)

// How RunFlipped applies a flip span without touching the weights: after the projection's
// matvec, it runs matvec_q1 again over the span's batch rows with a small matrix, a copy of the
// few weight rows around the flipped one with the flip applied, and writes those outputs over
// the projection's. The rows other than the flipped one come out exactly as the projection
// computed them (the same kernel on the same bits and inputs), and the flipped row exactly as
// it would with the flip written to the weights: the bit-exact mode of runtime.CPUBatch, computed
// by the GPU's own kernel.
//
// The block is one threadgroup of matvec_q1 (blockRows rows): its layout declares the
// projection's row count, which is also the output row stride, while the grid has a single
// threadgroup of rows, so the kernel reads block rows 0..blockRows-1 and writes output rows
// row0 .. row0+blockRows-1 of each batch row (row0 ≤ Rows−blockRows keeps them inside the row).
// flip_delta cannot serve here: it writes a dense (flips, n) result, not into the strided output.
const blockRows = shaders.MatVecRows * shaders.MatVecSG

// fixup is one correction dispatch: a block of weight rows [row0, row0+rows) with flips
// applied, run over batch rows [start, start+n) of a projection.
type fixup struct {
	start, n int
	row0     int
	rows     int // min(blockRows, the projection's rows)
	off      int // byte offset of the block in flipPlan.w: signs (rows·Groups, 16), then scales (rows·Groups, 2)
}

// projKey names a projection of a layer.
type projKey struct {
	layer int
	proj  runtime.Proj
}

// flipPlan holds the corrections of one RunFlipped call.
type flipPlan struct {
	fix map[projKey][]fixup
	w   []byte // every block's signs and scales
}

// isKV reports whether a projection's output rows may be split between the batch and KV caches.
func isKV(p runtime.Proj) bool { return p == runtime.ProjK || p == runtime.ProjV }

// planFlips builds the fixups of spans over a batch whose sequences start at the rows in starts.
// A fixup never straddles a sequence boundary for K and V (whose outputs go to per-sequence KV
// caches) nor a span boundary. Where spans overlap, the block carries every flip covering those
// rows, applied in span order, as if they were all written to the weights.
func planFlips(m *runtime.Model, spans []runtime.FlipSpan, starts []int, rows int) (*flipPlan, error) {
	p := &flipPlan{fix: map[projKey][]fixup{}}
	by := map[projKey][]runtime.FlipSpan{}
	var keys []projKey
	for _, f := range spans {
		if f.N == 0 {
			continue
		}
		k := projKey{f.Layer, f.Projection()}
		if by[k] == nil {
			keys = append(keys, k)
		}
		by[k] = append(by[k], f)
	}
	for _, k := range keys {
		mat := m.Layers[k.layer].Proj[k.proj]
		group := by[k]
		cuts := []int{0, rows}
		for _, f := range group {
			cuts = append(cuts, f.Start, f.Start+f.N)
		}
		if isKV(k.proj) {
			cuts = append(cuts, starts...)
		}
		slices.Sort(cuts)
		cuts = slices.Compact(cuts)
		for i := 0; i+1 < len(cuts); i++ {
			a, z := cuts[i], cuts[i+1]
			var cover []runtime.FlipSpan // the spans over rows [a, z), in span order
			for _, f := range group {
				if f.Start <= a && a < f.Start+f.N {
					cover = append(cover, f)
				}
			}
			if len(cover) == 0 {
				continue
			}
			br := min(blockRows, mat.Rows)
			var starts0 []int // first row of each block, one per flipped row
			for _, f := range cover {
				starts0 = append(starts0, min(f.Row-f.Row%br, mat.Rows-br))
			}
			slices.Sort(starts0)
			for _, row0 := range slices.Compact(starts0) {
				off := len(p.w)
				p.w = appendBlock(p.w, mat, row0, br)
				blk := blockMatrix(mat, p.w[off:], br)
				for _, f := range cover {
					if f.Row >= row0 && f.Row < row0+br {
						blk.Flip(f.Row-row0, f.Group, f.Col)
					}
				}
				p.fix[k] = append(p.fix[k], fixup{start: a, n: z - a, row0: row0, rows: br, off: off})
			}
		}
	}
	if len(p.w) > math.MaxUint32 {
		return nil, fmt.Errorf("metal: RunFlipped: %d bytes of flipped weight blocks; offsets must stay below 4 GiB", len(p.w))
	}
	return p, nil
}

// appendBlock appends the signs, then the scales, of rows [row0, row0+n) of mat.
func appendBlock(w []byte, mat *q1.Matrix, row0, n int) []byte {
	for r := row0; r < row0+n; r++ {
		for g := 0; g < mat.Groups; g++ {
			w = append(w, mat.GroupSigns(r, g)...)
		}
	}
	for r := row0; r < row0+n; r++ {
		for g := 0; g < mat.Groups; g++ {
			o := (r*mat.Groups + g) * mat.ScaleStride
			w = append(w, mat.Scales[o], mat.Scales[o+1])
		}
	}
	return w
}

// blockMatrix views a block written by appendBlock as an n-row matrix.
func blockMatrix(mat *q1.Matrix, w []byte, n int) *q1.Matrix {
	signs := n * mat.Groups * q1.GroupSignBytes
	return &q1.Matrix{Name: mat.Name, Rows: n, Cols: mat.Cols, Groups: mat.Groups,
		Bits: w[:signs:signs], BitStride: q1.GroupSignBytes, Scales: w[signs : signs+2*n*mat.Groups], ScaleStride: 2, Kind: mat.Kind}
}

// layout describes a fixup's block for matvec_q1, with the signs and scales in one buffer bound
// at offset 0, and the projection's row count as the output stride.
func (f fixup) layout(mat *q1.Matrix) shaders.Q1Layout {
	signs := f.rows * mat.Groups * q1.GroupSignBytes
	return shaders.Q1Layout{Rows: uint32(mat.Rows), Cols: uint32(mat.Cols), Groups: uint32(mat.Groups),
		BitStride: q1.GroupSignBytes, ScaleStride: 2, ScaleKind: uint32(mat.Kind),
		BitOff: uint32(f.off), ScaleOff: uint32(f.off + signs)}
}

// encFixup records a fixup: in is the projection's input at batch row f.start (n, cols), out
// its output at batch row f.start, output row 0 (n, rows), w the buffer of the plan's blocks.
func encFixup(e encoder, mat *q1.Matrix, f fixup, w buffer, in, out ref) {
	a := shaders.Q1Args{W: f.layout(mat), N: uint32(f.n)}
	e.dispatch(shaders.KernelMatVec, shaders.Bytes(&a), shaders.MatVecGrid(f.rows, f.n),
		bind{1, w, 0}, bind{2, w, 0}, in.bind(3), out.at(f.row0).bind(4))
}
