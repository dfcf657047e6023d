package bfs

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// longProbe has a prompt of n bytes; the tiny tokenizer is byte-level, so about n tokens.
func longProbe(name string, n int) Probe {
	return Probe{Name: name, Category: "custom", Prompt: strings.Repeat("x", n), Correct: " 4", Wrong: " 5"}
}

func TestCheckProbeLengths(t *testing.T) {
	tok := tinyTok(t)
	seq, all := ProbeTokens(tok, Probe{Prompt: "2 + 2 =", Correct: " 4", Wrong: " 15"}, 0)
	prompt := len(tok.Encode("2 + 2 =", true))
	c, w := len(Continuation(tok, "2 + 2 =", " 4")), len(Continuation(tok, "2 + 2 =", " 15"))
	require.Equal(t, prompt+max(c, w), seq)
	require.Equal(t, prompt+c+w, all)
	seqG, _ := ProbeTokens(tok, Probe{Prompt: "2 + 2 =", Correct: " 4", Wrong: " 15"}, 14)
	require.Equal(t, prompt+14, seqG)

	ok := smallTarget()
	require.NoError(t, CheckProbeLengths(tok, []*ProbeSet{ok, smallControl()}, 4096, 14))

	long := &ProbeSet{Name: "big", Probes: []Probe{ok.Probes[0], longProbe("long_one", 5000)}}
	err := CheckProbeLengths(tok, []*ProbeSet{ok, long}, 4096, 0)
	require.ErrorContains(t, err, `bfs: probe set "big": probe 1 ("long_one"): `)
	require.ErrorContains(t, err, "more than the model's context of 4096")

	// the greedy answer counts too
	edge := &ProbeSet{Name: "edge", Probes: []Probe{longProbe("edge", 4090)}}
	require.NoError(t, CheckProbeLengths(tok, []*ProbeSet{edge}, 4096, 0))
	require.ErrorContains(t, CheckProbeLengths(tok, []*ProbeSet{edge}, 4096, 14), `probe 0 ("edge")`)

	// all probes together are bounded even without a context limit
	var many []Probe
	for i := range MaxProbeTokens/4000 + 1 {
		many = append(many, longProbe(strings.Repeat("p", i+1), 4000))
	}
	half := len(many) / 2
	err = CheckProbeLengths(tok, []*ProbeSet{{Name: "a", Probes: many[:half]}, {Name: "b", Probes: many[half:]}}, 0, 0)
	require.ErrorContains(t, err, `probe set "b"`)
	require.ErrorContains(t, err, "more than 131072 tokens")
}

// TestEvalChecksProbeLengthsFirst: a probe longer than the model's context is an error naming
// it before anything runs (it used to be fed to the model whole).
func TestEvalChecksProbeLengthsFirst(t *testing.T) {
	m := tinyModel(t, 2)
	require.Equal(t, 4096, m.Context)
	sets := []*ProbeSet{smallTarget(), {Name: "big", Probes: []Probe{longProbe("too_long", 6000)}}}
	_, err := Eval(context.Background(), runtime.NewCPU(m), EvalOptions{Metric: MetricSeqLogprob, Tokenizer: tinyTok(t), Sets: sets})
	require.ErrorContains(t, err, `probe set "big": probe 0 ("too_long"): `)
	_, err = Eval(context.Background(), runtime.NewCPU(m), EvalOptions{Metric: MetricSeqLogprob, Tokenizer: tinyTok(t),
		Sets: sets[:1], Greedy: true, MaxTokens: -1})
	require.ErrorContains(t, err, "greedy tokens")
}
