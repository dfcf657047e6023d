package bfs

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

var nan = math.NaN()

// MaxScanCandidates bounds an unsampled scan.
const MaxScanCandidates = 1 << 24

// ScanOptions configures Scan.
type ScanOptions struct {
	Metric    Metric
	Tokenizer Tokenizer // nil: the model's
	// Target is the calibration set; Control, if any, is penalised with Lambda as in the search
	// fitness. The loss is L = −F, so S = L(W ⊕ m) − L(W) = −F(m).
	Target, Control []*ProbeSet
	Lambda          float64
	FitnessMode     FitnessMode
	Layers          []int    // nil: DefaultLayers
	Projs           []string // nil: DefaultProjs
	Granularity     Granularity
	// Sample > 0 scores that many distinct candidates drawn uniformly with Seed instead of all.
	Sample int64
	Seed   uint64
	// Budget > 0 also builds the top-Budget patch and greedily verifies it (ScanResult.TopK).
	Budget       int
	MaxBatchRows int
	Delta        bool
	// Estimate ranks every candidate by its first-order estimate (one backward pass per probe
	// sequence, see estimate.go) and scores only the ExactTop best exactly (0: 256; negative:
	// all, which also reports how well the estimates agree with the exact scores).
	Estimate bool
	ExactTop int
	// Progress, if set, is called after every batch of candidates (Phase "scan", Iteration =
	// candidates scored, Iters = candidates to score) and every verification step ("verify").
	Progress func(Progress)
}

// ScanRow is the sensitivity of one candidate flip.
type ScanRow struct {
	patch.Flip
	S   float64  `json:"s"`             // L(W ⊕ m) − L(W); negative helps
	Est *float64 `json:"est,omitempty"` // its first-order estimate (Estimate scans)
}

// EstRow is a candidate's first-order estimate of S.
type EstRow struct {
	patch.Flip
	Est float64 `json:"est"`
}

func scanRow(f patch.Flip, s float64) ScanRow { return ScanRow{Flip: f, S: s} }

// ScanResult holds every scored candidate in pool order (layer, projection, row, group/col).
type ScanResult struct {
	Metric      Metric      `json:"metric"`
	Granularity Granularity `json:"granularity"`
	Layers      []int       `json:"layers"`
	Projs       []string    `json:"projs"`
	Lambda      float64     `json:"lambda"`
	PoolSize    int64       `json:"pool_size"`
	Sample      int64       `json:"sample,omitempty"`
	Seed        uint64      `json:"seed"`
	Seconds     float64     `json:"seconds"`
	Rows        []ScanRow   `json:"rows"`
	TopK        *TopK       `json:"top_k,omitempty"`
	// Estimate scans: every candidate's estimate in pool order (Rows holds the exact top), and,
	// when every candidate was also scored exactly, how well the two agree.
	Estimates []EstRow   `json:"estimates,omitempty"`
	Agreement *Agreement `json:"agreement,omitempty"`
	// EstimateSeconds is the time the estimates took (of Seconds).
	EstimateSeconds float64 `json:"estimate_seconds,omitempty"`
}

// TopK is the budget-k outcome of a scan: the k best candidates taken together, and the greedy
// verification that adds them one by one in score order and keeps each only if the combined
// loss improves (flips interact, so the sum of single scores is not the combined score).
type TopK struct {
	K          int          `json:"k"`
	Flips      []ScanRow    `json:"flips"`       // the top k (S < 0 only), best first
	Loss       float64      `json:"loss"`        // L with all of them applied
	Greedy     []ScanRow    `json:"greedy"`      // the kept subset, S = the combined loss after adding it
	GreedyLoss float64      `json:"greedy_loss"` // L with the kept subset applied
	Steps      []VerifyStep `json:"steps"`
}

// VerifyStep is one candidate of the greedy verification.
type VerifyStep struct {
	ScanRow
	Loss float64 `json:"loss"` // combined loss with the kept flips and this one
	Kept bool    `json:"kept"`
}

