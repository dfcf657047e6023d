package bfs

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

func TestEval(t *testing.T) {
	m := tinyModel(t, 2)
	tok := tinyTok(t)
	sets := []*ProbeSet{smallTarget(), smallControl()}
	probes := flatten(sets)
	flips := []patch.Flip{patch.RowFlip(1, "up_proj", 3), patch.RowFlip(0, "gate_proj", 9), patch.GroupFlip(1, "down_proj", 4, 2)}
	before := weightsHash(m)
	rep, err := Eval(context.Background(), runtime.NewCPU(m), EvalOptions{Metric: MetricSeqLogprob, Tokenizer: tok,
		Sets: sets, Flips: flips, Greedy: true, MaxTokens: 6})
	require.NoError(t, err)
	require.Equal(t, before, weightsHash(m), "eval restores the weights")

	base := naiveScores(t, m, tok, probes, MetricSeqLogprob)
	patched := naiveFlipScores(t, m, tok, probes, MetricSeqLogprob, flips...)
	var baseText, patchedText []string
	for _, p := range probes {
		s, err := GreedyAnswer(runtime.NewCPU(m), tok, p.Prompt, 6)
		require.NoError(t, err)
		baseText = append(baseText, s)
	}
	require.NoError(t, patch.ApplyFlips(m, flips))
	for _, p := range probes {
		s, err := GreedyAnswer(runtime.NewCPU(m), tok, p.Prompt, 6)
		require.NoError(t, err)
		patchedText = append(patchedText, s)
	}
	require.NoError(t, patch.ApplyFlips(m, flips))

	var fixed, broke, right, wrong int
	for i, pe := range rep.Probes {
		require.Equal(t, probes[i].Name, pe.Name)
		require.InDelta(t, base[i], pe.Base, exactTol)
		require.InDelta(t, patched[i], pe.Patched, exactTol)
		require.Equal(t, pe.Patched-pe.Base, pe.Delta)
		require.Equal(t, baseText[i], pe.BaseText)
		require.Equal(t, patchedText[i], pe.PatchedText)
		ok, _ := probes[i].Judge(baseText[i])
		require.Equal(t, ok, pe.BaseCorrect)
		switch b, a := base[i] > 0, patched[i] > 0; {
		case !b && a:
			fixed++
		case b && !a:
			broke++
		case b:
			right++
		default:
			wrong++
		}
	}
	require.Equal(t, Counts{Total: len(probes), Fixed: fixed, Broke: broke, StayedRight: right, StayedWrong: wrong,
		Unchanged: right + wrong, Before: right + broke, After: right + fixed}, rep.Gap)
	require.NotNil(t, rep.Greedy)
	require.Equal(t, len(probes), rep.Greedy.Total)
	require.NotEqual(t, base, patched, "the patch changes the gaps")
	_, err = json.Marshal(rep)
	require.NoError(t, err)
}

// TestEvalCorrectWithoutGreedy: without greedy answers, base_correct and patched_correct follow
// the sign of the gaps, as the table and the gap counts do (they used to be always false).
func TestEvalCorrectWithoutGreedy(t *testing.T) {
	m := tinyModel(t, 2)
	flips := []patch.Flip{patch.RowFlip(1, "up_proj", 3), patch.RowFlip(0, "gate_proj", 9)}
	rep, err := Eval(context.Background(), runtime.NewCPU(m), EvalOptions{Metric: MetricSeqLogprob, Tokenizer: tinyTok(t),
		Sets: []*ProbeSet{smallTarget(), smallControl()}, Flips: flips})
	require.NoError(t, err)
	right := 0
	for _, pe := range rep.Probes {
		require.Equal(t, pe.Base > 0, pe.BaseCorrect, pe.Name)
		require.Equal(t, pe.Patched > 0, pe.PatchedCorrect, pe.Name)
		if pe.BaseCorrect {
			right++
		}
	}
	require.Equal(t, rep.Gap.Before, right)
	require.Positive(t, right+rep.Gap.After, "some probe is right, so the check can fail")
}
