package cpu

import "math"

// The float32 kernels below reproduce the rest of llama.cpp's x86 CPU forward pass (ggml built
// for an AVX-512 machine with GCC, which contracts a·b ± c·d into fma(a, b, ±c·d)) to the last
// bit. TestLlamaIntermediates in package runtime checks each against llama.cpp's own tensors.

// RMSNormLlama is RMSNorm as ggml computes it: the float32 squares summed in float64,
// mean = float32(sum/n), scale = 1/sqrtf(mean + eps) in float32, out = (x·scale)·w.
// x and out are (rows, len(w)); out may alias x.
func RMSNormLlama(out, x, w []float32, eps float32) {
	n := len(w)
	for o := 0; o+n <= len(x); o += n {
		var sum float64
		for _, v := range x[o : o+n] {
			sum += float64(float32(v * v))
		}
		mean := float32(sum / float64(n))
		scale := 1 / float32(math.Sqrt(float64(mean+eps))) // sqrtf is correctly rounded
		for i, v := range x[o : o+n] {
			out[o+i] = float32(v*scale) * w[i]
		}
	}
}

// expLlama is ggml's vectorised expf (ggml_v_expf, after Arm's optimized-routines expf) as
// compiled for AVX-512: n = round(x·log2 e), b = x − n·ln2 (ln2 in two parts, fused), a
// degree-5 polynomial p(b) ≈ e^b evaluated in Estrin form with FMAs, then p·2^n. It is within
// ~1.5 ulp of e^x, not correctly rounded, which is why it has to be emulated.
func expLlama(x float32) float32 {
	const (
		shift = 0x1.8p23
		log2e = 0x1.715476p+0
		ln2hi = 0x1.62e4p-1
		ln2lo = 0x1.7f7d1cp-20
		c1    = 0x1.ffffecp-1
		c2    = 0x1.fffdb6p-2
		c3    = 0x1.555e66p-3
		c4    = 0x1.573e2ep-5
		c5    = 0x1.0e4020p-7
	)
	z := fma32(x, log2e, shift)
	n := z - shift // x·log2 e rounded to an integer
	b := fma32(-n, ln2lo, fma32(-n, ln2hi, x))
	u := float32(b * b)
	j := fma32(fma32(fma32(c5, b, c4), u, fma32(c3, b, c2)), u, fma32(c1, b, 1))
	if abs32(n) > 192 { // under- or overflow
		if n <= 0 {
			return 0
		}
		return float32(math.Inf(1))
	}
	return float32(math.Ldexp(float64(j), int(n))) // vscalefps: exact but for subnormals
}

// SiluMulLlama computes out = silu(gate)·up with silu(g) = g / (1 + expLlama(−g)), as ggml's
// SWIGLU does on AVX-512 (for lengths that are multiples of 16). out may alias gate or up.
func SiluMulLlama(out, gate, up []float32) {
	up = up[:len(gate)]
	out = out[:len(gate)]
	for i, g := range gate {
		out[i] = g / (1 + expLlama(-g)) * up[i]
	}
}

