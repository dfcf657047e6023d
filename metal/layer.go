package metal

import "github.com/bankai-metal/bankai-metal/runtime"

// layerActs are the activation buffers a decoder layer runs through, for a batch of rows rows.
// A session step and a RunFlipped batch each hold one set, grown on demand.
type layerActs struct {
	x, h, o  buffer // (rows, Hidden); x is the residual stream
	q, att   buffer // (rows, Heads·HeadDim)
	gate, up buffer // (rows, FFN)
	cos, sin buffer // (rows, HeadDim/2): RoPE tables at each row's position
}

// release frees the buffers that are allocated and forgets them.
func (a *layerActs) release() {
	for _, b := range []*buffer{&a.x, &a.h, &a.o, &a.q, &a.att, &a.gate, &a.up, &a.cos, &a.sin} {
		if *b != nil {
			(*b).release()
			*b = nil
		}
	}
}

// layerSeq is one sequence of the batch a decoder layer runs over: batch rows [row0, row0+n) at
// positions pos0 .. pos0+n-1, which attend to the pos0 positions before them and to each other
// (runtime.Seq). keys and vals are the layer's keys and values (pos0+n, KVDim) from position 0,
// RoPE applied to the keys; the layer writes rows pos0.. of them.
type layerSeq struct {
	row0, n, pos0 int
	keys, vals    ref
}

// projHook is encodeLayer's counterpart of runtime.Hook. It is called for every projection p of
// layer l after the matvecs of the projections sharing its input in (q, k, v; o; gate, up; down)
// and a barrier, so it sees their outputs, and before anything reads them. It may record
// dispatches that overwrite parts of p's output, and reports whether it recorded any (then
// encodeLayer adds a barrier once the group's hooks are done).
type projHook func(e encoder, l int, p runtime.Proj, in ref) bool

// encodeLayer records decoder layer l over the batch of seqs, whose rows are laid out one after
// another in a (runtime/qwen3.go, Model.layer, in the same order): the residual stream a.x
// (rows, Hidden) is updated in place and the new keys and values go to each sequence's keys and
// vals. hook, when not nil, runs after every projection, as runtime.Hook does on the CPU (the
// session passes none; RunFlipped applies its flips with it).
func (b *backend) encodeLayer(e encoder, l int, a *layerActs, seqs []layerSeq, hook projHook) {
	m, L := b.m, &b.layers[l]
	D, F, hd, eps := m.Hidden, m.FFN, m.HeadDim, m.RMSEps
	n := 0
	for _, s := range seqs {
		n += s.n
	}
	x, h, o := ref{a.x, 0}, ref{a.h, 0}, ref{a.o, 0}
	q, att := ref{a.q, 0}, ref{a.att, 0}
	gate, up := ref{a.gate, 0}, ref{a.up, 0}
	cos, sin := ref{a.cos, 0}, ref{a.sin, 0}
	pieces := kvPieces(seqs, m.KVDim())
	// after runs the hook over projections ps, which share the input in.
	after := func(in ref, ps ...runtime.Proj) {
		if hook == nil {
			return
		}
		some := false
		for _, p := range ps {
			if hook(e, l, p, in) {
				some = true
			}
		}
		if some {
			e.barrier()
		}
	}

	// Attention block: keys and values are written straight into the sequences' caches.
	encRMSNorm(e, x, L.attnNorm, h, n, D, eps) // h (n, Hidden)
	e.barrier()
	encMatVec(e, L.proj[runtime.ProjQ], h, n, q) // q (n, Heads·HeadDim)
	for _, p := range pieces {                   // k, v (p.n, KVDim) each
		encMatVec(e, L.proj[runtime.ProjK], h.at(p.row0*D), p.n, p.k)
		encMatVec(e, L.proj[runtime.ProjV], h.at(p.row0*D), p.n, p.v)
	}
	e.barrier()
	after(h, runtime.ProjQ, runtime.ProjK, runtime.ProjV)
	encRMSNorm(e, q, L.qNorm, q, n*m.Heads, hd, eps) // per head
	for _, p := range pieces {
		encRMSNorm(e, p.k, L.kNorm, p.k, p.n*m.KVHeads, hd, eps)
	}
	e.barrier()
	encRope(e, q, n, m.Heads, hd, cos, sin)
	for _, p := range pieces {
		encRope(e, p.k, p.n, m.KVHeads, hd, cos.at(p.row0*hd/2), sin.at(p.row0*hd/2))
	}
	e.barrier()
	for _, s := range seqs { // att (n, Heads·HeadDim)
		encAttention(e, q.at(s.row0*m.QDim()), s.keys, s.vals, att.at(s.row0*m.QDim()), s.n, s.pos0+s.n, m.Heads, m.KVHeads, hd)
	}
	e.barrier()
	encMatVec(e, L.proj[runtime.ProjO], att, n, o) // o (n, Hidden)
	e.barrier()
	after(att, runtime.ProjO)
	encAdd(e, x, o, n*D)
	e.barrier()

	// MLP block.
	encRMSNorm(e, x, L.ffnNorm, h, n, D, eps)
	e.barrier()
	encMatVec(e, L.proj[runtime.ProjGate], h, n, gate) // gate, up (n, FFN)
	encMatVec(e, L.proj[runtime.ProjUp], h, n, up)
	e.barrier()
	after(h, runtime.ProjGate, runtime.ProjUp)
	encSiluMul(e, gate, up, gate, n*F)
	e.barrier()
	encMatVec(e, L.proj[runtime.ProjDown], gate, n, o) // down (n, Hidden)
	e.barrier()
	after(gate, runtime.ProjDown)
	encAdd(e, x, o, n*D)
	e.barrier()
}

// kvPiece is a run of batch rows whose new keys and values are contiguous, so one dispatch
// writes them: one sequence, or consecutive sequences whose keys share a buffer end to end (the
// sequences of a RunFlipped batch without a KV cache).
type kvPiece struct {
	row0, n int
	k, v    ref // where the piece's first row of keys and values goes
}

// kvPieces groups the new rows of seqs into pieces, in order.
func kvPieces(seqs []layerSeq, kvDim int) []kvPiece {
	var out []kvPiece
	for _, s := range seqs {
		k, v := s.keys.at(s.pos0*kvDim), s.vals.at(s.pos0*kvDim)
		if i := len(out) - 1; i >= 0 {
			last := &out[i]
			if last.row0+last.n == s.row0 && last.k.at(last.n*kvDim) == k && last.v.at(last.n*kvDim) == v {
				last.n += s.n
				continue
			}
		}
		out = append(out, kvPiece{s.row0, s.n, k, v})
	}
	return out
}
