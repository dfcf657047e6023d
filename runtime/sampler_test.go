package runtime_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// randomLogits returns n logits drawn from N(0, scale²), deterministically from seed.
func randomLogits(n int, scale float64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * scale)
	}
	return out
}

// refArgmax is the reference greedy choice: the largest value, the lowest id among ties.
func refArgmax(x []float32) int32 {
	best := 0
	for i := range x {
		if x[i] > x[best] {
			best = i
		}
	}
	return int32(best)
}

// bestFirst returns the ids ordered by decreasing logit (ties: lower id first).
func bestFirst(x []float32) []int32 {
	ids := make([]int32, len(x))
	for i := range ids {
		ids[i] = int32(i)
	}
	slices.SortStableFunc(ids, func(a, b int32) int {
		switch {
		case x[a] > x[b]:
			return -1
		case x[a] < x[b]:
			return 1
		}
		return 0
	})
	return ids
}

// softmax returns exp(x/temp) normalised, in float64.
func softmax(x []float32, temp float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v)/temp)
	}
	p := make([]float64, len(x))
	var s float64
	for i, v := range x {
		p[i] = math.Exp(float64(v)/temp - mx)
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}

func TestSamplerGreedyIsArgmax(t *testing.T) {
	for seed := range uint64(20) {
		logits := randomLogits(500, 2, seed)
		// plant ties at the top: two or three ids share the maximum
		mx := logits[refArgmax(logits)] + 1
		logits[300], logits[17+int(seed)] = mx, mx
		if seed%2 == 0 {
			logits[499] = mx
		}
		want := refArgmax(logits)
		require.Equal(t, int32(min(300, 17+int(seed))), want)
		for _, cfg := range []runtime.SamplerConfig{
			{},
			{Temperature: 0, TopK: 5, TopP: 0.5, MinP: 0.2, Seed: seed},
			{Temperature: -1, RepeatPenalty: 1},
		} {
			require.Equal(t, want, runtime.NewSampler(cfg).Sample(logits, nil), "seed %d cfg %+v", seed, cfg)
		}
	}
	require.Equal(t, int32(-1), runtime.NewSampler(runtime.SamplerConfig{}).Sample(nil, nil))
}

func TestSamplerTopK(t *testing.T) {
	const k = 7
	logits := randomLogits(151669, 1, 3)
	allowed := map[int32]bool{}
	for _, id := range bestFirst(logits)[:k] {
		allowed[id] = true
	}
	s := runtime.NewSampler(runtime.SamplerConfig{Temperature: 5, TopK: k, Seed: 1})
	seen := map[int32]bool{}
	for range 400 {
		id := s.Sample(logits, nil)
		require.Truef(t, allowed[id], "drew %d outside the top %d", id, k)
		seen[id] = true
	}
	// at temperature 5 the k logits (within ~1 of each other) are near-uniform: all get drawn
	require.Len(t, seen, k)
}

func TestSamplerTopP(t *testing.T) {
	for _, p := range []float32{0.3, 0.6, 0.9} {
		logits := randomLogits(300, 1.5, uint64(p*10))
		probs := softmax(logits, 1)
		allowed := map[int32]bool{}
		mass := 0.0
		for _, id := range bestFirst(logits) {
			allowed[id] = true
			mass += probs[id]
			if mass >= float64(p) {
				break
			}
		}
		require.Greater(t, len(allowed), 1, "the test needs a nucleus of several tokens")
		s := runtime.NewSampler(runtime.SamplerConfig{Temperature: 1, TopP: p, Seed: 9})
		seen := map[int32]bool{}
		for range 2000 {
			id := s.Sample(logits, nil)
			require.Truef(t, allowed[id], "top-p %g drew %d outside the nucleus of %d tokens", p, id, len(allowed))
			seen[id] = true
		}
		require.Greater(t, len(seen), 1)
	}
}

func TestSamplerMinP(t *testing.T) {
	const minP = 0.3
	logits := randomLogits(200, 1, 5)
	probs := softmax(logits, float64(float32(0.7)))
	best := probs[refArgmax(logits)]
	n := 0
	for _, q := range probs {
		if q >= minP*best {
			n++
		}
	}
	require.Greater(t, n, 1, "the test needs several tokens above the threshold")
	s := runtime.NewSampler(runtime.SamplerConfig{Temperature: 0.7, MinP: minP, Seed: 2})
	seen := map[int32]bool{}
	for range 2000 {
		id := s.Sample(logits, nil)
		require.GreaterOrEqualf(t, probs[id], minP*best, "min-p drew %d with p %.4g < %.4g", id, probs[id], minP*best)
		seen[id] = true
	}
	require.Greater(t, len(seen), 1)
}