// TablesLlama returns cos and sin (n, Dim/2) for positions [pos0, pos0+n) as ggml's ROPE
// computes them, all in float32: θ_0 = pos, θ_{i+1} = θ_i·powf(base, −2/Dim); with YaRN
// θ = fma((1/s)·θ, 1−ramp_i, θ·ramp_i) and mscale = fma(0.1, logf(s), 1); cos = cosf(θ)·mscale
// with glibc's cosf and sinf (sincosLlama). powf and logf are taken as correctly rounded, which
// glibc's are for the values Qwen3 models use (base 1e6, head_dim 64 or 128, YaRN factor 4).
func (r Rope) TablesLlama(pos0, n int) (cos, sin []float32) {
	half := r.Dim / 2
	cos = make([]float32, n*half)
	sin = make([]float32, n*half)
	yarn := r.Factor > 1
	var lo, hi, fs float32
	mscale := float32(1)
	if yarn {
		// ggml computes these in float32; only their floor and ceil are used.
		corr := func(beta float64) float64 {
			return float64(r.Dim) * math.Log(float64(r.OrigContext)/(beta*2*math.Pi)) / (2 * math.Log(r.Base))
		}
		lo = float32(math.Max(0, math.Floor(corr(r.BetaFast))))
		hi = float32(math.Min(float64(r.Dim-1), math.Ceil(corr(r.BetaSlow))))
		fs = float32(1 / r.Factor)
		mscale = fma32(0.1, float32(math.Log(float64(1/fs))), 1)
		if r.AttnFactor > 0 {
			mscale = float32(r.AttnFactor) * mscale
		}
	}
	step := float32(math.Pow(float64(float32(r.Base)), float64(float32(-2)/float32(r.Dim))))
	for p := range n {
		theta := float32(pos0 + p)
		for i := range half {
			t := theta
			if yarn {
				ramp := 1 - min(1, max(0, (float32(i)-lo)/max(0.001, hi-lo)))
				t = fma32(float32(fs*theta), 1-ramp, float32(theta*ramp))
			}
			cos[p*half+i] = sincosLlama(t, true) * mscale
			sin[p*half+i] = sincosLlama(t, false) * mscale
			theta = float32(theta * step)
		}
	}
	return cos, sin
}

// ApplyRopeLlama is ApplyRope with ggml's rounding: x'[i] = fma(x[i], cos, −x[i+d/2]·sin) and
// x'[i+d/2] = fma(x[i], sin, x[i+d/2]·cos).
func ApplyRopeLlama(x []float32, n, heads, dim int, cos, sin []float32) {
	half := dim / 2
	for p := range n {
		c := cos[p*half : (p+1)*half]
		s := sin[p*half : (p+1)*half]
		for h := range heads {
			v := x[(p*heads+h)*dim : (p*heads+h+1)*dim]
			for i := range half {
				a, b := v[i], v[i+half]
				v[i] = fma32(a, c[i], -float32(b*s[i]))
				v[i+half] = fma32(a, s[i], float32(b*c[i]))
			}
		}
	}
}

// reduce16 is the sum of 16 float32 lanes in _mm512_reduce_add_ps order.
func reduce16(a *[16]float32) float32 {
	var t [8]float32
	for i := range 8 {
		t[i] = a[i] + a[i+8]
	}
	return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]))
}

// dotLlama is ggml_vec_dot_f32 on AVX-512 over n values, x[i] pairing with y[stride·i]: four
// accumulators of 16 lanes take FMAs over steps of 64, are added as (s0+s2)+(s1+s3) and
// reduced with reduce16. With pad, n is first rounded up to a multiple of 64 with zeros (as in
// llama.cpp's padded KV cache); without, values past the last multiple of 64 are added one by
// one (a tail that Qwen3 head sizes never have; its rounding is not checked against ggml).
func dotLlama(x, y []float32, n, stride int, pad bool) float32 {
	var s [4][16]float32
	np := n &^ 63
	if pad {
		np = (n + 63) &^ 63
	}
	for o := 0; o < np; o += 64 {
		for j := range 4 {
			for i := range 16 {
				if t := o + 16*j + i; t < n {
					s[j][i] = fma32(x[t], y[t*stride], s[j][i])
				}
			}
		}
	}
	var lanes [16]float32
	for i := range 16 {
		lanes[i] = (s[0][i] + s[2][i]) + (s[1][i] + s[3][i])
	}
	sum := reduce16(&lanes)
	for i := np; i < n; i++ {
		sum = fma32(x[i], y[i*stride], sum)
	}
	return sum
}

// AttentionLlama is Attention as llama.cpp computes it without flash attention and with an f32
// KV cache (padded, as llama.cpp pads it, to a multiple of 256 keys, whose masked entries add
// nothing); see AttentionHeadLlama. Arguments are those of Attention.
func AttentionLlama(out, q, k, v []float32, n, ctx, heads, kvHeads, dim int, scratch []float32) {
	for p := range n {
		for h := range heads {
			AttentionHeadLlama(out, q, k, v, p, h, n, ctx, heads, kvHeads, dim, scratch)
		}
	}
}

