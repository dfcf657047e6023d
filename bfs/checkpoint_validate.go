package bfs

import (
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// Validate checks a checkpoint against itself: the version; a known mode, metric, granularity
// and fitness mode; options in range; counts that add up; flip lists without duplicates whose
// flips lie in the searched layers and projections at the searched granularity; the pending
// candidates at the tail of the drawn (ModeGreedy) or ordered (ModeFast) ones; accepted steps
// in order, with fitness rising to best. Errors name the field, e.g.
// `field "pending[2]": duplicates pending[0]`. Resume also checks the flips against the model.
func (ck *Checkpoint) Validate() error {
	if ck.Version != CheckpointVersion {
		return fmt.Errorf("field \"version\": %d, want %d", ck.Version, CheckpointVersion)
	}
	if ck.Fingerprint == "" {
		return fmt.Errorf("field \"fingerprint\": empty")
	}
	if err := ck.validateOptions(); err != nil {
		return err
	}
	if err := ck.validateCounts(); err != nil {
		return err
	}
	if err := ck.validateFlips(); err != nil {
		return err
	}
	if err := ck.validateProgress(); err != nil {
		return err
	}
	return ck.validateAccepted()
}

func fieldErr(field, format string, a ...any) error {
	return fmt.Errorf("field %q: "+format, append([]any{field}, a...)...)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func (ck *Checkpoint) validateOptions() error {
	o := &ck.Options
	switch {
	case o.Mode != ModeGreedy && o.Mode != ModeFast:
		return fieldErr("options.mode", "unknown mode %d (want greedy or fast)", int(o.Mode))
	case o.Metric != MetricSeqLogprob && o.Metric != MetricTokenGap:
		return fieldErr("options.metric", "unknown metric %d (want seq_logprob or token_gap)", int(o.Metric))
	case o.Granularity != GranRow && o.Granularity != GranGroup && o.Granularity != GranBit:
		return fieldErr("options.granularity", "unknown granularity %d (want row, group or bit)", int(o.Granularity))
	case o.FitnessMode != FitnessMean && o.FitnessMode != FitnessMin:
		return fieldErr("options.fitness_mode", "unknown fitness mode %d (want mean or min)", int(o.FitnessMode))
	case len(flatten(o.Target)) == 0:
		return fieldErr("options.target", "no target probes")
	case o.Iters < 1 || o.Iters > MaxSearchIters:
		return fieldErr("options.iters", "%d, want 1 to %d", o.Iters, MaxSearchIters)
	case !finite(o.Lambda) || o.Lambda < 0:
		return fieldErr("options.lambda", "%g, want a number >= 0", o.Lambda)
	case o.ScreenProbes > len(flatten(o.Target)):
		return fieldErr("options.screen_probes", "%d, more than the %d target probes", o.ScreenProbes, len(flatten(o.Target)))
	case o.ScanSample < 0 || o.ScanSample > MaxScanCandidates:
		return fieldErr("options.scan_sample", "%d, want 0 (all) to %d", o.ScanSample, MaxScanCandidates)
	case o.Batch < 0 || o.Batch > MaxSearchBatch:
		return fieldErr("options.batch", "%d, want 0 (default) to %d", o.Batch, MaxSearchBatch)
	case o.MaxBatchRows < 0:
		return fieldErr("options.max_batch_rows", "%d, want >= 0", o.MaxBatchRows)
	case len(o.Layers) == 0:
		return fieldErr("options.layers", "empty")
	case len(o.Projs) == 0:
		return fieldErr("options.projs", "empty")
	}
	for i, l := range o.Layers {
		if l < 0 {
			return fieldErr(fmt.Sprintf("options.layers[%d]", i), "negative layer %d", l)
		}
		if j := slices.Index(o.Layers[:i], l); j >= 0 {
			return fieldErr(fmt.Sprintf("options.layers[%d]", i), "layer %d listed twice", l)
		}
	}
	for i, p := range o.Projs {
		c, err := patch.CanonicalProj(p)
		if err != nil {
			return fieldErr(fmt.Sprintf("options.projs[%d]", i), "%v", err)
		}
		if c != p {
			return fieldErr(fmt.Sprintf("options.projs[%d]", i), "%q, want its Hugging Face name %q", p, c)
		}
		if slices.Contains(o.Projs[:i], p) {
			return fieldErr(fmt.Sprintf("options.projs[%d]", i), "projection %s listed twice", p)
		}
	}
	return nil
}

func (ck *Checkpoint) validateCounts() error {
	o := &ck.Options
	nProbes := len(flatten(o.Target)) + len(flatten(o.Control))
	switch {
	case ck.Iteration < 0 || ck.Iteration > o.Iters:
		return fieldErr("iteration", "%d, want 0 to options.iters (%d)", ck.Iteration, o.Iters)
	case ck.ScreenedOut < 0:
		return fieldErr("screened_out", "negative (%d)", ck.ScreenedOut)
	case ck.Evaluated < 0:
		return fieldErr("evaluated", "negative (%d)", ck.Evaluated)
	case ck.ScreenedOut+ck.Evaluated != ck.Iteration:
		return fieldErr("evaluated", "%d evaluated + %d screened out candidates, want iteration (%d)", ck.Evaluated, ck.ScreenedOut, ck.Iteration)
	case ck.Evaluations < 0:
		return fieldErr("evaluations", "negative (%d)", ck.Evaluations)
	case ck.Draws < 0:
		return fieldErr("draws", "negative (%d)", ck.Draws)
	case !finite(ck.Best):
		return fieldErr("best", "%g, want a finite number", ck.Best)
	case len(ck.Base) != nProbes:
		return fieldErr("base", "%d scores for %d target and control probes", len(ck.Base), nProbes)
	case len(ck.HeldOutBase) != len(flatten(o.HeldOut)):
		return fieldErr("held_out_base", "%d scores for %d held-out probes", len(ck.HeldOutBase), len(flatten(o.HeldOut)))
	}
	if err := new(rand.PCG).UnmarshalBinary(ck.RNG); err != nil {
		return fieldErr("rng", "not a random generator state (%d bytes)", len(ck.RNG))
	}
	for name, vs := range map[string][]float64{"base": ck.Base, "held_out_base": ck.HeldOutBase} {
		for i, v := range vs {
			if !finite(v) {
				return fieldErr(fmt.Sprintf("%s[%d]", name, i), "%g, want a finite number", v)
			}
		}
	}
	t := ck.Timings
	for name, v := range map[string]float64{"baseline": t.Baseline, "scan": t.Scan, "search": t.Search, "total": t.Total} {
		if !finite(v) || v < 0 {
			return fieldErr("timings."+name, "%g, want seconds >= 0", v)
		}
	}
	for i, p := range ck.PartialFiles {
		if b, err := hex.DecodeString(p.SHA256); p.Path == "" || err != nil || len(b) != 32 {
			return fieldErr(fmt.Sprintf("partial_files[%d]", i), "want a path and a SHA-256 in hex")
		}
	}
	return nil
}

// validateFlips checks every flip list: the searched granularity, layers and projections, and
// no flip twice in a list.
func (ck *Checkpoint) validateFlips() error {
	lists := []struct {
		name  string
		flips []patch.Flip
	}{
		{"tried", ck.Tried}, {"pending", ck.Pending}, {"order", ck.Order},
		{"scan_scores", scanRecords(ck.ScanScores)}, {"accepted", stepRecords(ck.Accepted)},
	}
	o := &ck.Options
	for _, l := range lists {
		seen := make(map[patch.Flip]int, len(l.flips))
		for i, r := range l.flips {
			field := fmt.Sprintf("%s[%d]", l.name, i)
			if err := checkRecord(r, o); err != nil {
				return fieldErr(field, "%v", err)
			}
			if j, dup := seen[r]; dup {
				return fieldErr(field, "duplicates %s[%d] (%s)", l.name, j, r)
			}
			seen[r] = i
		}
	}
	return nil
}

// checkRecord checks one flip against the search space of o (not yet the model's shapes).
func checkRecord(r patch.Flip, o *SearchOptions) error {
	want := map[Granularity]patch.Kind{GranRow: patch.KindRow, GranGroup: patch.KindGroup, GranBit: patch.KindBit}[o.Granularity]
	switch {
	case r.Kind() != want:
		return fmt.Errorf("group %d, col %d: not a %s flip", r.Group, r.Col, o.Granularity)
	case !slices.Contains(o.Layers, r.Layer):
		return fmt.Errorf("layer %d is not among the searched layers %v", r.Layer, o.Layers)
	case !slices.Contains(o.Projs, r.Proj):
		return fmt.Errorf("projection %q is not among the searched projections %v", r.Proj, o.Projs)
	case r.Row < 0:
		return fmt.Errorf("negative row %d", r.Row)
	}
	return nil
}

func scanRecords(ss []ScanScore) []patch.Flip {
	out := make([]patch.Flip, len(ss))
	for i, s := range ss {
		out[i] = s.Flip
	}
	return out
}

func stepRecords(ss []Step) []patch.Flip {
	out := make([]patch.Flip, len(ss))
	for i, s := range ss {
		out[i] = s.Flip
	}
	return out
}

// validateProgress checks the mode's own state: what was drawn or ordered, what is pending.
func (ck *Checkpoint) validateProgress() error {
	o := &ck.Options
	batch := o.Batch
	if batch == 0 {
		batch = 16
	}
	switch {
	case len(ck.Pending) > batch:
		return fieldErr("pending", "%d candidates, more than a batch (%d)", len(ck.Pending), batch)
	case ck.Iteration+len(ck.Pending) > o.Iters:
		return fieldErr("pending", "%d decided + %d pending candidates, more than options.iters (%d)", ck.Iteration, len(ck.Pending), o.Iters)
	}
	if o.Mode == ModeGreedy {
		switch {
		case len(ck.Order) > 0 || ck.OrderPos != 0 || ck.Rounds != 0 || ck.ScanAccepted != 0 || ck.ScanPos != 0 || len(ck.ScanScores) > 0:
			return fieldErr("order", "a greedy search has no fast-mode order, rounds or scan")
		case len(ck.Tried) != ck.Iteration+len(ck.Pending):
			return fieldErr("tried", "%d candidates, want iteration + pending (%d)", len(ck.Tried), ck.Iteration+len(ck.Pending))
		case !slices.Equal(ck.Tried[len(ck.Tried)-len(ck.Pending):], ck.Pending):
			return fieldErr("pending", "not the last candidates of \"tried\"")
		case ck.Draws < int64(len(ck.Tried)) || ck.Draws > int64(maxDuplicateDraws)*int64(len(ck.Tried)+1):
			return fieldErr("draws", "%d draws for %d distinct candidates", ck.Draws, len(ck.Tried))
		}
		return nil
	}
	switch {
	case len(ck.Tried) > 0 || ck.Draws != 0:
		return fieldErr("tried", "a fast search draws no candidates")
	case ck.OrderPos < 0 || ck.OrderPos > len(ck.Order):
		return fieldErr("order_pos", "%d, want 0 to the %d candidates of \"order\"", ck.OrderPos, len(ck.Order))
	case len(ck.Pending) > ck.OrderPos || !slices.Equal(ck.Order[ck.OrderPos-len(ck.Pending):ck.OrderPos], ck.Pending):
		return fieldErr("pending", "not the candidates of \"order\" just before order_pos")
	case ck.Rounds < 0 || ck.Rounds > ck.Iteration+1:
		return fieldErr("rounds", "%d scans for %d decided candidates", ck.Rounds, ck.Iteration)
	case ck.Rounds == 0 && len(ck.Order) > 0:
		return fieldErr("order", "a list of candidates before any scan")
	case ck.ScanAccepted < 0 || ck.ScanAccepted > len(ck.Accepted):
		return fieldErr("scan_accepted", "%d, want 0 to the %d accepted flips", ck.ScanAccepted, len(ck.Accepted))
	case ck.ScanPos < 0 || ck.ScanPos > MaxScanCandidates:
		return fieldErr("scan_pos", "%d, want 0 to %d", ck.ScanPos, MaxScanCandidates)
	case ck.ScanPos == 0 && len(ck.ScanScores) > 0:
		return fieldErr("scan_scores", "scores without a scan in progress (scan_pos 0)")
	case ck.ScanPos > 0 && (len(ck.Pending) > 0 || ck.OrderPos != len(ck.Order)):
		return fieldErr("scan_pos", "a scan in progress while candidates of the last round are left")
	case int64(len(ck.ScanScores)) > ck.ScanPos:
		return fieldErr("scan_scores", "%d scores for %d scanned candidates", len(ck.ScanScores), ck.ScanPos)
	}
	for i, s := range ck.ScanScores {
		if !finite(s.F) || !(s.F > ck.Best) {
			return fieldErr(fmt.Sprintf("scan_scores[%d].f", i), "%g, want a finite fitness above best (%g)", s.F, ck.Best)
		}
	}
	return nil
}

// validateAccepted checks the accepted steps: decided in order, fitness rising to best.
func (ck *Checkpoint) validateAccepted() error {
	prevIter, prevF := 0, 0.0
	if len(ck.Accepted) > ck.Evaluated {
		return fieldErr("accepted", "%d flips, more than the %d evaluated candidates", len(ck.Accepted), ck.Evaluated)
	}
	for i, a := range ck.Accepted {
		field := fmt.Sprintf("accepted[%d]", i)
		if a.Iteration <= prevIter || a.Iteration > ck.Iteration {
			return fieldErr(field+".iteration", "%d, want above %d and at most iteration (%d)", a.Iteration, prevIter, ck.Iteration)
		}
		if !finite(a.Fitness) || !(a.Fitness > prevF) {
			return fieldErr(field+".fitness", "%g, want a finite fitness above %g", a.Fitness, prevF)
		}
		prevIter, prevF = a.Iteration, a.Fitness
	}
	if ck.Best != prevF {
		return fieldErr("best", "%g, want the last accepted fitness (%g)", ck.Best, prevF)
	}
	return nil
}

// validateModel checks the checkpoint against the model it is resumed on: the fingerprint, the
// layers, every flip's row, group or column, and the scan position.
func (ck *Checkpoint) validateModel(m *runtime.Model) error {
	if fp := m.Fingerprint(); ck.Fingerprint != fp {
		return fmt.Errorf("it is for model %s, this model is %s", ck.Fingerprint, fp)
	}
	o := &ck.Options
	var size int64
	for i, l := range o.Layers {
		if l >= m.NumLayers() {
			return fieldErr(fmt.Sprintf("options.layers[%d]", i), "layer %d out of range [0,%d)", l, m.NumLayers())
		}
		for _, p := range o.Projs {
			mat, err := m.Matrix(l, p)
			if err != nil || mat == nil {
				return fieldErr("options.projs", "L%d.%s: not in the model", l, p)
			}
			subs := map[Granularity]int{GranRow: 1, GranGroup: mat.Groups, GranBit: mat.Cols}[o.Granularity]
			size += int64(mat.Rows) * int64(subs)
		}
	}
	lists := []struct {
		name  string
		flips []patch.Flip
	}{
		{"tried", ck.Tried}, {"pending", ck.Pending}, {"order", ck.Order},
		{"scan_scores", scanRecords(ck.ScanScores)}, {"accepted", stepRecords(ck.Accepted)},
	}
	for _, l := range lists {
		for i, r := range l.flips {
			mat, _ := m.Matrix(r.Layer, r.Proj) // layer and projection checked above
			field := fmt.Sprintf("%s[%d]", l.name, i)
			switch {
			case r.Row >= mat.Rows:
				return fieldErr(field, "row %d out of range [0,%d) in L%d.%s", r.Row, mat.Rows, r.Layer, r.Proj)
			case r.Group >= mat.Groups:
				return fieldErr(field, "group %d out of range [0,%d) in L%d.%s", r.Group, mat.Groups, r.Layer, r.Proj)
			case r.Col >= mat.Cols:
				return fieldErr(field, "col %d out of range [0,%d) in L%d.%s", r.Col, mat.Cols, r.Layer, r.Proj)
			}
		}
	}
	n := size
	if o.ScanSample > 0 && o.ScanSample < size {
		n = o.ScanSample
	}
	if ck.ScanPos > n {
		return fieldErr("scan_pos", "%d, more than the %d candidates a scan scores", ck.ScanPos, n)
	}
	return nil
}
