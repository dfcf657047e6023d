package bfs

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// Mode selects the search algorithm.
type Mode int

const (
	// ModeGreedy is upstream's hill climb (docs/UPSTREAM.md §6): draw candidates by row scale without
	// repeats, screen each on the two worst targets, accept on strict fitness improvement; stop
	// after Iters candidates or 100 consecutive duplicate draws (pool exhausted).
	//
	// The draws are not numpy's (PCG64 + SeedSequence + choice): they use math/rand/v2's PCG
	// seeded with (Seed, a fixed stream word) and inverse-CDF sampling over the same weights, so a
	// seed gives a different, equally distributed candidate sequence than upstream's.
	ModeGreedy Mode = iota
	// ModeFast proposes candidates by an exact scan (or, with Estimate, by first-order estimates): every candidate (or ScanSample of them) is
	// scored on the current model with the same screening and fitness, those with F > best are
	// walked best first with the same acceptance rules as ModeGreedy, and when the list is used
	// up the scan is repeated on the new state (a round). It stops after Iters candidates walked,
	// or when a round accepts nothing.
	ModeFast
)

// String returns "greedy" or "fast".
func (m Mode) String() string {
	if m == ModeFast {
		return "fast"
	}
	return "greedy"
}

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// ParseMode accepts "greedy" or "fast".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "greedy":
		return ModeGreedy, nil
	case "fast":
		return ModeFast, nil
	}
	return 0, fmt.Errorf("bfs: unknown search mode %q (want greedy or fast)", s)
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	*m = v
	return err
}

// SearchOptions configures Search. The JSON fields are saved in checkpoints.
type SearchOptions struct {
	Mode   Mode   `json:"mode"`
	Metric Metric `json:"metric"`
	// Target probes are improved; Control probes are protected (penalty Lambda per unit of mean
	// loss); HeldOut probes are only measured before and after.
	Target  []*ProbeSet `json:"target"`
	Control []*ProbeSet `json:"control"`
	HeldOut []*ProbeSet `json:"held_out,omitempty"`
	// Layers (nil: DefaultLayers) in pool order; Projs (nil: DefaultProjs).
	Layers      []int       `json:"layers"`
	Projs       []string    `json:"projs"`
	Granularity Granularity `json:"granularity"`
	// Iters is the number of candidates tried (screened-out ones included).
	Iters       int         `json:"iters"`
	Seed        uint64      `json:"seed"`
	Lambda      float64     `json:"lambda"`
	FitnessMode FitnessMode `json:"fitness_mode"`
	// ScreenProbes is how many lowest-baseline targets screen a candidate (0: upstream's 2;
	// negative: no screening).
	ScreenProbes int `json:"screen_probes"`
	// ScanSample limits ModeFast's scan to that many uniformly drawn candidates (0: all).
	ScanSample int64 `json:"scan_sample,omitempty"`
	// Estimate makes ModeFast propose candidates by their first-order estimates instead of an
	// exact scan (see estimate.go): each round estimates every candidate on the current model,
	// walks the EstimateRound best (estimated F above the current best) and ends early once
	// ReestimateEvery of them are accepted, so that the next proposals see the new weights.
	Estimate bool `json:"estimate,omitempty"`
	// Batch caps how many candidates are evaluated at once (0: 16). It changes speed only.
	Batch        int  `json:"batch,omitempty"`
	MaxBatchRows int  `json:"max_batch_rows,omitempty"`
	Delta        bool `json:"delta,omitempty"`
	// Patch naming; defaults "<targets>_patch", "Optimized for <targets> probes (<metric>)" and
	// the model's name.
	PatchName   string `json:"patch_name,omitempty"`
	Description string `json:"description,omitempty"`
	BaseModel   string `json:"base_model,omitempty"`

	Callbacks `json:"-"`
}

