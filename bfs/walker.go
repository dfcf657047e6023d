package bfs

import (
	"cmp"
	"context"
	"slices"

	"github.com/bankai-metal/bankai-metal/patch"
)

// walker holds the acceptance rules shared by the searches and the scan's top-k verification:
// fitness against the original baseline, optional screening, strict improvement.
//
// With prune set, a candidate's controls are evaluated only when its target gain exceeds best:
// the control term is never positive, so F <= gain, and such a candidate cannot be accepted.
// This is exact (the accepted flips do not change), it only skips work.
type walker struct {
	e       *Evaluator
	target  []int     // probe indices of the targets
	control []int     // probe indices of the controls
	base    []float64 // original score of every probe (before any flip)
	lambda  float64
	mode    FitnessMode
	screen  []int // probe indices screened first (a subset of target); empty: no screening
	rest    []int // target \ screen
	prune   bool
	best    float64
}

// newWalker sets up the rules; screen is the number of lowest-baseline targets to screen on
// (0: none).
func newWalker(e *Evaluator, target, control []int, base []float64, lambda float64, mode FitnessMode, screen int) *walker {
	w := &walker{e: e, target: target, control: control, base: base, lambda: lambda, mode: mode}
	if screen > 0 {
		w.screen = worstTargets(target, base, screen)
	}
	for _, t := range target {
		if !slices.Contains(w.screen, t) {
			w.rest = append(w.rest, t)
		}
	}
	return w
}

// worstTargets returns the n targets with the lowest baseline (stable on ties), in that order.
func worstTargets(target []int, base []float64, n int) []int {
	s := slices.Clone(target)
	slices.SortStableFunc(s, func(a, b int) int { return cmp.Compare(base[a], base[b]) })
	return s[:min(n, len(s))]
}

func pick(idx []int, from []float64) []float64 {
	out := make([]float64, len(idx))
	for i, p := range idx {
		out[i] = from[p]
	}
	return out
}

// fitness computes F from scores indexed by probe.
func (w *walker) fitness(scores []float64) float64 {
	return Fitness(w.mode, w.lambda, pick(w.target, scores), pick(w.target, w.base),
		pick(w.control, scores), pick(w.control, w.base))
}

// gain is F without the control term: an upper bound of F.
func (w *walker) gain(scores []float64) float64 {
	return Fitness(w.mode, 0, pick(w.target, scores), pick(w.target, w.base), nil, nil)
}

// outcome is the verdict on one candidate in the current state.
type outcome struct {
	screened bool      // failed the screen (no screen probe above its original baseline)
	pruned   bool      // target gain <= best, controls not evaluated; fitness is the gain
	fitness  float64   // F (an upper bound when pruned), when not screened
	scores   []float64 // scores by probe index (NaN where not evaluated)
}

// try evaluates candidates on the current model: the screen probes for all of them, the other
// targets for those that pass, then the controls for those that can still beat best (all of
// them without pruning). The verdicts do not depend on how many are tried at once.
func (w *walker) try(ctx context.Context, cands []patch.Flip) ([]outcome, error) {
	n := len(w.e.Probes())
	out := make([]outcome, len(cands))
	all := make([]int, len(cands))
	for i := range out {
		all[i] = i
		out[i].scores = make([]float64, n)
		for j := range out[i].scores {
			out[i].scores[j] = nan
		}
	}
	// stage scores probes for the candidates idx and keeps those for which keep is true.
	stage := func(idx, probes []int, keep func(o *outcome, s []float64) bool) ([]int, error) {
		if len(idx) == 0 || len(probes) == 0 {
			return idx, nil
		}
		sub := make([]patch.Flip, len(idx))
		for k, i := range idx {
			sub[k] = cands[i]
		}
		s, err := w.e.Score(ctx, sub, probes)
		if err != nil {
			return nil, err
		}
		var next []int
		for k, i := range idx {
			for j, p := range probes {
				out[i].scores[p] = s[k][j]
			}
			if keep(&out[i], s[k]) {
				next = append(next, i)
			}
		}
		return next, nil
	}
	pass, err := stage(all, w.screen, func(o *outcome, s []float64) bool {
		for j, p := range w.screen {
			if s[j] > w.base[p] {
				return true
			}
		}
		o.screened = true
		return false
	})
	if err != nil {
		return nil, err
	}
	if pass, err = stage(pass, w.rest, func(*outcome, []float64) bool { return true }); err != nil {
		return nil, err
	}
	var full []int
	for _, i := range pass {
		if g := w.gain(out[i].scores); w.prune && len(w.control) > 0 && !(g > w.best) {
			out[i].pruned, out[i].fitness = true, g
		} else {
			full = append(full, i)
		}
	}
	if full, err = stage(full, w.control, func(*outcome, []float64) bool { return true }); err != nil {
		return nil, err
	}
	for _, i := range full {
		out[i].fitness = w.fitness(out[i].scores)
	}
	return out, nil
}

// accept applies f to the model and sets best to the fitness of the new state.
func (w *walker) accept(f patch.Flip) error {
	if err := w.e.Apply([]patch.Flip{f}); err != nil {
		return err
	}
	w.best = w.fitness(w.e.Scores())
	return nil
}

// batcher sizes speculative batches: after an acceptance the rest of a batch is wasted, so it
// restarts at 1 and doubles after every batch without one, up to max. Results never depend on it.
type batcher struct{ cur, max int }

func (b *batcher) next() int { return max(1, min(b.cur, b.max)) }

func (b *batcher) done(accepted bool) {
	if accepted {
		b.cur = 1
	} else {
		b.cur = min(2*max(1, b.cur), b.max)
	}
}
