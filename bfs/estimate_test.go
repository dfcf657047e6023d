package bfs

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// TestEstimateAgreesWithExact scans every candidate of two layers both ways on the 4-layer test
// model and holds the first-order estimates to the exact S: on small random 1-bit models the
// measured rank correlation is 0.96-0.999 (docs/SENSITIVITY.md), so Spearman >= 0.9 and
// sign agreement >= 0.85 leave room for a different model without passing a broken estimate
// (a sign error or a wrong projection gives a correlation near 0 or negative).
func TestEstimateAgreesWithExact(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 4)
	for _, c := range []struct {
		metric Metric
		gran   Granularity
		projs  []string
		sample int64
	}{
		{MetricTokenGap, GranRow, []string{"gate_proj", "up_proj"}, 0},
		{MetricSeqLogprob, GranRow, []string{"gate_proj", "up_proj", "down_proj", "o_proj"}, 0},
		{MetricTokenGap, GranGroup, []string{"gate_proj", "up_proj", "down_proj"}, 0},
		{MetricSeqLogprob, GranBit, []string{"gate_proj", "up_proj", "q_proj", "v_proj"}, 600},
	} {
		t.Run(c.metric.String()+"/"+c.gran.String(), func(t *testing.T) {
			o := ScanOptions{Metric: c.metric, Tokenizer: tinyTok(t), Target: []*ProbeSet{smallTarget()},
				Control: []*ProbeSet{smallControl()}, Lambda: DefaultLambda, Layers: []int{1, 2}, Projs: c.projs,
				Granularity: c.gran, Sample: c.sample, Seed: 3, Estimate: true, ExactTop: -1}
			before := weightsHash(m)
			res, err := Scan(context.Background(), runtime.NewCPU(m), o)
			require.NoError(t, err)
			require.Equal(t, before, weightsHash(m), "an estimate scan restores the weights")
			require.Len(t, res.Rows, len(res.Estimates), "every candidate scored exactly")
			a := res.Agreement
			require.NotNil(t, a)
			t.Logf("%d candidates: Spearman %.3f, sign agreement %.3f, top overlap %v", a.N, a.Spearman, a.SignAgreement, a.TopOverlap)
			require.GreaterOrEqual(t, a.Spearman, 0.9)
			require.GreaterOrEqual(t, a.SignAgreement, 0.85)
			// Rows come best estimate first and carry both numbers.
			for i := 1; i < len(res.Rows); i++ {
				require.LessOrEqual(t, *res.Rows[i-1].Est, *res.Rows[i].Est)
			}
		})
	}
}

// TestEstimateExactTop checks that only the best-estimated candidates are scored exactly, and
// that their exact S equals a plain exact scan's.
func TestEstimateExactTop(t *testing.T) {
	m := tinyModel(t, 2)
	o := ScanOptions{Metric: MetricTokenGap, Tokenizer: tinyTok(t), Target: []*ProbeSet{smallTarget()},
		Control: []*ProbeSet{smallControl()}, Lambda: DefaultLambda, Layers: []int{1}, Projs: []string{"up_proj"}}
	exact, err := Scan(context.Background(), runtime.NewCPU(m), o)
	require.NoError(t, err)
	byFlip := map[string]float64{}
	for _, r := range exact.Rows {
		byFlip[r.Flip.String()] = r.S
	}
	o.Estimate, o.ExactTop = true, 7
	res, err := Scan(context.Background(), runtime.NewCPU(m), o)
	require.NoError(t, err)
	require.Len(t, res.Rows, 7)
	require.Len(t, res.Estimates, len(exact.Rows))
	require.Nil(t, res.Agreement, "agreement needs every candidate scored exactly")
	worst := *res.Rows[len(res.Rows)-1].Est
	below := 0
	for _, e := range res.Estimates {
		if e.Est < worst {
			below++
		}
	}
	require.Less(t, below, 7, "the exact rows are the best estimates")
	for _, r := range res.Rows {
		require.Equal(t, byFlip[r.Flip.String()], r.S, "%v", r.Flip)
	}
}

// TestEstimateDeterministic: estimates do not depend on the thread count.
func TestEstimateDeterministic(t *testing.T) {
	m := tinyModel(t, 2)
	run := func(threads int) []EstRow {
		old := m.Threads
		m.Threads = threads
		defer func() { m.Threads = old }()
		o := ScanOptions{Metric: MetricSeqLogprob, Tokenizer: tinyTok(t), Target: []*ProbeSet{smallTarget()},
			Control: []*ProbeSet{smallControl()}, Lambda: DefaultLambda, Layers: []int{0, 1},
			Projs: []string{"gate_proj", "up_proj"}, Granularity: GranGroup, Estimate: true, ExactTop: 1}
		res, err := Scan(context.Background(), runtime.NewCPU(m), o)
		require.NoError(t, err)
		return res.Estimates
	}
	require.Equal(t, run(1), run(3))
}

// TestSearchFastEstimate: the estimate-guided fast search raises fitness, is deterministic
// whatever the batching and thread count, and resumes from a checkpoint to the same patch.
func TestSearchFastEstimate(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 4)
	run := func(batch, threads int, stopAt int) *Result {
		old := m.Threads
		m.Threads = threads
		defer func() { m.Threads = old }()
		o := smallSearch(t, ModeFast)
		o.Estimate, o.ScanSample, o.Iters, o.Batch = true, 0, 40, batch
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if stopAt > 0 {
			o.Progress = func(p Progress) {
				if p.Phase == "search" && p.Iteration >= stopAt {
					cancel()
				}
			}
		}
		res, err := Search(ctx, runtime.NewCPU(m), o)
		require.NoError(t, err)
		return res
	}
	a := run(1, 1, 0)
	require.Greater(t, a.Report.Fitness, 0.0)
	require.NotEmpty(t, a.Report.Accepted)
	b := run(16, 3, 0)
	require.Equal(t, a.Patch.Flips, b.Patch.Flips)
	require.Equal(t, a.Report.Fitness, b.Report.Fitness)

	part := run(4, 2, 9)
	require.True(t, part.Report.Interrupted)
	data, err := json.Marshal(part.Checkpoint)
	require.NoError(t, err)
	var ck Checkpoint
	require.NoError(t, json.Unmarshal(data, &ck))
	require.True(t, ck.Options.Estimate, "the checkpoint records the proposal")
	res, err := Resume(context.Background(), runtime.NewCPU(m), &ck, Callbacks{Tokenizer: tinyTok(t)})
	require.NoError(t, err)
	require.Equal(t, a.Patch.Flips, res.Patch.Flips)
	require.Equal(t, a.Report.Fitness, res.Report.Fitness)
}
