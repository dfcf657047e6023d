package cpu

import (
	"math"
	"math/bits"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// Q8Block is the number of activations that share one scale in llama.cpp's Q8_0 format.
const Q8Block = 32

const (
	q8VecBlock = 4   // input vectors prepared at once (their tables stay in cache)
	q8RowChunk = 256 // rows per unit of parallel work
)

// QuantizeQ8 quantises x (len a multiple of 32) to Q8_0 exactly as llama.cpp's x86 CPU path
// does before a Q1_0 mat-vec (docs/FORMATS.md §10.1). Per block of 32:
//
//	amax = max|x|,  d = fp16(amax/127) (round to nearest even),  id = 127/amax (0 if amax = 0)
//	q = round_half_to_even(x·id)  (x·id rounded to float32 first)
//
// q is (len(x)) and d is (len(x)/32), d holding the fp16 scale converted back to float32.
func QuantizeQ8(x []float32, q []int8, d []float32) {
	for b := range len(x) / Q8Block {
		xs := x[b*Q8Block : (b+1)*Q8Block : (b+1)*Q8Block]
		var amax float32
		for _, v := range xs {
			amax = max(amax, abs32(v))
		}
		d[b] = q1.F16ToF32(q1.F32ToF16(amax / 127))
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		qs := q[b*Q8Block : (b+1)*Q8Block : (b+1)*Q8Block]
		for i, v := range xs {
			r := math.RoundToEven(float64(float32(v * id)))
			qs[i] = int8(max(-128, min(127, r))) // saturating, like the int8 packs
		}
	}
}

func abs32(v float32) float32 { return math.Float32frombits(math.Float32bits(v) &^ (1 << 31)) }

// fma32 returns a·b + c rounded once to float32, like the x86 FMA instructions.
//
// The product of two float32 is exact in float64, so s = a·b + c in float64 is rounded once,
// and float32(s) rounds again. The two roundings differ from one only when s lands exactly on
// a float32 rounding midpoint while a·b + c does not, which needs the exact sum to take more
// than 53 bits (operands more than ~2^29 apart) and then a 1 in 2^28 bit pattern: in 5·10^7
// random triples with exponents spread over ±60 it happened 4 times, never for operands of
// similar size nor for MatMulQ8's d·blk + acc (TestFMA32 shows a constructed case). fma32
// takes the cheap path unless s is such a midpoint (or outside the float32 normal range) and
// otherwise rounds the sum to odd: TwoSum recovers its exact rounding error e, and when
// e != 0 an even s is moved one ulp towards the exact value. Rounding to odd at 53 bits and
// then to nearest at 24 bits equals one rounding to 24 bits (53 >= 24+2), so fma32 is exact.
func fma32(a, b, c float32) float32 {
	s := float64(a)*float64(b) + float64(c) // a fused multiply-add gives the same: a·b is exact
	u := math.Float64bits(s)
	if u&(1<<29-1) != 1<<28 && ((u>>52&0x7ff)-(1023-126) < 254 || s == 0) {
		return float32(s) // not a float32 midpoint, in the normal range
	}
	return fma32Slow(float64(a)*float64(b), float64(c), s)
}

// fma32Slow rounds p + c, whose float64 sum is s, to float32 through round-to-odd.
//
//go:noinline
func fma32Slow(p, c, s float64) float32 {
	bb := s - p
	e := (p - (s - bb)) + (c - bb) // p + c = s + e exactly (NaN when s is infinite)
	if (e > 0 || e < 0) && math.Float64bits(s)&1 == 0 {
		u := math.Float64bits(s)
		if (e > 0) == (s > 0) {
			u++
		} else {
			u--
		}
		s = math.Float64frombits(u)
	}
	return float32(s)
}

// q8Vec is one input vector quantised to Q8_0 and expanded into lane tables.
type q8Vec struct {
	d   []float32 // (Cols/32) block scales
	lut []float32 // (Cols/4, 16): Σ over 4 consecutive inputs of ±q, sign from the 4 bits of the index
}

// prepare quantises x (Cols) and fills the lane tables.
func (v *q8Vec) prepare(x []float32, q []int8) {
	QuantizeQ8(x, q, v.d)
	for j := range len(x) / 4 {
		qs := q[4*j : 4*j+4 : 4*j+4]
		var t [16]int32 // integer sums, |t| <= 508, exact in float32
		t[0] = -int32(qs[0]) - int32(qs[1]) - int32(qs[2]) - int32(qs[3])
		for b := 1; b < 16; b++ {
			t[b] = t[b&(b-1)] + 2*int32(qs[bits.TrailingZeros8(uint8(b))])
		}
		for b, sum := range t {
			v.lut[16*j+b] = float32(sum)
		}
	}
}

// MatMulQ8 computes out = x · Wᵀ (x (n, Cols), out (n, Rows)) the way llama.cpp's AVX2
// Q1_0 × Q8_0 dot product does on x86: each input vector is quantised with QuantizeQ8, and
// for row r, with d_g the weight scale of 128-column group g and dy_k the scale of its
// Q8_0 block k (k = 0..3):
//
//	s_k[l]  = Σ_{e<4} (bit ? +q : −q)[32k + 4l + e]           integer, lane l = 0..7
//	blk[l]  = dy_0·s_0[l], then blk[l] = fma(dy_k, s_k[l], blk[l]) for k = 1..3
//	acc[l]  = fma(d_g, blk[l], acc[l])                          over g = 0..Groups-1
//	out     = ((acc4+acc0)+(acc6+acc2)) + ((acc5+acc1)+(acc7+acc3))
//
// all in float32 with single-rounding FMAs. Every output depends only on its row and its own
// input vector, so results are bit-identical whatever n, the batching or the thread count.
func MatMulQ8(m *q1.Matrix, x []float32, n int, out []float32) { Workers(0).MatMulQ8(m, x, n, out) }

// MatMulQ8 is MatMulQ8 on w goroutines.
func (w Workers) MatMulQ8(m *q1.Matrix, x []float32, n int, out []float32) {
	w.MatMulQ8Shared([]*q1.Matrix{m}, x, n, [][]float32{out})
}

// MatMulQ8Shared is MatMulQ8 for several matrices that read the same input (q, k and v;
// gate and up), quantising each input vector once. Every matrix must have the same Cols;
// outs[i] is (n, ms[i].Rows). It runs the assembly kernels of the active SIMD level (SIMD),
// which give the same bits as the pure-Go ones.
func MatMulQ8Shared(ms []*q1.Matrix, x []float32, n int, outs [][]float32) {
	Workers(0).MatMulQ8Shared(ms, x, n, outs)
}

// MatMulQ8Shared is MatMulQ8Shared on w goroutines.
func (w Workers) MatMulQ8Shared(ms []*q1.Matrix, x []float32, n int, outs [][]float32) {
	if len(outs) != len(ms) {
		panic("cpu: MatMulQ8Shared: one output per matrix")
	}
	if len(ms) == 0 || n <= 0 {
		return
	}
	cols := ms[0].Cols
	for i, m := range ms {
		if m.Cols != cols || len(x) < n*cols || len(outs[i]) < n*m.Rows {
			panic("cpu: MatMulQ8Shared: shape mismatch or buffer too small")
		}
	}
	if simdLevel != LevelPurego {
		matMulQ8SIMD(w.count(), ms, x, n, outs)
		return
	}
	matMulQ8Go(w, ms, x, n, outs)
}

// matMulQ8Go is MatMulQ8Shared in pure Go, with lane tables (q8Vec).
func matMulQ8Go(w Workers, ms []*q1.Matrix, x []float32, n int, outs [][]float32) {
	cols := ms[0].Cols
	q := make([]int8, cols)
	vs := make([]q8Vec, min(n, q8VecBlock))
	for i := range vs {
		vs[i] = q8Vec{d: make([]float32, cols/Q8Block), lut: make([]float32, cols*4)}
	}
	for v0 := 0; v0 < n; v0 += q8VecBlock {
		nv := min(q8VecBlock, n-v0)
		for v := range nv {
			vs[v].prepare(x[(v0+v)*cols:(v0+v+1)*cols], q)
		}
		for i, m := range ms {
			out := outs[i][v0*m.Rows:]
			rows := func(c int) {
				for r := c * q8RowChunk; r < min(m.Rows, (c+1)*q8RowChunk); r++ {
					for v := range nv {
						out[v*m.Rows+r] = q8Row(m, r, &vs[v])
					}
				}
			}
			chunks := (m.Rows + q8RowChunk - 1) / q8RowChunk
			if m.Rows*m.Cols*nv < 1<<16 { // too little work to pay for goroutines
				for c := range chunks {
					rows(c)
				}
			} else {
				w.ParallelFor(chunks, rows)
			}
		}
	}
}

// q8Row is the dot product of row r of m with one prepared vector (see MatMulQ8).
func q8Row(m *q1.Matrix, r int, v *q8Vec) float32 {
	var acc [8]float32
	var ls [32]float32 // lane sums s_k[l] at 8k+l
	for g := range m.Groups {
		s := (*[16]byte)(m.Bits[(r*m.Groups+g)*m.BitStride:])
		lut := (*[32 * 16]float32)(v.lut[g*32*16:])
		// lane l of sub-block k covers inputs 32k+4l .. 32k+4l+3, the low (l even) or high
		// nibble of sign byte 4k+l/2: slot 8k+l is nibble 2·byte + (l&1).
		for i, b := range s {
			ls[2*i] = lut[32*i+int(b&15)]
			ls[2*i+1] = lut[32*i+16+int(b>>4)]
		}
		d := float64(m.Scale(r, g))
		dy := (*[4]float32)(v.d[4*g:])
		for l := range 8 {
			// dy has 11 significant bits and |s| < 512 has 9, so dy·s is exact in float32
			// and fma(dy, s, blk) is the float32 sum of that product and blk.
			blk := dy[0] * ls[l]
			blk = float32(dy[1]*ls[8+l]) + blk
			blk = float32(dy[2]*ls[16+l]) + blk
			blk = float32(dy[3]*ls[24+l]) + blk
			// acc = fma(d, blk, acc): fma32 by hand, its fast path inlined
			p := d * float64(blk) // exact: 11 + 24 bits
			sum := p + float64(acc[l])
			if u := math.Float64bits(sum); u&(1<<29-1) != 1<<28 && ((u>>52&0x7ff)-(1023-126) < 254 || sum == 0) {
				acc[l] = float32(sum)
			} else {
				acc[l] = fma32Slow(p, float64(acc[l]), sum)
			}
		}
	}
	return ((acc[4] + acc[0]) + (acc[6] + acc[2])) + ((acc[5] + acc[1]) + (acc[7] + acc[3]))
}
