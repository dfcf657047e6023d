// Package cpu holds the CPU kernels of bankai-metal. The float kernels (MatMul, RMSNorm,
// Rope, Attention, SiluMul, FlipDelta, ...) are the CPU backend's engine and the reference
// specification of the Metal kernels of the same names in shaders/; the *Q8 and *Llama kernels
// reproduce llama.cpp's x86 CPU arithmetic bit for bit (runtime.NumericsLlama).
//
// # SIMD levels
//
// Every kernel is written in Go. The hot ones also have assembly versions, chosen at start-up
// from the CPU's features (golang.org/x/sys/cpu) as a Level:
//
//   - LevelAVX2 (amd64 with AVX2, FMA and F16C): the Q8_0 x 1-bit matmul, one vector and
//     blocks of four (MatMulQ8, MatMulQ8Shared; q8_amd64.s), the four-vector float matmul
//     (MatMul, MatMulShared on blocks of four vectors of matrices past 128 rows; rows4_amd64.s) and the FMA loops of
//     AttentionLlama (llama_amd64.s);
//   - LevelNEON (arm64): the Q8_0 x 1-bit matmul (q8_arm64.s);
//   - LevelAVX512 is reserved: no AVX-512 kernel is written, so it is never available;
//   - LevelPurego: only Go.
//
// Each assembly kernel has a Go twin (q8RowsRef, rows4, dotLlama, ...) and computes the same
// bits: integer sums, then the same float operations in the same order, with single-rounding
// FMAs where the Go code calls fma32. simd_test.go and llama_simd_test.go hold every level to
// the pure-Go one, bit for bit, over many shapes and thread counts.
//
// $BANKAI_SIMD=purego|avx2|avx512|neon forces a level at start-up; a level that this machine
// or build cannot run falls back to the fastest available one with a warning on stderr (so a
// script written for another machine still runs). SetSIMD changes the level and fails instead;
// SIMD reports it. Building with the purego tag (go build -tags purego) leaves out the
// assembly altogether. .ci/arm64-check.sh runs the kernel tests for arm64 under qemu-user.
package cpu
