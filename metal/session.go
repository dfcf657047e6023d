package metal

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"unsafe"

	"github.com/bankai-metal/bankai-metal/runtime"
)

// maxChunk is the most tokens one command buffer processes; longer inputs run in chunks, which
// continue the KV cache like single tokens do.
const maxChunk = 128

// session implements runtime.Session: a KV cache and activations in device buffers.
type session struct {
	b   *backend
	max int // context limit
	n   int // tokens in the cache
	mem *sessionMem
	// closed is set by Close; the session's memory is gone.
	closed bool
}

// sessionMem is the device memory of a session, released by Close or when the session is
// garbage-collected.
type sessionMem struct {
	kvCap int      // positions the cache buffers hold
	k, v  []buffer // per layer (kvCap, KVDim), RoPE applied to k

	actCap    int    // tokens the activation buffers hold
	tok       buffer // (actCap) int32
	layerActs        // x, h, o, q, att, gate, up, cos, sin (layer.go) with rows = actCap

	logitCap int    // rows the logits buffer holds
	logits   buffer // (logitCap, Vocab)
}

func (sm *sessionMem) release() {
	for _, b := range append(append([]buffer{}, sm.k...), sm.v...) {
		b.release()
	}
	sm.k, sm.v, sm.kvCap = nil, nil, 0
	sm.releaseActs()
	if sm.logits != nil {
		sm.logits.release()
		sm.logits, sm.logitCap = nil, 0
	}
}

func (sm *sessionMem) releaseActs() {
	if sm.tok != nil {
		sm.tok.release()
		sm.tok = nil
	}
	sm.layerActs.release()
	sm.actCap = 0
}

// NewSession implements runtime.Backend. Buffers grow on demand, so a long context limit costs
// nothing until used.
func (b *backend) NewSession(maxCtx int) (runtime.Session, error) {
	if b.closed {
		return nil, errClosed
	}
	if maxCtx <= 0 {
		return nil, fmt.Errorf("metal: context limit %d must be positive", maxCtx)
	}
	s := &session{b: b, max: maxCtx, mem: &sessionMem{}}
	goruntime.AddCleanup(s, func(sm *sessionMem) { sm.release() }, s.mem)
	return s, nil
}

// Close implements runtime.Session: it releases the session's device memory now rather than at
// garbage collection. It should come before the backend's Close, but after it is harmless too:
// the buffers are the session's own, and releasing them needs nothing the backend released.
func (s *session) Close() error {
	if !s.closed {
		s.closed = true
		s.mem.release()
	}
	return nil
}

// Len implements runtime.Session.
func (s *session) Len() int { return s.n }

// Max implements runtime.Session.
func (s *session) Max() int { return s.max }

// Truncate implements runtime.Session.
func (s *session) Truncate(n int) {
	if n < s.n {
		s.n = max(n, 0)
	}
}

// Forward implements runtime.Session: tokens run in chunks of at most maxChunk, each one
// command buffer; logits are read back for the last token, or for every token when all is set.
func (s *session) Forward(tokens []int32, all bool) ([]float32, error) {
	m := s.b.m
	if s.b.closed {
		return nil, errClosed
	}
	if s.closed {
		return nil, errors.New("metal: session is closed")
	}
	if len(tokens) == 0 {
		return nil, errors.New("metal: no tokens")
	}
	if s.n+len(tokens) > s.max {
		return nil, fmt.Errorf("metal: %w: %d tokens in cache + %d new > limit %d", runtime.ErrContextFull, s.n, len(tokens), s.max)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= m.Vocab {
			return nil, fmt.Errorf("metal: token %d at position %d out of range [0,%d)", t, i, m.Vocab)
		}
	}
	start, V := s.n, m.Vocab
	var out []float32
	if all {
		out = make([]float32, len(tokens)*V) // (len(tokens), Vocab)
	}
	for c0 := 0; c0 < len(tokens); c0 += maxChunk {
		chunk := tokens[c0:min(len(tokens), c0+maxChunk)]
		first, count := 0, 0 // rows of the chunk whose logits are wanted
		if all {
			count = len(chunk)
		} else if c0+len(chunk) == len(tokens) {
			first, count = len(chunk)-1, 1
		}
		if err := s.step(chunk, first, count); err != nil {
			s.n = start
			return nil, err
		}
		if count > 0 {
			lg := floats(s.mem.logits.bytes())[:count*V]
			if err := runtime.CheckLogits(lg, V, start+c0+first); err != nil {
				s.n = start
				return nil, err
			}
			if all {
				copy(out[c0*V:], lg)
			} else {
				out = append([]float32(nil), lg...)
			}
		}
	}
	return out, nil
}

