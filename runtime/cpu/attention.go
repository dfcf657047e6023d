package cpu

import "math"

// Attention computes causal grouped-query attention for n new queries.
//
// q is (n, heads, dim); k and v are (ctx, kvHeads, dim) and hold every key and value up to and
// including the new positions, which are ctx-n .. ctx-1. Query head h reads kv head
// h / (heads/kvHeads). For query p at position pos = ctx-n+p:
//
//	score_t = (q·k_t) / sqrt(dim) for t ≤ pos;  o = Σ_t softmax(score)_t · v_t
//
// The softmax subtracts the max, exponentiates in float32 and sums in float64. out is
// (n, heads, dim). scratch needs ctx floats.
func Attention(out, q, k, v []float32, n, ctx, heads, kvHeads, dim int, scratch []float32) {
	for p := 0; p < n; p++ {
		for h := 0; h < heads; h++ {
			AttentionHead(out, q, k, v, p, h, n, ctx, heads, kvHeads, dim, scratch)
		}
	}
}

// AttentionHead computes query p, head h of Attention (same arguments); every (p, h) is
// independent, so callers may run them in parallel with their own scratch.
func AttentionHead(out, q, k, v []float32, p, h, n, ctx, heads, kvHeads, dim int, scratch []float32) {
	group := heads / kvHeads
	scale := float32(1 / math.Sqrt(float64(dim)))
	kvw := kvHeads * dim
	last := ctx - n + p // attends to t in [0, last]
	qh := q[(p*heads+h)*dim : (p*heads+h+1)*dim]
	kh := h / group
	sc := scratch[:last+1]
	inv := softmaxWeights(sc, qh, k, kh, kvw, dim, scale)
	o := out[(p*heads+h)*dim : (p*heads+h+1)*dim]
	clear(o)
	for t, e := range sc {
		w := e * inv
		vt := v[t*kvw+kh*dim : t*kvw+(kh+1)*dim]
		for i, x := range vt {
			o[i] += w * x
		}
	}
}

// softmaxWeights writes into w (one per key 0..len(w)-1) the unnormalised attention weights
// exp(s_t − max s) of query qh against the keys of kv head kh in k (rows of kvw floats), with
// s_t = (qh·k_t)·scale, and returns 1/Σ_t w_t (summed in float64). The forward pass and its
// backward share it, so both see the same bits.
func softmaxWeights(w, qh, k []float32, kh, kvw, dim int, scale float32) float32 {
	mx := float32(math.Inf(-1))
	for t := range w {
		kt := k[t*kvw+kh*dim : t*kvw+(kh+1)*dim]
		var s float32
		for i, x := range qh {
			s += x * kt[i]
		}
		s *= scale
		w[t] = s
		mx = max(mx, s)
	}
	var sum float64
	for t, s := range w {
		e := float32(math.Exp(float64(s - mx)))
		w[t] = e
		sum += float64(e)
	}
	return float32(1 / sum)
}
