package bfs

import (
	"crypto/sha256"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/synth"
	"github.com/bankai-metal/bankai-metal/runtime/tokenizer"
)

var (
	modelDir  string
	modelOnce sync.Map // [layers, vocab] -> *sync.Once
	modelErr  sync.Map // [layers, vocab] -> error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bfs-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	modelDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tinyPath writes (once per test binary) the synthetic tiny model with the given layer count
// and vocabulary rows (the tokenizer only uses the first 264).
func tinyPath(t testing.TB, layers, vocab int) string {
	t.Helper()
	key := [2]int{layers, vocab}
	path := filepath.Join(modelDir, fmt.Sprintf("tiny-%d-%d.gguf", layers, vocab))
	o, _ := modelOnce.LoadOrStore(key, new(sync.Once))
	o.(*sync.Once).Do(func() {
		s := synth.Tiny()
		s.Layers, s.Vocab = layers, vocab
		s.Seed = uint64(100 + layers)
		if err := s.WriteGGUF(path); err != nil {
			modelErr.Store(key, err)
		}
	})
	if err, ok := modelErr.Load(key); ok {
		t.Fatal(err)
	}
	return path
}

// tinyModel loads a fresh copy of the synthetic model (its own copy-on-write mapping, so flips
// in one test never leak into another).
func tinyModel(t testing.TB, layers int) *runtime.Model {
	return tinyModelVocab(t, layers, synth.TinyVocab)
}

func tinyModelVocab(t testing.TB, layers, vocab int) *runtime.Model {
	t.Helper()
	m, err := runtime.LoadGGUF(tinyPath(t, layers, vocab))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// tinyTok builds the synthetic byte-level tokenizer directly from its vocabulary.
func tinyTok(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	toks, types, merges := synth.Vocabulary(synth.TinyVocab)
	tok, err := tokenizer.New(toks, types, merges, tokenizer.Options{BOS: synth.TokEndOfText, EOS: synth.TokImEnd, PAD: synth.TokEndOfText})
	require.NoError(t, err)
	return tok
}

func mustSet(t testing.TB, name string) *ProbeSet {
	t.Helper()
	s, err := LoadProbes(name)
	require.NoError(t, err)
	return s
}

// naiveScores scores probes the slow, obvious way: one full Model.Forward per sequence with
// logits at every position, and the metric computed from the whole logit rows.
func naiveScores(t testing.TB, m *runtime.Model, tok Tokenizer, probes []Probe, metric Metric) []float64 {
	t.Helper()
	out := make([]float64, len(probes))
	for i, p := range probes {
		prompt := tok.Encode(p.Prompt, true)
		c := Continuation(tok, p.Prompt, p.Correct)
		w := Continuation(tok, p.Prompt, p.Wrong)
		switch metric {
		case MetricSeqLogprob:
			sum := func(cont []int32) float64 {
				toks := append(slices.Clone(prompt), cont...)
				logits, err := m.Forward(m.NewKVCache(len(toks)), toks, true)
				require.NoError(t, err)
				var s float64
				for j, tg := range cont {
					row := logits[(len(prompt)-1+j)*m.Vocab : (len(prompt)+j)*m.Vocab]
					var z float64
					for _, v := range row {
						z += math.Exp(float64(v))
					}
					s += float64(row[tg]) - math.Log(z)
				}
				return s
			}
			out[i] = sum(c) - sum(w)
		case MetricTokenGap:
			k := 0
			for c[k] == w[k] {
				k++
			}
			toks := append(slices.Clone(prompt), c[:k]...)
			logits, err := m.Forward(m.NewKVCache(len(toks)), toks, false)
			require.NoError(t, err)
			out[i] = float64(logits[c[k]]) - float64(logits[w[k]])
		}
	}
	return out
}

// naiveFlipScores applies f to the weights, scores naively and reverts.
func naiveFlipScores(t testing.TB, m *runtime.Model, tok Tokenizer, probes []Probe, metric Metric, f ...patch.Flip) []float64 {
	t.Helper()
	require.NoError(t, patch.ApplyFlips(m, f))
	defer func() { require.NoError(t, patch.ApplyFlips(m, f)) }()
	return naiveScores(t, m, tok, probes, metric)
}

// weightsHash hashes every sign bit of every layer projection.
func weightsHash(m *runtime.Model) [32]byte {
	h := sha256.New()
	for _, l := range m.Layers {
		for _, p := range l.Proj {
			for r := 0; r < p.Rows; r++ {
				for g := 0; g < p.Groups; g++ {
					h.Write(p.GroupSigns(r, g))
				}
			}
		}
	}
	return [32]byte(h.Sum(nil))
}

func allProbes(sets ...*ProbeSet) []Probe {
	var out []Probe
	for _, s := range sets {
		out = append(out, s.Probes...)
	}
	return out
}

// Small probe sets with short prompts (the synthetic tokenizer is byte-level), to keep tests fast.
func smallTarget() *ProbeSet {
	return &ProbeSet{Name: "small_math", Probes: []Probe{
		{Name: "add_1", Category: "math", Prompt: "1 + 1 =", Correct: " 2", Wrong: " 3"},
		{Name: "add_2", Category: "math", Prompt: "2 + 2 =", Correct: " 4", Wrong: " 5"},
		{Name: "mul_1", Category: "math", Prompt: "7 * 8 =", Correct: " 56", Wrong: " 54"},
		{Name: "div_1", Category: "math", Prompt: "9 / 3 =", Correct: " 3", Wrong: " 1"},
	}}
}

func smallControl() *ProbeSet {
	return &ProbeSet{Name: "small_ctl", Probes: []Probe{
		{Name: "abc", Category: "text", Prompt: "a b c", Correct: " d", Wrong: " x"},
		{Name: "sky", Category: "text", Prompt: "Sky is", Correct: " blue", Wrong: " red"},
		{Name: "h2o", Category: "text", Prompt: "H2O is", Correct: " water", Wrong: " salt"},
	}}
}