// Callbacks are the run-time hooks of a search (not saved in checkpoints).
type Callbacks struct {
	Tokenizer Tokenizer // nil: the model's
	// Progress is called after every decided candidate (and every scan batch).
	Progress func(Progress)
	// OnCheckpoint, if set, receives a checkpoint every CheckpointEvery decided candidates
	// and, when CheckpointInterval > 0, whenever that much time has passed since the last one
	// (checked after every decided candidate and every scan chunk). Zero disables either rule.
	OnCheckpoint       func(*Checkpoint)
	CheckpointEvery    int
	CheckpointInterval time.Duration
}

// Upstream's search defaults (docs/UPSTREAM.md §6).
const (
	DefaultIters = 200
	DefaultSeed  = 42
)

// DefaultSearchOptions returns upstream's defaults: greedy mode, seq_logprob, DefaultIters
// iterations, DefaultSeed, λ = DefaultLambda, mean fitness, rows of gate/up in DefaultLayers.
func DefaultSearchOptions() SearchOptions {
	return SearchOptions{Metric: MetricSeqLogprob, Iters: DefaultIters, Seed: DefaultSeed, Lambda: DefaultLambda}
}

// Progress reports the state of a search.
type Progress struct {
	Phase       string        `json:"phase"` // "scan" or "search"
	Iteration   int           `json:"iteration"`
	Iters       int           `json:"iters"`
	Accepted    int           `json:"accepted"`
	Best        float64       `json:"best"`
	Evaluated   int           `json:"evaluated"`   // candidates fully evaluated (passed the screen)
	Evaluations int64         `json:"evaluations"` // candidate evaluations including the scan and speculative ones
	Elapsed     time.Duration `json:"elapsed"`
}

// search is the state of one run.
type search struct {
	opts     SearchOptions
	b        runtime.Backend
	e        *Evaluator
	w        *walker
	pool     *pool
	pcg      *rand.PCG
	rng      *rand.Rand
	nTarget  int
	fp       string
	heldBase []float64

	iter        int
	draws       int64
	tried       map[patch.Flip]struct{}
	triedList   []patch.Flip
	pending     []patch.Flip // drawn, not yet decided
	order       []patch.Flip // ModeFast: candidates of the current round, best first
	orderPos    int
	rounds      int         // ModeFast: scans completed
	scanAcc     int         // ModeFast: accepted flips when the last scan completed
	scanPos     int64       // ModeFast: candidates of the scan in progress scored so far
	scanGood    []ScanScore // ModeFast: those of them with F > best
	lastCkIter  int         // iteration of the last periodic checkpoint
	lastCk      time.Time   // time of the last periodic checkpoint
	accepted    []Step
	screenedOut int
	evaluated   int
	evalsBefore int64
	exhausted   bool
	interrupted bool
	times       Timings
	start       time.Time
}

// Search runs a greedy flip search. It returns the patch, a report and a checkpoint. When ctx is
// cancelled it stops between batches and returns the partial result (Report.Interrupted) with a
// checkpoint to Resume from, and a nil error. The model's weights are restored before it
// returns (upstream leaves accepted flips applied, docs/UPSTREAM.md trap T7).
func Search(ctx context.Context, b runtime.Backend, opts SearchOptions) (*Result, error) {
	s, err := newSearch(b, opts, nil)
	if err != nil {
		return nil, err
	}
	return s.runAndFinish(ctx)
}

