package cpu

import (
	"math/bits"
	"sync"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// vecBlock is how many input vectors share one pass over the weights.
const vecBlock = 4

// nibbleRows is the most rows (over all the matrices of one call) for which MatMulShared uses
// nibble tables: below it, building the 256-entry tables costs more than they save.
const nibbleRows = 128

// lutChunk is how many 8-input table slices one worker builds at a time.
const lutChunk = 32

// MatMul computes out = x · Wᵀ for a 1-bit matrix W (Rows x Cols):
//
//	out[v][r] = Σ_g d[r,g] · Σ_{j∈g} ±x[v][j]     (+ where bit (r,j) is 1)
//
// which is Σ_j w[r,j]·x[v][j] with w = ±d (docs/FORMATS.md §3.4). x is (n, Cols), out is (n, Rows).
// The signed sums come from tables of the signed sums of 8 inputs, one lookup per sign byte
// (matmul_lut.go). Each output adds its groups in order 0..Groups-1, each group's 16 lookups in
// a fixed tree, from its own input vector only, so results are bit-identical whatever n, the
// batching, the rows of the matrix or the thread count (matmul_rows.go).
func MatMul(m *q1.Matrix, x []float32, n int, out []float32) { Workers(0).MatMul(m, x, n, out) }

// MatMul is MatMul on w goroutines.
func (w Workers) MatMul(m *q1.Matrix, x []float32, n int, out []float32) {
	w.MatMulShared([]*q1.Matrix{m}, x, n, [][]float32{out})
}

// MatMulShared computes outs[i] = x · ms[i]ᵀ for matrices that read the same input (q, k and v;
// gate and up), building the lookup tables of each input vector once for all of them. Every
// matrix must have the same Cols; outs[i] is (n, ms[i].Rows). Results are bit-identical to
// MatMul on each matrix.
func MatMulShared(ms []*q1.Matrix, x []float32, n int, outs [][]float32) {
	Workers(0).MatMulShared(ms, x, n, outs)
}

// MatMulShared is MatMulShared on w goroutines.
func (w Workers) MatMulShared(ms []*q1.Matrix, x []float32, n int, outs [][]float32) {
	nt := w.count()
	if len(outs) != len(ms) {
		panic("cpu: MatMulShared: one output per matrix")
	}
	if len(ms) == 0 || n <= 0 {
		return
	}
	cols, rows := ms[0].Cols, 0
	for i, m := range ms {
		if m.Cols != cols || len(x) < n*cols || len(outs[i]) < n*m.Rows {
			panic("cpu: MatMulShared: shape mismatch or buffer too small")
		}
		rows += m.Rows
	}
	if rows <= nibbleRows {
		matMulNibble(nt, ms, x, n, outs)
		return
	}
	// Whole blocks of four vectors share a pass; the one to three left go one by one (a block
	// padded with unused vectors would cost more than it saves).
	v0 := 0
	if n >= vecBlock {
		lut := getBuf(cols * 32 * vecBlock) // (Cols/8, 256, 4)
		for ; v0+vecBlock <= n; v0 += vecBlock {
			xb := x[v0*cols : (v0+vecBlock)*cols]
			buildTables(nt, cols, func(k0, k1 int) { buildLUT8x4(xb, *lut, k0, k1) })
			eachRows(nt, ms, vecBlock, rows4Scratch(ms[0].Groups), func(i, r0, r1 int, sc []float32) {
				rows4(ms[i], *lut, r0, r1, outs[i][v0*ms[i].Rows:], sc)
			})
		}
		putBuf(lut)
	}
	if v0 < n {
		lut := getBuf(cols * 32) // (Cols/8, 256)
		for ; v0 < n; v0++ {
			xv := x[v0*cols : (v0+1)*cols]
			buildTables(nt, cols, func(k0, k1 int) { buildLUT8(xv, *lut, k0, k1) })
			eachRows(nt, ms, 1, rows1Scratch(ms[0].Groups), func(i, r0, r1 int, sc []float32) {
				rows1(ms[i], *lut, r0, r1, outs[i][v0*ms[i].Rows:], sc)
			})
		}
		putBuf(lut)
	}
}

// matMulNibble is MatMulShared for matrices with few rows, with nibble tables: vector by vector
// with the rows spread over the workers, or, for matrices too small to split, with the vectors
// spread over them.
func matMulNibble(nt int, ms []*q1.Matrix, x []float32, n int, outs [][]float32) {
	cols, rows, G := ms[0].Cols, 0, ms[0].Groups
	for _, m := range ms {
		rows += m.Rows
	}
	if rows*cols >= minParallelWork || n == 1 {
		t := getBuf(cols * 4) // (Cols/8, 2, 16)
		for v := range n {
			buildNibbles(x[v*cols:(v+1)*cols], *t)
			eachRows(nt, ms, 1, G, func(i, r0, r1 int, sc []float32) {
				rowsNibble(ms[i], *t, r0, r1, outs[i][v*ms[i].Rows:], sc)
			})
		}
		putBuf(t)
		return
	}
	if rows*cols*n < minParallelWork {
		nt = 1
	}
	parallelFor(nt, n, func(v int) {
		buf := getBuf(cols*4 + G)
		t, sc := (*buf)[:cols*4], (*buf)[cols*4:] // (Cols/8, 2, 16), (Groups)
		buildNibbles(x[v*cols:(v+1)*cols], t)
		for i, m := range ms {
			rowsNibble(m, t, 0, m.Rows, outs[i][v*m.Rows:], sc)
		}
		putBuf(buf)
	})
}

// buildTables runs build over the Cols/8 table slices, split over the workers when there are
// enough of them.
func buildTables(nt, cols int, build func(k0, k1 int)) {
	nk := cols / 8
	if nk < 4*lutChunk {
		nt = 1
	}
	parallelFor(nt, (nk+lutChunk-1)/lutChunk, func(c int) {
		build(c*lutChunk, min(nk, (c+1)*lutChunk))
	})
}

// eachRows runs f(i, r0, r1, sc) over the rows of every matrix of ms for nv vectors, split into
// chunks spread over the workers when the work is large enough; sc is scratch of scratch floats.
func eachRows(nt int, ms []*q1.Matrix, nv, scratch int, f func(i, r0, r1 int, sc []float32)) {
	type chunk struct{ i, r0, r1 int }
	work := 0
	for _, m := range ms {
		work += m.Rows * m.Cols * nv
	}
	var chunks []chunk
	for i, m := range ms {
		step := m.Rows
		if nt > 1 && work >= minParallelWork {
			step = rowChunk(m.Rows, nt)
		}
		for r0 := 0; r0 < m.Rows; r0 += step {
			chunks = append(chunks, chunk{i, r0, min(m.Rows, r0+step)})
		}
	}
	parallelFor(nt, len(chunks), func(c int) {
		buf := getBuf(scratch)
		f(chunks[c].i, chunks[c].r0, chunks[c].r1, *buf)
		putBuf(buf)
	})
}

// bufPools recycle the tables and the scratch of the kernels, by size class: pool c holds
// buffers of capacity 2^c.
var bufPools [64]sync.Pool

// getBuf returns a buffer of n floats with arbitrary contents.
func getBuf(n int) *[]float32 {
	c := bits.Len(uint(n))
	if p, ok := bufPools[c].Get().(*[]float32); ok {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n, 1<<c)
	return &s
}

func putBuf(p *[]float32) { bufPools[bits.Len(uint(cap(*p)))-1].Put(p) }