// Scan computes the exact sensitivity of every candidate (or a sample) on the target and control
// probes. The model's weights are unchanged when it returns.
func Scan(ctx context.Context, b runtime.Backend, opts ScanOptions) (*ScanResult, error) {
	start := time.Now()
	m := b.Model()
	var err error
	if opts.Layers, opts.Projs, err = resolveSpace(m, opts.Layers, opts.Projs); err != nil {
		return nil, fmt.Errorf("bfs: scan: %w", err)
	}
	p, err := newPool(m, opts.Layers, opts.Projs, opts.Granularity)
	if err != nil {
		return nil, err
	}
	if opts.Sample <= 0 && p.size() > MaxScanCandidates {
		return nil, fmt.Errorf("bfs: scan: %d candidates; set a sample size (at most %d unsampled)", p.size(), MaxScanCandidates)
	}
	target, control := flatten(opts.Target), flatten(opts.Control)
	if len(target) == 0 {
		return nil, fmt.Errorf("bfs: scan: no target probes")
	}
	e, err := NewEvaluator(b, append(slices.Clone(target), control...), EvaluatorConfig{Metric: opts.Metric,
		Tokenizer: opts.Tokenizer, CacheLayers: opts.Layers, MaxBatchRows: opts.MaxBatchRows, Delta: opts.Delta})
	if err != nil {
		return nil, err
	}
	ti, ci := indices(0, len(target)), indices(len(target), len(control))
	w := newWalker(e, ti, ci, e.Scores(), opts.Lambda, opts.FitnessMode, 0)
	idx := p.sample(opts.Sample, opts.Seed)
	res := &ScanResult{Metric: opts.Metric, Granularity: opts.Granularity, Layers: opts.Layers, Projs: opts.Projs,
		Lambda: opts.Lambda, PoolSize: p.size(), Sample: opts.Sample, Seed: opts.Seed, Rows: make([]ScanRow, 0, len(idx))}
	all := make([]patch.Flip, len(idx))
	for k, i := range idx {
		all[k] = p.at(i)
	}
	var est []float64 // (candidates): estimated S, for Estimate scans
	exact := all
	if opts.Estimate {
		t0 := time.Now()
		if est, err = estimateS(e, w, all); err != nil {
			return nil, fmt.Errorf("bfs: scan: %w", err)
		}
		res.EstimateSeconds = time.Since(t0).Seconds()
		res.Estimates = make([]EstRow, len(all))
		for k, f := range all {
			res.Estimates[k] = EstRow{Flip: f, Est: est[k]}
		}
		top := opts.ExactTop
		if top == 0 {
			top = 256
		}
		order := rankAscending(est)
		if top > 0 && top < len(order) {
			order = order[:top]
		}
		exact = make([]patch.Flip, len(order))
		for k, i := range order {
			exact[k] = all[i]
		}
		est = pickFloat(order, est)
	}
	const chunk = 256
	for i0 := 0; i0 < len(exact); i0 += chunk {
		cands := exact[i0:min(i0+chunk, len(exact))]
		outs, err := w.try(ctx, cands)
		if err != nil {
			return nil, fmt.Errorf("bfs: scan: %w", err)
		}
		for k, o := range outs {
			row := scanRow(cands[k], -o.fitness)
			if est != nil {
				row.Est = &est[i0+k]
			}
			res.Rows = append(res.Rows, row)
		}
		if opts.Progress != nil {
			opts.Progress(Progress{Phase: "scan", Iteration: len(res.Rows), Iters: len(exact),
				Evaluations: e.Evaluations(), Elapsed: time.Since(start)})
		}
	}
	if opts.Estimate && len(res.Rows) == len(all) {
		res.Agreement = agreement(res.Rows)
	}
	if opts.Budget > 0 {
		progress := func(p Progress) {
			if opts.Progress != nil {
				p.Phase, p.Evaluations, p.Elapsed = "verify", e.Evaluations(), time.Since(start)
				opts.Progress(p)
			}
		}
		if res.TopK, err = verifyTopK(ctx, w, res.Best(opts.Budget), progress); err != nil {
			return nil, err
		}
		res.TopK.K = opts.Budget
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// flatten concatenates probe sets.
func flatten(sets []*ProbeSet) []Probe {
	var out []Probe
	for _, s := range sets {
		out = append(out, s.Probes...)
	}
	return out
}

// indices returns [from, from+n).
func indices(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// SortBy orders scan rows.
type SortBy int

const (
	// BySigned puts the most helpful (most negative S) first.
	BySigned SortBy = iota
	// ByAbs puts the largest |S| first.
	ByAbs
)

// Sorted returns the rows sorted by S (ties keep pool order).
func (r *ScanResult) Sorted(by SortBy) []ScanRow {
	rows := slices.Clone(r.Rows)
	slices.SortStableFunc(rows, func(a, b ScanRow) int {
		if by == ByAbs {
			return cmp.Compare(math.Abs(b.S), math.Abs(a.S))
		}
		return cmp.Compare(a.S, b.S)
	})
	return rows
}

// Best returns up to k rows with S < 0, most helpful first.
func (r *ScanResult) Best(k int) []ScanRow {
	var out []ScanRow
	for _, row := range r.Sorted(BySigned) {
		if len(out) >= k || !(row.S < 0) {
			break
		}
		out = append(out, row)
	}
	return out
}

// verifyTopK measures the top rows together, then greedily keeps those that improve the combined
// loss. The model is restored before it returns.
func verifyTopK(ctx context.Context, w *walker, top []ScanRow, progress func(Progress)) (*TopK, error) {
	res := &TopK{Flips: top}
	flips := make([]patch.Flip, len(top))
	for i, r := range top {
		flips[i] = r.Flip
	}
	if err := w.e.Apply(flips); err != nil {
		return nil, err
	}
	res.Loss = -w.fitness(w.e.Scores())
	if err := w.e.Apply(flips); err != nil {
		return nil, err
	}
	var kept []patch.Flip
	defer func() { w.e.Apply(kept) }() // restore the model (best effort on the error path)
	w.best = 0
	bt := batcher{cur: 1, max: 16}
	for i := 0; i < len(flips); {
		batch := flips[i:min(len(flips), i+bt.next())]
		outs, err := w.try(ctx, batch)
		if err != nil {
			return nil, fmt.Errorf("bfs: scan: verify: %w", err)
		}
		accepted := false
		for j, o := range outs {
			i++
			step := VerifyStep{ScanRow: top[i-1], Loss: -o.fitness}
			if o.fitness > w.best {
				if err := w.accept(batch[j]); err != nil {
					return nil, err
				}
				kept = append(kept, batch[j])
				step.Kept, accepted = true, true
				res.Greedy = append(res.Greedy, scanRow(batch[j], -w.best))
			}
			res.Steps = append(res.Steps, step)
			progress(Progress{Iteration: i, Iters: len(flips), Accepted: len(kept), Best: w.best})
			if accepted {
				break
			}
		}
		bt.done(accepted)
	}
	res.GreedyLoss = -w.best
	return res, nil
}

// ScanPatch returns scan rows as a patch (flips in the given order).
func ScanPatch(name string, rows []ScanRow, meta map[string]any) *patch.Patch {
	p := &patch.Patch{Name: name, Metadata: meta}
	for _, r := range rows {
		p.Flips = append(p.Flips, r.Flip)
	}
	return p
}

// WriteScanCSV writes rows as CSV with a header: layer,proj,row,group,col,s,abs_s.
func WriteScanCSV(w io.Writer, rows []ScanRow) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"layer", "proj", "row", "group", "col", "s", "abs_s"})
	for _, r := range rows {
		cw.Write(append(flipFields(r.Flip), fmtFloat(r.S), fmtFloat(math.Abs(r.S))))
	}
	cw.Flush()
	return cw.Error()
}

