package bfs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// CheckpointVersion is the version of the checkpoint format.
const CheckpointVersion = 1

// Checkpoint is the serialisable state of a search between two decided candidates. Resume
// continues from it and ends with exactly the patch and fitness an uninterrupted run gives.
type Checkpoint struct {
	Version      int           `json:"version"`
	Options      SearchOptions `json:"options"` // with the probe sets themselves
	Fingerprint  string        `json:"fingerprint"`
	Iteration    int           `json:"iteration"`       // candidates decided
	Draws        int64         `json:"draws"`           // ModeGreedy: pool draws so far
	RNG          []byte        `json:"rng"`             // math/rand/v2 PCG state after the last draw
	Tried        []FlipRecord  `json:"tried"`           // ModeGreedy: every drawn candidate, in draw order
	Pending      []FlipRecord  `json:"pending"`         // drawn (or taken from Order) but not yet decided
	Order        []FlipRecord  `json:"order,omitempty"` // ModeFast: the current round's list
	OrderPos     int           `json:"order_pos"`
	Rounds       int           `json:"rounds"`        // ModeFast: scans completed
	ScanAccepted int           `json:"scan_accepted"` // ModeFast: accepted flips at the last scan
	Accepted     []Step        `json:"accepted"`
	Best         float64       `json:"best"`
	Base         []float64     `json:"base"` // original scores, targets then controls
	HeldOutBase  []float64     `json:"held_out_base,omitempty"`
	ScreenedOut  int           `json:"screened_out"`
	Evaluated    int           `json:"evaluated"`
	Evaluations  int64         `json:"evaluations"`
	Exhausted    bool          `json:"exhausted"`
	Timings      Timings       `json:"timings"`
}

func records(fs []patch.Flip) []FlipRecord {
	out := make([]FlipRecord, len(fs))
	for i, f := range fs {
		out[i] = RecordOf(f)
	}
	return out
}

func flipsOf(rs []FlipRecord) []patch.Flip {
	out := make([]patch.Flip, len(rs))
	for i, r := range rs {
		out[i] = r.Flip()
	}
	return out
}

// checkpoint snapshots the state.
func (s *search) checkpoint() *Checkpoint {
	rng, _ := s.pcg.MarshalBinary() // never fails
	opts := s.opts
	opts.Callbacks = Callbacks{}
	t := s.times
	return &Checkpoint{Version: CheckpointVersion, Options: opts, Fingerprint: s.fp, Iteration: s.iter,
		Draws: s.draws, RNG: rng, Tried: records(s.triedList), Pending: records(s.pending),
		Order: records(s.order), OrderPos: s.orderPos, Rounds: s.rounds, ScanAccepted: s.scanAcc, Accepted: slices.Clone(s.accepted), Best: s.w.best,
		Base: slices.Clone(s.w.base), HeldOutBase: slices.Clone(s.heldBase), ScreenedOut: s.screenedOut,
		Evaluated: s.evaluated, Evaluations: s.evalsBefore + s.e.Evaluations(), Exhausted: s.exhausted, Timings: t}
}

// Resume continues a search from a checkpoint on the same (unpatched) model. cb supplies the
// run-time hooks, which checkpoints do not hold. Like Search, it returns the partial result on
// cancellation and restores the model's weights before returning.
func Resume(ctx context.Context, b runtime.Backend, ck *Checkpoint, cb Callbacks) (*Result, error) {
	if ck == nil || ck.Version != CheckpointVersion {
		return nil, fmt.Errorf("bfs: resume: not a version %d checkpoint", CheckpointVersion)
	}
	opts := ck.Options
	opts.Callbacks = cb
	s, err := newSearch(b, opts, ck)
	if err != nil {
		return nil, err
	}
	if err := s.pcg.UnmarshalBinary(ck.RNG); err != nil {
		return nil, fmt.Errorf("bfs: resume: rng state: %w", err)
	}
	s.iter, s.draws, s.orderPos, s.rounds, s.scanAcc = ck.Iteration, ck.Draws, ck.OrderPos, ck.Rounds, ck.ScanAccepted
	s.triedList, s.pending, s.order = flipsOf(ck.Tried), flipsOf(ck.Pending), flipsOf(ck.Order)
	for _, f := range s.triedList {
		s.tried[f] = struct{}{}
	}
	s.accepted = slices.Clone(ck.Accepted)
	s.screenedOut, s.evaluated, s.evalsBefore, s.exhausted = ck.ScreenedOut, ck.Evaluated, ck.Evaluations, ck.Exhausted
	baseline := s.times.Baseline
	s.times = ck.Timings
	s.times.Baseline += baseline
	if s.orderPos < 0 || s.orderPos > len(s.order) || s.iter < 0 {
		return nil, fmt.Errorf("bfs: resume: inconsistent checkpoint (iteration %d, order position %d of %d)", s.iter, s.orderPos, len(s.order))
	}
	acc := make([]patch.Flip, len(s.accepted))
	for i, a := range s.accepted {
		acc[i] = a.Flip()
	}
	if err := s.e.Apply(acc); err != nil {
		return nil, fmt.Errorf("bfs: resume: %w", err)
	}
	s.w.best = ck.Best
	return s.runAndFinish(ctx)
}

// SaveCheckpoint writes ck as indented JSON to path atomically (through a synced temporary
// file and a rename).
func SaveCheckpoint(path string, ck *Checkpoint) error {
	data, err := json.MarshalIndent(ck, "", "  ")
	if err != nil {
		return fmt.Errorf("bfs: checkpoint: %w", err)
	}
	if err := atomicfile.WriteBytes(path, data); err != nil {
		return fmt.Errorf("bfs: checkpoint: %w", err)
	}
	return nil
}

// MaxCheckpointSize bounds a checkpoint file.
const MaxCheckpointSize = 1 << 30

// LoadCheckpoint reads a checkpoint written by SaveCheckpoint.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bfs: checkpoint: %w", err)
	}
	defer f.Close()
	var ck Checkpoint
	dec := json.NewDecoder(io.LimitReader(f, MaxCheckpointSize))
	if err := dec.Decode(&ck); err != nil {
		return nil, fmt.Errorf("bfs: checkpoint %s: %w", path, err)
	}
	if ck.Version != CheckpointVersion {
		return nil, fmt.Errorf("bfs: checkpoint %s: version %d, want %d", path, ck.Version, CheckpointVersion)
	}
	return &ck, nil
}
