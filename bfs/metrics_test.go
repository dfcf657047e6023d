package bfs

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

func TestContinuation(t *testing.T) {
	tok := tinyTok(t)
	// No merge across the boundary: the prompt's ids are a prefix.
	require.Equal(t, tok.Encode(" 4", true), Continuation(tok, "2 + 2 =", " 4"))
	// "a t" + "he" encodes as "a", "Ġthe": the prompt's last token merged, so the answer is
	// encoded alone.
	require.NotEqual(t, tok.Encode("a t", true), tok.Encode("a the", true)[:2])
	require.Equal(t, tok.Encode("he", true), Continuation(tok, "a t", "he"))
}

func TestPrepareProbe(t *testing.T) {
	tok := tinyTok(t)
	p := Probe{Name: "x", Prompt: "7 * 8 =", Correct: " 56", Wrong: " 54"}
	prompt := tok.Encode(p.Prompt, true)
	c := Continuation(tok, p.Prompt, p.Correct)
	w := Continuation(tok, p.Prompt, p.Wrong)
	require.Len(t, c, 3) // " ", "5", "6"
	pp, err := prepareProbe(tok, p, MetricTokenGap)
	require.NoError(t, err)
	// " 56" vs " 54" share " 5": the gap is read after it, on "6" vs "4".
	shared := append(slices.Clone(prompt), c[:2]...)
	require.Equal(t, shared, pp.parts[0])
	require.Equal(t, []read{{part: 0, pos: len(shared) - 1, a: c[2], b: w[2]}}, pp.reads)
	// seq_logprob: the common terms cancel; the first differing tokens share the last shared row.
	pp, err = prepareProbe(tok, p, MetricSeqLogprob)
	require.NoError(t, err)
	require.Equal(t, shared, pp.parts[0])
	require.Empty(t, pp.parts[1])
	require.Empty(t, pp.parts[2])
	require.Equal(t, []read{{part: 0, pos: len(shared) - 1, a: c[2], b: -1, side: 0},
		{part: 0, pos: len(shared) - 1, a: w[2], b: -1, side: 1}}, pp.reads)
	// A distractor that is a prefix of the correct answer: token_gap cannot score it,
	// seq_logprob reads the rest of the correct answer through its segment.
	q := Probe{Name: "pre", Prompt: "f =", Correct: " 7x + 1", Wrong: " 7x"}
	_, err = prepareProbe(tok, q, MetricTokenGap)
	require.ErrorContains(t, err, "prefix")
	pp, err = prepareProbe(tok, q, MetricSeqLogprob)
	require.NoError(t, err)
	cq := Continuation(tok, q.Prompt, q.Correct) // " ", "7", "x", " ", "+", " ", "1"
	require.Len(t, cq, 7)
	require.Equal(t, cq[3:6], pp.parts[1])
	require.Len(t, pp.reads, 4)
	require.Equal(t, read{part: 1, pos: 2, a: cq[6], b: -1, side: 0}, pp.reads[3])
}

func TestAnswerMatches(t *testing.T) {
	for _, c := range []struct {
		gen, want string
		ok        bool
	}{
		{" 6x^2\n\n", " 6x", false},            // rest starts with ^
		{" 18x. Is this true?", " 18x", true},  // rest starts with .
		{" 1/√2 ≈ 0.7071", " 1/sqrt(2)", true}, // √ → sqrt, parentheses dropped
		{" x^3/3 + C. So", " x^3/3", true},     // + c
		{" x^3/3 + 2", " x^3/3", false},        // + other
		{" 12x^2\n\n", " 12x^2", true},         // whitespace removed, rest empty
		{" 120\n\n", " 12", false},             // digit follows
		{" Yes, 113 is prime", " yes", true},   // case-insensitive, comma follows
		{" No", " ", false},                    // empty expected answer
		{" (x^7)/7 + C", " x^7/7", true},       // brackets deleted
		{" 2*e^x\n\n", " 2e^x", true},          // * deleted
		{"", " 4", false},
	} {
		require.Equal(t, c.ok, AnswerMatches(c.gen, c.want), "%q vs %q", c.gen, c.want)
	}
	require.Equal(t, "sqrt3/2x^2", NormalizeAnswer(" √(3) / 2 X^2\t"))
	p := Probe{Correct: " sqrt(2)/2", Wrong: " sqrt(3)/2", Alternates: []string{" 0.7071", " 1/sqrt(2)"}}
	ok, wrong := p.Judge(" 1/√2 ≈ 0.7071")
	require.True(t, ok)
	require.False(t, wrong)
	ok, wrong = p.Judge(" sqrt(3)/2.")
	require.False(t, ok)
	require.True(t, wrong)
}

