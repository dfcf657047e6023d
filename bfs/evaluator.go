package bfs

import (
	"context"
	"fmt"
	"slices"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// EvaluatorConfig configures an Evaluator.
type EvaluatorConfig struct {
	Metric Metric
	// Tokenizer encodes the probes; nil means the model's own (Model.Tokenizer).
	Tokenizer Tokenizer
	// CacheLayers are the layers whose input residual stream is kept (the layers candidates live
	// in). A candidate in another layer starts from the nearest cached layer below it; the input
	// of layer 0 (the embeddings) is always kept.
	CacheLayers []int
	// Delta selects the cheaper cpu.FlipDelta correction in the CPU path instead of the
	// bit-exact recomputation of the flipped row (see CPUBatch). Ignored by other backends.
	Delta bool
	// MaxBatchRows bounds the rows (tokens) of one batched layer run; 0 picks a bound from a
	// 256 MiB activation budget. At least one candidate always runs.
	MaxBatchRows int
}

// Evaluator scores candidate flips on a fixed list of probes (see the package documentation).
// It is not safe for concurrent use, and nothing else may change the model's weights while it
// is in use (use Apply).
//
// Each probe is run as up to three sequences (prepared.parts): a shared prefix, then the
// correct and wrong answers' segments continuing it through a KV cache. All probes' parts of
// one kind form a phase; a batch runs phase 0, commits the caches, then phases 1 and 2.
type Evaluator struct {
	b       runtime.Backend
	m       *runtime.Model
	run     runtime.BatchEvaluator
	metric  Metric
	probes  []Probe
	prep    []prepared
	all     []int                // every probe index
	off     [3][]int             // per phase, per probe: first row of its part in the cache
	rows    [3]int               // rows of each phase over all probes
	cached  []int                // cached layers, ascending, starting with 0
	cache   map[int][3][]float32 // layer -> per phase (rows, Hidden): residual entering the layer
	head    *q1.Matrix           // token_gap: the LM-head rows any probe reads (n_ids, Hidden)
	headIdx map[int32]int        // token id -> row of head
	scores  []float64            // current score of every probe
	maxRows int                  // rows per batched run
	evals   int64                // candidate evaluations so far
}

// NewEvaluator tokenises probes, runs them once and caches the residual stream at the input of
// cfg.CacheLayers. b.Model() is the model scored; its weights are read, and changed only by Apply.
func NewEvaluator(b runtime.Backend, probes []Probe, cfg EvaluatorConfig) (*Evaluator, error) {
	m := b.Model()
	tok := cfg.Tokenizer
	if tok == nil {
		t, err := m.Tokenizer()
		if err != nil {
			return nil, fmt.Errorf("bfs: %w", err)
		}
		tok = t
	}
	if len(probes) == 0 {
		return nil, fmt.Errorf("bfs: evaluator: no probes")
	}
	// Every probe is checked against the context, and all of them together against
	// MaxProbeTokens, before any work (search and scan build their evaluators here).
	if err := CheckProbeLengths(tok, []*ProbeSet{{Name: "targets, then controls", Probes: probes}}, m.Context, 0); err != nil {
		return nil, err
	}
	e := &Evaluator{b: b, m: m, metric: cfg.Metric, probes: slices.Clone(probes), cache: map[int][3][]float32{}}
	if be, ok := b.(runtime.BatchEvaluator); ok {
		e.run = be
	} else {
		e.run = runtime.CPUBatch{Model: m, Delta: cfg.Delta}
	}
	e.cached = []int{0}
	for _, l := range cfg.CacheLayers {
		if l < 0 || l >= m.NumLayers() {
			return nil, fmt.Errorf("bfs: evaluator: cache layer %d out of range [0,%d)", l, m.NumLayers())
		}
		if !slices.Contains(e.cached, l) {
			e.cached = append(e.cached, l)
		}
	}
	slices.Sort(e.cached)
	ids := map[int32]bool{}
	for i, p := range probes {
		pp, err := prepareProbe(tok, p, cfg.Metric)
		if err != nil {
			return nil, fmt.Errorf("bfs: probe %d: %w", i, err)
		}
		for _, part := range pp.parts {
			if err := checkTokens(m, part); err != nil {
				return nil, fmt.Errorf("bfs: probe %q: %w", p.Name, err)
			}
		}
		for _, r := range pp.reads {
			if cfg.Metric == MetricTokenGap {
				ids[r.a], ids[r.b] = true, true
			}
		}
		e.prep = append(e.prep, pp)
	}
	e.all = indices(0, len(probes))
	e.off, e.rows = e.layout(e.all)
	if cfg.Metric == MetricTokenGap {
		e.head, e.headIdx = headRows(m.Output, ids)
	}
	e.maxRows = cfg.MaxBatchRows
	if e.maxRows <= 0 {
		kv := 2 * m.KVDim() * m.NumLayers() // KV cache floats per row
		perRow := 4 * (3*m.Hidden + 2*m.QDim() + 2*m.KVDim() + 2*m.FFN + kv)
		e.maxRows = max(1, (256<<20)/perRow)
	}
	var x [3][]float32 // per phase (rows, Hidden): embeddings
	for ph := range x {
		x[ph] = make([]float32, e.rows[ph]*m.Hidden)
		for p := range e.prep {
			m.Embedding(e.prep[p].parts[ph], x[ph][e.off[ph][p]*m.Hidden:])
		}
	}
	e.cache[0] = x
	if err := e.refresh(0); err != nil {
		return nil, err
	}
	return e, nil
}

func checkTokens(m *runtime.Model, toks []int32) error {
	for _, t := range toks {
		if t < 0 || int(t) >= m.Vocab {
			return fmt.Errorf("token %d outside the model's vocabulary of %d", t, m.Vocab)
		}
	}
	return nil
}

// Probes returns the evaluator's probes (do not modify).
func (e *Evaluator) Probes() []Probe { return e.probes }

// Metric returns the metric the evaluator scores.
func (e *Evaluator) Metric() Metric { return e.metric }

// Model returns the model being scored.
func (e *Evaluator) Model() *runtime.Model { return e.m }

// Scores returns the score of every probe in the model's current state (a copy).
func (e *Evaluator) Scores() []float64 { return slices.Clone(e.scores) }

// Evaluations returns how many candidate flips Score has evaluated (each on a probe subset).
func (e *Evaluator) Evaluations() int64 { return e.evals }

// startFor returns the highest cached layer <= l.
func (e *Evaluator) startFor(l int) int {
	s := 0
	for _, c := range e.cached {
		if c <= l {
			s = c
		}
	}
	return s
}

// layout returns, for each phase, the first row of each probe's part within one block of the
// probes (in the given order), and the block's rows.
func (e *Evaluator) layout(probes []int) (off [3][]int, per [3]int) {
	for ph := range off {
		off[ph] = make([]int, len(probes))
		for j, p := range probes {
			off[ph][j] = per[ph]
			per[ph] += len(e.prep[p].parts[ph])
		}
	}
	return off, per
}

// Score returns the scores of probes (indices into Probes) with each flip applied on its own to
// the current model: out[i][j] is probe probes[j] under flips[i]. The weights are not changed.
// It stops between batches when ctx is cancelled and returns ctx.Err().
func (e *Evaluator) Score(ctx context.Context, flips []patch.Flip, probes []int) ([][]float64, error) {
	spans := make([]runtime.FlipSpan, len(flips))
	for i, f := range flips {
		s, err := spanOf(e.m, f)
		if err != nil {
			return nil, err
		}
		spans[i] = s
	}
	for _, p := range probes {
		if p < 0 || p >= len(e.probes) {
			return nil, fmt.Errorf("bfs: probe index %d out of range [0,%d)", p, len(e.probes))
		}
	}
	out := make([][]float64, len(flips)) // (n_flips, n_probes)
	if len(probes) == 0 {
		for i := range out {
			out[i] = []float64{}
		}
		return out, nil
	}
	off, per := e.layout(probes)
	chunk := max(1, e.maxRows/max(1, per[0]+per[1]+per[2]))
	// Candidates grouped by start layer, in their given order within a group.
	order := indices(0, len(flips))
	slices.SortStableFunc(order, func(a, b int) int { return e.startFor(spans[a].Layer) - e.startFor(spans[b].Layer) })
	var x [3][]float32 // per phase (chunk·per, Hidden)
	D := e.m.Hidden
	for i0 := 0; i0 < len(order); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := e.startFor(spans[order[i0]].Layer)
		i1 := i0
		for i1 < len(order) && i1-i0 < chunk && e.startFor(spans[order[i1]].Layer) == start {
			i1++
		}
		batch := order[i0:i1]
		k := len(batch)
		run := make([]runtime.FlipSpan, k)
		src := e.cache[start]
		for ph := range x {
			x[ph] = slices.Grow(x[ph][:0], k*per[ph]*D)[:k*per[ph]*D]
			for c := range batch {
				for j, p := range probes {
					n, o, d := len(e.prep[p].parts[ph]), e.off[ph][p], c*per[ph]+off[ph][j]
					copy(x[ph][d*D:(d+n)*D], src[ph][o*D:(o+n)*D])
				}
			}
		}
		for c, fi := range batch {
			run[c] = spans[fi]
		}
		if err := e.runPhases([]int{start, e.m.NumLayers()}, x, k, probes, run, nil); err != nil {
			return nil, err
		}
		sc, err := e.headScores(x, k, probes, off, per)
		if err != nil {
			return nil, err
		}
		for c, fi := range batch {
			out[fi] = sc[c]
		}
		e.evals += int64(k)
		i0 = i1
	}
	return out, nil
}

