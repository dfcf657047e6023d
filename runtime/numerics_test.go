package runtime

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The "llama" numerics against the llama.cpp fixtures of ../shared/oracle (README there):
// every intermediate tensor of a 7-token decode bit for bit, the log-probs of every sequence
// and the greedy continuations.
//
// Until Model has a Numerics field wired into qwen3.go, llamaForward runs a private copy of
// Model.layer that calls the kernel set (numerics.go); once it is wired, llamaForward becomes
// m.Numerics = NumericsLlama; return m.Forward(c, tokens, all), and forwardWith and layerWith go.

func TestParseNumerics(t *testing.T) {
	for _, n := range []Numerics{NumericsFloat, NumericsLlama} {
		got, err := ParseNumerics(n.String())
		require.NoError(t, err)
		require.Equal(t, n, got)
	}
	got, err := ParseNumerics("")
	require.NoError(t, err)
	require.Equal(t, NumericsFloat, got)
	_, err = ParseNumerics("f16")
	require.ErrorContains(t, err, `runtime: unknown numerics "f16"`)
	require.Equal(t, "Numerics(9)", Numerics(9).String())
	require.Same(t, NumericsFloat.kernels(), Numerics(9).kernels())
}

// llamaForward is Model.Forward in llama numerics.
func llamaForward(m *Model, c *KVCache, tokens []int32, all bool) ([]float32, error) {
	m.Numerics = NumericsLlama
	defer func() { m.Numerics = NumericsFloat }()
	return m.Forward(c, tokens, all)
}

func loadShared(t *testing.T, name string) *Model {
	t.Helper()
	m, err := Load(testenv.Shared(t, "oracle", name))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// intermediates is tiny-q1.intermediates.json.gz: every f32 tensor of one 7-token decode.
type intermediates struct {
	Tokens  []int32 `json:"prompt_tokens"`
	Tensors []struct {
		Name   string    `json:"name"`
		Values []float32 `json:"values"`
	} `json:"tensors"`
}

func (im *intermediates) get(t *testing.T, name string) []float32 {
	t.Helper()
	for _, x := range im.Tensors {
		if x.Name == name {
			return x.Values
		}
	}
	t.Fatalf("intermediates: no tensor %s", name)
	return nil
}

// TestLlamaIntermediates feeds every op of the llama kernel set llama.cpp's own input tensors
// and requires llama.cpp's output to the bit.
func TestLlamaIntermediates(t *testing.T) {
	m := loadShared(t, "tiny-q1.gguf")
	var im intermediates
	testenv.ReadJSON(t, testenv.Shared(t, "oracle", "tiny-q1.intermediates.json.gz"), &im)
	k := NumericsLlama.kernels()
	n, D := len(im.Tokens), m.Hidden
	get := func(name string) []float32 { return append([]float32(nil), im.get(t, name)...) }
	check := func(name string, got []float32) {
		t.Helper()
		want := im.get(t, name)
		require.Len(t, got, len(want), name)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("%s[%d] = %g, llama.cpp %g", name, i, got[i], want[i])
				return
			}
		}
	}
	mul := func(mat *q1.Matrix, in []float32) []float32 {
		out := make([]float32, n*mat.Rows)
		k.matMul(0, []*q1.Matrix{mat}, in, n, [][]float32{out})
		return out
	}
	x := make([]float32, n*D)
	m.Embedding(im.Tokens, x)
	check("embd", x)
	for l := range m.Layers {
		L, sfx := &m.Layers[l], fmt.Sprint("-", l)
		in := get("embd")
		if l > 0 {
			in = get(fmt.Sprint("l_out-", l-1))
		}
		h := make([]float32, n*D)
		k.rmsNorm(h, in, L.AttnNorm, m.RMSEps)
		check("attn_norm"+sfx, h)
		check("Qcur"+sfx, mul(L.Proj[ProjQ], get("attn_norm"+sfx)))
		check("Kcur"+sfx, mul(L.Proj[ProjK], get("attn_norm"+sfx)))
		check("Vcur"+sfx, mul(L.Proj[ProjV], get("attn_norm"+sfx)))
		q, kk := get("Qcur"+sfx), get("Kcur"+sfx)
		k.rmsNorm(q, q, L.QNorm, m.RMSEps)
		k.rmsNorm(kk, kk, L.KNorm, m.RMSEps)
		check("Qcur_normed"+sfx, q)
		check("Kcur_normed"+sfx, kk)
		q, kk = get("Qcur_normed"+sfx), get("Kcur_normed"+sfx)
		cos, sin := k.ropeTables(m.Rope, 0, n)
		k.applyRope(q, n, m.Heads, m.HeadDim, cos, sin)
		k.applyRope(kk, n, m.KVHeads, m.HeadDim, cos, sin)
		check("Qcur_rope"+sfx, q)
		check("Kcur_rope"+sfx, kk)
		att := make([]float32, n*m.QDim())
		q, kk, v := get("Qcur_rope"+sfx), get("Kcur_rope"+sfx), get("Vcur"+sfx)
		for i := range n * m.Heads {
			k.attentionHead(att, q, kk, v, i/m.Heads, i%m.Heads, n, n, m.Heads, m.KVHeads, m.HeadDim, make([]float32, n))
		}
		check("kqv_out"+sfx, att)
		check("attn_out"+sfx, mul(L.Proj[ProjO], get("kqv_out"+sfx)))
		res := get("attn_out" + sfx)
		cpu.Add(res, in)
		check("ffn_inp"+sfx, res)
		k.rmsNorm(h, get("ffn_inp"+sfx), L.FFNNorm, m.RMSEps)
		check("ffn_norm"+sfx, h)
		check("ffn_gate"+sfx, mul(L.Proj[ProjGate], get("ffn_norm"+sfx)))
		check("ffn_up"+sfx, mul(L.Proj[ProjUp], get("ffn_norm"+sfx)))
		sw := make([]float32, n*m.FFN)
		k.siluMul(sw, get("ffn_gate"+sfx), get("ffn_up"+sfx))
		check("ffn_swiglu"+sfx, sw)
		check("ffn_out"+sfx, mul(L.Proj[ProjDown], get("ffn_swiglu"+sfx)))
		res = get("ffn_out" + sfx)
		cpu.Add(res, get("ffn_inp"+sfx))
		check("l_out"+sfx, res)
	}
	h := make([]float32, n*D)
	k.rmsNorm(h, get(fmt.Sprint("l_out-", len(m.Layers)-1)), m.OutNorm, m.RMSEps)
	check("result_norm", h)
	check("result_output", mul(m.Output, get("result_norm")))

	// The whole pass, from the tokens, gives the same logits.
	logits, err := llamaForward(m, m.NewKVCache(n), im.Tokens, true)
	require.NoError(t, err)
	check("result_output", logits)
}

