package runtime_test

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// Oracle fixtures: llama.cpp log-probs for tiny synthetic Bonsai-format models
// (../shared/oracle/README.md). Tolerances are the README's for a float-activation
// implementation (llama.cpp quantises activations to Q8_0; we do not).

type oraclePos struct {
	Pos        int         `json:"pos"`
	Token      int32       `json:"token"`
	Argmax     int         `json:"argmax"`
	Margin     float64     `json:"top2_margin"`
	LogSumExp  float64     `json:"logsumexp"`
	LogProbs   []float64   `json:"logprobs"`
	Top        [][]float64 `json:"top"`
	FixedProbs []float64   `json:"fixed_logprobs"`
}

type oracleSeq struct {
	Name      string      `json:"name"`
	Tokens    []int32     `json:"tokens"`
	Positions []oraclePos `json:"positions"`
}

type oracleFile struct {
	NVocab    int         `json:"n_vocab"`
	FixedIDs  []int       `json:"fixed_ids"`
	Sequences []oracleSeq `json:"sequences"`
}

type tolerance struct {
	perID, rms, lse, margin float64
}

var (
	tinyTol  = tolerance{perID: 0.2, rms: 0.03, lse: math.Inf(1), margin: 0.1}
	vocabTol = tolerance{perID: 0.6, rms: math.Inf(1), lse: 0.15, margin: 0.25}
)

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// checkPosition compares one position's logits with the oracle; it returns the sum of squared
// log-prob differences over all ids and the number of ids compared (for tiny models).
func checkPosition(t *testing.T, where string, logits []float32, p oraclePos, fixed []int, tol tolerance) (float64, int) {
	t.Helper()
	lp, lse := runtime.LogSoftmax(logits), runtime.LogSumExp(logits)
	var ss float64
	n := 0
	for id, want := range p.LogProbs {
		d := lp[id] - want
		if math.Abs(d) > tol.perID {
			t.Fatalf("%s id %d: logprob %.5f, llama.cpp %.5f", where, id, lp[id], want)
		}
		ss += d * d
		n++
	}
	for _, tp := range p.Top {
		id := int(tp[0])
		require.LessOrEqualf(t, math.Abs(lp[id]-tp[1]), tol.perID, "%s top id %d: logprob %.5f, llama.cpp %.5f", where, id, lp[id], tp[1])
	}
	for i, id := range fixed {
		require.LessOrEqualf(t, math.Abs(lp[id]-p.FixedProbs[i]), tol.perID, "%s fixed id %d", where, id)
	}
	if !math.IsInf(tol.lse, 1) {
		require.LessOrEqualf(t, math.Abs(lse-p.LogSumExp), tol.lse, "%s logsumexp %.5f, llama.cpp %.5f", where, lse, p.LogSumExp)
	}
	if p.Margin >= tol.margin {
		require.Equalf(t, p.Argmax, argmax(logits), "%s argmax (llama.cpp margin %.3f)", where, p.Margin)
	}
	return ss, n
}

