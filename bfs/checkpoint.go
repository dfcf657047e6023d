package bfs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/bankai-metal/bankai-metal/internal/atomicfile"
	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime"
)

// CheckpointVersion is the version of the checkpoint format.
const CheckpointVersion = 1

// Checkpoint is the serialisable state of a search between two decided candidates (or two scan
// chunks of ModeFast). Resume continues from it and ends with exactly the patch and fitness an
// uninterrupted run gives.
type Checkpoint struct {
	Version      int           `json:"version"`
	Options      SearchOptions `json:"options"` // with the probe sets themselves
	Fingerprint  string        `json:"fingerprint"`
	Iteration    int           `json:"iteration"`       // candidates decided
	Draws        int64         `json:"draws"`           // ModeGreedy: pool draws so far
	RNG          []byte        `json:"rng"`             // math/rand/v2 PCG state after the last draw
	Tried        []patch.Flip  `json:"tried"`           // ModeGreedy: every drawn candidate, in draw order
	Pending      []patch.Flip  `json:"pending"`         // drawn (or taken from Order) but not yet decided
	Order        []patch.Flip  `json:"order,omitempty"` // ModeFast: the current round's list
	OrderPos     int           `json:"order_pos"`
	Rounds       int           `json:"rounds"`        // ModeFast: scans completed
	ScanAccepted int           `json:"scan_accepted"` // ModeFast: accepted flips at the last scan
	// ScanPos and ScanScores are ModeFast's scan in progress: how many candidates of the
	// round's sample are scored, and those of them with F > best, in sample order.
	ScanPos     int64       `json:"scan_pos,omitempty"`
	ScanScores  []ScanScore `json:"scan_scores,omitempty"`
	Accepted    []Step      `json:"accepted"`
	Best        float64     `json:"best"`
	Base        []float64   `json:"base"` // original scores, targets then controls
	HeldOutBase []float64   `json:"held_out_base,omitempty"`
	ScreenedOut int         `json:"screened_out"`
	Evaluated   int         `json:"evaluated"`
	Evaluations int64       `json:"evaluations"`
	Exhausted   bool        `json:"exhausted"`
	Timings     Timings     `json:"timings"`

	// Output and Report are the files the command line writes the finished search to, and
	// PartialFiles the partial results written with this checkpoint. bfs only carries them.
	Output       string        `json:"output,omitempty"`
	Report       string        `json:"report,omitempty"`
	PartialFiles []PartialFile `json:"partial_files,omitempty"`
}

// ScanScore is a candidate of a ModeFast scan with its fitness.
type ScanScore struct {
	patch.Flip
	F float64 `json:"f"`
}

// PartialFile is a file written with a checkpoint, and the SHA-256 (hex) of what was written, so
// that a resumed run can tell it is still that file before removing it.
type PartialFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// records copies flips into a checkpoint list (nil when empty, so JSON writes null as before).
func records(fs []patch.Flip) []patch.Flip {
	if len(fs) == 0 {
		return nil
	}
	return slices.Clone(fs)
}

// flipsOf copies a checkpoint list (never nil).
func flipsOf(rs []patch.Flip) []patch.Flip { return append([]patch.Flip{}, rs...) }

// checkpoint snapshots the state.
func (s *search) checkpoint() *Checkpoint {
	rng, _ := s.pcg.MarshalBinary() // never fails
	opts := s.opts
	opts.Callbacks = Callbacks{}
	t := s.times
	t.Total += time.Since(s.start).Seconds() // the current run's share so far
	return &Checkpoint{Version: CheckpointVersion, Options: opts, Fingerprint: s.fp, Iteration: s.iter,
		Draws: s.draws, RNG: rng, Tried: records(s.triedList), Pending: records(s.pending),
		Order: records(s.order), OrderPos: s.orderPos, Rounds: s.rounds, ScanAccepted: s.scanAcc,
		ScanPos: s.scanPos, ScanScores: slices.Clone(s.scanGood), Accepted: slices.Clone(s.accepted), Best: s.w.best,
		Base: slices.Clone(s.w.base), HeldOutBase: slices.Clone(s.heldBase), ScreenedOut: s.screenedOut,
		Evaluated: s.evaluated, Evaluations: s.evalsBefore + s.e.Evaluations(), Exhausted: s.exhausted, Timings: t}
}