// llamaOracle is the part of *.logprobs.json.gz this test reads (schema bonsai-oracle/logprobs-v1).
type llamaOracle struct {
	FixedIDs  []int `json:"fixed_ids"`
	Sequences []struct {
		Name      string  `json:"name"`
		Tokens    []int32 `json:"tokens"`
		Positions []struct {
			LogSumExp  float64     `json:"logsumexp"`
			LogProbs   []float64   `json:"logprobs"`
			Top        [][]float64 `json:"top"`
			FixedProbs []float64   `json:"fixed_logprobs"`
		} `json:"positions"`
	} `json:"sequences"`
}

// maxLogprobDiff returns the largest |logprob − llama.cpp| over the ids the oracle lists at one
// position (every id, or the top 32 and the fixed ids), and |logsumexp − llama.cpp|.
func maxLogprobDiff(logits []float32, all []float64, top [][]float64, fixed []int, fixedLP []float64, lse float64) (float64, float64) {
	z := LogSumExp(logits)
	worst := 0.0
	for id, want := range all {
		worst = math.Max(worst, math.Abs(float64(logits[id])-z-want))
	}
	for _, tp := range top {
		worst = math.Max(worst, math.Abs(float64(logits[int(tp[0])])-z-tp[1]))
	}
	for i, id := range fixed {
		worst = math.Max(worst, math.Abs(float64(logits[id])-z-fixedLP[i]))
	}
	return worst, math.Abs(z - lse)
}

// llamaLogits returns the logits (len(tokens), Vocab) of every position, computed in one
// batch or, with decode, one token at a time (llama.cpp's single-token kernels).
func llamaLogits(t *testing.T, m *Model, tokens []int32, decode bool) []float32 {
	c := m.NewKVCache(len(tokens))
	if !decode {
		logits, err := llamaForward(m, c, tokens, true)
		require.NoError(t, err)
		return logits
	}
	var all []float32
	for _, tok := range tokens {
		logits, err := llamaForward(m, c, []int32{tok}, false)
		require.NoError(t, err)
		all = append(all, logits...)
	}
	return all
}

