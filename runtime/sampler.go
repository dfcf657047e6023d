package runtime

import (
	"math"
	"math/rand/v2"
	"slices"
)

// SamplerConfig chooses how the next token is drawn from the logits.
type SamplerConfig struct {
	Temperature   float32 // 0 (or less): greedy, the argmax (ties -> lowest id)
	TopP          float32 // nucleus: keep the smallest best-first set with probability mass >= TopP; 0 or >= 1: off
	MinP          float32 // keep tokens whose probability is >= MinP × the best one's; 0: off
	TopK          int     // keep the TopK best logits; 0 (or less): off
	RepeatPenalty float32 // divide positive (multiply negative) logits of recent tokens by it; 0 or 1: off
	RepeatLastN   int     // how many recent tokens the penalty looks at; 0: off; negative: the whole history
	Seed          uint64  // the random stream: the same seed gives the same draws
}

// DefaultSampler returns Bonsai's recommended settings (docs/FORMATS.md §9.4): temperature 0.5,
// top-p 0.85, top-k 20, min-p 0, no repetition penalty (1, over the last 64 tokens when set).
func DefaultSampler() SamplerConfig {
	return SamplerConfig{Temperature: 0.5, TopP: 0.85, TopK: 20, MinP: 0, RepeatPenalty: 1, RepeatLastN: 64}
}

// Sampler draws tokens from logits. It keeps its random stream and scratch buffers between
// calls, so it is not safe for concurrent use.
type Sampler struct {
	cfg  SamplerConfig
	rng  *rand.Rand
	pen  map[int32]float32 // penalised logits of recent tokens, by id (scratch)
	cand []candidate       // candidates of one draw (at most Vocab)
}

// candidate is one token still in the running, with its logit and later its probability.
type candidate struct {
	id    int32
	logit float32
	p     float64
}

// NewSampler returns a sampler for cfg, its random stream seeded from cfg.Seed.
func NewSampler(cfg SamplerConfig) *Sampler {
	return &Sampler{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x9e3779b97f4a7c15)), pen: map[int32]float32{}}
}

// Config returns the sampler's settings.
func (s *Sampler) Config() SamplerConfig { return s.cfg }

// Sample picks the next token from logits (Vocab). history holds the tokens so far (prompt and
// generated), oldest first; only the repetition penalty reads it. The steps, in order: the
// repetition penalty, top-k, temperature, softmax, top-p, min-p, then a draw. It returns -1 for
// empty logits; NaN logits count as -Inf.
func (s *Sampler) Sample(logits []float32, history []int32) int32 {
	if len(logits) == 0 {
		return -1
	}
	s.penalize(logits, history)
	if s.cfg.Temperature <= 0 {
		return s.argmax(logits)
	}
	c := s.candidates(logits)
	inv := 1 / float64(s.cfg.Temperature)
	mx := math.Inf(-1)
	for _, x := range c {
		mx = max(mx, float64(x.logit)*inv)
	}
	if math.IsInf(mx, -1) {
		return s.argmax(logits) // nothing finite to draw from
	}
	var sum float64
	for i := range c {
		c[i].p = math.Exp(float64(c[i].logit)*inv - mx)
		sum += c[i].p
	}
	if p := float64(s.cfg.TopP); p > 0 && p < 1 {
		// c is sorted best first: keep the shortest prefix whose mass reaches p.
		cum := 0.0
		for i := range c {
			cum += c[i].p / sum
			if cum >= p {
				c = c[:i+1]
				break
			}
		}
	}
	if mp := float64(s.cfg.MinP); mp > 0 {
		best := 0.0
		for _, x := range c {
			best = max(best, x.p)
		}
		kept := c[:0]
		for _, x := range c {
			if x.p >= mp*best {
				kept = append(kept, x)
			}
		}
		c = kept
	}
	total := 0.0
	for _, x := range c {
		total += x.p
	}
	u := s.rng.Float64() * total
	for _, x := range c {
		if u < x.p {
			return x.id
		}
		u -= x.p
	}
	return c[len(c)-1].id // rounding left u just past the end
}

// value is logit i after the repetition penalty, NaN as -Inf.
func (s *Sampler) value(logits []float32, i int) float32 {
	if v, ok := s.pen[int32(i)]; ok {
		return v
	}
	if v := logits[i]; v == v {
		return v
	}
	return float32(math.Inf(-1))
}

// penalize fills s.pen with the penalised logits of the distinct recent tokens (llama.cpp's
// repeat penalty: a positive logit is divided by the penalty, a negative one multiplied).
func (s *Sampler) penalize(logits []float32, history []int32) {
	clear(s.pen)
	r, n := s.cfg.RepeatPenalty, s.cfg.RepeatLastN
	if r <= 0 || r == 1 || n == 0 {
		return
	}
	if n > 0 && len(history) > n {
		history = history[len(history)-n:]
	}
	for _, t := range history {
		if t < 0 || int(t) >= len(logits) {
			continue
		}
		if _, done := s.pen[t]; done {
			continue
		}
		v := logits[t]
		if v > 0 {
			v /= r
		} else {
			v *= r
		}
		s.pen[t] = v
	}
}

// argmax returns the id of the largest (penalised) logit, the lowest id among ties.
func (s *Sampler) argmax(logits []float32) int32 {
	best, bestV := 0, float32(math.Inf(-1))
	for i, v := range logits {
		if len(s.pen) > 0 {
			v = s.value(logits, i)
		}
		if v > bestV {
			best, bestV = i, v
		}
	}
	return int32(best)
}

// candidates returns the tokens that survive top-k, best first (ties: lower id first) whenever
// a later step needs the order. With top-k set it selects the k best in one pass with a heap
// of k entries rather than sorting the whole vocabulary.
func (s *Sampler) candidates(logits []float32) []candidate {
	n := len(logits)
	k := s.cfg.TopK
	c := s.cand[:0]
	if k <= 0 || k >= n {
		for i := range n {
			c = append(c, candidate{id: int32(i), logit: s.value(logits, i)})
		}
		if s.cfg.TopP > 0 && s.cfg.TopP < 1 {
			slices.SortFunc(c, better) // only top-p needs the order
		}
		s.cand = c
		return c
	}
	// c is a min-heap of the k best so far: c[0] is the worst of them.
	for i := range k {
		c = append(c, candidate{id: int32(i), logit: s.value(logits, i)})
	}
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(c, i)
	}
	for i := k; i < n; i++ {
		// A later id never wins a tie against an earlier one, so only a strictly larger
		// logit replaces the worst.
		var v float32
		if len(s.pen) > 0 {
			v = s.value(logits, i)
		} else {
			v = logits[i]
		}
		if v > c[0].logit {
			c[0] = candidate{id: int32(i), logit: v}
			siftDown(c, 0)
		}
	}
	slices.SortFunc(c, better)
	s.cand = c
	return c
}

// better orders candidates best first: larger logit, then lower id.
func better(a, b candidate) int {
	switch {
	case a.logit > b.logit:
		return -1
	case a.logit < b.logit:
		return 1
	}
	return int(a.id - b.id)
}

// siftDown restores the min-heap property (worst candidate at the root) below position i.
func siftDown(h []candidate, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		w := l
		if r := l + 1; r < len(h) && better(h[r], h[l]) > 0 {
			w = r
		}
		if better(h[w], h[i]) <= 0 {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}
