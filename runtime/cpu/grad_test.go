package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The backward kernels against central differences of float64 re-implementations of the
// forward kernels, for a loss L = Σ c⊙y with random fixed c. The float64 differences are
// accurate to about 1e-9; the kernels compute in float32, so the bound is
// |got − want| ≤ 1e-4·max|want| + 1e-6.

// fdGrad returns dL/dx by central differences of L(x) = Σ c⊙f(x), in float64.
func fdGrad(x []float64, c []float64, f func(x []float64) []float64) []float64 {
	const h = 1e-6
	loss := func() float64 {
		var s float64
		for i, y := range f(x) {
			s += c[i] * y
		}
		return s
	}
	g := make([]float64, len(x))
	for i := range x {
		x0 := x[i]
		x[i] = x0 + h
		lp := loss()
		x[i] = x0 - h
		lm := loss()
		x[i] = x0
		g[i] = (lp - lm) / (2 * h)
	}
	return g
}

func to64(v []float32) []float64 {
	o := make([]float64, len(v))
	for i, x := range v {
		o[i] = float64(x)
	}
	return o
}

func requireClose(t *testing.T, want []float64, got []float32, what string) {
	t.Helper()
	scale := 0.0
	for _, w := range want {
		scale = max(scale, math.Abs(w))
	}
	worst := 0.0
	for i := range want {
		e := math.Abs(float64(got[i]) - want[i])
		require.LessOrEqualf(t, e, 1e-4*scale+1e-6, "%s[%d]: %v, want %v", what, i, got[i], want[i])
		worst = max(worst, e)
	}
	t.Logf("%s: worst |err| %.2g, max|grad| %.3g", what, worst, scale)
}

func TestGradRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const rows, width, eps = 3, 64, 1e-6
	x, w, c := gradVec(rng, rows*width), gradVec(rng, width), gradVec(rng, rows*width)
	f := func(x []float64) []float64 {
		y := make([]float64, len(x))
		for o := 0; o < len(x); o += width {
			var ss float64
			for _, v := range x[o : o+width] {
				ss += v * v
			}
			r := 1 / math.Sqrt(ss/width+eps)
			for i := 0; i < width; i++ {
				y[o+i] = x[o+i] * r * float64(w[i])
			}
		}
		return y
	}
	want := fdGrad(to64(x), to64(c), f)
	dx := append([]float32(nil), c...) // dx aliases dy
	RMSNormBackward(dx, x, w, dx, eps)
	requireClose(t, want, dx, "dx")
}

func TestGradRope(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	const n, heads, dim = 5, 3, 16
	for _, r := range []Rope{{Dim: dim, Base: 1e4}, {Dim: dim, Base: 1e4, Factor: 4, OrigContext: 64, BetaFast: 32, BetaSlow: 1}} {
		cos, sin := r.Tables(0, n)
		x, c := gradVec(rng, n*heads*dim), gradVec(rng, n*heads*dim)
		f := func(x []float64) []float64 {
			y := append([]float64(nil), x...)
			half := dim / 2
			for p := 0; p < n; p++ {
				for h := 0; h < heads; h++ {
					v := y[(p*heads+h)*dim:]
					for i := 0; i < half; i++ {
						co, si := float64(cos[p*half+i]), float64(sin[p*half+i])
						a, b := v[i], v[i+half]
						v[i], v[i+half] = a*co-b*si, a*si+b*co
					}
				}
			}
			return y
		}
		want := fdGrad(to64(x), to64(c), f)
		dx := append([]float32(nil), c...)
		RopeBackward(dx, n, heads, dim, cos, sin)
		requireClose(t, want, dx, "dx")
	}
}

func TestGradSiluMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const n = 200
	g, u, c := gradVec(rng, n), gradVec(rng, n), gradVec(rng, n)
	for i := range g {
		g[i] *= 4 // reach the tails of the sigmoid
	}
	silu := func(z float64) float64 { return z / (1 + math.Exp(-z)) }
	wantG := fdGrad(to64(g), to64(c), func(x []float64) []float64 {
		y := make([]float64, n)
		for i := range y {
			y[i] = silu(x[i]) * float64(u[i])
		}
		return y
	})
	wantU := fdGrad(to64(u), to64(c), func(x []float64) []float64 {
		y := make([]float64, n)
		for i := range y {
			y[i] = silu(float64(g[i])) * x[i]
		}
		return y
	})
	dg, du := make([]float32, n), make([]float32, n)
	SiluMulBackward(dg, du, c, g, u)
	requireClose(t, wantG, dg, "dgate")
	requireClose(t, wantU, du, "dup")
	da := append([]float32(nil), c...) // in place: dgate aliases da
	SiluMulBackward(da, du, da, g, u)
	requireBitsT(t, dg, da, "aliased dgate")
}

// attention64 is causal GQA self-attention (Attention with ctx = n) in float64, for q, k or v
// given as x with the other two fixed.
func attention64(q, k, v []float64, n, heads, kvHeads, dim int) []float64 {
	out := make([]float64, n*heads*dim)
	group, kvw := heads/kvHeads, kvHeads*dim
	for p := 0; p < n; p++ {
		for h := 0; h < heads; h++ {
			kh := h / group
			s := make([]float64, p+1)
			mx := math.Inf(-1)
			for t := range s {
				for i := 0; i < dim; i++ {
					s[t] += q[(p*heads+h)*dim+i] * k[t*kvw+kh*dim+i]
				}
				s[t] /= math.Sqrt(float64(dim))
				mx = max(mx, s[t])
			}
			var sum float64
			for t := range s {
				s[t] = math.Exp(s[t] - mx)
				sum += s[t]
			}
			for t := range s {
				for i := 0; i < dim; i++ {
					out[(p*heads+h)*dim+i] += s[t] / sum * v[t*kvw+kh*dim+i]
				}
			}
		}
	}
	return out
}

func TestGradAttention(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const n, heads, kvHeads, dim = 6, 4, 2, 8
	q, k, v := gradVec(rng, n*heads*dim), gradVec(rng, n*kvHeads*dim), gradVec(rng, n*kvHeads*dim)
	c := gradVec(rng, n*heads*dim)
	q64, k64, v64 := to64(q), to64(k), to64(v)
	wantQ := fdGrad(q64, to64(c), func(x []float64) []float64 { return attention64(x, k64, v64, n, heads, kvHeads, dim) })
	wantK := fdGrad(k64, to64(c), func(x []float64) []float64 { return attention64(q64, x, v64, n, heads, kvHeads, dim) })
	wantV := fdGrad(v64, to64(c), func(x []float64) []float64 { return attention64(q64, k64, x, n, heads, kvHeads, dim) })
	dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
	Workers(1).AttentionBackward(dq, dk, dv, c, q, k, v, n, heads, kvHeads, dim)
	requireClose(t, wantQ, dq, "dq")
	requireClose(t, wantK, dk, "dk")
	requireClose(t, wantV, dv, "dv")
}

// Large enough to split over the workers: the bits must not depend on their number.
func TestGradAttentionThreads(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	const n, heads, kvHeads, dim = 40, 8, 2, 32
	q, k, v := gradVec(rng, n*heads*dim), gradVec(rng, n*kvHeads*dim), gradVec(rng, n*kvHeads*dim)
	c := gradVec(rng, n*heads*dim)
	var res [2][3][]float32
	for i, w := range []Workers{1, 3} {
		dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
		w.AttentionBackward(dq, dk, dv, c, q, k, v, n, heads, kvHeads, dim)
		res[i] = [3][]float32{dq, dk, dv}
	}
	for j, name := range []string{"dq", "dk", "dv"} {
		requireBitsT(t, res[0][j], res[1][j], "%s threads 1 vs 3", name)
	}
}