// TestGreedyAnswer checks the decode loop against an independent argmax loop over full
// forwards, including the newline stop rule and the token cap.
func TestGreedyAnswer(t *testing.T) {
	m := tinyModel(t, 2)
	tok := tinyTok(t)
	for _, prompt := range []string{"1 + 1 =", "The capital of France is"} {
		ids := tok.Encode(prompt, true)
		var gen []int32
		for len(gen) < MaxGreedyTokens {
			seq := append(slices.Clone(ids), gen...)
			logits, err := m.Forward(m.NewKVCache(len(seq)), seq, false)
			require.NoError(t, err)
			best := 0
			for i, v := range logits {
				if v > logits[best] {
					best = i
				}
			}
			if tok.IsEOG(int32(best)) {
				break
			}
			gen = append(gen, int32(best))
			if strings.Contains(string(tok.Decode([]int32{int32(best)})), "\n") {
				break
			}
		}
		got, err := GreedyAnswer(runtime.NewCPU(m), tok, prompt, 0)
		require.NoError(t, err)
		require.Equal(t, string(tok.Decode(gen)), got)
	}
}

func TestFitness(t *testing.T) {
	tg, tg0 := []float64{1, 3}, []float64{0, 1} // gains 1, 2
	cg, cg0 := []float64{0, 5, 2}, []float64{1, 4, 2}
	// control losses max(0, 1-0)=1, max(0, 4-5)=0, 0: mean 1/3
	require.InDelta(t, 1.5-2.0/3, Fitness(FitnessMean, 2, tg, tg0, cg, cg0), 1e-15)
	require.InDelta(t, 1-2.0/3, Fitness(FitnessMin, 2, tg, tg0, cg, cg0), 1e-15)
	require.Equal(t, 0.0, Fitness(FitnessMean, 2, tg0, tg0, cg0, cg0))
	require.Equal(t, 1.5, Fitness(FitnessMean, 2, tg, tg0, nil, nil))
}

func TestCountChanges(t *testing.T) {
	// wrong→right, right→wrong, right→right twice, wrong→wrong.
	c := CountChanges([]bool{false, true, true, true, false}, []bool{true, false, true, true, false})
	require.Equal(t, Counts{Total: 5, Fixed: 1, Broke: 1, StayedRight: 2, StayedWrong: 1, Unchanged: 3, Before: 3, After: 3}, c)
}

func TestDefaultLayers(t *testing.T) {
	require.Equal(t, []int{1, 2, 3, 4, 34}, DefaultLayers(36))
	require.Equal(t, []int{1, 2, 3, 4, 26}, DefaultLayers(28))
	require.Equal(t, []int{1, 2, 3}, DefaultLayers(4))
	require.Equal(t, []int{1, 0}, DefaultLayers(2))
	require.Equal(t, []int{0}, DefaultLayers(1))
}

// fixedSource makes rand.Float64 return the given values: Float64 is (low 53 bits of Uint64)
// / 2^53, exact for values in [0.5, 1) and 0.
type fixedSource struct{ u []float64 }

func (f *fixedSource) Uint64() uint64 {
	v := f.u[0]
	f.u = f.u[1:]
	return uint64(v * (1 << 53))
}