// AttentionHeadLlama computes query p, head h of AttentionLlama (the arguments of
// AttentionHead), in ggml's order:
//
//   - score_t = dotLlama(k_t, q) times the float32 1/sqrtf(dim);
//   - softmax: expLlama(score − max) in chunks of 16 keys, each chunk summed with reduce16
//     into a float64 total; weights = e·float32(1/total);
//   - o_i = Σ_t w_t·v_t[i]: for a batch of n > 1 new tokens as llamafile's tinyBLAS does it
//     (16 lanes, t mod 16, of FMAs in order of t, then reduce16); for a single token with
//     dotLlama (llamafile only takes batches). The two agree whenever ctx <= 16.
//
// Its result equals AttentionHead's up to float32 rounding.
func AttentionHeadLlama(out, q, k, v []float32, p, h, n, ctx, heads, kvHeads, dim int, scratch []float32) {
	kh := h / (heads / kvHeads)
	kvw := kvHeads * dim
	scale := 1 / float32(math.Sqrt(float64(float32(dim))))
	qh := q[(p*heads+h)*dim : (p*heads+h+1)*dim]
	sc := scratch[:ctx-n+p+1] // keys [0, ctx-n+p]
	mx := float32(math.Inf(-1))
	asm := fmaAsmOK() && dim%64 == 0
	for t := range sc {
		var s float32
		if asm {
			s = fmaDot64(&k[t*kvw+kh*dim], &qh[0], dim) * scale
		} else {
			s = dotLlama(k[t*kvw+kh*dim:], qh, dim, 1, false) * scale
		}
		sc[t] = s
		mx = max(mx, s)
	}
	var sum float64
	for c0 := 0; c0 < len(sc); c0 += 16 {
		var e [16]float32
		for i := range min(16, len(sc)-c0) {
			e[i] = expLlama(sc[c0+i] - mx)
			sc[c0+i] = e[i]
		}
		sum += float64(reduce16(&e))
	}
	inv := float32(1 / sum)
	for t := range sc {
		sc[t] *= inv
	}
	o := out[(p*heads+h)*dim : (p*heads+h+1)*dim]
	if fmaAsmOK() && dim%8 == 0 {
		weightedSumLlama(o, sc, v[kh*dim:], kvw, n == 1)
		return
	}
	for i := range o {
		vi := v[kh*dim+i:] // v_t[i] is vi[t·kvw]
		if n == 1 {
			o[i] = dotLlama(sc, vi, len(sc), kvw, true)
			continue
		}
		var acc [16]float32
		for t, w := range sc {
			acc[t%16] = fma32(w, vi[t*kvw], acc[t%16])
		}
		o[i] = reduce16(&acc)
	}
}

// weightedSumLlama is the value sum of AttentionHeadLlama, o_i = Σ_t w_t·v_t[i] with v_t[i] at
// v[t·stride+i], for every i at once: lane L of o_i, the accumulator that the loop over t
// of one o_i would use for key t, becomes row L of a table acc (lanes, len(o)) that takes
// fma(w_t, v_t, ·) over whole rows (fmaAxpy). With decode, as dotLlama with pad does: 64
// lanes t mod 64, combined as (s0+s2)+(s1+s3) into 16 and reduced with reduce16; otherwise
// 16 lanes t mod 16 and reduce16. The result is bit-identical to the loops over t.
func weightedSumLlama(o, w, v []float32, stride int, decode bool) {
	dim := len(o)
	lanes := 16
	if decode {
		lanes = 64
	}
	buf := getBuf(lanes * dim)
	acc := *buf
	clear(acc)
	for t, wt := range w {
		fmaAxpy(&acc[(t%lanes)*dim], wt, &v[t*stride], dim)
	}
	var l16 [16]float32
	for i := range o {
		for l := range 16 {
			if decode {
				l16[l] = (acc[l*dim+i] + acc[(32+l)*dim+i]) + (acc[(16+l)*dim+i] + acc[(48+l)*dim+i])
			} else {
				l16[l] = acc[l*dim+i]
			}
		}
		o[i] = reduce16(&l16)
	}
	putBuf(buf)
}
