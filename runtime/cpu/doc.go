// Package cpu holds the pure-Go kernels of bankai-metal. The float kernels (MatMul, RMSNorm,
// Rope, Attention, SiluMul, FlipDelta, ...) are the CPU backend's engine and the reference
// specification of the Metal kernels of the same names in shaders/; the *Q8 and *Llama kernels
// reproduce llama.cpp's x86 CPU arithmetic bit for bit (runtime.NumericsLlama).
package cpu
