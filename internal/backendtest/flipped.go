package backendtest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bankai-metal/bankai-metal/bfs"
	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// Bounds of CheckFlipped on the residual stream: a result passes if its NMSE against
// runtime.CPUBatch{Delta: true} is at most MaxNMSE or its largest absolute difference at most
// MaxFlippedAbs. The two sides differ by float rounding in every kernel (≤ MaxNMSE each) and in
// the flip correction (a recomputed row against FlipDelta's subtraction).
const MaxFlippedAbs = 1e-4

// MaxScoreDiff bounds the difference of probe scores (log-probabilities and logit gaps of order
// 1..10) between an evaluator on a backend and one on the CPU.
const MaxScoreDiff = 1e-4

// requireFlippedClose checks a residual stream against the reference by the bounds above.
func requireFlippedClose(t *testing.T, got, want []float32, where string) {
	t.Helper()
	require.Len(t, got, len(want), where)
	nmse, maxAbs := NMSE(got, want), 0.0
	for i := range want {
		maxAbs = max(maxAbs, math.Abs(float64(got[i])-float64(want[i])))
	}
	require.False(t, math.IsNaN(maxAbs) || math.IsInf(nmse, 1), "%s: NaN or length mismatch", where)
	t.Logf("%s: NMSE %.3g, max abs diff %.3g", where, nmse, maxAbs)
	if nmse > MaxNMSE && maxAbs > MaxFlippedAbs {
		require.Failf(t, "residual stream differs", "%s: NMSE %.3g > %g and max |diff| %.3g > %g", where, nmse, MaxNMSE, maxAbs, MaxFlippedAbs)
	}
}

// flipsFor returns spans of every kind (row, group, bit) in several projections of layers from..,
// over a batch of seqs: within one sequence, straddling sequences, over the whole batch,
// overlapping in one projection (two rows of one weight block, and one row twice), and empty.
func flipsFor(m *runtime.Model, seqs []runtime.Seq, from int) []runtime.FlipSpan {
	rows, ends := 0, []int{}
	for _, s := range seqs {
		rows += s.N
		ends = append(ends, rows)
	}
	last := m.NumLayers() - 1
	mat := func(l int, p runtime.Proj) (r, g, c int) {
		x := m.Layers[l].Proj[p]
		return x.Rows, x.Groups, x.Cols
	}
	var out []runtime.FlipSpan
	add := func(l int, p runtime.Proj, row, group, col, start, n int) {
		out = append(out, runtime.FlipSpan{Flip: patch.Flip{Layer: l, Proj: p.String(), Row: row, Group: group, Col: col}, Start: start, N: n})
	}
	for l := from; l <= last; l++ {
		for p := runtime.Proj(0); p < runtime.NumProj; p++ {
			r, g, c := mat(l, p)
			k := 3*l + int(p)
			switch (k + l) % 3 {
			case 0: // a whole row, over the first sequence(s)
				add(l, p, (7*k+1)%r, -1, -1, 0, ends[0])
			case 1: // a group, straddling the boundary of the last two sequences
				add(l, p, (5*k+3)%r, (k+1)%g, -1, max(0, ends[len(ends)-2]-2), min(rows, ends[len(ends)-2]+3)-max(0, ends[len(ends)-2]-2))
			default: // a bit, over the whole batch
				add(l, p, (11*k+2)%r, -1, (37*k+5)%c, 0, rows)
			}
		}
	}
	// Overlaps in one projection: rows 0 and 1 (one weight block) and row 1 twice (flipped back
	// where both spans apply), a last-row bit flip, and an empty span.
	r, g, c := mat(from, runtime.ProjUp)
	add(from, runtime.ProjUp, 1, -1, -1, 0, rows)
	add(from, runtime.ProjUp, 0, g-1, -1, 1, rows-1)
	add(from, runtime.ProjUp, 1, -1, -1, rows/2, rows-rows/2)
	add(from, runtime.ProjUp, r-1, -1, c-1, 0, rows)
	add(from, runtime.ProjDown, 2, -1, -1, 1, 0)
	// K and V over every sequence boundary.
	for _, p := range []runtime.Proj{runtime.ProjK, runtime.ProjV} {
		r, _, c := mat(last, p)
		add(last, p, r/2, -1, -1, 0, rows)
		add(last, p, r-2, -1, c/3, 1, rows-1)
	}
	return out
}

