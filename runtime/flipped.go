package runtime

import (
	"fmt"
	goruntime "runtime"
	"slices"
	"sync"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// Flipped batches: the search scores a candidate flip without writing it, by running the layers
// with the flip applied to the output of its projection for some rows of a batch only.

// FlipSpan is one candidate flip applied, virtually, to a contiguous range of rows of a batch:
// the flip's projection output is corrected for rows [Start, Start+N) only, as if the flip were
// written to the weights for those rows and not for the others.
type FlipSpan struct {
	patch.Flip     // the flip's address (Proj by Hugging Face or GGUF name)
	Start, N   int // rows of the batch
}

// CPUBatch is the pure-Go BatchEvaluator: Model.RunLayers with a hook that corrects each span's
// rows. By default the flipped row's output is recomputed with cpu.MatMul over a flipped copy of
// that one row, which is bit-identical to running the model with the flip written to the weights.
// With Delta set it uses cpu.FlipDelta instead (negate the output for a row flip, subtract the
// flipped weights' doubled contribution for a group or bit flip): cheaper, equal up to float32
// rounding, which the later layers can amplify to about 1e-5 on the gaps.
//
// For models too small for the matmuls to use several threads, it splits the batch into groups
// of whole sequences run concurrently.
type CPUBatch struct {
	Model *Model
	Delta bool
}

// RunFlipped implements BatchEvaluator.
func (c CPUBatch) RunFlipped(from, to int, x []float32, seqs []Seq, flips []FlipSpan) error {
	m := c.Model
	rows := 0
	for _, s := range seqs {
		if s.N <= 0 {
			return fmt.Errorf("runtime: sequence of %d tokens", s.N)
		}
		rows += s.N
	}
	if from < 0 || to > m.NumLayers() || from > to {
		return fmt.Errorf("runtime: layers [%d, %d) out of range [0, %d]", from, to, m.NumLayers())
	}
	if len(x) < rows*m.Hidden {
		return fmt.Errorf("runtime: residual stream of %d floats for %d rows", len(x), rows)
	}
	for _, f := range flips {
		if err := CheckSpan(m, f, rows); err != nil {
			return err
		}
	}
	parts := c.partition(seqs)
	if len(parts) <= 1 {
		m.RunLayers(from, to, x, seqs, flipHook(m, flips, c.Delta))
		return nil
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sub []FlipSpan
			for _, f := range flips { // clip each span to the part's rows, relative to its start
				s0, s1 := max(f.Start, p.row0), min(f.Start+f.N, p.row1)
				if s0 < s1 {
					f.Start, f.N = s0-p.row0, s1-s0
					sub = append(sub, f)
				}
			}
			m.RunLayers(from, to, x[p.row0*m.Hidden:p.row1*m.Hidden], seqs[p.seq0:p.seq1], flipHook(m, sub, c.Delta))
		}()
	}
	wg.Wait()
	return nil
}

// part is a group of whole sequences [seq0, seq1) covering rows [row0, row1).
type part struct{ seq0, seq1, row0, row1 int }

// partition splits seqs into groups of about equal rows, one per worker, when the model's
// matrices are small enough that cpu.MatMul would run on one thread and no two sequences share
// a cache.
func (c CPUBatch) partition(seqs []Seq) []part {
	m := c.Model
	nt := m.Threads
	if nt <= 0 {
		nt = goruntime.GOMAXPROCS(0)
	}
	if nt <= 1 || len(seqs) < 2 || m.FFN*m.Hidden >= 1<<18 {
		return nil
	}
	rows := 0
	seen := map[*KVCache]bool{}
	for _, s := range seqs {
		if s.Cache != nil {
			if seen[s.Cache] {
				return nil
			}
			seen[s.Cache] = true
		}
		rows += s.N
	}
	nt = min(nt, len(seqs))
	var parts []part
	p := part{}
	for i, s := range seqs {
		p.row1 += s.N
		p.seq1 = i + 1
		if p.row1*nt >= rows*(len(parts)+1) && len(parts) < nt-1 {
			parts = append(parts, p)
			p = part{seq0: i + 1, seq1: i + 1, row0: p.row1, row1: p.row1}
		}
	}
	if p.seq1 > p.seq0 {
		parts = append(parts, p)
	}
	return parts
}

