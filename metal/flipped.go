package metal

import (
	"fmt"
	goruntime "runtime"
	"sort"
	"sync"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// flipState is the device memory of RunFlipped, kept between calls and grown on demand. Calls
// on one backend run one at a time.
type flipState struct {
	mu        sync.Mutex
	rows      int    // batch rows the activation buffers hold
	layerActs        // x, h, o, q, att, gate, up, cos, sin (layer.go) for the rows
	k, v      buffer // (rows, KVDim): keys and values of the sequences without a KV cache
	wCap      int    // bytes the block buffer holds
	w         buffer // (wCap) flipped weight blocks (flipplan.go)
}

func (fs *flipState) releaseActs() {
	fs.layerActs.release()
	for _, b := range []*buffer{&fs.k, &fs.v} {
		if *b != nil {
			(*b).release()
			*b = nil
		}
	}
	fs.rows = 0
}

func (fs *flipState) release() {
	fs.releaseActs()
	if fs.w != nil {
		fs.w.release()
		fs.w, fs.wCap = nil, 0
	}
}

// grow makes room for a batch of rows and wBytes of weight blocks.
func (fs *flipState) grow(d device, m *runtime.Model, rows, wBytes int) error {
	if rows > fs.rows {
		fs.releaseActs()
		if err := allocAll(d, []bufSpec{{&fs.x, rows * m.Hidden}, {&fs.h, rows * m.Hidden}, {&fs.o, rows * m.Hidden},
			{&fs.q, rows * m.QDim()}, {&fs.att, rows * m.QDim()}, {&fs.k, rows * m.KVDim()}, {&fs.v, rows * m.KVDim()},
			{&fs.gate, rows * m.FFN}, {&fs.up, rows * m.FFN},
			{&fs.cos, rows * m.HeadDim / 2}, {&fs.sin, rows * m.HeadDim / 2}}, fs.releaseActs); err != nil {
			return fmt.Errorf("metal: RunFlipped: activations for %d rows: %w", rows, err)
		}
		fs.rows = rows
	}
	if wBytes > fs.wCap {
		if fs.w != nil {
			fs.w.release()
			fs.w, fs.wCap = nil, 0
		}
		b, err := d.newBuffer(max(wBytes, 2*fs.wCap, 4096))
		if err != nil {
			return fmt.Errorf("metal: RunFlipped: %d bytes of flipped weight blocks: %w", wBytes, err)
		}
		fs.w, fs.wCap = b, len(b.bytes())
	}
	return nil
}

// flipChunk bounds the work of one RunFlipped command buffer to that of a session step, maxChunk
// tokens through every layer: a larger batch runs a few layers per command buffer (the residual
// stream stays on the device in between), so no command buffer holds the GPU for long. A
// variable so that tests can lower it.
var flipChunk = maxChunk

// seqRun is one sequence of a RunFlipped batch.
type seqRun struct {
	row0, n int
	pos0    int      // its first position (the cache's length, or 0)
	kv      *kvStore // nil: its keys stay in the batch buffers
}

// RunFlipped implements runtime.BatchEvaluator on the device: layers [from, to) run over the batch
// in one command buffer (a few for batches over maxChunk rows, see flipChunk), x (Σ seqs.N,
// Hidden) uploaded once and read back once, and each span's flip applied to its rows after its
// projection's matvec (flipplan.go: the flipped row is recomputed from a flipped copy of its
// weights, so the result equals running the model with the flip written, and runtime.CPUBatch in
// either mode up to float rounding).
//
// A sequence with a KV cache continues it from c.Len() and appends its keys and values without
// committing, as Model.RunLayers does; but the keys and values are kept on the device, keyed by
// the cache (kvstore.go), and never written into the runtime.KVCache, whose length alone is used.
// So a cache continued here must only be continued here, on this backend: one holding positions
// this backend did not compute is an error. Results for a row do not depend on the other rows.
func (b *backend) RunFlipped(from, to int, x []float32, seqs []runtime.Seq, flips []runtime.FlipSpan) error {
	if b.closed {
		return errClosed
	}
	m := b.m
	if from < 0 || to > m.NumLayers() || from > to {
		return fmt.Errorf("metal: RunFlipped: layers [%d, %d) out of range [0, %d]", from, to, m.NumLayers())
	}
	runs, rows, err := b.flipSeqs(from, to, seqs)
	if err != nil {
		return err
	}
	if len(x) < rows*m.Hidden {
		return fmt.Errorf("metal: RunFlipped: residual stream of %d floats for %d rows", len(x), rows)
	}
	for _, f := range flips {
		if err := runtime.CheckSpan(m, f, rows); err != nil {
			return err
		}
	}
	if rows == 0 || from == to {
		return nil
	}
	starts := make([]int, len(runs))
	for i, r := range runs {
		starts[i] = r.row0
	}
	plan, err := planFlips(m, flips, starts, rows)
	if err != nil {
		return err
	}
	fs := &b.flip
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, s := range seqs {
		if s.Cache != nil {
			if runs[i].kv, err = b.kv.reserve(s.Cache, runs[i].pos0+s.N); err != nil {
				return err
			}
		}
	}
	if err := fs.grow(b.dev, m, rows, len(plan.w)); err != nil {
		return err
	}
	D, half := m.Hidden, m.HeadDim/2
	copy(floats(fs.x.bytes()), x[:rows*D])
	if len(plan.w) > 0 {
		copy(fs.w.bytes(), plan.w)
	}
	cos, sin := floats(fs.cos.bytes()), floats(fs.sin.bytes())
	for _, r := range runs {
		c, s := m.Rope.Tables(r.pos0, r.n) // (n, HeadDim/2) each
		copy(cos[r.row0*half:], c)
		copy(sin[r.row0*half:], s)
	}
	fr := &flipRun{b: b, fs: fs, runs: runs, starts: starts, plan: plan}
	per := max(1, flipChunk*m.NumLayers()/rows) // layers per command buffer
	for l0 := from; l0 < to; l0 += per {
		err := b.dev.run(func(e encoder) {
			for l := l0; l < min(to, l0+per); l++ {
				b.encodeLayer(e, l, &fs.layerActs, fr.seqs(l), fr.fixup)
			}
		})
		if err != nil {
			return err
		}
	}
	for i, s := range seqs {
		if s.Cache != nil {
			b.kv.written(runs[i].kv, from, to, runs[i].pos0+s.N)
		}
	}
	copy(x[:rows*D], floats(fs.x.bytes()))
	goruntime.KeepAlive(seqs) // their caches key the stores until the keys are written
	return nil
}

// flipSeqs lays the sequences out in the batch and checks their caches: distinct, with room
// for the new tokens, and holding, for every layer run, the positions they continue.
func (b *backend) flipSeqs(from, to int, seqs []runtime.Seq) (runs []seqRun, rows int, err error) {
	seen := map[*runtime.KVCache]int{}
	runs = make([]seqRun, len(seqs))
	for i, s := range seqs {
		if s.N <= 0 {
			return nil, 0, fmt.Errorf("metal: RunFlipped: sequence %d has %d tokens", i, s.N)
		}
		runs[i] = seqRun{row0: rows, n: s.N}
		rows += s.N
		if c := s.Cache; c != nil {
			if j, ok := seen[c]; ok {
				return nil, 0, fmt.Errorf("metal: RunFlipped: sequences %d and %d share a KV cache", j, i)
			}
			seen[c] = i
			if c.Len()+s.N > c.Max {
				return nil, 0, fmt.Errorf("metal: RunFlipped: sequence %d: %w: %d tokens in cache + %d new > limit %d",
					i, runtime.ErrContextFull, c.Len(), s.N, c.Max)
			}
			runs[i].pos0 = c.Len()
			if _, held := b.kv.lookup(c, from, to); held < c.Len() {
				return nil, 0, fmt.Errorf("metal: RunFlipped: sequence %d continues a KV cache of %d positions, "+
					"but this backend computed only %d of them for layers [%d, %d) (a cache filled elsewhere cannot be continued here)",
					i, c.Len(), held, from, to)
			}
		}
	}
	return runs, rows, nil
}

// flipRun is the state of one RunFlipped encoding.
type flipRun struct {
	b      *backend
	fs     *flipState
	runs   []seqRun
	starts []int // runs[i].row0
	plan   *flipPlan
}

// seqs returns the batch's sequences for layer l, with their keys and values: in the
// sequence's store, or in the batch buffers from its first row (positions from 0).
func (r *flipRun) seqs(l int) []layerSeq {
	kvd := r.b.m.KVDim()
	out := make([]layerSeq, len(r.runs))
	for i, s := range r.runs {
		keys, vals := ref{r.fs.k, 4 * s.row0 * kvd}, ref{r.fs.v, 4 * s.row0 * kvd}
		if s.kv != nil {
			keys, vals = s.kv.keys(l, kvd), s.kv.vals(l, kvd)
		}
		out[i] = layerSeq{row0: s.row0, n: s.n, pos0: s.pos0, keys: keys, vals: vals}
	}
	return out
}

// fixup is encodeLayer's projHook: it records the fixups of projection p of layer l, whose
// input is in, after its matvec, and reports whether there were any.
func (r *flipRun) fixup(e encoder, l int, p runtime.Proj, in ref) bool {
	mat := r.b.m.Layers[l].Proj[p]
	fix := r.plan.fix[projKey{l, p}]
	for _, f := range fix {
		encFixup(e, mat, f, r.fs.w, in.at(f.start*mat.Cols), r.output(l, p, f.start))
	}
	return len(fix) > 0
}

// output returns where output row 0 of batch row i of projection p of layer l lives.
func (r *flipRun) output(l int, p runtime.Proj, i int) ref {
	m, fs := r.b.m, r.fs
	rows := m.Layers[l].Proj[p].Rows
	switch p {
	case runtime.ProjQ:
		return ref{fs.q, 4 * i * rows}
	case runtime.ProjO, runtime.ProjDown:
		return ref{fs.o, 4 * i * rows}
	case runtime.ProjGate:
		return ref{fs.gate, 4 * i * rows}
	case runtime.ProjUp:
		return ref{fs.up, 4 * i * rows}
	}
	s := r.runs[sort.SearchInts(r.starts, i+1)-1] // the sequence holding row i
	if s.kv == nil {
		if p == runtime.ProjK {
			return ref{fs.k, 4 * i * rows}
		}
		return ref{fs.v, 4 * i * rows}
	}
	if p == runtime.ProjK {
		return s.kv.keys(l, rows).at((s.pos0 + i - s.row0) * rows)
	}
	return s.kv.vals(l, rows).at((s.pos0 + i - s.row0) * rows)
}
