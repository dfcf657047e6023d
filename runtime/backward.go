package runtime

import (
	"errors"
	"fmt"

	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// The backward pass of the float forward (qwen3.go), for first-order flip sensitivity
// (docs/SENSITIVITY.md): for one sequence and a gradient of the loss with respect to the logits,
// every projection's input, output and output gradient, from which the effect of every
// candidate sign flip can be estimated at once. Per layer, backwards through
//
//	x1 = x0 + Wo·attention(rope(qnorm(Wq·h1)), rope(knorm(Wk·h1)), Wv·h1),  h1 = rmsnorm(x0)⊙attn_norm
//	x2 = x1 + Wdown·(silu(Wgate·h2) ⊙ Wup·h2),                              h2 = rmsnorm(x1)⊙ffn_norm
//
// the residual adds pass the gradient through, each projection y = x·Wᵀ sends dx = dy·W
// (cpu.MatMulT, weights packed), and the norms, RoPE, attention and SwiGLU have their backward
// kernels in cpu/grad.go. Two projections reading the same input (gate and up; q, k and v) add
// their input gradients, in a fixed order.

// ProjGrad is one projection of one layer in a backward pass, for the n tokens of the sequence.
type ProjGrad struct {
	Layer int
	Proj  Proj
	In    []float32 // (n, Cols): the projection's input in the forward pass
	Out   []float32 // (n, Rows): its output
	DOut  []float32 // (n, Rows): dL/dOut
	DIn   []float32 // (n, Cols): dL/dIn = DOut · W (through this projection only)
}

// Differentiator is an optional Backend capability: a backward pass on the device. Callers fall back to Model.Backward.
type Differentiator interface {
	Backward(tokens []int32, dlogits func(logits []float32) ([]float32, error), layers []int, visit func(ProjGrad)) error
}

// keepActivations bounds the memory a backward pass spends on keeping every layer's forward
// activations; past it, it keeps only each layer's input and runs the layer forward again when
// the backward reaches it (the same kernels, so the same bits). A variable for the tests.
var keepActivations int64 = 256 << 20

// activations are what the backward of one layer reads from its forward, for n tokens.
type activations struct {
	x0, h1 []float32 // (n, Hidden): the layer's input, attn-normed
	qr, q  []float32 // (n, Heads·HeadDim): q_proj's output; after the q norm and RoPE
	kr, k  []float32 // (n, KVHeads·HeadDim): k_proj's output; after the k norm and RoPE
	v      []float32 // (n, KVHeads·HeadDim)
	att, o []float32 // (n, Heads·HeadDim) attention output; (n, Hidden) o_proj's output
	x1, h2 []float32 // (n, Hidden): after the attention residual, ffn-normed
	g, u   []float32 // (n, FFN): gate_proj's and up_proj's outputs
	a      []float32 // (n, FFN): silu(g)⊙u, down_proj's input
	dn     []float32 // (n, Hidden): down_proj's output
}

func (m *Model) newActivations(n int) *activations {
	f := func(w int) []float32 { return make([]float32, n*w) }
	D, Q, KV, F := m.Hidden, m.QDim(), m.KVDim(), m.FFN
	return &activations{x0: f(D), h1: f(D), qr: f(Q), q: f(Q), kr: f(KV), k: f(KV), v: f(KV),
		att: f(Q), o: f(D), x1: f(D), h2: f(D), g: f(F), u: f(F), a: f(F), dn: f(D)}
}

// activationBytes is the size of one layer's activations for n tokens.
func (m *Model) activationBytes(n int) int64 {
	return 4 * int64(n) * int64(6*m.Hidden+3*m.QDim()+3*m.KVDim()+3*m.FFN)
}

// Backward runs tokens (one sequence, positions 0..n-1, no KV cache) forward in float32,
// keeping the activations, calls dlogits with the logits (n, Vocab) to get dL/dlogits (n, Vocab),
// then runs back through the LM head and the layers down to layers[0]'s input, calling visit for
// every projection of every layer in `layers` (descending layer order; within a layer the order
// down, up, gate, o, v, k, q). Slices passed to visit are valid only during the call. It uses the
// float kernels whatever m.Numerics says, and m.Threads goroutines; results do not depend on the
// thread count (fixed reduction orders).
//
// The backward stops at the lowest layer of layers (no gradient reaches the embedding); the
// logits are Model.Forward's under NumericsFloat, bit for bit. Logits that are NaN or infinite
// fail with a (wrapped) *LogitsError before dlogits is called.
func (m *Model) Backward(tokens []int32, dlogits func(logits []float32) ([]float32, error), layers []int, visit func(ProjGrad)) error {
	if err := m.checkTokens(tokens); err != nil {
		return fmt.Errorf("runtime: backward: %w", err)
	}
	n := len(tokens)
	if m.Context > 0 && n > m.Context {
		return fmt.Errorf("runtime: backward: %d tokens > context %d", n, m.Context)
	}
	if dlogits == nil {
		return errors.New("runtime: backward: no dlogits function")
	}
	if len(layers) == 0 {
		return errors.New("runtime: backward: no layers to visit")
	}
	want := make([]bool, len(m.Layers)) // the layers to visit
	lo := len(m.Layers)
	for _, l := range layers {
		if l < 0 || l >= len(m.Layers) {
			return fmt.Errorf("runtime: backward: layer %d out of range [0,%d)", l, len(m.Layers))
		}
		want[l], lo = true, min(lo, l)
	}
	w := m.workers()
	D := m.Hidden
	cos, sin := m.Rope.Tables(0, n) // (n, HeadDim/2), as NumericsFloat's kernels build them

	// Forward, keeping every layer's activations from lo up, or only their inputs if that would
	// take too much memory.
	keep := m.activationBytes(n)*int64(len(m.Layers)-lo) <= keepActivations
	acts := make([]*activations, len(m.Layers)) // kept layers' activations
	inputs := make([][]float32, len(m.Layers))  // (n, Hidden) per layer from lo, when not kept
	var scratch *activations
	if !keep {
		scratch = m.newActivations(n)
	}
	x := make([]float32, n*D) // (n, Hidden): the residual stream
	m.Embedding(tokens, x)
	for l := range m.Layers {
		a := scratch
		switch {
		case l >= lo && keep:
			acts[l] = m.newActivations(n)
			a = acts[l]
		case l >= lo:
			inputs[l] = append([]float32(nil), x...)
		case a == nil:
			a = m.newActivations(n) // layers below lo when everything above fits: one scratch
			scratch = a
		}
		m.layerForward(l, x, n, cos, sin, a)
	}
	hf := make([]float32, n*D) // (n, Hidden): rmsnorm(x)⊙output_norm, the LM head's input
	cpu.RMSNorm(hf, x, m.OutNorm, m.RMSEps)
	logits := make([]float32, n*m.Vocab) // (n, Vocab)
	w.MatMulShared([]*q1.Matrix{m.Output}, hf, n, [][]float32{logits})
	if err := CheckLogits(logits, m.Vocab, 0); err != nil {
		return fmt.Errorf("runtime: backward: %w", err)
	}
	dl, err := dlogits(logits)
	if err != nil {
		return fmt.Errorf("runtime: backward: dlogits: %w", err)
	}
	if len(dl) != n*m.Vocab {
		return fmt.Errorf("runtime: backward: dlogits returned %d values, want %d (%d tokens x vocab %d)",
			len(dl), n*m.Vocab, n, m.Vocab)
	}

	// Back through the LM head and the final norm: dx (n, Hidden) = dL/d(last layer's output).
	g := m.newGrads(n)
	dx := make([]float32, n*D)
	w.MatMulT(m.Output, dl, n, g.dh)
	cpu.RMSNormBackward(dx, x, m.OutNorm, g.dh, m.RMSEps)
	for l := len(m.Layers) - 1; l >= lo; l-- {
		a := acts[l]
		if a == nil { // run the layer again from its input
			a = scratch
			copy(x, inputs[l])
			m.layerForward(l, x, n, cos, sin, a)
		}
		v := visit
		if !want[l] || v == nil {
			v = func(ProjGrad) {}
		}
		m.layerBackward(l, n, a, dx, g, cos, sin, l > lo, v)
	}
	return nil
}

// layerForward is Model.layer for one sequence without a cache, with the float kernels in the
// same order (so the same bits), recording the activations in a. x (n, Hidden) is updated.
func (m *Model) layerForward(l int, x []float32, n int, cos, sin []float32, a *activations) {
	L := &m.Layers[l]
	w := m.workers()
	hd := m.HeadDim
	copy(a.x0, x)
	// Attention block.
	cpu.RMSNorm(a.h1, x, L.AttnNorm, m.RMSEps)
	w.MatMulShared([]*q1.Matrix{L.Proj[ProjQ], L.Proj[ProjK], L.Proj[ProjV]}, a.h1, n, [][]float32{a.qr, a.kr, a.v})
	cpu.RMSNorm(a.q, a.qr, L.QNorm, m.RMSEps) // per head: rows of HeadDim
	cpu.RMSNorm(a.k, a.kr, L.KNorm, m.RMSEps)
	cpu.ApplyRope(a.q, n, m.Heads, hd, cos, sin)
	cpu.ApplyRope(a.k, n, m.KVHeads, hd, cos, sin)
	w.ParallelFor(n*m.Heads, func(i int) {
		scratch := make([]float32, n)
		cpu.AttentionHead(a.att, a.q, a.k, a.v, i/m.Heads, i%m.Heads, n, n, m.Heads, m.KVHeads, hd, scratch)
	})
	w.MatMulShared([]*q1.Matrix{L.Proj[ProjO]}, a.att, n, [][]float32{a.o})
	cpu.Add(x, a.o)
	copy(a.x1, x)
	// MLP block.
	cpu.RMSNorm(a.h2, x, L.FFNNorm, m.RMSEps)
	w.MatMulShared([]*q1.Matrix{L.Proj[ProjGate], L.Proj[ProjUp]}, a.h2, n, [][]float32{a.g, a.u})
	cpu.SiluMul(a.a, a.g, a.u)
	w.MatMulShared([]*q1.Matrix{L.Proj[ProjDown]}, a.a, n, [][]float32{a.dn})
	cpu.Add(x, a.dn)
}

// grads are the gradient buffers of a backward pass over n tokens, reused by every layer.
type grads struct {
	dh, dinA, dinB []float32 // (n, Hidden): a norm's output gradient; two projections' DIn
	da, dg, du     []float32 // (n, FFN): d(silu(g)⊙u) (down's DIn), dgate, dup
	datt, dq       []float32 // (n, Heads·HeadDim): o's DIn; dq after RoPE, then q_proj's DOut
	dk, dv         []float32 // (n, KVHeads·HeadDim)
}

func (m *Model) newGrads(n int) *grads {
	f := func(w int) []float32 { return make([]float32, n*w) }
	D, Q, KV, F := m.Hidden, m.QDim(), m.KVDim(), m.FFN
	return &grads{dh: f(D), dinA: f(D), dinB: f(D), da: f(F), dg: f(F), du: f(F),
		datt: f(Q), dq: f(Q), dk: f(KV), dv: f(KV)}
}

// layerBackward turns dx (n, Hidden), the gradient of layer l's output, into the gradient of its
// input (if below is set; else dx is left half-way), showing each projection to visit.
func (m *Model) layerBackward(l, n int, a *activations, dx []float32, g *grads, cos, sin []float32, below bool, visit func(ProjGrad)) {
	L := &m.Layers[l]
	w := m.workers()
	hd := m.HeadDim
	// proj computes DIn = DOut·W into din and shows the projection to visit.
	proj := func(p Proj, in, out, dout, din []float32) {
		W := L.Proj[p]
		w.MatMulT(W, dout, n, din)
		visit(ProjGrad{Layer: l, Proj: p, In: in[:n*W.Cols], Out: out[:n*W.Rows], DOut: dout[:n*W.Rows], DIn: din[:n*W.Cols]})
	}

	// MLP block: x2 = x1 + Wdown·(silu(g)⊙u); the residual passes dx to x1 and to down's output.
	proj(ProjDown, a.a, a.dn, dx, g.da)
	cpu.SiluMulBackward(g.dg, g.du, g.da, a.g, a.u)
	proj(ProjUp, a.h2, a.u, g.du, g.dinA)
	proj(ProjGate, a.h2, a.g, g.dg, g.dinB)
	for i := range g.dh {
		g.dh[i] = g.dinA[i] + g.dinB[i]
	}
	cpu.RMSNormBackward(g.dh, a.x1, L.FFNNorm, g.dh, m.RMSEps)
	cpu.Add(dx, g.dh) // dx = dL/dx1

	// Attention block: x1 = x0 + Wo·att.
	proj(ProjO, a.att, a.o, dx, g.datt)
	w.AttentionBackward(g.dq, g.dk, g.dv, g.datt, a.q, a.k, a.v, n, m.Heads, m.KVHeads, hd)
	proj(ProjV, a.h1, a.v, g.dv, g.dinA)
	copy(g.dh, g.dinA)
	cpu.RopeBackward(g.dk, n, m.KVHeads, hd, cos, sin)
	cpu.RMSNormBackward(g.dk, a.kr, L.KNorm, g.dk, m.RMSEps)
	proj(ProjK, a.h1, a.kr, g.dk, g.dinB)
	cpu.Add(g.dh, g.dinB)
	cpu.RopeBackward(g.dq, n, m.Heads, hd, cos, sin)
	cpu.RMSNormBackward(g.dq, a.qr, L.QNorm, g.dq, m.RMSEps)
	proj(ProjQ, a.h1, a.qr, g.dq, g.dinA)
	if !below {
		return
	}
	cpu.Add(g.dh, g.dinA) // dh = dL/dh1, summed v, k, q
	cpu.RMSNormBackward(g.dh, a.x0, L.AttnNorm, g.dh, m.RMSEps)
	cpu.Add(dx, g.dh) // dx = dL/dx0
}
