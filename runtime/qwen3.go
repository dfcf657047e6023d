package runtime

import (
	"errors"
	"fmt"

	"github.com/bankai-metal/bankai-metal/patch"
	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The Qwen3 architecture: its hyper-parameters, its weights and how a file's tensors bind to
// them, then the forward pass on the CPU, in the order of the maths (docs/FORMATS.md §7):
//
//	x = embed[token]
//	per layer:  h = rmsnorm(x)⊙attn_norm;  q,k,v = Wq·h, Wk·h, Wv·h
//	            q,k = rmsnorm per head ⊙ q_norm / k_norm;  RoPE(q), RoPE(k)  (NeoX, YaRN if declared)
//	            x += Wo · attention(q, k, v)                                 (causal GQA)
//	            h = rmsnorm(x)⊙ffn_norm;  x += Wdown · (silu(Wgate·h) ⊙ Wup·h)
//	logits = Wout · (rmsnorm(x)⊙output_norm)
//
// A file format (load.go) supplies only a Config, what its file declares for validate, and a
// lookup of the tensors below by the names it gives them.

// Config holds the hyper-parameters of a Qwen3 model. Each field names its Hugging Face
// config.json key and the GGUF metadata key it is read from.
type Config struct {
	Arch    string   // model_type (GGUF general.architecture): "qwen3"
	NLayers int      // num_hidden_layers (GGUF qwen3.block_count)
	Hidden  int      // hidden_size (GGUF qwen3.embedding_length)
	FFN     int      // intermediate_size (GGUF qwen3.feed_forward_length)
	Heads   int      // num_attention_heads (GGUF qwen3.attention.head_count)
	KVHeads int      // num_key_value_heads (GGUF qwen3.attention.head_count_kv); Heads if absent
	HeadDim int      // head_dim (GGUF qwen3.attention.key_length); Hidden/Heads if absent
	Vocab   int      // rows of the embedding (config.json vocab_size may declare more)
	Context int      // max_position_embeddings (GGUF qwen3.context_length); 0 if unknown
	RMSEps  float32  // rms_norm_eps (GGUF qwen3.attention.layer_norm_rms_epsilon)
	Rope    cpu.Rope // rope_theta, rope_scaling.* (GGUF qwen3.rope.freq_base, qwen3.rope.scaling.*)
	Tied    bool     // tie_word_embeddings (GGUF: no output.weight): the LM head is the embedding
}

// QDim is the width of the query projection (Heads·HeadDim; not always Hidden).
func (c Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is the width of the key and value projections.
func (c Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Proj names a projection of a decoder layer, by its Hugging Face name.
type Proj int

// The seven projections of a Qwen3 layer, in the order of patch's one list of their names.
const (
	ProjQ Proj = iota
	ProjK
	ProjV
	ProjO
	ProjGate
	ProjUp
	ProjDown
	NumProj
)

// The projection list is patch's; the enum must match it.
var _ [NumProj]struct{} = [patch.NumProj]struct{}{}

// String is the Hugging Face name of the projection ("up_proj").
func (p Proj) String() string { return patch.ProjName(int(p)) }

// GGUFName is the GGUF tensor stem of the projection ("ffn_up").
func (p Proj) GGUFName() string { return patch.ProjGGUF(int(p)) }

// ParseProj accepts a Hugging Face name (up_proj) or a GGUF name (ffn_up).
func ParseProj(s string) (Proj, error) {
	i, err := patch.ProjIndex(s)
	return Proj(i), err
}

// projShape returns the (rows, cols) of a projection: (out, in).
func (c Config) projShape(p Proj) (rows, cols int) {
	switch p {
	case ProjQ:
		return c.QDim(), c.Hidden
	case ProjK, ProjV:
		return c.KVDim(), c.Hidden
	case ProjO:
		return c.Hidden, c.QDim()
	case ProjGate, ProjUp:
		return c.FFN, c.Hidden
	}
	return c.Hidden, c.FFN
}

// Layer holds the weights of one decoder layer.
type Layer struct {
	AttnNorm []float32           // (Hidden)
	QNorm    []float32           // (HeadDim)
	KNorm    []float32           // (HeadDim)
	FFNNorm  []float32           // (Hidden)
	Proj     [NumProj]*q1.Matrix // (rows, cols) of projShape
}

// role says what a tensor of the layout is for.
type role int

// The roles, with the shape each tensor has.
const (
	roleEmbed    role = iota // (Vocab, Hidden)
	roleAttnNorm             // per layer (Hidden)
	roleQNorm                // per layer (HeadDim), shared by every head
	roleKNorm                // per layer (HeadDim)
	roleFFNNorm              // per layer (Hidden)
	roleProj                 // per layer, one of the seven projections (projShape)
	roleOutNorm              // (Hidden)
	roleOutput               // (Vocab, Hidden); absent when tied to the embedding
	numRoles
)

// weight names one tensor of the layout the way the architecture sees it.
type weight struct {
	layer int // decoder layer; -1 for the embedding, the output norm and the LM head
	role  role
	proj  Proj // for roleProj
}

// naming is how a format names the tensors of the layout: its one per-format table.
type naming struct {
	layer string            // prefix of a layer's tensors, %d for the layer: "blk.%d."
	stem  [numRoles]string  // the stem of each role but roleProj: "attn_norm"
	proj  func(Proj) string // the stem of a projection: "ffn_up"
}

// name returns the file's name of w: "blk.3.ffn_up.weight", "model.norm.weight".
func (n naming) name(w weight) string {
	stem := n.stem[w.role]
	if w.role == roleProj {
		stem = n.proj(w.proj)
	}
	if w.layer < 0 {
		return stem + ".weight"
	}
	return fmt.Sprintf(n.layer, w.layer) + stem + ".weight"
}

// tensors is what a format supplies to bind: its tensors, looked up by the layout's names. The
// errors name the tensor as the file does ("missing tensor blk.3.ffn_up.weight").
type tensors interface {
	// name is the file's name for w, for messages.
	name(w weight) string
	// matrix returns the 1-bit matrix w, checked to be (rows, cols); rows < 0 accepts any.
	// An LM head the file leaves out to tie it to the embedding is nil with no error.
	matrix(w weight, rows, cols int) (*q1.Matrix, error)
	// vector returns the norm weights w, checked to hold n values.
	vector(w weight, n int) ([]float32, error)
}

// bind builds the model c describes from a format's tensors, walking the layout once in the
// order of the maths (the embedding, each layer's norms and projections, the output norm and
// the LM head), then validates it against what the file declared. The matrices stay packed,
// aliasing the file mapping.
func bind(c Config, d declared, ts tensors) (*Model, error) {
	m := &Model{Config: c}
	global := func(r role) weight { return weight{layer: -1, role: r} }
	var err error
	if m.Embed, err = ts.matrix(global(roleEmbed), -1, c.Hidden); err != nil {
		return nil, err
	}
	m.Vocab = m.Embed.Rows
	// Grow the layers as their tensors are found: a block count far past what the file holds
	// fails at the first missing tensor instead of allocating for it.
	for l := 0; l < c.NLayers; l++ {
		m.Layers = append(m.Layers, Layer{})
		if err := m.bindLayer(l, ts); err != nil {
			return nil, err
		}
	}
	if m.OutNorm, err = norm(ts, global(roleOutNorm), c.Hidden); err != nil {
		return nil, err
	}
	if m.Output, err = ts.matrix(global(roleOutput), m.Vocab, c.Hidden); err != nil {
		return nil, err
	}
	if m.Output == nil {
		m.Output, m.Tied = m.Embed, true
	}
	if err := m.validate(d); err != nil {
		return nil, err
	}
	return m, nil
}

// bindLayer binds the four norms and the seven projections of layer l.
func (m *Model) bindLayer(l int, ts tensors) error {
	L := &m.Layers[l]
	var err error
	for _, v := range []struct {
		dst *[]float32
		r   role
		n   int
	}{{&L.AttnNorm, roleAttnNorm, m.Hidden}, {&L.QNorm, roleQNorm, m.HeadDim},
		{&L.KNorm, roleKNorm, m.HeadDim}, {&L.FFNNorm, roleFFNNorm, m.Hidden}} {
		if *v.dst, err = norm(ts, weight{layer: l, role: v.r}, v.n); err != nil {
			return err
		}
	}
	for p := Proj(0); p < NumProj; p++ {
		rows, cols := m.projShape(p)
		if L.Proj[p], err = ts.matrix(weight{layer: l, role: roleProj, proj: p}, rows, cols); err != nil {
			return err
		}
	}
	return nil
}

// norm looks up the norm weights w (n) and checks that they are finite.
func norm(ts tensors, w weight, n int) ([]float32, error) {
	v, err := ts.vector(w, n)
	if err != nil {
		return nil, err
	}
	return v, finiteVector(ts.name(w), v)
}

// checkTokens checks that tokens is not empty and that every id has a row in the embedding.
func (m *Model) checkTokens(tokens []int32) error {
	if len(tokens) == 0 {
		return errors.New("no tokens")
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= m.Vocab {
			return fmt.Errorf("token %d at position %d out of range [0,%d)", t, i, m.Vocab)
		}
	}
	return nil
}

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
		kern.matMul(m.workers(), ms, in, n, outs)
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
		m.workers().ParallelFor(s.N*m.Heads, func(i int) {
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
	kern.matMul(m.workers(), []*q1.Matrix{m.Output}, h, n, [][]float32{out})
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
