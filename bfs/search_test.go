package bfs

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// smallSearch is a search over the rows of the last two layers' up/gate projections.
func smallSearch(t testing.TB, mode Mode) SearchOptions {
	o := DefaultSearchOptions()
	o.Mode = mode
	o.Target = []*ProbeSet{smallTarget()}
	o.Control = []*ProbeSet{smallControl()}
	o.Layers = []int{3, 2}
	o.Projs = []string{"up_proj", "gate_proj"}
	o.Iters = 30
	o.ScanSample = 120
	o.Tokenizer = tinyTok(t)
	return o
}

func TestSearchRaisesFitness(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 4)
	tok := tinyTok(t)
	for _, mode := range []Mode{ModeGreedy, ModeFast} {
		t.Run(mode.String(), func(t *testing.T) {
			o := smallSearch(t, mode)
			o.HeldOut = []*ProbeSet{{Name: "held", Probes: []Probe{
				{Name: "add_3", Prompt: "3 + 3 =", Correct: " 6", Wrong: " 7"},
				{Name: "cat", Prompt: "A cat", Correct: " sat", Wrong: " ran"}}}}
			before := weightsHash(m)
			res, err := Search(context.Background(), runtime.NewCPU(m), o)
			require.NoError(t, err)
			require.Equal(t, before, weightsHash(m), "search restores the weights")
			r := res.Report
			t.Logf("%s: fitness %.4f, %d accepted, %d screened, %d evaluations", mode, r.Fitness, len(r.Accepted), r.ScreenedOut, r.Evaluations)
			require.NotEmpty(t, r.Accepted)
			require.Greater(t, r.Fitness, 0.0)
			require.True(t, r.Iterations == r.Iters || r.Exhausted)
			// Fitness increases strictly along the accepted steps and ends at the final fitness.
			for i := 1; i < len(r.Accepted); i++ {
				require.Greater(t, r.Accepted[i].Fitness, r.Accepted[i-1].Fitness)
			}
			require.Equal(t, r.Accepted[len(r.Accepted)-1].Fitness, r.Fitness)
			// Final fitness recomputed from the reported per-probe scores.
			var tg, tg0, cg, cg0 []float64
			for _, s := range r.Target {
				tg, tg0 = append(tg, s.Final), append(tg0, s.Base)
			}
			for _, s := range r.Control {
				cg, cg0 = append(cg, s.Final), append(cg0, s.Base)
			}
			require.Equal(t, r.Fitness, Fitness(FitnessMean, o.Lambda, tg, tg0, cg, cg0))
			// ... and from an independent naive evaluation of the patched model.
			all := append(append([]Probe{}, o.Target[0].Probes...), o.Control[0].Probes...)
			base := naiveScores(t, m, tok, all, o.Metric)
			fin := naiveFlipScores(t, m, tok, all, o.Metric, res.Patch.Flips...)
			nt := len(tg)
			require.InDelta(t, r.Fitness, Fitness(FitnessMean, o.Lambda, fin[:nt], base[:nt], fin[nt:], base[nt:]), exactTol)
			// Held-out probes are measured before and after, not searched on.
			held := naiveScores(t, m, tok, o.HeldOut[0].Probes, o.Metric)
			heldFin := naiveFlipScores(t, m, tok, o.HeldOut[0].Probes, o.Metric, res.Patch.Flips...)
			require.Len(t, r.HeldOut, 2)
			for i, h := range r.HeldOut {
				require.InDelta(t, held[i], h.Base, exactTol)
				require.InDelta(t, heldFin[i], h.Final, exactTol)
			}
			// Controls lost no more than lambda allows: F > 0 means λ·mean loss < mean target gain.
			var gain, loss float64
			for i := range tg {
				gain += (tg[i] - tg0[i]) / float64(len(tg))
			}
			for i := range cg {
				loss += max(0, cg0[i]-cg[i]) / float64(len(cg))
			}
			require.Less(t, o.Lambda*loss, gain)
			// The patch carries the flips in acceptance order and upstream's metadata.
			require.Len(t, res.Patch.Flips, len(r.Accepted))
			for i, a := range r.Accepted {
				require.Equal(t, a.Flip, res.Patch.Flips[i])
			}
			for _, k := range []string{"search_algorithm", "metric", "backend", "search_layers", "search_projs", "max_iters",
				"control_penalty", "final_fitness", "search_time_seconds", "screened_out", "granularity", "seed"} {
				require.Contains(t, res.Patch.Metadata, k)
			}
			_, err = res.Patch.Marshal()
			require.NoError(t, err)
			_, err = json.Marshal(r)
			require.NoError(t, err)
		})
	}
}

