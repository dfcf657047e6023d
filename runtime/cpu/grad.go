package cpu

import "math"

// Backward kernels: the gradients of the float forward kernels (RMSNorm, ApplyRope,
// AttentionHead, SiluMul) with respect to their inputs, in float32 with float64 reductions.
// Each is deterministic: its sums run in a fixed order whatever the thread count.

// RMSNormBackward writes dx, the gradient with respect to x of y = RMSNorm(x, w), given dy, for
// each of the len(x)/len(w) rows of x. Per row of width N, with r = 1/sqrt(mean(x²)+eps):
//
//	y_i = x_i·r·w_i,  ∂r/∂x_j = −r³·x_j/N
//	dx_j = r·w_j·dy_j − x_j·r³·mean(x⊙w⊙dy)
//
// r and the mean are computed in float64. dx may alias dy (not x).
func RMSNormBackward(dx, x, w, dy []float32, eps float32) {
	n := len(w)
	for o := 0; o+n <= len(x); o += n {
		row, g := x[o:o+n], dy[o:o+n]
		var ss, dot float64
		for i, v := range row {
			ss += float64(v) * float64(v)
			dot += float64(v) * float64(w[i]) * float64(g[i])
		}
		r := 1 / math.Sqrt(ss/float64(n)+float64(eps))
		rs := float32(r)
		c := float32(r * r * r * dot / float64(n))
		dst := dx[o : o+n]
		for i, v := range row {
			dst[i] = rs*w[i]*g[i] - v*c
		}
	}
}

// RopeBackward turns dy, the gradient of ApplyRope's output, into the gradient of its input, in
// place, with the same tables: dx = Rᵀ·dy for the rotation (times mscale) R of each pair,
//
//	dx[i] = dy[i]·cos θ_i + dy[i+Dim/2]·sin θ_i,  dx[i+Dim/2] = −dy[i]·sin θ_i + dy[i+Dim/2]·cos θ_i
//
// (the transpose, not the inverse: cos and sin include YaRN's mscale). dy is (n, heads, dim).
func RopeBackward(dy []float32, n, heads, dim int, cos, sin []float32) {
	half := dim / 2
	for p := 0; p < n; p++ {
		c := cos[p*half : (p+1)*half]
		s := sin[p*half : (p+1)*half]
		for h := 0; h < heads; h++ {
			v := dy[(p*heads+h)*dim : (p*heads+h+1)*dim]
			for i := 0; i < half; i++ {
				a, b := v[i], v[i+half]
				v[i] = a*c[i] + b*s[i]
				v[i+half] = -a*s[i] + b*c[i]
			}
		}
	}
}

// SiluMulBackward computes the gradients of a = silu(gate)·up given da:
//
//	dup = da·silu(gate),  dgate = da·up·silu'(gate),  silu'(g) = σ(g)·(1 + g·(1−σ(g)))
//
// dgate and dup may alias da (all three are read before either is written, index by index).
func SiluMulBackward(dgate, dup, da, gate, up []float32) {
	up, dgate, dup = up[:len(gate)], dgate[:len(gate)], dup[:len(gate)]
	da = da[:len(gate)]
	for i, g := range gate {
		sg := 1 / (1 + float32(math.Exp(float64(-g))))
		d, u := da[i], up[i]
		dup[i] = d * (g * sg)
		dgate[i] = d * u * (sg * (1 + g*(1-sg)))
	}
}

// AttentionBackward computes the gradients of causal GQA self-attention over one sequence
// (Attention with ctx = n: query p attends to positions 0..p). q and dq are (n, heads, dim);
// k, v, dk and dv are (n, kvHeads, dim); dout, the gradient of the output, is (n, heads, dim).
// With s_pt = q_p·k_t/sqrt(dim), P = softmax_t(s) and o_p = Σ_t P_pt·v_t:
//
//	dP_pt = dout_p·v_t,  ds_pt = P_pt·(dP_pt − Σ_u P_pu·dP_pu)
//	dq_p = Σ_t ds_pt·k_t/sqrt(dim)
//	dk_t = Σ_{p≥t} Σ_{h→kv} ds_pt·q_p/sqrt(dim),  dv_t = Σ_{p≥t} Σ_{h→kv} P_pt·dout_p
//
// the last two summed over the query heads h that share the kv head. P is recomputed as the
// forward does (float32 exponentials, float64 sum). One kv head at a time: first every (p, h) of
// its group in parallel (P, ds and dq), then every key t in parallel (dk, dv), each summed over
// p in order then h in order, so the bits do not depend on w. Scratch: 2·n²·heads/kvHeads floats.
func (w Workers) AttentionBackward(dq, dk, dv, dout, q, k, v []float32, n, heads, kvHeads, dim int) {
	group := heads / kvHeads
	scale := float32(1 / math.Sqrt(float64(dim)))
	kvw := kvHeads * dim
	// P and ds of the group's (p, j) pairs: (n, group, n), row (p, j) valid for t ≤ p
	pBuf := make([]float32, n*group*n)
	dsBuf := make([]float32, n*group*n)
	nt := w.count()
	if n*n*group*dim < minParallelWork {
		nt = 1
	}
	for kh := 0; kh < kvHeads; kh++ {
		parallelFor(nt, n*group, func(i int) {
			p, j := i/group, i%group
			h := kh*group + j
			qh := q[(p*heads+h)*dim : (p*heads+h+1)*dim]
			do := dout[(p*heads+h)*dim : (p*heads+h+1)*dim]
			P := pBuf[i*n : i*n+p+1]
			ds := dsBuf[i*n : i*n+p+1]
			inv := softmaxWeights(P, qh, k, kh, kvw, dim, scale)
			var dot float64 // Σ_t P_t·dP_t
			for t := range P {
				P[t] *= inv
				vt := v[t*kvw+kh*dim : t*kvw+(kh+1)*dim]
				var dp float32
				for c, x := range do {
					dp += x * vt[c]
				}
				ds[t] = dp
				dot += float64(P[t]) * float64(dp)
			}
			d := float32(dot)
			dqh := dq[(p*heads+h)*dim : (p*heads+h+1)*dim]
			clear(dqh)
			for t := range ds {
				ds[t] = P[t] * (ds[t] - d)
				c := ds[t] * scale
				kt := k[t*kvw+kh*dim : t*kvw+(kh+1)*dim]
				for i, x := range kt {
					dqh[i] += c * x
				}
			}
		})
		parallelFor(nt, n, func(t int) {
			dkt := dk[t*kvw+kh*dim : t*kvw+(kh+1)*dim]
			dvt := dv[t*kvw+kh*dim : t*kvw+(kh+1)*dim]
			clear(dkt)
			clear(dvt)
			for p := t; p < n; p++ {
				for j := 0; j < group; j++ {
					i := p*group + j
					h := kh*group + j
					c, pt := dsBuf[i*n+t]*scale, pBuf[i*n+t]
					qh := q[(p*heads+h)*dim : (p*heads+h+1)*dim]
					do := dout[(p*heads+h)*dim : (p*heads+h+1)*dim]
					for i := range dkt {
						dkt[i] += c * qh[i]
						dvt[i] += pt * do[i]
					}
				}
			}
		})
	}
}