// runPhases runs the three phases of k blocks of probes (laid out by layout) through the layers
// bounds[0]..bounds[last], one call per [bounds[i], bounds[i+1]) segment, calling store after
// each segment but the last. flips has one span per block (rows are set here), or is nil.
func (e *Evaluator) runPhases(bounds []int, x [3][]float32, k int, probes []int, flips []runtime.FlipSpan,
	store func(layer, phase int, x []float32)) error {
	_, per := e.layout(probes)
	caches := make([]*runtime.KVCache, k*len(probes)) // per (block, probe) with answer segments
	for ph := range x {
		if per[ph] == 0 {
			continue
		}
		seqs := make([]runtime.Seq, 0, k*len(probes))
		for c := 0; c < k; c++ {
			for j, p := range probes {
				pp := &e.prep[p]
				n := len(pp.parts[ph])
				if n == 0 {
					continue
				}
				if ph == 0 && len(pp.parts[1])+len(pp.parts[2]) > 0 {
					caches[c*len(probes)+j] = e.m.NewKVCache(n + max(len(pp.parts[1]), len(pp.parts[2])))
				}
				seqs = append(seqs, runtime.Seq{N: n, Cache: caches[c*len(probes)+j]})
			}
		}
		var spans []runtime.FlipSpan
		if flips != nil {
			spans = slices.Clone(flips)
			for c := range spans {
				spans[c].Start, spans[c].N = c*per[ph], per[ph]
			}
		}
		for i := 0; i+1 < len(bounds); i++ {
			if err := e.run.RunFlipped(bounds[i], bounds[i+1], x[ph], seqs, spans); err != nil {
				return err
			}
			if store != nil && i+2 < len(bounds) {
				store(bounds[i+1], ph, x[ph])
			}
		}
		if ph == 0 { // the shared prefixes are in their caches; the segments continue them
			for i, c := range caches {
				if c != nil {
					c.Commit(len(e.prep[probes[i%len(probes)]].parts[0]))
				}
			}
		}
	}
	return nil
}

