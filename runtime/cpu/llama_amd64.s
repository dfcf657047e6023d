//go:build !purego

#include "textflag.h"

// The FMA loops of the llama-numerics attention (llama.go), for AVX2 + FMA. VFMADD231PS
// rounds once, exactly as fma32 does, so each is bit-identical to its Go loop.

// func fmaDot64(x, y *float32, n int) float32
//
// dotLlama without a tail (n a positive multiple of 64, stride 1): s[j][i] = fma(x[t], y[t],
// s[j][i]) for t = o + 16j + i over steps o of 64 (s[j] is Y(2j) lanes 0-7 and Y(2j+1) lanes
// 8-15), lanes = (s0+s2) + (s1+s3), then reduce16: t[i] = lanes[i] + lanes[i+8] and
// ((t0+t4)+(t2+t6)) + ((t1+t5)+(t3+t7)).
TEXT ·fmaDot64(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	SHRQ $6, CX

loop:
	VMOVUPS 0(SI), Y8
	VMOVUPS 32(SI), Y9
	VMOVUPS 64(SI), Y10
	VMOVUPS 96(SI), Y11
	VFMADD231PS 0(DI), Y8, Y0
	VFMADD231PS 32(DI), Y9, Y1
	VFMADD231PS 64(DI), Y10, Y2
	VFMADD231PS 96(DI), Y11, Y3
	VMOVUPS 128(SI), Y8
	VMOVUPS 160(SI), Y9
	VMOVUPS 192(SI), Y10
	VMOVUPS 224(SI), Y11
	VFMADD231PS 128(DI), Y8, Y4
	VFMADD231PS 160(DI), Y9, Y5
	VFMADD231PS 192(DI), Y10, Y6
	VFMADD231PS 224(DI), Y11, Y7
	ADDQ $256, SI
	ADDQ $256, DI
	DECQ CX
	JNE  loop

	// lanes 0-7: (s0+s2) + (s1+s3) = (Y0+Y4) + (Y2+Y6); lanes 8-15 likewise from Y1, Y5, Y3, Y7
	VADDPS Y4, Y0, Y0
	VADDPS Y6, Y2, Y2
	VADDPS Y2, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y7, Y3, Y3
	VADDPS Y3, Y1, Y1
	// reduce16
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS    X1, X0, X0
	VMOVHLPS  X0, X0, X1
	VADDPS    X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS    X1, X0, X0
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func fmaAxpy(a *float32, w float32, v *float32, n int)
//
// a[i] = fma(w, v[i], a[i]) for i in [0, n), n a multiple of 8.
TEXT ·fmaAxpy(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), DI
	VBROADCASTSS w+8(FP), Y15
	MOVQ v+16(FP), SI
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JEQ  done

loop:
	VMOVUPS (DI), Y0
	VFMADD231PS (SI), Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNE  loop

done:
	VZEROUPPER
	RET