// step runs one chunk of n tokens at positions s.n.. in one command buffer and commits them.
func (s *session) step(tokens []int32, first, count int) error {
	m, n, pos0 := s.b.m, len(tokens), s.n
	if err := s.grow(pos0+n, n, count); err != nil {
		return err
	}
	copy(int32s(s.mem.tok.bytes()), tokens)
	cos, sin := m.Rope.Tables(pos0, n) // (n, HeadDim/2) each, YaRN folded in
	copy(floats(s.mem.cos.bytes()), cos)
	copy(floats(s.mem.sin.bytes()), sin)
	if err := s.b.dev.run(func(e encoder) { s.encode(e, n, pos0, first, count) }); err != nil {
		return err
	}
	s.n += n
	return nil
}

// encode records the forward pass of n tokens at positions pos0.. (runtime/qwen3.go, in the
// same order), with logits for rows [first, first+count) of the chunk.
func (s *session) encode(e encoder, n, pos0, first, count int) {
	b, m, sm := s.b, s.b.m, s.mem
	D := m.Hidden
	x := ref{sm.x, 0}
	encEmbed(e, b.embed, ref{sm.tok, 0}, n, x) // x (n, Hidden)
	e.barrier()
	for l := range m.Layers {
		// One sequence; its keys and values (pos0+n, KVDim) are the cache itself.
		seq := []layerSeq{{row0: 0, n: n, pos0: pos0, keys: ref{sm.k[l], 0}, vals: ref{sm.v[l], 0}}}
		b.encodeLayer(e, l, &sm.layerActs, seq, nil)
	}
	if count > 0 {
		encRMSNorm(e, x.at(first*D), b.outNorm, ref{sm.h, 0}, count, D, m.RMSEps)
		e.barrier()
		encMatVec(e, b.output, ref{sm.h, 0}, count, ref{sm.logits, 0}) // (count, Vocab)
	}
}

// grow makes room for ctx positions in the cache, n tokens of activations and count rows of
// logits. The cache keeps its first s.n positions.
func (s *session) grow(ctx, n, count int) error {
	m, sm, d := s.b.m, s.mem, s.b.dev
	if ctx > sm.kvCap {
		newCap := min(s.max, max(ctx, 2*sm.kvCap, 64))
		row := 4 * m.KVDim()
		k, v := make([]buffer, len(m.Layers)), make([]buffer, len(m.Layers))
		for l := range m.Layers {
			var err error
			if k[l], err = d.newBuffer(newCap * row); err == nil {
				v[l], err = d.newBuffer(newCap * row)
			}
			if err != nil {
				for _, b := range append(k, v...) {
					if b != nil {
						b.release()
					}
				}
				return fmt.Errorf("metal: KV cache of %d positions: %w", newCap, err)
			}
		}
		for l := range sm.k { // keep the positions the cache holds
			copy(k[l].bytes(), sm.k[l].bytes()[:s.n*row])
			copy(v[l].bytes(), sm.v[l].bytes()[:s.n*row])
			sm.k[l].release()
			sm.v[l].release()
		}
		sm.k, sm.v, sm.kvCap = k, v, newCap
	}
	if n > sm.actCap {
		sm.releaseActs()
		c := min(maxChunk, max(n, 2*sm.actCap, 1))
		if err := allocAll(d, []bufSpec{{&sm.tok, c}, {&sm.cos, c * m.HeadDim / 2}, {&sm.sin, c * m.HeadDim / 2},
			{&sm.x, c * m.Hidden}, {&sm.h, c * m.Hidden}, {&sm.o, c * m.Hidden},
			{&sm.q, c * m.QDim()}, {&sm.att, c * m.QDim()}, {&sm.gate, c * m.FFN}, {&sm.up, c * m.FFN}}, sm.releaseActs); err != nil {
			return fmt.Errorf("metal: activations for %d tokens: %w", c, err)
		}
		sm.actCap = c
	}
	if count > sm.logitCap {
		if sm.logits != nil {
			sm.logits.release()
			sm.logits, sm.logitCap = nil, 0
		}
		b, err := d.newBuffer(4 * count * m.Vocab)
		if err != nil {
			return fmt.Errorf("metal: logits for %d tokens: %w", count, err)
		}
		sm.logits, sm.logitCap = b, count
	}
	return nil
}

// int32s views a buffer's bytes as int32 values.
func int32s(b []byte) []int32 {
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