// newSearch validates opts and builds the evaluator; ck, when resuming, supplies the state.
func newSearch(b runtime.Backend, opts SearchOptions, ck *Checkpoint) (*search, error) {
	t0 := time.Now()
	m := b.Model()
	if err := resolveOptions(m, &opts); err != nil {
		return nil, err
	}
	s := &search{opts: opts, b: b, fp: m.Fingerprint(), tried: map[patch.Flip]struct{}{}, start: t0}
	if ck != nil && ck.Fingerprint != s.fp {
		return nil, fmt.Errorf("bfs: resume: checkpoint is for model %s, this model is %s", ck.Fingerprint, s.fp)
	}
	var err error
	if s.pool, err = newPool(m, opts.Layers, opts.Projs, opts.Granularity); err != nil {
		return nil, err
	}
	target, control := flatten(opts.Target), flatten(opts.Control)
	s.nTarget = len(target)
	if s.e, err = NewEvaluator(b, append(target, control...), EvaluatorConfig{Metric: opts.Metric, Tokenizer: opts.Tokenizer,
		CacheLayers: opts.Layers, MaxBatchRows: opts.MaxBatchRows, Delta: opts.Delta}); err != nil {
		return nil, err
	}
	base := s.e.Scores()
	if ck != nil {
		if len(ck.Base) != len(base) {
			return nil, fmt.Errorf("bfs: resume: checkpoint has %d baseline scores for %d probes", len(ck.Base), len(base))
		}
		base = ck.Base
		s.heldBase = ck.HeldOutBase
	} else if len(opts.HeldOut) > 0 {
		if s.heldBase, err = heldOutScores(b, opts); err != nil {
			return nil, err
		}
	}
	screen := opts.ScreenProbes
	if screen == 0 {
		screen = 2
	}
	s.w = newWalker(s.e, indices(0, len(target)), indices(len(target), len(control)), base, opts.Lambda, opts.FitnessMode, max(0, screen))
	s.w.prune = true
	s.pcg = rand.NewPCG(opts.Seed, seedStream)
	s.rng = rand.New(s.pcg)
	s.times.Baseline = time.Since(t0).Seconds()
	return s, nil
}

// resolveOptions fills defaults and validates.
func resolveOptions(m *runtime.Model, o *SearchOptions) error {
	if len(flatten(o.Target)) == 0 {
		return fmt.Errorf("bfs: search: no target probes")
	}
	if o.Iters <= 0 || o.Iters > MaxSearchIters {
		return fmt.Errorf("bfs: search: iterations must be 1 to %d, got %d", MaxSearchIters, o.Iters)
	}
	if math.IsNaN(o.Lambda) || o.Lambda < 0 {
		return fmt.Errorf("bfs: search: control penalty %g must be >= 0", o.Lambda)
	}
	var err error
	if o.Layers, o.Projs, err = resolveSpace(m, o.Layers, o.Projs); err != nil {
		return fmt.Errorf("bfs: search: %w", err)
	}
	if o.Batch <= 0 {
		o.Batch = 16
	}
	if o.Batch > MaxSearchBatch {
		return fmt.Errorf("bfs: search: batch %d above %d", o.Batch, MaxSearchBatch)
	}
	if o.ScanSample < 0 || o.ScanSample > MaxScanCandidates {
		return fmt.Errorf("bfs: search: scan sample %d, want 0 (all) to %d", o.ScanSample, MaxScanCandidates)
	}
	// More screen probes than targets screens on all of them; saying so keeps checkpoints exact.
	o.ScreenProbes = min(o.ScreenProbes, len(flatten(o.Target)))
	return nil
}

// heldOutScores measures the held-out probes on the model as it is now.
func heldOutScores(b runtime.Backend, o SearchOptions) ([]float64, error) {
	e, err := NewEvaluator(b, flatten(o.HeldOut), EvaluatorConfig{Metric: o.Metric, Tokenizer: o.Tokenizer, MaxBatchRows: o.MaxBatchRows})
	if err != nil {
		return nil, fmt.Errorf("bfs: held-out probes: %w", err)
	}
	return e.Scores(), nil
}

// runAndFinish runs the search loop and builds the result, restoring the model.
func (s *search) runAndFinish(ctx context.Context) (*Result, error) {
	err := s.run(ctx)
	res, ferr := s.finish()
	if err != nil {
		return nil, err
	}
	return res, ferr
}

