package shaders

// Kernel names, as declared in the .metal files.
const (
	KernelMatVec    = "matvec_q1"
	KernelEmbed     = "embed_q1"
	KernelRMSNorm   = "rms_norm"
	KernelRope      = "rope_neox"
	KernelAttention = "attention"
	KernelAdd       = "add_f32"
	KernelSiluMul   = "silu_mul"
	KernelFlipDelta = "flip_delta"
)

// Kernels lists every kernel of the library (the backend builds one pipeline for each).
var Kernels = []string{KernelMatVec, KernelEmbed, KernelRMSNorm, KernelRope, KernelAttention,
	KernelAdd, KernelSiluMul, KernelFlipDelta}

// Tuning constants of common.h (TestConstants checks that they agree).
const (
	SimdWidth   = 32  // SIMD_WIDTH
	MatVecRows  = 4   // MV_NR: rows per simdgroup
	MatVecSG    = 2   // MV_NSG: simdgroups per threadgroup
	MatVecVecs  = 4   // MV_NT: input vectors per threadgroup
	AttnMaxDim  = 256 // ATT_MAX_DIM
	EltThreads  = 256 // ELT_THREADS
	NormThreads = 256 // threads per rms_norm threadgroup, at most
)

// Grid is the geometry of one dispatch: dispatchThreadgroups(Groups, Threads), with TGMem bytes
// of threadgroup memory at index 0.
type Grid struct {
	Groups  [3]int
	Threads [3]int
	TGMem   int
}

// MaxThreads is the largest threadgroup each kernel's grid asks for; the backend checks that
// every pipeline allows it (maxTotalThreadsPerThreadgroup falls when a kernel uses many
// registers).
var MaxThreads = map[string]int{
	KernelMatVec:    MatVecSG * SimdWidth,
	KernelEmbed:     EltThreads,
	KernelRMSNorm:   NormThreads,
	KernelRope:      EltThreads,
	KernelAttention: SimdWidth,
	KernelAdd:       EltThreads,
	KernelSiluMul:   EltThreads,
	KernelFlipDelta: EltThreads,
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// MatVecGrid is the grid of matvec_q1 for a matrix of rows rows and n input vectors.
func MatVecGrid(rows, n int) Grid {
	return Grid{Groups: [3]int{ceilDiv(rows, MatVecRows*MatVecSG), ceilDiv(n, MatVecVecs), 1},
		Threads: [3]int{MatVecSG * SimdWidth, 1, 1}}
}

// EmbedGrid is the grid of embed_q1 for n tokens of cols columns.
func EmbedGrid(cols, n int) Grid {
	return Grid{Groups: [3]int{ceilDiv(cols, EltThreads), n, 1}, Threads: [3]int{EltThreads, 1, 1}}
}

// NormGrid is the grid of rms_norm: one threadgroup per row, a multiple of 32 threads, and one
// float of threadgroup memory per simdgroup (rounded up to 16 bytes, as Metal requires).
func NormGrid(rows, width int) Grid {
	t := min(NormThreads, ceilDiv(width, SimdWidth)*SimdWidth)
	return Grid{Groups: [3]int{rows, 1, 1}, Threads: [3]int{t, 1, 1}, TGMem: ceilDiv(t/SimdWidth*4, 16) * 16}
}

// RopeGrid is the grid of rope_neox over x (n, heads, dim).
func RopeGrid(n, heads, dim int) Grid { return EltGrid(n * heads * dim / 2) }

// AttentionGrid is the grid of attention for n queries of heads heads.
func AttentionGrid(n, heads int) Grid {
	return Grid{Groups: [3]int{heads, n, 1}, Threads: [3]int{SimdWidth, 1, 1}}
}

// EltGrid is the grid of an element-wise kernel over count elements.
func EltGrid(count int) Grid {
	return Grid{Groups: [3]int{max(1, ceilDiv(count, EltThreads)), 1, 1}, Threads: [3]int{EltThreads, 1, 1}}
}

// FlipGrid is the grid of flip_delta for flips candidates x n vectors.
func FlipGrid(flips, n int) Grid { return EltGrid(flips * n) }
