package bfs

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// Tolerances between the evaluator and the naive path (apply the flip, full Model.Forward,
// revert), absolute, on scores of magnitude 1..10. The default bit-exact evaluator runs the same
// kernels on the same numbers as the naive path, so only the float64 log-sum-exp formula of the
// test differs (token_gap is compared for exact equality). The Delta correction differs by float32
// rounding of one projection output, which the later layers amplify to about 1e-5 at most on these
// models (observed maximum 1.03e-5).
const (
	exactTol = 1e-9
	deltaTol = 1e-4
)

// someFlips returns row, group and bit flips in every projection of the given layers.
func someFlips(m *runtime.Model, layers []int) []patch.Flip {
	var out []patch.Flip
	for _, l := range layers {
		for p := runtime.Proj(0); p < runtime.NumProj; p++ {
			mat := m.Layers[l].Proj[p]
			r := (7*l + 3*int(p) + 1) % mat.Rows
			out = append(out,
				patch.RowFlip(l, p.String(), r),
				patch.GroupFlip(l, p.String(), (r+5)%mat.Rows, mat.Groups-1),
				patch.BitFlip(l, p.String(), (r+9)%mat.Rows, (13*l+int(p)*29)%mat.Cols))
		}
	}
	return out
}

func TestEvaluatorMatchesNaive(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 2)
	tok := tinyTok(t)
	probes := allProbes(mustSet(t, "math"), mustSet(t, "code"))[4:8]
	idx := []int{0, 1, 2, 3}
	flips := someFlips(m, []int{0, 1})
	for _, metric := range []Metric{MetricSeqLogprob, MetricTokenGap} {
		t.Run(metric.String(), func(t *testing.T) {
			base := naiveScores(t, m, tok, probes, metric)
			want := make([][]float64, len(flips))
			moved := 0
			for i, f := range flips {
				want[i] = naiveFlipScores(t, m, tok, probes, metric, f)
				for j := range want[i] {
					if math.Abs(want[i][j]-base[j]) > 1e-3 {
						moved++
					}
				}
			}
			require.Greater(t, moved, len(flips), "flips should change scores")
			for _, delta := range []bool{false, true} {
				e, err := NewEvaluator(runtime.NewCPU(m), probes, EvaluatorConfig{Metric: metric, Tokenizer: tok,
					CacheLayers: []int{1}, MaxBatchRows: 150, Delta: delta})
				require.NoError(t, err)
				require.InDeltaSlice(t, base, e.Scores(), exactTol)
				before := weightsHash(m)
				got, err := e.Score(context.Background(), flips, idx)
				require.NoError(t, err)
				require.Equal(t, before, weightsHash(m), "Score must not change the weights")
				tol := exactTol
				if delta {
					tol = deltaTol
				}
				for i, f := range flips {
					require.InDeltaSlice(t, want[i], got[i], tol, "flip %v delta %v", f, delta)
					if metric == MetricTokenGap && !delta {
						require.Equal(t, want[i], got[i], "flip %v: bit-exact", f)
					}
				}
			}
		})
	}
}

func TestEvaluatorApplyRefresh(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 3)
	tok := tinyTok(t)
	probes := mustSet(t, "math").Probes
	e, err := NewEvaluator(runtime.NewCPU(m), probes, EvaluatorConfig{Tokenizer: tok, CacheLayers: []int{1, 2}})
	require.NoError(t, err)
	base := e.Scores()
	acc := []patch.Flip{patch.RowFlip(1, "gate_proj", 5), patch.GroupFlip(2, "down_proj", 3, 1)}
	require.NoError(t, e.Apply(acc))
	require.InDeltaSlice(t, naiveScores(t, m, tok, probes, MetricSeqLogprob), e.Scores(), exactTol)
	// A candidate on top of accepted flips, below and above them.
	for _, f := range []patch.Flip{patch.RowFlip(0, "up_proj", 11), patch.BitFlip(2, "o_proj", 4, 77), patch.RowFlip(1, "gate_proj", 6)} {
		got, err := e.Score(context.Background(), []patch.Flip{f}, []int{0, 1, 2, 3, 4, 5})
		require.NoError(t, err)
		require.InDeltaSlice(t, naiveFlipScores(t, m, tok, probes, MetricSeqLogprob, f), got[0], exactTol)
	}
	require.NoError(t, e.Apply(acc)) // revert
	require.Equal(t, base, e.Scores(), "revert restores the exact baseline")
}

// TestScoresBatchInvariant checks that scores are bit-identical whatever the batch bound, the
// probe subset and the thread count.
func TestScoresBatchInvariant(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 2)
	tok := tinyTok(t)
	probes := allProbes(mustSet(t, "math"), mustSet(t, "knowledge"))[3:9]
	flips := someFlips(m, []int{1})[:9]
	all := make([]int, len(probes))
	for i := range all {
		all[i] = i
	}
	run := func(threads, maxRows int, subset []int) ([]float64, [][]float64) {
		old := m.Threads
		m.Threads = threads
		defer func() { m.Threads = old }()
		e, err := NewEvaluator(runtime.NewCPU(m), probes, EvaluatorConfig{Tokenizer: tok, CacheLayers: []int{1}, MaxBatchRows: maxRows})
		require.NoError(t, err)
		got, err := e.Score(context.Background(), flips, subset)
		require.NoError(t, err)
		return e.Scores(), got
	}
	base, ref := run(1, 1<<20, all)
	for _, c := range []struct{ threads, rows int }{{2, 1 << 20}, {1, 10}, {2, 300}, {3, 1}} {
		b, got := run(c.threads, c.rows, all)
		require.Equal(t, base, b)
		require.Equal(t, ref, got)
	}
	_, sub := run(2, 50, []int{5, 2})
	for i := range flips {
		require.Equal(t, []float64{ref[i][5], ref[i][2]}, sub[i])
	}
}