func TestSamplerFrequencies(t *testing.T) {
	// logits 0 and ln 3 at temperature 1: probabilities 1/4 and 3/4.
	logits := []float32{0, float32(math.Log(3))}
	s := runtime.NewSampler(runtime.SamplerConfig{Temperature: 1, Seed: 4})
	const n = 20000
	ones := 0
	for range n {
		ones += int(s.Sample(logits, nil))
	}
	// binomial standard deviation sqrt(n·3/16) ≈ 61: allow 5 sigma
	require.InDelta(t, 0.75*n, float64(ones), 5*math.Sqrt(n*3.0/16))
}

func TestSamplerSeed(t *testing.T) {
	flat := make([]float32, 1000)
	draw := func(seed uint64) []int32 {
		s := runtime.NewSampler(runtime.SamplerConfig{Temperature: 1, TopK: 500, TopP: 0.9, Seed: seed})
		out := make([]int32, 50)
		for i := range out {
			out[i] = s.Sample(flat, nil)
		}
		return out
	}
	require.Equal(t, draw(42), draw(42))
	require.NotEqual(t, draw(42), draw(43))
	// with every logit equal, top-k keeps the lowest ids
	for _, id := range draw(1) {
		require.Less(t, id, int32(500))
	}
}

func TestSamplerRepeatPenalty(t *testing.T) {
	greedy := func(pen float32, lastN int, logits []float32, history []int32) int32 {
		return runtime.NewSampler(runtime.SamplerConfig{RepeatPenalty: pen, RepeatLastN: lastN}).Sample(logits, history)
	}
	// positive logits are divided: 2/1.5 = 1.33 < 1.5
	require.Equal(t, int32(0), greedy(1, 64, []float32{2, 1.5}, []int32{0}))
	require.Equal(t, int32(1), greedy(1.5, 64, []float32{2, 1.5}, []int32{0}))
	// negative logits are multiplied: -1·1.5 = -1.5 < -1.2
	require.Equal(t, int32(0), greedy(1.5, 64, []float32{-1, -1.2}, nil))
	require.Equal(t, int32(1), greedy(1.5, 64, []float32{-1, -1.2}, []int32{0, 0, 0}))
	// a token penalised once however often it occurs: 2/1.5 = 1.33 > 1.3
	require.Equal(t, int32(0), greedy(1.5, 64, []float32{2, 1.3}, []int32{0, 0, 0, 0}))
	// only the last N tokens count; 0 turns the penalty off
	require.Equal(t, int32(0), greedy(1.5, 1, []float32{2, 1.5}, []int32{0, 1}))
	require.Equal(t, int32(0), greedy(1.5, 0, []float32{2, 1.5}, []int32{0}))
	require.Equal(t, int32(1), greedy(1.5, -1, []float32{2, 1.5, 0}, []int32{0, 2, 2, 2, 2}))
	// the penalty also applies on the top-k path
	s := runtime.NewSampler(runtime.SamplerConfig{Temperature: 0.01, TopK: 1, RepeatPenalty: 1.5, RepeatLastN: 64})
	require.Equal(t, int32(1), s.Sample([]float32{2, 1.5, 0}, []int32{0}))
	// ids outside the vocabulary in the history are ignored
	require.Equal(t, int32(1), greedy(1.5, 64, []float32{2, 1.5}, []int32{-3, 0, 99}))
}

func TestDefaultSampler(t *testing.T) {
	d := runtime.DefaultSampler()
	require.Equal(t, float32(0.5), d.Temperature)
	require.Equal(t, float32(0.85), d.TopP)
	require.Equal(t, 20, d.TopK)
	require.Equal(t, float32(0), d.MinP)
	require.Equal(t, float32(1), d.RepeatPenalty)
}

func BenchmarkSampleQwen3Vocab(b *testing.B) {
	logits := randomLogits(151669, 3, 1)
	s := runtime.NewSampler(runtime.DefaultSampler())
	history := make([]int32, 64)
	for b.Loop() {
		s.Sample(logits, history)
	}
}
