package cpu

import (
	"encoding/binary"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The transposed 1-bit product of a backward pass: the gradient reaching a projection's input
// from the gradient of its output.

// tokenTile is how many token rows of dIn one unit of work accumulates at once: a tile of 128
// columns of that many rows (16 KiB of float32) stays in L1 while every row of W goes by.
const tokenTile = 32

// MatMulT computes dIn = dOut · W for a 1-bit matrix W (Rows x Cols), the transpose of MatMul:
//
//	dIn[t][j] = Σ_r dOut[t][r] · w[r][j]     (w = ±d[r][j/128])
//
// dOut is (n, Rows), dIn is (n, Cols) and is overwritten. The weights stay packed: each group's
// sign bytes and scale are read where they are stored. The rows go in blocks of 8, as the inputs
// of MatMul do: for block b, group g and token t, with c_k = dOut[t][8b+k]·d[8b+k, g] (0 past the
// last row), column j of the group receives the signed sum T[p] = Σ_k ±c_k of the nibble tables
// of matmul_lut.go, p being the 8 sign bits of column j in the block's rows (a bit transpose of
// the block's sign bytes). Every dIn[t][j] adds its blocks in order 0, 1, ..., so results are
// bit-identical whatever the thread count or n.
func MatMulT(m *q1.Matrix, dOut []float32, n int, dIn []float32) { Workers(0).MatMulT(m, dOut, n, dIn) }

// MatMulT is MatMulT on w goroutines. The work is split by 128-column groups and tiles of
// tokenTile tokens, which write disjoint parts of dIn: nothing is shared, nothing races.
func (w Workers) MatMulT(m *q1.Matrix, dOut []float32, n int, dIn []float32) {
	if n <= 0 {
		return
	}
	if len(dOut) < n*m.Rows || len(dIn) < n*m.Cols {
		panic("cpu: MatMulT: buffer too small")
	}
	tiles := (n + tokenTile - 1) / tokenTile
	nt := w.count()
	if m.Rows*m.Cols*n < minParallelWork {
		nt = 1
	}
	parallelFor(nt, m.Groups*tiles, func(i int) {
		g, t0 := i%m.Groups, (i/m.Groups)*tokenTile
		matMulTGroup(m, dOut, dIn, g, t0, min(n, t0+tokenTile))
	})
}

// matMulTGroup accumulates columns [128g, 128g+128) of dIn for tokens [t0, t1).
func matMulTGroup(m *q1.Matrix, dOut, dIn []float32, g, t0, t1 int) {
	rows, cols := m.Rows, m.Cols
	c0 := g * q1.GroupSize
	for t := t0; t < t1; t++ {
		clear(dIn[t*cols+c0 : t*cols+c0+q1.GroupSize])
	}
	var (
		pat    [q1.GroupSize]byte // bit k of pat[j]: the sign of column j in row rb+k
		d, c   [8]float32         // the block's scales; its coefficients for one token
		lo, hi [16]float32
	)
	for rb := 0; rb < rows; rb += 8 {
		nr := min(8, rows-rb)
		blockPatterns(m, rb, nr, g, &pat)
		for k := range 8 {
			d[k] = 0
			if k < nr {
				d[k] = m.Scale(rb+k, g)
			}
		}
		for t := t0; t < t1; t++ {
			ct := dOut[t*rows+rb : t*rows+rb+nr]
			for k := range 8 {
				c[k] = 0
				if k < nr {
					c[k] = ct[k] * d[k]
				}
			}
			nibbles(&c, &lo, &hi)
			acc := (*[q1.GroupSize]float32)(dIn[t*cols+c0:])
			for j, p := range pat {
				acc[j] += lo[p&15] + hi[p>>4]
			}
		}
	}
}

// blockPatterns writes into pat, for each column j of group g, the sign bits of rows
// [rb, rb+nr) (nr <= 8) at column j: bit k for row rb+k, 0 for k >= nr.
func blockPatterns(m *q1.Matrix, rb, nr, g int, pat *[q1.GroupSize]byte) {
	var s [8][]byte
	for k := range 8 {
		if k < nr {
			s[k] = m.GroupSigns(rb+k, g)
		}
	}
	for b := range q1.GroupSignBytes {
		var x uint64 // byte k: row k's sign byte b
		for k := range nr {
			x |= uint64(s[k][b]) << (8 * k)
		}
		binary.LittleEndian.PutUint64(pat[8*b:], transpose8(x))
	}
}

// transpose8 transposes the 8x8 bit matrix x (bit i of byte k is element (k, i)): bit k of byte
// i of the result is bit i of byte k of x.
func transpose8(x uint64) uint64 {
	t := (x ^ x>>7) & 0x00aa00aa00aa00aa
	x ^= t ^ t<<7
	t = (x ^ x>>14) & 0x0000cccc0000cccc
	x ^= t ^ t<<14
	t = (x ^ x>>28) & 0x00000000f0f0f0f0
	return x ^ t ^ t<<28
}