// randomStream returns a residual stream of rows rows of width hidden.
func randomStream(rng *rand.Rand, rows, hidden int) []float32 {
	x := RandomFloats(rng, rows*hidden)
	for i := range x {
		x[i] *= 0.1 // the scale of the embedding rows
	}
	return x
}

// CheckFlipped compares b's runtime.BatchEvaluator with runtime.CPUBatch{Delta: true} on b.Model()
// (which needs 3 layers or more): independent sequences of 1, 5 and 9 tokens from layers 0 and
// 1; sequences continuing KV caches the way bfs.Evaluator uses them (a prefix phase run in two
// layer segments, committed, then two phases continuing it); and the errors.
func CheckFlipped(t *testing.T, b runtime.Backend) {
	m := b.Model()
	require.GreaterOrEqual(t, m.NumLayers(), 3)
	be, ok := b.(runtime.BatchEvaluator)
	require.True(t, ok, "%s does not implement runtime.BatchEvaluator", b.Name())
	ref := runtime.CPUBatch{Model: m, Delta: true}
	L := m.NumLayers()
	rng := rand.New(rand.NewPCG(41, 42))

	t.Run("independent", func(t *testing.T) {
		seqs := []runtime.Seq{{N: 1}, {N: 5}, {N: 9}}
		for _, from := range []int{0, 1} {
			flips := flipsFor(m, seqs, from)
			x := randomStream(rng, 15, m.Hidden)
			want, got, plain := slices.Clone(x), slices.Clone(x), slices.Clone(x)
			require.NoError(t, ref.RunFlipped(from, L, want, seqs, flips))
			require.NoError(t, be.RunFlipped(from, L, got, seqs, flips))
			requireFlippedClose(t, got, want, fmt.Sprintf("from %d", from))
			require.NoError(t, ref.RunFlipped(from, L, plain, seqs, nil))
			require.Greater(t, NMSE(plain, want), 1e-4, "the flips must change the residual stream")
			for i, s := range seqs { // every sequence is touched by some flip
				r0 := 0
				for _, p := range seqs[:i] {
					r0 += p.N
				}
				d := (r0 + s.N) * m.Hidden
				require.Greater(t, NMSE(plain[r0*m.Hidden:d], want[r0*m.Hidden:d]), 1e-6, "sequence %d", i)
			}
			// Without flips, and with the 1-token sequence alone: rows do not depend on others.
			flipped := got
			got = slices.Clone(x)
			require.NoError(t, be.RunFlipped(from, L, got, seqs, nil))
			requireFlippedClose(t, got, plain, fmt.Sprintf("from %d, no flips", from))
			one := slices.Clone(x[:m.Hidden])
			var first []runtime.FlipSpan
			for _, f := range flips {
				if f.Start == 0 && f.N > 0 {
					f.N = 1
					first = append(first, f)
				}
			}
			require.NoError(t, be.RunFlipped(from, L, one, seqs[:1], first))
			require.Equal(t, flipped[:m.Hidden], one, "row 0 alone and in the batch")
		}
	})

	t.Run("caches", func(t *testing.T) { checkFlippedCaches(t, m, be, ref, rng) })
	t.Run("errors", func(t *testing.T) { checkFlippedErrors(t, m, be) })
}

