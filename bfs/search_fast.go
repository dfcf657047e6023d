package bfs

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/bankai-metal/bankai-metal/patch"
)

// scanPhase is one round of ModeFast's proposal step: score every candidate of the pool (or
// ScanSample of them, a new uniform sample each round) exactly on the current model, with the
// search's screening and fitness, and list those with F > best, best first (ties in pool order).
// Accepted flips are left out (flipping them again would undo them).
//
// Candidates are scored in big batches (every candidate of a chunk × every probe sequence in one
// batched run per start layer). Flips interact, so a scan fitness only proposes an order; the
// walk re-evaluates each candidate on top of the flips accepted before it.
func (s *search) scanPhase(ctx context.Context) error {
	t0 := time.Now()
	defer func() { s.times.Scan += time.Since(t0).Seconds() }()
	done := map[patch.Flip]bool{}
	for _, a := range s.accepted {
		done[a.Flip()] = true
	}
	idx := s.pool.sample(s.opts.ScanSample, s.opts.Seed+uint64(s.rounds)*0x9e3779b97f4a7c15)
	type scored struct {
		f patch.Flip
		F float64
	}
	var good []scored
	const chunk = 256
	for i0 := 0; i0 < len(idx); i0 += chunk {
		cands := make([]patch.Flip, 0, chunk)
		for _, i := range idx[i0:min(i0+chunk, len(idx))] {
			if f := s.pool.at(i); !done[f] {
				cands = append(cands, f)
			}
		}
		outs, err := s.w.try(ctx, cands)
		if err != nil {
			if ctx.Err() != nil {
				s.interrupted = true
				return nil
			}
			return err
		}
		for k, o := range outs {
			if !o.screened && o.fitness > s.w.best {
				good = append(good, scored{cands[k], o.fitness})
			}
		}
		if s.opts.Progress != nil {
			s.opts.Progress(Progress{Phase: "scan", Iteration: min(i0+chunk, len(idx)), Iters: len(idx),
				Accepted: len(s.accepted), Best: s.w.best, Evaluated: s.evaluated,
				Evaluations: s.evalsBefore + s.e.Evaluations(), Elapsed: s.elapsed()})
		}
	}
	slices.SortStableFunc(good, func(a, b scored) int { return cmp.Compare(b.F, a.F) })
	s.order = make([]patch.Flip, 0, len(good))
	for _, g := range good {
		s.order = append(s.order, g.f)
	}
	s.orderPos = 0
	s.rounds++
	s.scanAcc = len(s.accepted)
	return nil
}
