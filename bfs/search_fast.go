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
// scanChunk is how many candidates a ModeFast scan scores between two checks of the context
// and two periodic checkpoints (a variable so that tests can make scans of many chunks cheaply).
var scanChunk = 256

func (s *search) scanPhase(ctx context.Context) error {
	t0 := time.Now()
	defer func() { s.times.Scan += time.Since(t0).Seconds() }()
	if s.opts.Estimate {
		return s.estimatePhase()
	}
	done := map[patch.Flip]bool{}
	for _, a := range s.accepted {
		done[a.Flip] = true
	}
	// The sample depends only on the seed and the round, so a resumed scan sees the same one
	// and goes on from scanPos with the scores kept so far.
	idx := s.pool.sample(s.opts.ScanSample, s.opts.Seed+uint64(s.rounds)*0x9e3779b97f4a7c15)
	chunk := scanChunk
	for s.scanPos < int64(len(idx)) {
		i0 := int(s.scanPos)
		end := min(i0+chunk, len(idx))
		cands := make([]patch.Flip, 0, chunk)
		for _, i := range idx[i0:end] {
			if f := s.pool.at(i); !done[f] {
				cands = append(cands, f)
			}
		}
		outs, err := s.w.try(ctx, cands)
		if err != nil {
			if ctx.Err() != nil {
				s.interrupted = true // scanPos and scanGood keep the finished chunks
				return nil
			}
			return err
		}
		for k, o := range outs {
			if !o.screened && o.fitness > s.w.best {
				s.scanGood = append(s.scanGood, ScanScore{cands[k], o.fitness})
			}
		}
		s.scanPos = int64(end)
		if s.opts.Progress != nil {
			s.opts.Progress(Progress{Phase: "scan", Iteration: end, Iters: len(idx),
				Accepted: len(s.accepted), Best: s.w.best, Evaluated: s.evaluated,
				Evaluations: s.evalsBefore + s.e.Evaluations(), Elapsed: s.elapsed()})
		}
		if end < len(idx) {
			s.periodicCheckpoint()
		}
	}
	good := s.scanGood
	slices.SortStableFunc(good, func(a, b ScanScore) int { return cmp.Compare(b.F, a.F) })
	s.order = make([]patch.Flip, 0, len(good))
	for _, g := range good {
		s.order = append(s.order, g.Flip)
	}
	s.orderPos, s.scanPos, s.scanGood = 0, 0, nil
	s.rounds++
	s.scanAcc = len(s.accepted)
	return nil
}

// EstimateRound is how many of the best-estimated candidates one ModeFast round walks, and
// ReestimateEvery how many acceptances end a round early (with SearchOptions.Estimate).
const (
	EstimateRound   = 128
	ReestimateEvery = 4
)

// estimatePhase is scanPhase by first-order estimates: every candidate of the pool (or a
// ScanSample of it) is estimated on the current model in one pass, and those whose estimated
// fitness beats the current best are listed, best first (ties in pool order), at most
// EstimateRound of them. Accepted flips are left out.
func (s *search) estimatePhase() error {
	done := map[patch.Flip]bool{}
	for _, a := range s.accepted {
		done[a.Flip] = true
	}
	idx := s.pool.sample(s.opts.ScanSample, s.opts.Seed+uint64(s.rounds)*0x9e3779b97f4a7c15)
	cands := make([]patch.Flip, 0, len(idx))
	for _, i := range idx {
		if f := s.pool.at(i); !done[f] {
			cands = append(cands, f)
		}
	}
	est, err := estimateS(s.e, s.w, cands)
	if err != nil {
		return err
	}
	s.order = s.order[:0]
	for _, i := range rankAscending(est) {
		if len(s.order) >= EstimateRound || !(-est[i] > s.w.best) {
			break
		}
		s.order = append(s.order, cands[i])
	}
	if s.opts.Progress != nil {
		s.opts.Progress(Progress{Phase: "estimate", Iteration: len(cands), Iters: len(cands),
			Accepted: len(s.accepted), Best: s.w.best, Evaluated: s.evaluated,
			Evaluations: s.evalsBefore + s.e.Evaluations(), Elapsed: s.elapsed()})
	}
	s.orderPos, s.scanPos, s.scanGood = 0, 0, nil
	s.rounds++
	s.scanAcc = len(s.accepted)
	return nil
}