// checkFlippedCaches runs three phases as bfs.Evaluator does: prefixes into fresh caches (layers
// [0,1) then [1,L)), committed; then answers continuing them, twice from the same prefix. One
// sequence of each phase has no cache.
func checkFlippedCaches(t *testing.T, m *runtime.Model, be runtime.BatchEvaluator, ref runtime.CPUBatch, rng *rand.Rand) {
	L := m.NumLayers()
	prefix, ans := []int{4, 1, 6}, [2][]int{{3, 2, 1}, {2, 4, 1}}
	caches := func() []*runtime.KVCache {
		var cs []*runtime.KVCache
		for i, n := range prefix {
			cs = append(cs, m.NewKVCache(n+max(ans[0][i], ans[1][i])))
		}
		return cs
	}
	cpuC, devC := caches(), caches()
	seqsOf := func(ns []int, cs []*runtime.KVCache) []runtime.Seq {
		s := []runtime.Seq{{N: 2}} // no cache
		for i, n := range ns {
			s = append(s, runtime.Seq{N: n, Cache: cs[i]})
		}
		return s
	}
	total := func(ns []int) int {
		r := 2
		for _, n := range ns {
			r += n
		}
		return r
	}

	x := randomStream(rng, total(prefix), m.Hidden)
	flips := flipsFor(m, seqsOf(prefix, cpuC), 0)
	want, got := slices.Clone(x), slices.Clone(x)
	for _, seg := range [][2]int{{0, 1}, {1, L}} {
		require.NoError(t, ref.RunFlipped(seg[0], seg[1], want, seqsOf(prefix, cpuC), flips))
		require.NoError(t, be.RunFlipped(seg[0], seg[1], got, seqsOf(prefix, devC), flips))
		requireFlippedClose(t, got, want, fmt.Sprintf("prefix, layers [%d,%d)", seg[0], seg[1]))
	}
	for i, n := range prefix {
		cpuC[i].Commit(n)
		devC[i].Commit(n)
	}
	for ph, ns := range ans {
		x := randomStream(rng, total(ns), m.Hidden)
		flips := flipsFor(m, seqsOf(ns, cpuC), 0)
		want, got := slices.Clone(x), slices.Clone(x)
		require.NoError(t, ref.RunFlipped(0, L, want, seqsOf(ns, cpuC), flips))
		require.NoError(t, be.RunFlipped(0, L, got, seqsOf(ns, devC), flips))
		requireFlippedClose(t, got, want, fmt.Sprintf("answers %d", ph))
	}
}

// checkFlippedErrors checks that bad input is refused before anything runs.
func checkFlippedErrors(t *testing.T, m *runtime.Model, be runtime.BatchEvaluator) {
	L := m.NumLayers()
	x := make([]float32, 4*m.Hidden)
	seqs := []runtime.Seq{{N: 4}}
	require.ErrorContains(t, be.RunFlipped(0, L+1, x, seqs, nil), "out of range")
	require.ErrorContains(t, be.RunFlipped(0, L, x[:3*m.Hidden], seqs, nil), "residual stream")
	require.ErrorContains(t, be.RunFlipped(0, L, x, []runtime.Seq{{N: 0}}, nil), "0 tokens")
	bad := []runtime.FlipSpan{{Flip: patch.Flip{Layer: 0, Proj: runtime.ProjQ.String(), Row: 0, Group: -1, Col: -1}, Start: 2, N: 3}}
	require.ErrorContains(t, be.RunFlipped(0, L, x, seqs, bad), "outside the batch")
	bad[0].N, bad[0].Row = 1, m.Layers[0].Proj[runtime.ProjQ].Rows
	require.ErrorContains(t, be.RunFlipped(0, L, x, seqs, bad), "out of range")

	c := m.NewKVCache(5)
	require.ErrorIs(t, be.RunFlipped(0, L, x, []runtime.Seq{{N: 6, Cache: c}}, nil), runtime.ErrContextFull)
	require.ErrorContains(t, be.RunFlipped(0, L, x, []runtime.Seq{{N: 2, Cache: c}, {N: 2, Cache: c}}, nil), "share a KV cache")
	// A cache filled by the CPU holds no keys the backend can read.
	m.RunLayers(0, L, slices.Clone(x[:2*m.Hidden]), []runtime.Seq{{N: 2, Cache: c}}, nil)
	c.Commit(2)
	require.ErrorContains(t, be.RunFlipped(0, L, x[:m.Hidden], []runtime.Seq{{N: 1, Cache: c}}, nil), "cannot be continued here")
	// Only the layers run must hold the positions: [1, L) after a run of layers [0, 1) is not enough.
	d := m.NewKVCache(5)
	require.NoError(t, be.RunFlipped(0, 1, slices.Clone(x[:2*m.Hidden]), []runtime.Seq{{N: 2, Cache: d}}, nil))
	d.Commit(2)
	require.NoError(t, be.RunFlipped(0, 1, slices.Clone(x[:m.Hidden]), []runtime.Seq{{N: 1, Cache: d}}, nil))
	require.ErrorContains(t, be.RunFlipped(1, L, x[:m.Hidden], []runtime.Seq{{N: 1, Cache: d}}, nil), "computed only 0")
}

