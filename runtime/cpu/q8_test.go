package cpu

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The llama kernels are checked bit for bit against llama.cpp's own tensors and outputs in
// package runtime (numerics_test.go); these tests check them against the stated maths.

func TestQuantizeQ8RoundsHalfToEven(t *testing.T) {
	// amax = 127 makes id = 127/amax = 1 and d = fp16(1) = 1, so q = round(x) exactly.
	x := make([]float32, 32)
	copy(x, []float32{127, 2.5, 3.5, -2.5, -3.5, 0.5, -0.5, 1.5, 126.5, -126.5, 2.4999998, 0.25})
	want := []int8{127, 2, 4, -2, -4, 0, 0, 2, 126, -126, 2, 0}
	q, d := make([]int8, 32), make([]float32, 1)
	QuantizeQ8(x, q, d)
	require.Equal(t, float32(1), d[0])
	require.Equal(t, want, q[:len(want)])
	require.Equal(t, make([]int8, 20), q[len(want):])
}

func TestQuantizeQ8ZeroBlockAndScaleRounding(t *testing.T) {
	x := make([]float32, 96)
	// block 1: amax/127 = 1 + 2^-11, halfway between the fp16 values 1 and 1 + 2^-10: even is 1.
	x[32] = -127 * (1 + 0x1p-11)
	// block 2: amax/127 = 1 + 3·2^-11, halfway between 1 + 2^-10 and 1 + 2^-9: even is 1 + 2^-9.
	x[64+7] = 127 * (1 + 3*0x1p-11)
	q, d := make([]int8, 96), make([]float32, 3)
	for i := range q {
		q[i] = 99
	}
	QuantizeQ8(x, q, d)
	require.Equal(t, []float32{0, 1, 1 + 0x1p-9}, d)
	require.Equal(t, make([]int8, 32), q[:32], "an all-zero block quantises to zeros")
	require.Equal(t, int8(-127), q[32])
	require.Equal(t, int8(127), q[71])
}

func TestQuantizeQ8Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 32*200)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * math.Exp(rng.NormFloat64()*3))
	}
	q, d := make([]int8, len(x)), make([]float32, len(x)/32)
	QuantizeQ8(x, q, d)
	for b := range d {
		xs, qs := x[32*b:32*b+32], q[32*b:32*b+32]
		var amax float32
		for _, v := range xs {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		// d is the fp16 value nearest amax/127: no fp16 neighbour is closer.
		h := q1.F32ToF16(d[b])
		require.Equal(t, d[b], q1.F16ToF32(h))
		r := float64(amax / 127)
		for _, nb := range []uint16{h - 1, h + 1} {
			require.LessOrEqual(t, math.Abs(float64(d[b])-r), math.Abs(float64(q1.F16ToF32(nb))-r), "block %d", b)
		}
		id := 127 / amax
		for i, v := range xs {
			y := float64(v * id)
			require.LessOrEqual(t, math.Abs(y-float64(qs[i])), 0.5, "block %d value %d", b, i)
			if math.Abs(y-float64(qs[i])) == 0.5 {
				require.Zero(t, qs[i]%2, "ties go to even")
			}
			if math.Abs(float64(v)) == float64(amax) {
				require.Equal(t, int8(127), max(qs[i], -qs[i]))
			}
		}
	}
}

// exactFMA32 is a·b + c rounded once to float32, through big.Float.
func exactFMA32(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(300).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}

func TestFMA32(t *testing.T) {
	// A double rounding case: (1+2^-12)² = 1 + 2^-11 + 2^-24 is a float32 midpoint, and a tiny
	// c pushes the exact sum above it, but not the float64 sum.
	a, c := float32(1+0x1p-12), float32(0x1p-80)
	want := float32(1 + 0x1p-11 + 0x1p-23)
	require.Equal(t, want, exactFMA32(a, a, c))
	require.Equal(t, want, fma32(a, a, c))
	require.NotEqual(t, want, float32(math.FMA(float64(a), float64(a), float64(c))), "float64 FMA rounds twice here")
	require.Equal(t, exactFMA32(a, a, -c), fma32(a, a, -c))

	rng := rand.New(rand.NewPCG(3, 4))
	r := func(spread float64) float32 { // exponents within ±60: products stay finite
		return float32(rng.NormFloat64() * math.Exp2(max(-60, min(60, math.Round(rng.NormFloat64()*spread)))))
	}
	naive := 0
	const n = 200000
	for i := range n {
		spread := []float64{2, 20, 60}[i%3] // operands of similar and of very different sizes
		a, b, c := r(spread), r(spread), r(spread)
		want := exactFMA32(a, b, c)
		require.Equal(t, math.Float32bits(want), math.Float32bits(fma32(a, b, c)), "fma32(%g, %g, %g)", a, b, c)
		if float32(math.FMA(float64(a), float64(b), float64(c))) != want {
			naive++
		}
	}
	t.Logf("float32(math.FMA(a, b, c)) differs from a single rounding in %d of %d random triples", naive, n)
	// Special values follow IEEE.
	inf := float32(math.Inf(1))
	require.Equal(t, inf, fma32(inf, 2, 1))
	require.True(t, math.IsNaN(float64(fma32(inf, 0, 1))))
	require.Equal(t, float32(0x1p-149), fma32(0x1p-75, 0x1p-74, 0))
}