// flipHook returns the Hook applying each span's flip to its rows (see CPUBatch).
func flipHook(m *Model, flips []FlipSpan, delta bool) Hook {
	if len(flips) == 0 {
		return nil
	}
	type key struct {
		layer int
		proj  Proj
	}
	by := map[key][]int{}
	for i, f := range flips {
		k := key{f.Layer, f.Projection()} // checked by CheckSpan
		by[k] = append(by[k], i)
	}
	var tmp []float32 // (span rows): the recomputed outputs of one flipped row
	return func(layer int, p Proj, in, out []float32, n int) {
		spans := by[key{layer, p}]
		if len(spans) == 0 {
			return
		}
		mat := m.Layers[layer].Proj[p]
		for _, i := range spans {
			f := flips[i]
			if delta {
				cpu.FlipDelta(mat, in[f.Start*mat.Cols:], f.N, out[f.Start*mat.Rows:], f.Row, f.Group, f.Col)
				continue
			}
			tmp = slices.Grow(tmp[:0], f.N)[:f.N]
			m.workers().MatMul(flippedRow(mat, f), in[f.Start*mat.Cols:], f.N, tmp)
			for t, v := range tmp {
				out[(f.Start+t)*mat.Rows+f.Row] = v
			}
		}
	}
}

// flippedRow returns a one-row copy of row f.Row of mat, in the same encoding, with f's flip
// applied.
func flippedRow(mat *q1.Matrix, f FlipSpan) *q1.Matrix {
	bits := make([]byte, 0, mat.Groups*q1.GroupSignBytes) // (Groups, 16)
	scales := make([]byte, 0, mat.Groups*2)               // (Groups, 2)
	for g := 0; g < mat.Groups; g++ {
		bits = append(bits, mat.GroupSigns(f.Row, g)...)
		o := (f.Row*mat.Groups + g) * mat.ScaleStride
		scales = append(scales, mat.Scales[o], mat.Scales[o+1])
	}
	r := &q1.Matrix{Name: mat.Name, Rows: 1, Cols: mat.Cols, Groups: mat.Groups, Bits: bits,
		BitStride: q1.GroupSignBytes, Scales: scales, ScaleStride: 2, Kind: mat.Kind}
	r.Flip(0, f.Group, f.Col)
	return r
}

// Projection is the projection of a span that passed CheckSpan.
func (f FlipSpan) Projection() Proj {
	p, _ := ParseProj(f.Proj)
	return p
}

// Matrix returns the matrix a span that passed CheckSpan flips.
func (f FlipSpan) Matrix(m *Model) *q1.Matrix { return m.Layers[f.Layer].Proj[f.Projection()] }

// CheckFlip reports whether f addresses sign bits of one of m's projections, naming the value
// out of range ("row 99999 out of range [0,12288)").
func (m *Model) CheckFlip(f patch.Flip) error {
	p, err := ParseProj(f.Proj)
	if err != nil {
		return err
	}
	if f.Layer < 0 || f.Layer >= m.NumLayers() {
		return fmt.Errorf("layer %d out of range [0,%d)", f.Layer, m.NumLayers())
	}
	return m.Layers[f.Layer].Proj[p].CheckFlip(f.Row, f.Group, f.Col)
}

// CheckSpan validates a span against the model and a batch of rows; every BatchEvaluator
// calls it before touching anything.
func CheckSpan(m *Model, f FlipSpan, rows int) error {
	if err := m.CheckFlip(f.Flip); err != nil {
		return fmt.Errorf("runtime: flip span %v: %w", f.Flip, err)
	}
	if f.Start < 0 || f.N < 0 || f.Start > rows-f.N { // no overflow for huge N
		return fmt.Errorf("runtime: flip span %v: rows [%d,%d) outside the batch of %d", f.Flip, f.Start, f.Start+f.N, rows)
	}
	return nil
}