// evalProbes are short probes for the synthetic byte-level tokenizer. " 56" and " 54" share
// their first two tokens, so token_gap reads the gap after a shared segment.
var evalProbes = []bfs.Probe{
	{Name: "add", Category: "math", Prompt: "1 + 1 =", Correct: " 2", Wrong: " 3"},
	{Name: "mul", Category: "math", Prompt: "7 * 8 =", Correct: " 56", Wrong: " 54"},
}

// evalFlips returns one flip per projection of m, the kinds (row, group, bit) and the layers in
// rotation.
func evalFlips(m *runtime.Model) []patch.Flip {
	var out []patch.Flip
	for p := runtime.Proj(0); p < runtime.NumProj; p++ {
		l := int(p) % m.NumLayers()
		mat := m.Layers[l].Proj[p]
		r := (7*int(p) + 3) % mat.Rows
		switch p % 3 {
		case 0:
			out = append(out, patch.RowFlip(l, p.String(), r))
		case 1:
			out = append(out, patch.GroupFlip(l, p.String(), r, int(p)%mat.Groups))
		default:
			out = append(out, patch.BitFlip(l, p.String(), r, (29*int(p)+5)%mat.Cols))
		}
	}
	return out
}

// CheckEvaluator compares bfs.Evaluator on b with one on the CPU backend (exact mode), with
// layer 1 cached: the baseline scores and flips scored on every probe in batches of a few
// candidates. For seq_logprob, whose answers continue the prompts' KV caches, that is one flip in
// every projection, then the scores after applying a flip and after reverting it; token_gap
// scores three of the flips.
func CheckEvaluator(t *testing.T, b runtime.Backend) {
	m := b.Model()
	idx := []int{0, 1}
	for _, metric := range []bfs.Metric{bfs.MetricSeqLogprob, bfs.MetricTokenGap} {
		t.Run(metric.String(), func(t *testing.T) {
			flips := evalFlips(m)
			if metric != bfs.MetricSeqLogprob {
				flips = flips[:3] // the emulator is slow; seq_logprob runs them all
			}
			cfg := bfs.EvaluatorConfig{Metric: metric, CacheLayers: []int{1}, MaxBatchRows: 60}
			want, err := bfs.NewEvaluator(runtime.NewCPU(m), evalProbes, cfg)
			require.NoError(t, err)
			got, err := bfs.NewEvaluator(b, evalProbes, cfg)
			require.NoError(t, err)
			require.InDeltaSlice(t, want.Scores(), got.Scores(), MaxScoreDiff, "baseline")

			ws, err := want.Score(context.Background(), flips, idx)
			require.NoError(t, err)
			gs, err := got.Score(context.Background(), flips, idx)
			require.NoError(t, err)
			moved := 0
			for i, f := range flips {
				require.InDeltaSlice(t, ws[i], gs[i], MaxScoreDiff, "flip %v", f)
				for j := range idx {
					if math.Abs(ws[i][j]-want.Scores()[j]) > 1e-3 {
						moved++
					}
				}
			}
			require.Greater(t, moved, len(flips)/2, "flips should change scores")
			if metric != bfs.MetricSeqLogprob {
				return
			}
			acc := []patch.Flip{flips[len(flips)/2]} // above the cached layer 1 when there are 3 layers
			require.NoError(t, got.Apply(acc))       // changes the shared model's weights
			fresh, err := bfs.NewEvaluator(runtime.NewCPU(m), evalProbes, cfg)
			require.NoError(t, err)
			require.InDeltaSlice(t, fresh.Scores(), got.Scores(), MaxScoreDiff, "after Apply")
			require.False(t, slices.Equal(want.Scores(), fresh.Scores()), "the applied flip must change the scores")
			require.NoError(t, got.Apply(acc)) // revert
			require.InDeltaSlice(t, want.Scores(), got.Scores(), MaxScoreDiff, "after revert")
		})
	}
}