// WriteEstimateCSV writes every candidate of an Estimate scan, best estimate first, with a
// header layer,proj,row,group,col,s,abs_s,est: s and abs_s are empty where S was not measured.
func WriteEstimateCSV(w io.Writer, r *ScanResult) error {
	exact := map[patch.Flip]float64{}
	for _, row := range r.Rows {
		exact[row.Flip] = row.S
	}
	est := slices.Clone(r.Estimates)
	slices.SortStableFunc(est, func(a, b EstRow) int { return cmp.Compare(a.Est, b.Est) })
	cw := csv.NewWriter(w)
	cw.Write([]string{"layer", "proj", "row", "group", "col", "s", "abs_s", "est"})
	for _, e := range est {
		s, abs := "", ""
		if v, ok := exact[e.Flip]; ok {
			s, abs = fmtFloat(v), fmtFloat(math.Abs(v))
		}
		cw.Write(append(flipFields(e.Flip), s, abs, fmtFloat(e.Est)))
	}
	cw.Flush()
	return cw.Error()
}

func flipFields(f patch.Flip) []string {
	return []string{strconv.Itoa(f.Layer), f.Proj, strconv.Itoa(f.Row), strconv.Itoa(f.Group), strconv.Itoa(f.Col)}
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// WriteScanJSON writes the scan result as indented JSON.
func WriteScanJSON(w io.Writer, r *ScanResult) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
