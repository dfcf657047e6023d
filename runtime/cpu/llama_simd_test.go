package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAttentionLlamaLevelsBitIdentical holds the assembly FMA loops of AttentionHeadLlama
// (scores and value sums, decode and batches) to the pure-Go ones at every level.
func TestAttentionLlamaLevelsBitIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for _, c := range []struct{ n, ctx, heads, kvHeads, dim int }{
		{1, 1, 2, 1, 64}, {1, 63, 2, 1, 64}, {1, 64, 4, 2, 128}, {1, 65, 2, 2, 128}, {1, 300, 4, 1, 128},
		{3, 3, 2, 1, 64}, {17, 17, 4, 2, 128}, {5, 140, 2, 1, 128}, {2, 9, 2, 1, 72}, {1, 70, 2, 1, 40},
	} {
		q := randVec(rng, c.n*c.heads*c.dim)
		k := randVec(rng, c.ctx*c.kvHeads*c.dim)
		v := randVec(rng, c.ctx*c.kvHeads*c.dim)
		for i := range k { // scores of varied size, so that the softmax weights spread out
			k[i] *= float32(math.Exp(rng.NormFloat64()))
		}
		run := func() []float32 {
			out := make([]float32, c.n*c.heads*c.dim)
			AttentionLlama(out, q, k, v, c.n, c.ctx, c.heads, c.kvHeads, c.dim, make([]float32, c.ctx))
			return out
		}
		var want []float32
		withLevel(t, LevelPurego, func() { want = run() })
		for _, l := range Levels() {
			var got []float32
			withLevel(t, l, func() { got = run() })
			requireSameBits(t, want, got, "%+v level %s", c, l)
		}
	}
}

func TestFmaDot64MatchesDotLlama(t *testing.T) {
	if !fmaAsmOK() {
		t.Skip("no FMA assembly at level " + SIMD().String())
	}
	rng := rand.New(rand.NewPCG(23, 24))
	for _, n := range []int{64, 128, 192, 4096} {
		x, y := randVec(rng, n), randVec(rng, n)
		want := dotLlama(x, y, n, 1, false)
		got := fmaDot64(&x[0], &y[0], n)
		requireSameBits(t, []float32{want}, []float32{got}, "n %d", n)
	}
	a, v := randVec(rng, 24), randVec(rng, 24)
	want := make([]float32, len(a))
	for i := range a {
		want[i] = fma32(0.37, v[i], a[i])
	}
	fmaAxpy(&a[0], 0.37, &v[0], len(a))
	requireSameBits(t, want, a, "fmaAxpy")
}