// refresh recomputes the caches above startFor(from) and the current scores.
func (e *Evaluator) refresh(from int) error {
	D := e.m.Hidden
	start := e.startFor(from)
	bounds := []int{start}
	for _, l := range e.cached {
		if l > start {
			bounds = append(bounds, l)
		}
	}
	bounds = append(bounds, e.m.NumLayers())
	var x [3][]float32
	fresh := map[int][3][]float32{}
	for ph := range x {
		x[ph] = slices.Clone(e.cache[start][ph])
	}
	store := func(layer, ph int, x []float32) {
		c := fresh[layer]
		c[ph] = slices.Clone(x[:e.rows[ph]*D])
		fresh[layer] = c
	}
	if err := e.runPhases(bounds, x, 1, e.all, nil, store); err != nil {
		return err
	}
	for l, c := range fresh {
		e.cache[l] = c
	}
	sc, err := e.headScores(x, 1, e.all, e.off, e.rows)
	if err != nil {
		return err
	}
	e.scores = sc[0]
	return nil
}

// Apply XORs flips into the model's weights (patch.ApplyFlips), tells the backend, and refreshes
// the caches from the lowest layer touched and the current scores. Applying the same flips again
// reverts them.
func (e *Evaluator) Apply(flips []patch.Flip) error {
	if len(flips) == 0 {
		return nil
	}
	low := e.m.NumLayers()
	for _, f := range flips {
		if _, err := spanOf(e.m, f); err != nil {
			return err
		}
		low = min(low, f.Layer)
	}
	if err := runtime.ApplyFlips(e.b, flips); err != nil {
		return fmt.Errorf("bfs: %w", err)
	}
	return e.refresh(low)
}

// spanOf checks a patch flip against the model and returns it as a span (rows not set).
func spanOf(m *runtime.Model, f patch.Flip) (runtime.FlipSpan, error) {
	if err := m.CheckFlip(f); err != nil {
		return runtime.FlipSpan{}, fmt.Errorf("bfs: flip %v: %w", f, err)
	}
	return runtime.FlipSpan{Flip: f}, nil
}