// TestSearchDeterministic: the same seed gives the same patch whatever the batch size and the
// thread count.
func TestSearchDeterministic(t *testing.T) {
	m := tinyModel(t, 4)
	run := func(batch, threads int) *Result {
		old := m.Threads
		m.Threads = threads
		defer func() { m.Threads = old }()
		o := smallSearch(t, ModeGreedy)
		o.Iters = 20
		o.Batch = batch
		o.MaxBatchRows = 64 * batch
		res, err := Search(context.Background(), runtime.NewCPU(m), o)
		require.NoError(t, err)
		return res
	}
	a, b := run(1, 1), run(16, 2)
	require.Equal(t, a.Patch.Flips, b.Patch.Flips)
	require.Equal(t, a.Report.Accepted, b.Report.Accepted)
	require.Equal(t, a.Report.Fitness, b.Report.Fitness)
	require.Equal(t, a.Report.ScreenedOut, b.Report.ScreenedOut)
	require.Equal(t, a.Checkpoint.Tried, b.Checkpoint.Tried)
}

// TestCheckpointResume stops a search through its context (in the walk at iteration k, or in
// ModeFast's scan), round-trips the checkpoint through JSON, resumes, and expects exactly the
// uninterrupted run's result.
func TestCheckpointResume(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 4)
	const k = 7
	for _, c := range []struct {
		name string
		mode Mode
		stop func(Progress) bool
	}{
		{"greedy", ModeGreedy, func(p Progress) bool { return p.Phase == "search" && p.Iteration >= k }},
		{"fast", ModeFast, func(p Progress) bool { return p.Phase == "search" && p.Iteration >= k }},
		{"fast-in-scan", ModeFast, func(p Progress) bool { return p.Phase == "scan" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := smallSearch(t, c.mode)
			o.Iters = 16
			o.ScanSample = 60
			full, err := Search(context.Background(), runtime.NewCPU(m), o)
			require.NoError(t, err)
			require.NotEmpty(t, full.Patch.Flips)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			o.Progress = func(p Progress) {
				if c.stop(p) {
					cancel()
				}
			}
			checkpoints := 0
			o.CheckpointEvery, o.OnCheckpoint = 3, func(*Checkpoint) { checkpoints++ }
			part, err := Search(ctx, runtime.NewCPU(m), o)
			require.NoError(t, err)
			require.True(t, part.Report.Interrupted)
			require.Less(t, part.Checkpoint.Iteration, o.Iters)
			if c.name != "fast-in-scan" {
				require.GreaterOrEqual(t, part.Checkpoint.Iteration, k)
				require.Positive(t, checkpoints)
			}

			data, err := json.Marshal(part.Checkpoint)
			require.NoError(t, err)
			var ck Checkpoint
			require.NoError(t, json.Unmarshal(data, &ck))
			before := weightsHash(m)
			res, err := Resume(context.Background(), runtime.NewCPU(m), &ck, Callbacks{Tokenizer: tinyTok(t)})
			require.NoError(t, err)
			require.Equal(t, before, weightsHash(m))
			require.False(t, res.Report.Interrupted)
			require.Equal(t, full.Patch.Flips, res.Patch.Flips)
			require.Equal(t, full.Report.Accepted, res.Report.Accepted)
			require.Equal(t, full.Report.Fitness, res.Report.Fitness)
			require.Equal(t, full.Report.Iterations, res.Report.Iterations)
			require.Equal(t, full.Report.ScreenedOut, res.Report.ScreenedOut)
			require.Equal(t, full.Report.Target, res.Report.Target)
		})
	}
}