func TestPoolSampling(t *testing.T) {
	m := tinyModel(t, 2)
	p, err := newPool(m, []int{1, 0}, []string{"k_proj", "down_proj"}, GranRow)
	require.NoError(t, err)
	k, d := m.Layers[0].Proj[runtime.ProjK], m.Layers[0].Proj[runtime.ProjDown]
	require.EqualValues(t, 2*(k.Rows+d.Rows), p.size())
	require.Equal(t, patch.RowFlip(1, "k_proj", 0), p.at(0))
	require.Equal(t, patch.RowFlip(0, "k_proj", 0), p.at(int64(k.Rows+d.Rows)))
	// The CDF is the normalised cumulative mean |scale|.
	var w []float64
	for _, l := range []int{1, 0} {
		for _, mat := range []int{int(runtime.ProjK), int(runtime.ProjDown)} {
			mt := m.Layers[l].Proj[mat]
			for r := 0; r < mt.Rows; r++ {
				var s float64
				for g := 0; g < mt.Groups; g++ {
					s += math.Abs(float64(mt.Scale(r, g)))
				}
				w = append(w, s/float64(mt.Groups))
			}
		}
	}
	var total, c float64
	for _, v := range w {
		total += v
	}
	for i, v := range w {
		c += v
		require.InDelta(t, c/total, p.cdf[i], 1e-12)
	}
	// Inverse CDF, numpy's searchsorted side="right": u just below cdf[i] picks i, u = cdf[i]
	// picks i+1 (i past the median, where fixedSource is exact).
	i := sort.SearchFloat64s(p.cdf, 0.5) + 3
	src := &fixedSource{u: []float64{math.Nextafter(p.cdf[i], 0), p.cdf[i], 0}}
	rng := rand.New(src)
	require.Equal(t, p.at(int64(i)), p.draw(rng))
	require.Equal(t, p.at(int64(i+1)), p.draw(rng))
	require.Equal(t, p.at(0), p.draw(rng))
	// Uniform samples are distinct, sorted and seed-determined.
	s1, s2 := p.sample(50, 3), p.sample(50, 3)
	require.Equal(t, s1, s2)
	require.True(t, slices.IsSorted(s1))
	require.Len(t, slices.Compact(slices.Clone(s1)), 50)
	require.NotEqual(t, s1, p.sample(50, 4))
	require.Len(t, p.sample(0, 1), int(p.size()))
}

func TestPoolExhaustion(t *testing.T) {
	m := tinyModel(t, 2)
	p, err := newPool(m, []int{0}, []string{"k_proj"}, GranGroup)
	require.NoError(t, err)
	s := &search{pool: p, rng: rand.New(rand.NewPCG(1, 2)), tried: map[patch.Flip]struct{}{}}
	for {
		before := s.draws
		f, ok := s.drawNew()
		if !ok {
			require.EqualValues(t, maxDuplicateDraws, s.draws-before, "stops after 100 duplicate draws")
			break
		}
		require.Equal(t, patch.KindGroup, f.Kind())
	}
	require.LessOrEqual(t, int64(len(s.triedList)), p.size())
	require.Len(t, s.tried, len(s.triedList))
}

// TestSearchPoolExhausted: a pool smaller than the iteration budget ends the search early.
func TestSearchPoolExhausted(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 2)
	o := DefaultSearchOptions()
	o.Target = []*ProbeSet{{Name: "t", Probes: smallTarget().Probes[:2]}}
	o.Layers, o.Projs, o.Iters = []int{1}, []string{"q_proj"}, 10000
	o.Granularity = GranGroup // q_proj has 1 group per row at hidden 128: 256 candidates
	o.Tokenizer = tinyTok(t)
	res, err := Search(context.Background(), runtime.NewCPU(m), o)
	require.NoError(t, err)
	require.True(t, res.Report.Exhausted)
	require.LessOrEqual(t, res.Report.Iterations, 256)
	require.Equal(t, res.Report.Iterations, len(res.Checkpoint.Tried))
}