func runOracle(t *testing.T, model runtime.Model, oracle oracleFile, tol tolerance) {
	m := &model
	for _, seq := range oracle.Sequences {
		t.Run(seq.Name, func(t *testing.T) {
			// Prefill: all positions in one batch.
			c := m.NewKVCache(len(seq.Tokens))
			all, err := m.Forward(c, seq.Tokens, true)
			require.NoError(t, err)
			var ss float64
			var n int
			for i, p := range seq.Positions {
				s, k := checkPosition(t, seq.Name+" prefill pos "+itoa(i), all[i*m.Vocab:(i+1)*m.Vocab], p, oracle.FixedIDs, tol)
				ss, n = ss+s, n+k
			}
			if n > 0 {
				rms := math.Sqrt(ss / float64(n))
				require.LessOrEqualf(t, rms, tol.rms, "rms dlogprob over the sequence")
				t.Logf("%s: rms dlogprob %.4f over %d values", seq.Name, rms, n)
			}
			// Decode: one token at a time through the KV cache gives the same logits.
			c2 := m.NewKVCache(len(seq.Tokens))
			for i, tok := range seq.Tokens {
				one, err := m.Forward(c2, []int32{tok}, false)
				require.NoError(t, err)
				if i%7 == 0 || i == len(seq.Tokens)-1 {
					checkPosition(t, seq.Name+" decode pos "+itoa(i), one, seq.Positions[i], oracle.FixedIDs, tol)
				}
				want := all[i*m.Vocab : (i+1)*m.Vocab]
				worst := 0.0
				for j := range one {
					worst = math.Max(worst, math.Abs(float64(want[j]-one[j])))
				}
				require.LessOrEqualf(t, worst, 1e-4, "decode vs prefill logits at pos %d", i)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func loadModel(t *testing.T, path string) *runtime.Model {
	t.Helper()
	m, err := runtime.Load(path)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func TestOracleLogprobs(t *testing.T) {
	testenv.SkipShort(t)
	cases := []struct {
		model, oracle string
		tol           tolerance
	}{
		{"tiny-q1.gguf", "tiny-q1.logprobs.json.gz", tinyTol},
		{"tiny-q1-tied.gguf", "tiny-q1-tied.logprobs.json.gz", tinyTol},
		{"qwen3vocab-q1.gguf", "qwen3vocab-q1.logprobs.json.gz", vocabTol},
		{"qwen3vocab-mlx", "qwen3vocab-q1.logprobs.json.gz", vocabTol},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			m := loadModel(t, testenv.Shared(t, "oracle", c.model))
			var o oracleFile
			testenv.ReadJSON(t, testenv.Shared(t, "oracle", c.oracle), &o)
			require.Equal(t, o.NVocab, m.Vocab)
			runOracle(t, *m, o, c.tol)
		})
	}
}

type greedyFile struct {
	Runs []struct {
		Name      string    `json:"name"`
		Prompt    []int32   `json:"prompt_tokens"`
		Generated []int32   `json:"generated_tokens"`
		Margins   []float64 `json:"top2_margins"`
	} `json:"runs"`
}

func TestOracleGreedy(t *testing.T) {
	cases := []struct {
		model, oracle string
		margin        float64
	}{
		{"tiny-q1.gguf", "tiny-q1.greedy.json", 0.1},
		{"tiny-q1-tied.gguf", "tiny-q1-tied.greedy.json", 0.1},
		{"qwen3vocab-q1.gguf", "qwen3vocab-q1.greedy.json", 0.25},
		{"qwen3vocab-mlx", "qwen3vocab-q1.greedy.json", 0.25},
	}
	for _, c := range cases {
		t.Run(c.model, func(t *testing.T) {
			m := loadModel(t, testenv.Shared(t, "oracle", c.model))
			var g greedyFile
			testenv.ReadJSON(t, testenv.Shared(t, "oracle", c.oracle), &g)
			require.NotEmpty(t, g.Runs)
			for _, run := range g.Runs {
				cache := m.NewKVCache(len(run.Prompt) + len(run.Generated))
				logits, err := m.Forward(cache, run.Prompt, false)
				require.NoError(t, err)
				matched := 0
				for i, want := range run.Generated {
					got := int32(argmax(logits))
					if got != want {
						require.Lessf(t, run.Margins[i], c.margin,
							"%s step %d: got %d, llama.cpp %d with margin %.3f", run.Name, i, got, want, run.Margins[i])
						break // after a near-tie the continuations may legitimately diverge
					}
					matched++
					logits, err = m.Forward(cache, []int32{got}, false)
					require.NoError(t, err)
				}
				t.Logf("%s: %d/%d greedy tokens equal to llama.cpp", run.Name, matched, len(run.Generated))
			}
		})
	}
}
