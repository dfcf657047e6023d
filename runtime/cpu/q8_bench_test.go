package cpu

import "testing"

// benchQ8 runs MatMulQ8 on a rows x cols matrix and n vectors at every available SIMD level.
func benchQ8(b *testing.B, rows, cols, n int) { benchKernel(b, MatMulQ8, rows, cols, n) }

// BenchmarkQ8MatVec12288x4096 is the 8B gate/up mat-vec (decode) with Q8_0 activations.
func BenchmarkQ8MatVec12288x4096(b *testing.B) { benchQ8(b, 12288, 4096, 1) }

// BenchmarkQ8MatVec4096x12288 is the 8B down mat-vec.
func BenchmarkQ8MatVec4096x12288(b *testing.B) { benchQ8(b, 4096, 12288, 1) }

// BenchmarkQ8MatMul12288x4096x64 is the gate/up product of a 64-token prefill.
func BenchmarkQ8MatMul12288x4096x64(b *testing.B) { benchQ8(b, 12288, 4096, 64) }

// BenchmarkQ8MatVec2048x2048 is a 1.7B-sized projection (decode).
func BenchmarkQ8MatVec2048x2048(b *testing.B) { benchQ8(b, 2048, 2048, 1) }