// TestLlamaOracleLogprobs runs the fixture sequences through the llama kernels and requires
// llama.cpp's log-probs and logsumexp at every position. The oracle has 6 decimals, so a
// bit-exact result is within 5e-7 of it; the bound is 1e-5, the README's tolerance for an
// exact emulation. The MLX copy of qwen3vocab (same weights, other scale encoding) and the
// one-token-at-a-time runs take a subset to keep the test fast.
func TestLlamaOracleLogprobs(t *testing.T) {
	for _, c := range []struct {
		model, oracle string
		decode        bool
		only          string // one sequence, or "" for all
	}{
		{"tiny-q1.gguf", "tiny-q1.logprobs.json.gz", false, ""},
		{"tiny-q1-tied.gguf", "tiny-q1-tied.logprobs.json.gz", false, ""},
		{"qwen3vocab-q1.gguf", "qwen3vocab-q1.logprobs.json.gz", false, ""},
		{"qwen3vocab-mlx", "qwen3vocab-q1.logprobs.json.gz", false, "chat"},
		{"tiny-q1.gguf", "tiny-q1.logprobs.json.gz", true, "len150"},
		{"qwen3vocab-q1.gguf", "qwen3vocab-q1.logprobs.json.gz", true, "len40"},
	} {
		name := c.model
		if c.decode {
			name += "/decode"
		}
		t.Run(name, func(t *testing.T) {
			m := loadShared(t, c.model)
			var o llamaOracle
			testenv.ReadJSON(t, testenv.Shared(t, "oracle", c.oracle), &o)
			for _, seq := range o.Sequences {
				if c.only != "" && seq.Name != c.only {
					continue
				}
				logits := llamaLogits(t, m, seq.Tokens, c.decode)
				worst, worstLSE := 0.0, 0.0
				for i, p := range seq.Positions {
					d, dl := maxLogprobDiff(logits[i*m.Vocab:(i+1)*m.Vocab], p.LogProbs, p.Top, o.FixedIDs, p.FixedProbs, p.LogSumExp)
					require.LessOrEqualf(t, d, 1e-5, "%s %s position %d: |dlogprob|", name, seq.Name, i)
					require.LessOrEqualf(t, dl, 1e-5, "%s %s position %d: |dlogsumexp|", name, seq.Name, i)
					worst, worstLSE = math.Max(worst, d), math.Max(worstLSE, dl)
				}
				t.Logf("%s %-6s (%3d positions): max |dlogprob| %.2g, max |dlogsumexp| %.2g",
					name, seq.Name, len(seq.Positions), worst, worstLSE)
			}
		})
	}
}

// TestLlamaOracleGreedy requires all 24 tokens of every llama.cpp greedy run, decoding one
// token at a time after a batched prompt as llama.cpp did.
func TestLlamaOracleGreedy(t *testing.T) {
	for _, c := range []struct{ model, oracle string }{
		{"tiny-q1.gguf", "tiny-q1.greedy.json"},
		{"tiny-q1-tied.gguf", "tiny-q1-tied.greedy.json"},
		{"qwen3vocab-q1.gguf", "qwen3vocab-q1.greedy.json"},
	} {
		t.Run(c.model, func(t *testing.T) {
			m := loadShared(t, c.model)
			var g struct {
				Runs []struct {
					Name      string  `json:"name"`
					Prompt    []int32 `json:"prompt_tokens"`
					Generated []int32 `json:"generated_tokens"`
				} `json:"runs"`
			}
			testenv.ReadJSON(t, testenv.Shared(t, "oracle", c.oracle), &g)
			require.NotEmpty(t, g.Runs)
			for _, run := range g.Runs {
				cache := m.NewKVCache(len(run.Prompt) + len(run.Generated))
				logits, err := llamaForward(m, cache, run.Prompt, false)
				require.NoError(t, err)
				var got []int32
				for range run.Generated {
					best := 0
					for i, v := range logits {
						if v > logits[best] {
							best = i
						}
					}
					got = append(got, int32(best))
					logits, err = llamaForward(m, cache, []int32{int32(best)}, false)
					require.NoError(t, err)
				}
				require.Equal(t, run.Generated, got, "%s %s", c.model, run.Name)
			}
		})
	}
}
