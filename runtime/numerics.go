package runtime

import (
	"fmt"

	"github.com/bankai-metal/bankai-metal/runtime/cpu"
	"github.com/bankai-metal/bankai-metal/runtime/q1"
)

// Numerics selects the arithmetic of the CPU forward pass. The maths is the same in every
// mode; only the rounding differs.
type Numerics uint8

const (
	// NumericsFloat keeps activations in float32 (the default, and what Metal computes).
	NumericsFloat Numerics = iota
	// NumericsLlama reproduces llama.cpp's x86 CPU results to the last bit: activations are
	// quantised to Q8_0 before every 1-bit matrix product (cpu.MatMulQ8), and norms, RoPE,
	// softmax, SwiGLU and the attention sums round as ggml does on an AVX-512 machine
	// (flash attention off, f32 KV cache). It is only as accurate as llama.cpp. Its matrix
	// products are integer dot products, which the SIMD kernels (cpu.SIMD) run 2-5x faster
	// than the float ones, so on a CPU with them it is the fast path. It is not the default
	// because the flip evaluator (package bfs) recomputes flipped rows with the float
	// kernels, exactly only under NumericsFloat.
	NumericsLlama
	numNumerics
)

var numericsNames = [numNumerics]string{"float", "llama"}

func (n Numerics) String() string {
	if n < numNumerics {
		return numericsNames[n]
	}
	return fmt.Sprintf("Numerics(%d)", n)
}

// ParseNumerics accepts "float" or "llama" ("" means float).
func ParseNumerics(s string) (Numerics, error) {
	if s == "" {
		return NumericsFloat, nil
	}
	for i, name := range numericsNames {
		if s == name {
			return Numerics(i), nil
		}
	}
	return 0, fmt.Errorf("runtime: unknown numerics %q (want float or llama)", s)
}

// kernels are the CPU kernels a forward pass calls; each Numerics has its own set.
type kernels struct {
	// rmsNorm normalises the rows (of width len(w)) of x into out, which may alias x.
	rmsNorm func(out, x, w []float32, eps float32)
	// matMul computes outs[i] (n, ms[i].Rows) = x (n, Cols) · ms[i]ᵀ for matrices sharing x.
	matMul func(w cpu.Workers, ms []*q1.Matrix, x []float32, n int, outs [][]float32)
	// ropeTables returns cos and sin (n, Dim/2) for positions [pos0, pos0+n).
	ropeTables func(r cpu.Rope, pos0, n int) (cos, sin []float32)
	// applyRope rotates x (n, heads, dim) in place.
	applyRope func(x []float32, n, heads, dim int, cos, sin []float32)
	// attentionHead computes query p, head h of causal GQA (see cpu.AttentionHead).
	attentionHead func(out, q, k, v []float32, p, h, n, ctx, heads, kvHeads, dim int, scratch []float32)
	// siluMul computes out = silu(gate)·up; out may alias gate or up.
	siluMul func(out, gate, up []float32)
}

var kernelSets = [numNumerics]kernels{
	NumericsFloat: {
		rmsNorm:       cpu.RMSNorm,
		matMul:        cpu.Workers.MatMulShared,
		ropeTables:    cpu.Rope.Tables,
		applyRope:     cpu.ApplyRope,
		attentionHead: cpu.AttentionHead,
		siluMul:       cpu.SiluMul,
	},
	NumericsLlama: {
		rmsNorm:       cpu.RMSNormLlama,
		matMul:        cpu.Workers.MatMulQ8Shared,
		ropeTables:    cpu.Rope.TablesLlama,
		applyRope:     cpu.ApplyRopeLlama,
		attentionHead: cpu.AttentionHeadLlama,
		siluMul:       cpu.SiluMulLlama,
	},
}

// kernels returns the kernel set of n (the float set for an unknown value).
func (n Numerics) kernels() *kernels {
	if n >= numNumerics {
		n = NumericsFloat
	}
	return &kernelSets[n]
}