// refMatMulQ8 is MatMulQ8's recipe written out plainly: per row, lane sums of ±q by weight
// bit, the block chain and the accumulation with exact FMAs, and the final lane tree.
func refMatMulQ8(m *q1.Matrix, x []float32, n int) []float32 {
	out := make([]float32, n*m.Rows)
	for v := range n {
		q, dy := make([]int8, m.Cols), make([]float32, m.Cols/32)
		QuantizeQ8(x[v*m.Cols:(v+1)*m.Cols], q, dy)
		for r := range m.Rows {
			var acc [8]float32
			for g := range m.Groups {
				for l := range 8 {
					var blk float32
					for k := range 4 {
						s := 0
						for e := range 4 {
							c := g*128 + 32*k + 4*l + e
							if m.Bit(r, c) {
								s += int(q[c])
							} else {
								s -= int(q[c])
							}
						}
						blk = exactFMA32(dy[4*g+k], float32(s), blk)
					}
					acc[l] = exactFMA32(m.Scale(r, g), blk, acc[l])
				}
			}
			out[v*m.Rows+r] = ((acc[4] + acc[0]) + (acc[6] + acc[2])) + ((acc[5] + acc[1]) + (acc[7] + acc[3]))
		}
	}
	return out
}

func TestMatMulQ8Recipe(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sh := range []struct{ rows, cols, n int }{{1, 128, 1}, {33, 256, 3}, {17, 512, 6}} {
		m := randomMatrix(t, sh.rows, sh.cols, uint64(sh.rows))
		x := randVec(rng, sh.n*sh.cols)
		x[5] = 0 // a zero and a whole zero block
		clear(x[sh.cols-32 : sh.cols])
		out := make([]float32, sh.n*sh.rows)
		MatMulQ8(m, x, sh.n, out)
		require.Equal(t, refMatMulQ8(m, x, sh.n), out, "shape %+v", sh)

		// Against exact dot products: the error is the Q8_0 rounding, |Σ w·(x − q·dy)| <= Σ |w|·dy/2.
		ref := refMatMul(m, sh.rows, sh.cols, x, sh.n)
		for v := range sh.n {
			q, dy := make([]int8, sh.cols), make([]float32, sh.cols/32)
			QuantizeQ8(x[v*sh.cols:(v+1)*sh.cols], q, dy)
			for r := range sh.rows {
				var bound float64
				for c := range sh.cols {
					bound += math.Abs(float64(m.Weight(r, c))) * float64(dy[c/32]) / 2
				}
				require.InDelta(t, ref[v*sh.rows+r], float64(out[v*sh.rows+r]), bound*1.001+1e-5, "shape %+v", sh)
			}
		}
	}
}

func TestMatMulQ8BatchAndThreadInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m := randomMatrix(t, 300, 1024, 9)
	m2 := randomMatrix(t, 70, 1024, 10)
	const n = 6
	x := randVec(rng, n*m.Cols)
	batched, batched2 := make([]float32, n*m.Rows), make([]float32, n*m2.Rows)
	MatMulQ8Shared([]*q1.Matrix{m, m2}, x, n, [][]float32{batched, batched2})
	for _, th := range []int{1, 3} {
		w := Workers(th)
		for v := range n {
			one := make([]float32, m.Rows)
			w.MatMulQ8(m, x[v*m.Cols:(v+1)*m.Cols], 1, one)
			require.Equal(t, batched[v*m.Rows:(v+1)*m.Rows], one, "threads %d vector %d", th, v)
		}
		one := make([]float32, n*m2.Rows)
		w.MatMulQ8(m2, x, n, one)
		require.Equal(t, batched2, one, "threads %d, second matrix", th)
	}
}

// ulps is the distance between two float32 in units in the last place.
func ulps(a, b float32) int64 {
	ia, ib := int64(math.Float32bits(a)), int64(math.Float32bits(b))
	if a < 0 {
		ia = -(ia &^ (1 << 31))
	}
	if b < 0 {
		ib = -(ib &^ (1 << 31))
	}
	return max(ia-ib, ib-ia)
}

func TestExpLlama(t *testing.T) {
	// ggml states a maximum error of 1.45 + 0.5 ulp over the normal range.
	for x := float32(-87); x < 88; x += 0.01234 {
		require.LessOrEqual(t, ulps(expLlama(x), float32(math.Exp(float64(x)))), int64(2), "x = %g", x)
	}
	require.Equal(t, float32(1), expLlama(0))
	require.Equal(t, float32(0), expLlama(float32(math.Inf(-1))))
	require.Equal(t, float32(0), expLlama(-200))
	require.True(t, math.IsInf(float64(expLlama(200)), 1))
}