// Resume continues a search from a checkpoint on the same (unpatched) model. cb supplies the
// run-time hooks, which checkpoints do not hold. The checkpoint is validated first, against
// itself and against the model (every flip in range, the baselines one per probe), so a
// damaged one is an error naming the field, never a panic. Like Search, it returns the partial
// result on cancellation and restores the model's weights before returning.
func Resume(ctx context.Context, b runtime.Backend, ck *Checkpoint, cb Callbacks) (*Result, error) {
	if ck == nil {
		return nil, fmt.Errorf("bfs: resume: no checkpoint")
	}
	if err := ck.Validate(); err != nil {
		return nil, fmt.Errorf("bfs: resume: checkpoint: %w", err)
	}
	if err := ck.validateModel(b.Model()); err != nil {
		return nil, fmt.Errorf("bfs: resume: checkpoint: %w", err)
	}
	opts := ck.Options
	opts.Callbacks = cb
	s, err := newSearch(b, opts, ck)
	if err != nil {
		return nil, err
	}
	if err := s.pcg.UnmarshalBinary(ck.RNG); err != nil {
		return nil, fmt.Errorf("bfs: resume: checkpoint: field \"rng\": %w", err)
	}
	s.iter, s.draws, s.orderPos, s.rounds, s.scanAcc = ck.Iteration, ck.Draws, ck.OrderPos, ck.Rounds, ck.ScanAccepted
	s.triedList, s.pending, s.order = flipsOf(ck.Tried), flipsOf(ck.Pending), flipsOf(ck.Order)
	s.scanPos, s.scanGood = ck.ScanPos, slices.Clone(ck.ScanScores)
	for _, f := range s.triedList {
		s.tried[f] = struct{}{}
	}
	s.accepted = slices.Clone(ck.Accepted)
	s.screenedOut, s.evaluated, s.evalsBefore, s.exhausted = ck.ScreenedOut, ck.Evaluated, ck.Evaluations, ck.Exhausted
	baseline := s.times.Baseline
	s.times = ck.Timings
	s.times.Baseline += baseline
	acc := make([]patch.Flip, len(s.accepted))
	for i, a := range s.accepted {
		acc[i] = a.Flip
	}
	if err := s.e.Apply(acc); err != nil {
		return nil, fmt.Errorf("bfs: resume: %w", err)
	}
	s.w.best = ck.Best
	return s.runAndFinish(ctx)
}

// SaveCheckpoint writes ck as JSON to path atomically (through a synced temporary file and a
// rename).
func SaveCheckpoint(path string, ck *Checkpoint) error {
	data, err := json.Marshal(ck)
	if err != nil {
		return fmt.Errorf("bfs: checkpoint %s: %w", path, err)
	}
	if err := atomicfile.WriteBytes(path, append(data, '\n')); err != nil {
		return fmt.Errorf("bfs: checkpoint: write %s: %w", path, err)
	}
	return nil
}

// MaxCheckpointSize bounds a checkpoint file. The biggest legitimate one is a ModeFast search
// whose round lists every candidate of an unsampled scan: MaxScanCandidates flip records of
// about 60 bytes each, plus the probe sets.
const MaxCheckpointSize = 1 << 30

// LoadCheckpoint reads and validates a checkpoint written by SaveCheckpoint. It streams the
// file, so memory stays proportional to what the checkpoint legitimately holds.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bfs: checkpoint: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxCheckpointSize {
		return nil, fmt.Errorf("bfs: checkpoint %s: %d bytes, more than a checkpoint can hold (%d)", path, st.Size(), int64(MaxCheckpointSize))
	}
	lr := &io.LimitedReader{R: bufio.NewReader(f), N: MaxCheckpointSize + 1}
	ck, err := readCheckpoint(lr, path)
	if lr.N <= 0 {
		return nil, fmt.Errorf("bfs: checkpoint %s: more than %d bytes, more than a checkpoint can hold", path, int64(MaxCheckpointSize))
	}
	return ck, err
}

// ParseCheckpoint decodes and validates a checkpoint; source names it in errors. Every field is
// checked (see Checkpoint.Validate); flips are range-checked against the model by Resume.
func ParseCheckpoint(data []byte, source string) (*Checkpoint, error) {
	if len(data) > MaxCheckpointSize {
		return nil, fmt.Errorf("bfs: checkpoint %s: %d bytes, more than a checkpoint can hold (%d)", source, len(data), int64(MaxCheckpointSize))
	}
	return readCheckpoint(bytes.NewReader(data), source)
}

func readCheckpoint(r io.Reader, source string) (*Checkpoint, error) {
	ck, err := decodeCheckpoint(r, source)
	if err != nil {
		return nil, fmt.Errorf("bfs: checkpoint %s: %w", source, err)
	}
	if err := ck.Validate(); err != nil {
		return nil, fmt.Errorf("bfs: checkpoint %s: %w", source, err)
	}
	return ck, nil
}
