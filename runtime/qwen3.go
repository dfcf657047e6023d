package runtime

import (
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The Qwen3 forward pass on the CPU, in the order of the maths (docs/FORMATS.md §7):
//
//	x = embed[token]
//	per layer:  h = rmsnorm(x)⊙attn_norm;  q,k,v = Wq·h, Wk·h, Wv·h
//	            q,k = rmsnorm per head ⊙ q_norm / k_norm;  RoPE(q), RoPE(k)  (NeoX, YaRN if declared)
//	            x += Wo · attention(q, k, v)                                 (causal GQA)
//	            h = rmsnorm(x)⊙ffn_norm;  x += Wdown · (silu(Wgate·h) ⊙ Wup·h)
//	logits = Wout · (rmsnorm(x)⊙output_norm)

// Hook is called after every projection's matmul of a layer with its input (n, cols) and its
// output (n, rows), which it may edit in place. The search uses it to score a flip without
// rewriting weights; a tracer uses it to record activations.
type Hook func(layer int, p Proj, in, out []float32, n int)

// Seq is one sequence of a batch: N new tokens, laid out consecutively in the activations.
// With a Cache the tokens continue it (positions Cache.Len()...) and their keys are appended;
// without one they are positions 0..N-1 and attend only to each other.
type Seq struct {
	N     int
	Cache *KVCache
}

// Embedding writes the embedding rows of tokens into x (len(tokens), Hidden).
func (m *Model) Embedding(tokens []int32, x []float32) {
	for i, t := range tokens {
		m.Embed.DequantRow(int(t), x[i*m.Hidden:(i+1)*m.Hidden])
	}
}

// RunLayers runs layers [from, to) over the residual stream x (Σ seq.N, Hidden) in place.
// Caches are appended but not committed: call Commit on them when the pass is done.
func (m *Model) RunLayers(from, to int, x []float32, seqs []Seq, hook Hook) {
	n := 0
	for _, s := range seqs {
		n += s.N
	}
	b := newBuffers(m, n)
	for _, s := range seqs { // RoPE tables once per sequence, shared by every layer
		pos0 := 0
		if s.Cache != nil {
			pos0 = s.Cache.Len()
		}
		cos, sin := m.Numerics.kernels().ropeTables(m.Rope, pos0, s.N)
		b.cos, b.sin = append(b.cos, cos), append(b.sin, sin)
	}
	for l := from; l < to; l++ {
		m.layer(l, x, n, seqs, hook, b)
	}
}

// Commit records that the cache now holds n more tokens (after RunLayers over every layer).
func (c *KVCache) Commit(n int) { c.n += n }

// layer applies decoder layer l to x (n, Hidden).
func (m *Model) layer(l int, x []float32, n int, seqs []Seq, hook Hook, b *buffers) {
	L := &m.Layers[l]
	D, hd := m.Hidden, m.HeadDim
	kern := m.Numerics.kernels()
	// matmul runs projections that share their input (q, k, v; gate, up) in one pass over the
	// input's lookup tables, then shows each output to the hook.
	matmul := func(in []float32, ps []Proj, outs ...[]float32) {
		ms := make([]*q1.Matrix, len(ps))
		for i, p := range ps {
			ms[i] = L.Proj[p]
		}
		kern.matMul(ms, in, n, outs)
		if hook != nil {
			for i, p := range ps {
				hook(l, p, in[:n*ms[i].Cols], outs[i][:n*ms[i].Rows], n)
			}
		}
	}

	// Attention block.
	kern.rmsNorm(b.h, x[:n*D], L.AttnNorm, m.RMSEps) // h (n, Hidden)
	// q (n, Heads·HeadDim), k and v (n, KVHeads·HeadDim)
	matmul(b.h, []Proj{ProjQ, ProjK, ProjV}, b.q, b.k, b.v)
	kern.rmsNorm(b.q, b.q, L.QNorm, m.RMSEps) // per head: rows of HeadDim
	kern.rmsNorm(b.k, b.k, L.KNorm, m.RMSEps)
	row := 0
	for si, s := range seqs {
		pos0 := 0
		if s.Cache != nil {
			pos0 = s.Cache.Len()
		}
		q := b.q[row*m.QDim() : (row+s.N)*m.QDim()]
		k := b.k[row*m.KVDim() : (row+s.N)*m.KVDim()]
		v := b.v[row*m.KVDim() : (row+s.N)*m.KVDim()]
		kern.applyRope(q, s.N, m.Heads, hd, b.cos[si], b.sin[si])
		kern.applyRope(k, s.N, m.KVHeads, hd, b.cos[si], b.sin[si])
		keys, vals := k, v
		if s.Cache != nil {
			keys, vals = s.Cache.appendLayer(l, k, v)
		}
		ctx := pos0 + s.N
		att := b.att[row*m.QDim() : (row+s.N)*m.QDim()]
		// every (query, head) pair is independent: spread them over the threads
		cpu.ParallelFor(s.N*m.Heads, func(i int) {
			scratch := make([]float32, ctx)
			kern.attentionHead(att, q, keys, vals, i/m.Heads, i%m.Heads, s.N, ctx, m.Heads, m.KVHeads, hd, scratch)
		})
		row += s.N
	}
	matmul(b.att, []Proj{ProjO}, b.o) // o (n, Hidden)
	cpu.Add(x[:n*D], b.o[:n*D])

	// MLP block.
	kern.rmsNorm(b.h, x[:n*D], L.FFNNorm, m.RMSEps)
	matmul(b.h, []Proj{ProjGate, ProjUp}, b.gate, b.up) // gate, up (n, FFN)
	kern.siluMul(b.gate[:n*m.FFN], b.gate, b.up)
	matmul(b.gate, []Proj{ProjDown}, b.o) // down (n, Hidden)
	cpu.Add(x[:n*D], b.o[:n*D])
}

// Logits computes the LM head for rows of x (n, Hidden): out is (n, Vocab).
func (m *Model) Logits(x []float32, n int, out []float32) {
	kern := m.Numerics.kernels()
	h := make([]float32, n*m.Hidden) // (n, Hidden)
	kern.rmsNorm(h, x[:n*m.Hidden], m.OutNorm, m.RMSEps)
	kern.matMul([]*q1.Matrix{m.Output}, h, n, [][]float32{out})
}

// buffers are the activations of one pass over n tokens.
type buffers struct {
	h, o     []float32   // (n, Hidden)
	q, att   []float32   // (n, Heads·HeadDim)
	k, v     []float32   // (n, KVHeads·HeadDim)
	gate, up []float32   // (n, FFN)
	cos, sin [][]float32 // per sequence (N, HeadDim/2)
}

func newBuffers(m *Model, n int) *buffers {
	f := func(w int) []float32 { return make([]float32, n*w) }
	return &buffers{h: f(m.Hidden), o: f(m.Hidden), q: f(m.QDim()), att: f(m.QDim()),
		k: f(m.KVDim()), v: f(m.KVDim()), gate: f(m.FFN), up: f(m.FFN)}
}

// Forward runs tokens through the model after what the cache holds, commits them to the
// cache and returns the logits of the last token (Vocab), or of every token (n, Vocab) if all.
// Logits that are NaN or infinite fail with a *LogitsError and leave the cache as it was.
func (m *Model) Forward(c *KVCache, tokens []int32, all bool) ([]float32, error) {
	if err := c.check(len(tokens)); err != nil {
		return nil, err
	}
	if err := m.checkTokens(tokens); err != nil {
		return nil, err
	}
	n, pos0 := len(tokens), c.Len()
	x := make([]float32, n*m.Hidden) // (n, Hidden): the residual stream
	m.Embedding(tokens, x)
	m.RunLayers(0, len(m.Layers), x, []Seq{{N: n, Cache: c}}, nil)
	rows, first := n, pos0
	if !all {
		x = x[(n-1)*m.Hidden:]
		rows, first = 1, pos0+n-1
	}
	out := make([]float32, rows*m.Vocab) // (rows, Vocab)
	m.Logits(x, rows, out)
	if err := CheckLogits(out, m.Vocab, first); err != nil {
		return nil, err // not committed: the keys appended by RunLayers are overwritten next time
	}
	c.Commit(n)
	return out, nil
}
