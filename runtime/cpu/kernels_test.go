package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// refMatMul is the float64 reference: dequantise every weight and take plain dot products.
func refMatMul(m interface {
	Weight(r, c int) float32
}, rows, cols int, x []float32, n int) []float64 {
	out := make([]float64, n*rows)
	for v := 0; v < n; v++ {
		for r := 0; r < rows; r++ {
			var s float64
			for c := 0; c < cols; c++ {
				s += float64(m.Weight(r, c)) * float64(x[v*cols+c])
			}
			out[v*rows+r] = s
		}
	}
	return out
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

func TestMatMulMatchesDequantisedDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sh := range []struct{ rows, cols, n int }{{1, 128, 1}, {33, 256, 3}, {127, 1152, 5}, {257, 384, 9}} {
		m := randomMatrix(t, sh.rows, sh.cols, uint64(sh.rows))
		x := randVec(rng, sh.n*sh.cols)
		out := make([]float32, sh.n*sh.rows)
		MatMul(m, x, sh.n, out)
		ref := refMatMul(m, sh.rows, sh.cols, x, sh.n)
		for i := range out {
			// float32 accumulation of cols terms of size ~|d·x| ~ 1: allow 1e-5 relative to sqrt(cols)
			require.InDelta(t, ref[i], float64(out[i]), 1e-5*math.Sqrt(float64(sh.cols))*4, "shape %+v index %d", sh, i)
		}
	}
}

func TestMatMulBatchAndThreadInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	m := randomMatrix(t, 300, 1024, 9)
	const n = 11
	x := randVec(rng, n*m.Cols)
	batched := make([]float32, n*m.Rows)
	MatMul(m, x, n, batched)
	for _, th := range []int{1, 2, 3} {
		for v := 0; v < n; v++ {
			one := make([]float32, m.Rows)
			Workers(th).MatMul(m, x[v*m.Cols:(v+1)*m.Cols], 1, one)
			for r := range one {
				require.Equal(t, math.Float32bits(batched[v*m.Rows+r]), math.Float32bits(one[r]), "threads %d vector %d row %d", th, v, r)
			}
		}
	}
}

func TestFlipDeltaEqualsFlippedWeights(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	m := randomMatrix(t, 64, 512, 11)
	const n = 3
	x := randVec(rng, n*m.Cols)
	for _, f := range []struct{ row, group, col int }{{5, -1, -1}, {17, 2, -1}, {63, -1, 300}, {0, 0, -1}, {40, -1, 0}} {
		out := make([]float32, n*m.Rows)
		MatMul(m, x, n, out)
		FlipDelta(m, x, n, out, f.row, f.group, f.col)
		flip := func() { m.Flip(f.row, f.group, f.col) }
		flip()
		want := make([]float32, n*m.Rows)
		MatMul(m, x, n, want)
		flip() // XOR is its own inverse
		for i := range want {
			require.InDelta(t, want[i], out[i], 1e-4, "flip %+v index %d", f, i)
		}
	}
}

func TestRMSNorm(t *testing.T) {
	x := []float32{1, -2, 3, 4, 0.5, 0.5, 0.5, 0.5}
	w := []float32{1, 2, 0.5, 1}
	out := make([]float32, len(x))
	RMSNorm(out, x, w, 1e-6)
	for row := 0; row < 2; row++ {
		var ss float64
		for _, v := range x[row*4 : row*4+4] {
			ss += float64(v) * float64(v)
		}
		inv := 1 / math.Sqrt(ss/4+1e-6)
		for i := 0; i < 4; i++ {
			require.InDelta(t, float64(x[row*4+i])*inv*float64(w[i]), float64(out[row*4+i]), 1e-6)
		}
	}
}

func TestRopeRotatesPairsByAngle(t *testing.T) {
	r := Rope{Dim: 8, Base: 10000}
	cos, sin := r.Tables(5, 1)
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	y := append([]float32(nil), x...)
	ApplyRope(y, 1, 1, 8, cos, sin)
	for i := 0; i < 4; i++ {
		th := 5 * math.Pow(10000, -2*float64(i)/8)
		a, b := float64(x[i]), float64(x[i+4])
		require.InDelta(t, a*math.Cos(th)-b*math.Sin(th), float64(y[i]), 1e-5)
		require.InDelta(t, a*math.Sin(th)+b*math.Cos(th), float64(y[i+4]), 1e-5)
	}
	// Rotation preserves the norm of each pair.
	for i := 0; i < 4; i++ {
		require.InDelta(t, math.Hypot(float64(x[i]), float64(x[i+4])), math.Hypot(float64(y[i]), float64(y[i+4])), 1e-5)
	}
}

func TestYarnRamp(t *testing.T) {
	// Bonsai-8B values from docs/FORMATS.md §7.2: lo = 20, hi = 37, mscale = 1 + 0.1 ln 4.
	r := Rope{Dim: 128, Base: 1e6, Factor: 4, OrigContext: 16384, BetaFast: 32, BetaSlow: 1}
	const pos = 1000
	cos, sin := r.Tables(pos, 1)
	ms := 1 + 0.1*math.Log(4)
	for _, i := range []int{0, 20, 37, 63} {
		th := pos * math.Pow(1e6, -2*float64(i)/128)
		switch {
		case i <= 20:
		case i >= 37:
			th /= 4
		}
		require.InDelta(t, ms*math.Cos(th), float64(cos[i]), 2e-3, "pair %d", i)
		require.InDelta(t, ms*math.Sin(th), float64(sin[i]), 2e-3, "pair %d", i)
	}
}

func TestAttentionCausalGQA(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const heads, kvHeads, dim, ctx = 4, 2, 8, 5
	q := randVec(rng, ctx*heads*dim)
	k := randVec(rng, ctx*kvHeads*dim)
	v := randVec(rng, ctx*kvHeads*dim)
	out := make([]float32, ctx*heads*dim)
	Attention(out, q, k, v, ctx, ctx, heads, kvHeads, dim, make([]float32, ctx))
	for p := 0; p < ctx; p++ {
		for h := 0; h < heads; h++ {
			kh := h / (heads / kvHeads)
			w := make([]float64, p+1)
			var z float64
			for tt := 0; tt <= p; tt++ {
				var s float64
				for i := 0; i < dim; i++ {
					s += float64(q[(p*heads+h)*dim+i]) * float64(k[(tt*kvHeads+kh)*dim+i])
				}
				w[tt] = math.Exp(s / math.Sqrt(dim))
				z += w[tt]
			}
			for i := 0; i < dim; i++ {
				var o float64
				for tt := 0; tt <= p; tt++ {
					o += w[tt] / z * float64(v[(tt*kvHeads+kh)*dim+i])
				}
				require.InDelta(t, o, float64(out[(p*heads+h)*dim+i]), 1e-5)
			}
		}
	}
}

func TestSiluMul(t *testing.T) {
	g := []float32{-3, 0, 2}
	u := []float32{2, 5, -1}
	out := make([]float32, 3)
	SiluMul(out, g, u)
	for i := range g {
		z := float64(g[i])
		require.InDelta(t, z/(1+math.Exp(-z))*float64(u[i]), float64(out[i]), 1e-6)
	}
}
