//go:build !purego

#include "textflag.h"

// The float-path row kernels for AVX2. rows4Tile is the inner loop of rows4 (matmul_rows.go),
// its Go twin: for each of nr rows and ng groups, S_g of the four vectors is the fixed tree of
// 16 table entries (each entry the four vectors' floats, one 16-byte load at t + 4096k +
// 16·s_k), and acc += float32(d·S_g), a multiply then an add, never fused.

// func rows4Tile(t *float32, bits *byte, rowBytes, bitStride int, ds *float32, dStride int, acc *float32, nr, ng int)
TEXT ·rows4Tile(SB), NOSPLIT, $0-72
	MOVQ t+0(FP), R8
	MOVQ bits+8(FP), R9
	MOVQ rowBytes+16(FP), R10
	MOVQ bitStride+24(FP), R11
	MOVQ ds+32(FP), R12
	MOVQ dStride+40(FP), R13
	MOVQ acc+48(FP), DI
	MOVQ nr+56(FP), R14
	MOVQ ng+64(FP), R15
	TESTQ R14, R14
	JEQ   done
	TESTQ R15, R15
	JEQ   done

row:
	VMOVUPS (DI), X15
	MOVQ R8, BX    // tables of the group
	MOVQ R9, SI    // sign bytes of the group
	MOVQ R12, DX   // scale of the group
	MOVQ R15, CX

group:
	MOVBLZX 0(SI), AX
	SHLL $4, AX
	VMOVUPS 0(BX)(AX*1), X0
	MOVBLZX 1(SI), AX
	SHLL $4, AX
	VADDPS 4096(BX)(AX*1), X0, X0
	MOVBLZX 2(SI), AX
	SHLL $4, AX
	VMOVUPS 8192(BX)(AX*1), X1
	MOVBLZX 3(SI), AX
	SHLL $4, AX
	VADDPS 12288(BX)(AX*1), X1, X1
	MOVBLZX 4(SI), AX
	SHLL $4, AX
	VMOVUPS 16384(BX)(AX*1), X2
	MOVBLZX 5(SI), AX
	SHLL $4, AX
	VADDPS 20480(BX)(AX*1), X2, X2
	MOVBLZX 6(SI), AX
	SHLL $4, AX
	VMOVUPS 24576(BX)(AX*1), X3
	MOVBLZX 7(SI), AX
	SHLL $4, AX
	VADDPS 28672(BX)(AX*1), X3, X3
	MOVBLZX 8(SI), AX
	SHLL $4, AX
	VMOVUPS 32768(BX)(AX*1), X4
	MOVBLZX 9(SI), AX
	SHLL $4, AX
	VADDPS 36864(BX)(AX*1), X4, X4
	MOVBLZX 10(SI), AX
	SHLL $4, AX
	VMOVUPS 40960(BX)(AX*1), X5
	MOVBLZX 11(SI), AX
	SHLL $4, AX
	VADDPS 45056(BX)(AX*1), X5, X5
	MOVBLZX 12(SI), AX
	SHLL $4, AX
	VMOVUPS 49152(BX)(AX*1), X6
	MOVBLZX 13(SI), AX
	SHLL $4, AX
	VADDPS 53248(BX)(AX*1), X6, X6
	MOVBLZX 14(SI), AX
	SHLL $4, AX
	VMOVUPS 57344(BX)(AX*1), X7
	MOVBLZX 15(SI), AX
	SHLL $4, AX
	VADDPS 61440(BX)(AX*1), X7, X7
	VADDPS X1, X0, X0
	VADDPS X3, X2, X2
	VADDPS X5, X4, X4
	VADDPS X7, X6, X6
	VADDPS X2, X0, X0
	VADDPS X6, X4, X4
	VADDPS X4, X0, X0
	VBROADCASTSS (DX), X8
	VMULPS X8, X0, X0
	VADDPS X0, X15, X15
	ADDQ $65536, BX
	ADDQ R11, SI
	ADDQ $4, DX
	DECQ CX
	JNE  group

	VMOVUPS X15, (DI)
	ADDQ $16, DI
	ADDQ R10, R9
	ADDQ R13, R12
	DECQ R14
	JNE  row

done:
	RET

// rows1Tile is the inner loop of rows1 (matmul_rows.go), its Go twin: for each of nr rows and
// ng groups, S_g is the fixed tree of the 16 table entries t[1024k + 4·s_k] (bytes) and
// acc += float32(d·S_g), a multiply then an add.

// func rows1Tile(t *float32, bits *byte, rowBytes, bitStride int, ds *float32, dStride int, acc *float32, nr, ng int)
TEXT ·rows1Tile(SB), NOSPLIT, $0-72
	MOVQ t+0(FP), R8
	MOVQ bits+8(FP), R9
	MOVQ rowBytes+16(FP), R10
	MOVQ bitStride+24(FP), R11
	MOVQ ds+32(FP), R12
	MOVQ dStride+40(FP), R13
	MOVQ acc+48(FP), DI
	MOVQ nr+56(FP), R14
	MOVQ ng+64(FP), R15
	TESTQ R14, R14
	JEQ   r1done
	TESTQ R15, R15
	JEQ   r1done

r1row:
	VMOVSS (DI), X15
	MOVQ R8, BX
	MOVQ R9, SI
	MOVQ R12, DX
	MOVQ R15, CX

r1group:
	MOVBLZX 0(SI), AX
	VMOVSS 0(BX)(AX*4), X0
	MOVBLZX 1(SI), AX
	VADDSS 1024(BX)(AX*4), X0, X0
	MOVBLZX 2(SI), AX
	VMOVSS 2048(BX)(AX*4), X1
	MOVBLZX 3(SI), AX
	VADDSS 3072(BX)(AX*4), X1, X1
	MOVBLZX 4(SI), AX
	VMOVSS 4096(BX)(AX*4), X2
	MOVBLZX 5(SI), AX
	VADDSS 5120(BX)(AX*4), X2, X2
	MOVBLZX 6(SI), AX
	VMOVSS 6144(BX)(AX*4), X3
	MOVBLZX 7(SI), AX
	VADDSS 7168(BX)(AX*4), X3, X3
	MOVBLZX 8(SI), AX
	VMOVSS 8192(BX)(AX*4), X4
	MOVBLZX 9(SI), AX
	VADDSS 9216(BX)(AX*4), X4, X4
	MOVBLZX 10(SI), AX
	VMOVSS 10240(BX)(AX*4), X5
	MOVBLZX 11(SI), AX
	VADDSS 11264(BX)(AX*4), X5, X5
	MOVBLZX 12(SI), AX
	VMOVSS 12288(BX)(AX*4), X6
	MOVBLZX 13(SI), AX
	VADDSS 13312(BX)(AX*4), X6, X6
	MOVBLZX 14(SI), AX
	VMOVSS 14336(BX)(AX*4), X7
	MOVBLZX 15(SI), AX
	VADDSS 15360(BX)(AX*4), X7, X7
	VADDSS X1, X0, X0
	VADDSS X3, X2, X2
	VADDSS X5, X4, X4
	VADDSS X7, X6, X6
	VADDSS X2, X0, X0
	VADDSS X6, X4, X4
	VADDSS X4, X0, X0
	VMULSS (DX), X0, X0
	VADDSS X0, X15, X15
	ADDQ $16384, BX
	ADDQ R11, SI
	ADDQ $4, DX
	DECQ CX
	JNE  r1group

	VMOVSS X15, (DI)
	ADDQ $4, DI
	ADDQ R10, R9
	ADDQ R13, R12
	DECQ R14
	JNE  r1row

r1done:
	RET
