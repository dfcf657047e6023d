package cpu

import (
	"math/bits"
	"sync"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// vecBlock is how many input vectors share one pass over the weights.
const vecBlock = 4

// tileGroups is how many 128-column groups share one pass over a block of rows, so that the
// tables of vecBlock vectors for a tile (vecBlock x tileGroups x 16 KiB) stay in L2.
const tileGroups = 8

// MatMul computes out = x · Wᵀ for a 1-bit matrix W (Rows x Cols):
//
//	out[v][r] = Σ_g d[r,g] · (2 · Σ_{j∈g, bit(r,j)=1} x[v][j] − Σ_{j∈g} x[v][j])
//
// which is Σ_j w[r,j]·x[v][j] with w = ±d (FORMATS.md §3.4). x is (n, Cols), out is (n, Rows).
// The masked sums come from 256-entry tables of partial sums of 8 inputs, one lookup per sign
// byte. Each output is accumulated over its groups in order 0..Groups-1 from its own input
// vector only, so results are bit-identical whatever n, the batching or the thread count.
func MatMul(m *q1.Matrix, x []float32, n int, out []float32) {
	MatMulShared([]*q1.Matrix{m}, x, n, [][]float32{out})
}

// MatMulShared computes outs[i] = x · ms[i]ᵀ for matrices that read the same input (q, k and v;
// gate and up), building the lookup tables of each input vector once for all of them. Every
// matrix must have the same Cols; outs[i] is (n, ms[i].Rows). Results are bit-identical to
// MatMul on each matrix.
func MatMulShared(ms []*q1.Matrix, x []float32, n int, outs [][]float32) {
	cols, groups := ms[0].Cols, ms[0].Groups
	for i, m := range ms {
		if m.Cols != cols || len(x) < n*cols || len(outs[i]) < n*m.Rows {
			panic("cpu: MatMulShared: shape mismatch or buffer too small")
		}
	}
	lut := getLUT(vecBlock * cols * 32)
	defer putLUT(lut)
	gsum := make([]float32, vecBlock*groups) // (vecBlock, Groups)
	for v0 := 0; v0 < n; v0 += vecBlock {
		nv := min(vecBlock, n-v0)
		for v := 0; v < nv; v++ {
			buildLUT(x[(v0+v)*cols:(v0+v+1)*cols], (*lut)[v*cols*32:(v+1)*cols*32], gsum[v*groups:(v+1)*groups])
		}
		for i, m := range ms {
			out := outs[i][v0*m.Rows:]
			parallelRows(m.Rows, m.Cols, func(r0, r1 int) {
				matmulRows(m, *lut, gsum, nv, r0, r1, out)
			})
		}
	}
}

// buildLUT fills t (Cols/8, 256): t[k][b] = Σ_{i: bit i of b} x[8k+i], and gs (Groups) with
// the plain sum of each 128-input group.
func buildLUT(x, t, gs []float32) {
	for k := 0; k < len(x)/8; k++ {
		xs := x[8*k : 8*k+8 : 8*k+8]
		tk := t[256*k : 256*k+256 : 256*k+256]
		tk[0] = 0
		for b := 1; b < 256; b++ {
			tk[b] = tk[b&(b-1)] + xs[bits.TrailingZeros8(uint8(b))]
		}
	}
	for g := range gs {
		var s float32
		for _, v := range x[g*q1.GroupSize : (g+1)*q1.GroupSize] {
			s += v
		}
		gs[g] = s
	}
}

// matmulRows computes rows [r0, r1) for nv vectors; out is (nv, Rows) from the first vector.
// With one vector the rows are streamed whole, sequentially through memory (its tables fit in
// L2); with several, rows are processed in blocks that sweep the columns tile by tile so the
// tables of all the vectors for a tile stay in cache. Either way each output accumulates its
// groups in order 0..Groups-1.
func matmulRows(m *q1.Matrix, lut, gsum []float32, nv, r0, r1 int, out []float32) {
	const rowBlock = 64
	G, C, R := m.Groups, m.Cols, m.Rows
	tile, block := tileGroups, rowBlock
	if nv == 1 {
		tile, block = G, r1-r0
	}
	sc := make([]float32, tile) // scales of one row's tile
	for rb := r0; rb < r1; rb += block {
		re := min(r1, rb+block)
		for g0 := 0; g0 < G; g0 += tile {
			g1 := min(G, g0+tile)
			for r := rb; r < re; r++ {
				for g := g0; g < g1; g++ {
					sc[g-g0] = m.Scale(r, g)
				}
				bits := m.Bits[(r*G+g0)*m.BitStride:]
				for v := 0; v < nv; v++ {
					lv := lut[v*C*32+g0*4096 : v*C*32+g1*4096]
					gs := gsum[v*G+g0 : v*G+g1]
					var acc float32
					if g0 > 0 {
						acc = out[v*R+r]
					}
					for k := range gs {
						t := (*[4096]float32)(lv[k*4096:])
						s := (*[16]byte)(bits[k*m.BitStride:])
						sum := ((t[s[0]] + t[256+int(s[1])]) + (t[512+int(s[2])] + t[768+int(s[3])])) +
							((t[1024+int(s[4])] + t[1280+int(s[5])]) + (t[1536+int(s[6])] + t[1792+int(s[7])])) +
							(((t[2048+int(s[8])] + t[2304+int(s[9])]) + (t[2560+int(s[10])] + t[2816+int(s[11])])) +
								((t[3072+int(s[12])] + t[3328+int(s[13])]) + (t[3584+int(s[14])] + t[3840+int(s[15])])))
						acc += sc[k] * (2*sum - gs[k])
					}
					out[v*R+r] = acc
				}
			}
		}
	}
}

var lutPool sync.Pool

func getLUT(n int) *[]float32 {
	if p, ok := lutPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

func putLUT(p *[]float32) { lutPool.Put(p) }
