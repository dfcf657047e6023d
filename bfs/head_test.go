package bfs

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// A forward pass whose logits are not finite is an error, never a NaN score: loading rejects
// non-finite weights, so the final norm is poisoned in memory here to reach the check.
func TestEvaluatorRejectsNonFiniteLogits(t *testing.T) {
	for _, metric := range []Metric{MetricTokenGap, MetricSeqLogprob} {
		m := tinyModel(t, 2)
		m.OutNorm[0] = float32(math.Inf(1))
		_, err := NewEvaluator(runtime.NewCPU(m), allProbes(smallTarget()), EvaluatorConfig{Metric: metric, Tokenizer: tinyTok(t)})
		require.ErrorContains(t, err, "logit", metric)
	}
}

// search and scan build their evaluators through NewEvaluator, which checks every probe
// against the model's context before any forward pass.
func TestEvaluatorChecksProbeLengths(t *testing.T) {
	m := tinyModel(t, 2)
	require.Positive(t, m.Context)
	long := Probe{Name: "long", Prompt: strings.Repeat("x y ", m.Context), Correct: " 1", Wrong: " 2"}
	probes := append(allProbes(smallTarget()), long)
	_, err := NewEvaluator(runtime.NewCPU(m), probes, EvaluatorConfig{Tokenizer: tinyTok(t)})
	require.ErrorContains(t, err, `"long"`)
	require.ErrorContains(t, err, "context")
}
