package bfs

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/internal/testenv"
	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// naiveLoss is L = −F for the model with flips applied, computed the slow way.
func naiveLoss(t *testing.T, m *runtime.Model, o ScanOptions, base []float64, flips ...patch.Flip) float64 {
	tgt, ctl := flatten(o.Target), flatten(o.Control)
	s := naiveFlipScores(t, m, o.Tokenizer, append(append([]Probe{}, tgt...), ctl...), o.Metric, flips...)
	n := len(tgt)
	return -Fitness(o.FitnessMode, o.Lambda, s[:n], base[:n], s[n:], base[n:])
}

func TestScanMatchesBruteForce(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 2)
	o := ScanOptions{Metric: MetricTokenGap, Tokenizer: tinyTok(t), Target: []*ProbeSet{smallTarget()},
		Control: []*ProbeSet{smallControl()}, Lambda: DefaultLambda, Layers: []int{1}, Projs: []string{"k_proj"}, Budget: 5}
	before := weightsHash(m)
	res, err := Scan(context.Background(), runtime.NewCPU(m), o)
	require.NoError(t, err)
	require.Equal(t, before, weightsHash(m), "scan restores the weights")
	rows := m.Layers[1].Proj[runtime.ProjK].Rows
	require.Len(t, res.Rows, rows)
	require.EqualValues(t, rows, res.PoolSize)

	base := naiveScores(t, m, o.Tokenizer, append(append([]Probe{}, smallTarget().Probes...), smallControl().Probes...), o.Metric)
	brute := make([]ScanRow, rows)
	for r := 0; r < rows; r++ {
		f := patch.RowFlip(1, "k_proj", r)
		brute[r] = scanRow(f, naiveLoss(t, m, o, base, f))
		require.Equal(t, f, res.Rows[r].Flip, "pool order")
		require.InDelta(t, brute[r].S, res.Rows[r].S, exactTol)
	}
	// Top-k by the scan equals top-k by brute force.
	want := (&ScanResult{Rows: brute}).Best(5)
	got := res.Best(5)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].Flip, got[i].Flip)
	}
	// The budget-k patch and its greedy verification, against the naive path.
	tk := res.TopK
	require.NotNil(t, tk)
	require.Equal(t, got, tk.Flips)
	all := make([]patch.Flip, len(tk.Flips))
	for i, r := range tk.Flips {
		all[i] = r.Flip
	}
	require.InDelta(t, naiveLoss(t, m, o, base, all...), tk.Loss, exactTol)
	var kept []patch.Flip
	bestLoss := 0.0
	for i, st := range tk.Steps {
		require.Equal(t, tk.Flips[i].Flip, st.Flip)
		require.InDelta(t, naiveLoss(t, m, o, base, append(append([]patch.Flip{}, kept...), st.Flip)...), st.Loss, exactTol)
		require.Equal(t, st.Loss < bestLoss, st.Kept)
		if st.Kept {
			kept = append(kept, st.Flip)
			bestLoss = st.Loss
		}
	}
	require.NotEmpty(t, kept, "the best single flip always improves on the base")
	require.Len(t, tk.Greedy, len(kept))
	require.InDelta(t, naiveLoss(t, m, o, base, kept...), tk.GreedyLoss, exactTol)
	require.LessOrEqual(t, tk.GreedyLoss, tk.Flips[0].S)

	// Writers.
	var buf bytes.Buffer
	require.NoError(t, WriteScanCSV(&buf, res.Sorted(ByAbs)))
	recs, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, rows+1)
	require.Equal(t, []string{"layer", "proj", "row", "group", "col", "s", "abs_s"}, recs[0])
	buf.Reset()
	require.NoError(t, WriteScanJSON(&buf, res))
	var back ScanResult
	require.NoError(t, json.Unmarshal(buf.Bytes(), &back))
	require.Equal(t, res.Rows, back.Rows)
	require.Equal(t, MetricTokenGap, back.Metric)
}

func TestScanSampled(t *testing.T) {
	testenv.SkipShort(t)
	m := tinyModel(t, 2)
	for _, c := range []struct {
		gran Granularity
		kind patch.Kind
	}{{GranGroup, patch.KindGroup}, {GranBit, patch.KindBit}} {
		t.Run(c.gran.String(), func(t *testing.T) {
			o := ScanOptions{Tokenizer: tinyTok(t), Target: []*ProbeSet{smallTarget()}, Layers: []int{0, 1},
				Projs: []string{"o_proj", "ffn_down"}, Granularity: c.gran, Sample: 10, Seed: 7}
			res, err := Scan(context.Background(), runtime.NewCPU(m), o)
			require.NoError(t, err)
			require.Len(t, res.Rows, 10)
			require.Equal(t, []string{"o_proj", "down_proj"}, res.Projs)
			again, err := Scan(context.Background(), runtime.NewCPU(m), o)
			require.NoError(t, err)
			require.Equal(t, res.Rows, again.Rows, "same seed, same sample and scores")
			base := naiveScores(t, m, o.Tokenizer, smallTarget().Probes, o.Metric)
			seen := map[patch.Flip]bool{}
			for _, r := range res.Rows {
				require.Equal(t, c.kind, r.Flip.Kind())
				require.False(t, seen[r.Flip], "distinct")
				seen[r.Flip] = true
				require.InDelta(t, naiveLoss(t, m, o, base, r.Flip), r.S, exactTol)
			}
			sorted := res.Sorted(BySigned)
			for i := 1; i < len(sorted); i++ {
				require.LessOrEqual(t, sorted[i-1].S, sorted[i].S)
			}
		})
	}
}
