package bfs

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// Result is what a search returns.
type Result struct {
	Patch      *patch.Patch
	Report     *Report
	Checkpoint *Checkpoint // the final state; Resume continues an interrupted run from it
}

// Step is one accepted flip.
type Step struct {
	patch.Flip
	Iteration int     `json:"iteration"` // candidates tried when it was accepted (1-based)
	Fitness   float64 `json:"fitness"`   // fitness of the model with it and every earlier step
}

// ProbeScore is a probe's metric gap before and after the search.
type ProbeScore struct {
	Set   string  `json:"set"`
	Name  string  `json:"name"`
	Base  float64 `json:"base"`
	Final float64 `json:"final"`
	Delta float64 `json:"delta"`
}

// Timings are wall-clock seconds, summed over resumed runs.
type Timings struct {
	Baseline float64 `json:"baseline"` // tokenising, first forward and caches
	Scan     float64 `json:"scan"`     // ModeFast's scan
	Search   float64 `json:"search"`   // the accept/reject loop
	Total    float64 `json:"total"`
}

// Report is the JSON-able account of a search.
type Report struct {
	Mode        Mode          `json:"mode"`
	Metric      Metric        `json:"metric"`
	Granularity Granularity   `json:"granularity"`
	FitnessMode FitnessMode   `json:"fitness_mode"`
	Seed        uint64        `json:"seed"`
	Iters       int           `json:"iters"`
	Lambda      float64       `json:"lambda"`
	Layers      []int         `json:"layers"`
	Projs       []string      `json:"projs"`
	Backend     string        `json:"backend"`
	Fingerprint string        `json:"fingerprint"`
	PoolSize    int64         `json:"pool_size"`
	Accepted    []Step        `json:"accepted"`
	Fitness     float64       `json:"final_fitness"`
	Iterations  int           `json:"iterations"`       // candidates decided
	Evaluated   int           `json:"evaluated"`        // candidates that passed the screen
	ScreenedOut int           `json:"screened_out"`     // candidates rejected by the screen
	Evaluations int64         `json:"evaluations"`      // candidate evaluations incl. scan and speculative ones
	Rounds      int           `json:"rounds,omitempty"` // ModeFast scans
	Exhausted   bool          `json:"exhausted"`        // stopped before Iters: pool exhausted, or a ModeFast round accepted nothing
	Interrupted bool          `json:"interrupted"`      // cancelled; resume from the checkpoint
	Target      []ProbeScore  `json:"target"`
	Control     []ProbeScore  `json:"control"`
	HeldOut     []ProbeScore  `json:"held_out,omitempty"`
	Timings     Timings       `json:"timings"`
	Elapsed     time.Duration `json:"-"`
}

// finish builds the result from the current state, then restores the model's weights.
func (s *search) finish() (*Result, error) {
	s.times.Total += time.Since(s.start).Seconds()
	s.start = time.Now()
	o := s.opts
	flips := make([]patch.Flip, len(s.accepted))
	for i, a := range s.accepted {
		flips[i] = a.Flip
	}
	final := s.e.Scores()
	var heldFinal []float64
	var err error
	if len(o.HeldOut) > 0 {
		heldFinal, err = heldOutScores(s.b, o)
	}
	ck := s.checkpoint()
	// Restore the unpatched weights whatever happened above.
	if rerr := runtime.ApplyFlips(s.b, flips); rerr != nil {
		return nil, fmt.Errorf("bfs: restoring the model: %w", rerr)
	}
	if err != nil {
		return nil, err
	}
	r := &Report{Mode: o.Mode, Metric: o.Metric, Granularity: o.Granularity, FitnessMode: o.FitnessMode, Seed: o.Seed,
		Iters: o.Iters, Lambda: o.Lambda, Layers: o.Layers, Projs: o.Projs, Backend: s.b.Name(), Fingerprint: s.fp,
		PoolSize: s.pool.size(), Accepted: s.accepted, Fitness: s.w.best, Iterations: s.iter, Evaluated: s.evaluated,
		ScreenedOut: s.screenedOut, Evaluations: s.evalsBefore + s.e.Evaluations(), Rounds: s.rounds,
		Exhausted: s.exhausted, Interrupted: s.interrupted, Timings: s.times,
		Elapsed: time.Duration(s.times.Total * float64(time.Second))}
	if r.Accepted == nil {
		r.Accepted = []Step{}
	}
	base := s.w.base
	r.Target = probeScores(o.Target, base[:s.nTarget], final[:s.nTarget])
	r.Control = probeScores(o.Control, base[s.nTarget:], final[s.nTarget:])
	if len(o.HeldOut) > 0 {
		r.HeldOut = probeScores(o.HeldOut, s.heldBase, heldFinal)
	}
	return &Result{Patch: s.patch(flips), Report: r, Checkpoint: ck}, nil
}

func probeScores(sets []*ProbeSet, base, final []float64) []ProbeScore {
	out := []ProbeScore{}
	i := 0
	for _, set := range sets {
		for _, p := range set.Probes {
			out = append(out, ProbeScore{Set: set.Name, Name: p.Name, Base: base[i], Final: final[i], Delta: final[i] - base[i]})
			i++
		}
	}
	return out
}

// patch builds the patch with upstream's metadata keys (docs/UPSTREAM.md §6.7) plus mode, granularity and seed.
func (s *search) patch(flips []patch.Flip) *patch.Patch {
	o := s.opts
	var names []string
	for _, t := range o.Target {
		names = append(names, t.Name)
	}
	target := strings.Join(names, "+")
	p := &patch.Patch{Name: o.PatchName, Description: o.Description, BaseModel: o.BaseModel,
		Fingerprint: s.fp, Flips: flips}
	if p.Name == "" {
		p.Name = target + "_patch"
	}
	if p.Description == "" {
		p.Description = fmt.Sprintf("Optimized for %s probes (%s)", target, o.Metric)
	}
	if p.BaseModel == "" {
		p.BaseModel = s.b.Model().Source.Name
	}
	if p.BaseModel == "" {
		p.BaseModel = "unknown"
	}
	algo := "greedy_hill_climbing"
	if o.Mode == ModeFast {
		algo = "bfs_scan_greedy"
	}
	if len(s.w.screen) > 0 {
		algo += "_screened"
	}
	layers := make([]any, len(o.Layers))
	for i, l := range o.Layers {
		layers[i] = l
	}
	projs := make([]any, len(o.Projs))
	for i, pr := range o.Projs {
		projs[i] = pr
	}
	p.Metadata = map[string]any{
		"search_algorithm":    algo + "_" + o.FitnessMode.String(),
		"metric":              o.Metric.String(),
		"backend":             s.b.Name(),
		"search_layers":       layers,
		"search_projs":        projs,
		"max_iters":           o.Iters,
		"control_penalty":     o.Lambda,
		"final_fitness":       s.w.best,
		"search_time_seconds": s.times.Total,
		"screened_out":        s.screenedOut,
		"granularity":         o.Granularity.String(),
		"seed":                seedValue(o.Seed),
		"mode":                o.Mode.String(),
	}
	return p
}

// seedValue is the seed as a JSON integer when it fits in int64, else as a string.
func seedValue(seed uint64) any {
	if seed <= math.MaxInt64 {
		return int64(seed)
	}
	return fmt.Sprint(seed)
}
