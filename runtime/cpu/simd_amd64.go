//go:build !purego

package cpu

import "golang.org/x/sys/cpu"

// hasAVX2 is whether the AVX2 kernels can run: they also use FMA (the float steps) and F16C
// (the weight scales).
var hasAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

func levelAvailable(l Level) bool { return l == LevelAVX2 && hasAVX2 }