// run is the main loop: fill a batch of pending candidates, evaluate it, decide in order, stop
// at the first acceptance (the rest stay pending and are re-evaluated on the new state).
func (s *search) run(ctx context.Context) error {
	t0 := time.Now()
	defer func() { s.times.Search += time.Since(t0).Seconds() }()
	bt := batcher{cur: 1, max: s.opts.Batch}
	s.lastCkIter, s.lastCk = s.iter, time.Now()
	for s.iter < s.opts.Iters {
		if ctx.Err() != nil {
			s.interrupted = true
			return nil
		}
		if s.opts.Mode == ModeFast && len(s.pending) == 0 && s.orderPos >= len(s.order) {
			if s.rounds > 0 && len(s.accepted) == s.scanAcc {
				s.exhausted = true // the last round accepted nothing: a new scan would repeat it
				break
			}
			ts := time.Now()
			err := s.scanPhase(ctx)
			t0 = t0.Add(time.Since(ts)) // scan time is counted apart
			if err != nil || s.interrupted {
				return err
			}
			if len(s.order) == 0 {
				s.exhausted = true
				break
			}
		}
		s.fill(bt.next())
		if len(s.pending) == 0 {
			break
		}
		outs, err := s.w.try(ctx, s.pending)
		if err != nil {
			if ctx.Err() != nil {
				s.interrupted = true
				return nil
			}
			return err
		}
		n, accepted, reestimate := 0, false, false
		for j, o := range outs {
			n = j + 1
			s.iter++
			if o.screened {
				s.screenedOut++
			} else {
				s.evaluated++
				if o.fitness > s.w.best {
					if err := s.w.accept(s.pending[j]); err != nil {
						return err
					}
					s.accepted = append(s.accepted, Step{Flip: s.pending[j], Iteration: s.iter, Fitness: s.w.best})
					accepted = true
					// Enough acceptances this round: drop the rest of the round's list, including
					// what is already pending, so that the next proposals are estimated on the new
					// weights (and the walk does not depend on the batch size).
					reestimate = s.opts.Estimate && len(s.accepted)-s.scanAcc >= ReestimateEvery
				}
			}
			s.progress("search")
			if accepted {
				break
			}
		}
		s.pending = s.pending[n:]
		if reestimate {
			s.order, s.pending = s.order[:s.orderPos], s.pending[:0]
		}
		bt.done(accepted)
		s.periodicCheckpoint()
	}
	return nil
}

// periodicCheckpoint hands a checkpoint to OnCheckpoint when CheckpointEvery candidates were
// decided or CheckpointInterval passed since the last one.
func (s *search) periodicCheckpoint() {
	o := s.opts
	if o.OnCheckpoint == nil {
		return
	}
	if (o.CheckpointEvery > 0 && s.iter-s.lastCkIter >= o.CheckpointEvery) ||
		(o.CheckpointInterval > 0 && time.Since(s.lastCk) >= o.CheckpointInterval) {
		o.OnCheckpoint(s.checkpoint())
		s.lastCkIter, s.lastCk = s.iter, time.Now()
	}
}

// fill tops up the pending candidates to n (never past Iters in total).
func (s *search) fill(n int) {
	for len(s.pending) < n && s.iter+len(s.pending) < s.opts.Iters && !s.exhausted {
		if s.opts.Mode == ModeFast {
			if s.orderPos >= len(s.order) {
				break
			}
			s.pending = append(s.pending, s.order[s.orderPos])
			s.orderPos++
			continue
		}
		c, ok := s.drawNew()
		if !ok {
			s.exhausted = true
			break
		}
		s.pending = append(s.pending, c)
	}
}

// maxDuplicateDraws is upstream's exhaustion rule: that many already-tried draws in a row.
const maxDuplicateDraws = 100

// drawNew draws until an untried candidate comes up, at most maxDuplicateDraws times.
func (s *search) drawNew() (patch.Flip, bool) {
	for range maxDuplicateDraws {
		c := s.pool.draw(s.rng)
		s.draws++
		if _, dup := s.tried[c]; !dup {
			s.tried[c] = struct{}{}
			s.triedList = append(s.triedList, c)
			return c, true
		}
	}
	return patch.Flip{}, false
}

func (s *search) progress(phase string) {
	if s.opts.Progress == nil {
		return
	}
	s.opts.Progress(Progress{Phase: phase, Iteration: s.iter, Iters: s.opts.Iters, Accepted: len(s.accepted),
		Best: s.w.best, Evaluated: s.evaluated, Evaluations: s.evalsBefore + s.e.Evaluations(),
		Elapsed: s.elapsed()})
}

func (s *search) elapsed() time.Duration {
	return time.Duration((s.times.Total)*float64(time.Second)) + time.Since(s.start)
}