func TestSinCosLlama(t *testing.T) {
	// glibc states a maximum error of 0.5607 ulp: at most one ulp from the correctly rounded
	// value, and rarely off it. Cover both range reductions (|x| below and above 120).
	rng := rand.New(rand.NewPCG(9, 10))
	off, n := 0, 0
	for i := range 100000 {
		x := float32(rng.Float64()*400 - 200)
		switch i % 4 {
		case 1:
			x = float32(rng.Float64() * 1e6)
		case 2:
			x = float32(rng.NormFloat64())
		}
		for _, cos := range []bool{false, true} {
			got := sincosLlama(x, cos)
			want := float32(math.Sin(float64(x)))
			if cos {
				want = float32(math.Cos(float64(x)))
			}
			require.LessOrEqual(t, ulps(got, want), int64(1), "x = %g cos %v", x, cos)
			if got != want {
				off++
			}
			n++
		}
	}
	require.Less(t, off, n/20)
	t.Logf("%d of %d results differ from the correctly rounded ones by one ulp", off, n)
	require.Equal(t, float32(1), sincosLlama(0, true))
	require.Equal(t, float32(0), sincosLlama(0, false))
	require.Equal(t, float32(1e-5), sincosLlama(1e-5, false))
	require.True(t, math.IsNaN(float64(sincosLlama(float32(math.Inf(1)), true))))
}

func TestLlamaFloatKernelsMatchFloatKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	close := func(want, got []float32, tol float64, what string) {
		t.Helper()
		for i := range want {
			require.InDelta(t, want[i], got[i], tol*(1+math.Abs(float64(want[i]))), "%s[%d]", what, i)
		}
	}
	x, w := randVec(rng, 4*256), randVec(rng, 256)
	a, b := make([]float32, len(x)), make([]float32, len(x))
	RMSNorm(a, x, w, 1e-6)
	RMSNormLlama(b, x, w, 1e-6)
	close(a, b, 1e-6, "rmsnorm")

	g, u := randVec(rng, 512), randVec(rng, 512)
	SiluMul(a[:512], g, u)
	SiluMulLlama(b[:512], g, u)
	close(a[:512], b[:512], 1e-6, "silu")

	for _, r := range []Rope{{Dim: 128, Base: 1e6},
		{Dim: 128, Base: 1e6, Factor: 4, OrigContext: 16384, BetaFast: 32, BetaSlow: 1}} {
		c1, s1 := r.Tables(0, 300)
		c2, s2 := r.TablesLlama(0, 300)
		close(c1, c2, 2e-5, "cos") // θ up to 300 in float32: its last bit is 3e-5
		close(s1, s2, 2e-5, "sin")
		q := randVec(rng, 300*2*128)
		q2 := append([]float32(nil), q...)
		ApplyRope(q, 300, 2, 128, c2, s2)
		ApplyRopeLlama(q2, 300, 2, 128, c2, s2)
		close(q, q2, 1e-6, "rope")
	}

	const heads, kvHeads, dim, ctx = 4, 2, 128, 40
	q, k, v := randVec(rng, ctx*heads*dim), randVec(rng, ctx*kvHeads*dim), randVec(rng, ctx*kvHeads*dim)
	want := make([]float32, ctx*heads*dim)
	Attention(want, q, k, v, ctx, ctx, heads, kvHeads, dim, make([]float32, ctx))
	got := make([]float32, len(want))
	AttentionLlama(got, q, k, v, ctx, ctx, heads, kvHeads, dim, make([]float32, ctx))
	close(want, got, 1e-5, "attention")
	// One token at a time (the other order of the value sums) agrees to rounding, and to the
	// bit while each of the 16 lanes holds at most one key (ctx <= 16).
	for p := range ctx {
		one := make([]float32, heads*dim)
		AttentionLlama(one, q[p*heads*dim:], k, v, 1, p+1, heads, kvHeads, dim, make([]float32, p+1))
		if p < 16 {
			require.Equal(t, got[p*heads*dim:(p+1)*heads*dim], one, "query %d", p)
		}
		close(got[p*heads*dim:(p+1)*heads*dim], one, 1e-5, "attention, one query")
	}
}

func benchMatMulQ8(b *testing.B, rows, cols, n int) {
	m := randomMatrix(b, rows, cols, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	x := randVec(rng, n*cols)
	out := make([]float32, n*rows)
	b.ResetTimer()
	for b.Loop() {
		MatMulQ8(m, x, n, out)
	}
	b.ReportMetric(float64(rows)*float64(cols)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
}

// BenchmarkMatMulQ8Vec4096 is a 4096x4096 mat-vec in llama numerics.
func BenchmarkMatMulQ8Vec4096(b *testing.B) { benchMatMulQ8(b, 4096, 4096, 1) }

// BenchmarkMatMulQ8Head is the LM head of a 151,669-token vocabulary over 4 positions (hidden 128).
func BenchmarkMatMulQ8Head(b *testing.B) { benchMatMulQ8(b, 151669, 128, 4) }
