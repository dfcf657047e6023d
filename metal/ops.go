package metal

import (
	"math"

	"github.com/bankai-metal/bankai-metal/shaders"
)

// One encode function per kernel. Each records a single dispatch; the kernel's specification
// and its Go twin in runtime/cpu are in the comment above the kernel in shaders/*.metal.

// encMatVec: out (n, rows) = x (n, cols) · Wᵀ (cpu.MatMul).
func encMatVec(e encoder, w *weight, x ref, n int, out ref) {
	a := shaders.Q1Args{W: w.layout(), N: uint32(n)}
	e.dispatch(shaders.KernelMatVec, shaders.Bytes(&a), shaders.MatVecGrid(w.m.Rows, n),
		bind{1, w.bits.buf, 0}, bind{2, w.scales.buf, 0}, x.bind(3), out.bind(4))
}

// encEmbed: out (n, cols) = rows tok[0..n) of W, dequantised (q1.Matrix.DequantRow).
func encEmbed(e encoder, w *weight, tok ref, n int, out ref) {
	a := shaders.Q1Args{W: w.layout(), N: uint32(n)}
	e.dispatch(shaders.KernelEmbed, shaders.Bytes(&a), shaders.EmbedGrid(w.m.Cols, n),
		bind{1, w.bits.buf, 0}, bind{2, w.scales.buf, 0}, tok.bind(3), out.bind(4))
}

// encRMSNorm: each of rows rows of x (rows, width) normalised and scaled by wt (width) into
// out, which may be x (cpu.RMSNorm).
func encRMSNorm(e encoder, x, wt, out ref, rows, width int, eps float32) {
	a := shaders.NormArgs{Rows: uint32(rows), Width: uint32(width), Eps: eps}
	e.dispatch(shaders.KernelRMSNorm, shaders.Bytes(&a), shaders.NormGrid(rows, width),
		x.bind(1), wt.bind(2), out.bind(3))
}

// encRope: x (n, heads, dim) rotated in place by tables cos, sin (n, dim/2) (cpu.ApplyRope).
func encRope(e encoder, x ref, n, heads, dim int, cos, sin ref) {
	a := shaders.RopeArgs{N: uint32(n), Heads: uint32(heads), Dim: uint32(dim)}
	e.dispatch(shaders.KernelRope, shaders.Bytes(&a), shaders.RopeGrid(n, heads, dim),
		x.bind(1), cos.bind(2), sin.bind(3))
}

// encAttention: out (n, heads, dim) = causal attention of q (n, heads, dim) over keys and values
// (ctx, kvHeads, dim), the new queries being positions ctx-n .. ctx-1 (cpu.Attention).
func encAttention(e encoder, q, k, v, out ref, n, ctx, heads, kvHeads, dim int) {
	a := shaders.AttnArgs{N: uint32(n), Ctx: uint32(ctx), Heads: uint32(heads), KVHeads: uint32(kvHeads),
		Dim: uint32(dim), Scale: float32(1 / math.Sqrt(float64(dim)))}
	e.dispatch(shaders.KernelAttention, shaders.Bytes(&a), shaders.AttentionGrid(n, heads),
		q.bind(1), k.bind(2), v.bind(3), out.bind(4))
}

// encAdd: dst[i] += src[i] for count elements (cpu.Add).
func encAdd(e encoder, dst, src ref, count int) {
	a := shaders.EltArgs{Count: uint32(count)}
	e.dispatch(shaders.KernelAdd, shaders.Bytes(&a), shaders.EltGrid(count), dst.bind(1), src.bind(2))
}

// encSiluMul: out[i] = silu(gate[i])·up[i] for count elements; out may be gate (cpu.SiluMul).
func encSiluMul(e encoder, gate, up, out ref, count int) {
	a := shaders.EltArgs{Count: uint32(count)}
	e.dispatch(shaders.KernelSiluMul, shaders.Bytes(&a), shaders.EltGrid(count), gate.bind(1), up.bind(2), out.bind(3))
}

// encFlipDelta: res (nFlips, n) = base (n, rows) corrected for each candidate flip in flips
// (nFlips FlipDesc), given inputs x (n, cols) (cpu.FlipDelta).
func encFlipDelta(e encoder, w *weight, x, base, flips, res ref, n, nFlips int) {
	a := shaders.FlipArgs{W: w.layout(), N: uint32(n), NFlips: uint32(nFlips)}
	e.dispatch(shaders.KernelFlipDelta, shaders.Bytes(&a), shaders.FlipGrid(nFlips, n),
		bind{1, w.bits.buf, 0}, bind{2, w.scales.buf, 0}, x.bind(3), base.bind(4), flips.bind(5), res.bind(6))
}
