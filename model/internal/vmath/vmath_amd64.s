//go:build amd64 && !purego

#include "textflag.h"

// Polynomial coefficients 1/720 .. 1/2, each replicated over 8 lanes (memory operands).
DATA expv<>+0(SB)/4, $0x3ab60b61
DATA expv<>+4(SB)/4, $0x3ab60b61
DATA expv<>+8(SB)/4, $0x3ab60b61
DATA expv<>+12(SB)/4, $0x3ab60b61
DATA expv<>+16(SB)/4, $0x3ab60b61
DATA expv<>+20(SB)/4, $0x3ab60b61
DATA expv<>+24(SB)/4, $0x3ab60b61
DATA expv<>+28(SB)/4, $0x3ab60b61
DATA expv<>+32(SB)/4, $0x3c088889
DATA expv<>+36(SB)/4, $0x3c088889
DATA expv<>+40(SB)/4, $0x3c088889
DATA expv<>+44(SB)/4, $0x3c088889
DATA expv<>+48(SB)/4, $0x3c088889
DATA expv<>+52(SB)/4, $0x3c088889
DATA expv<>+56(SB)/4, $0x3c088889
DATA expv<>+60(SB)/4, $0x3c088889
DATA expv<>+64(SB)/4, $0x3d2aaaab
DATA expv<>+68(SB)/4, $0x3d2aaaab
DATA expv<>+72(SB)/4, $0x3d2aaaab
DATA expv<>+76(SB)/4, $0x3d2aaaab
DATA expv<>+80(SB)/4, $0x3d2aaaab
DATA expv<>+84(SB)/4, $0x3d2aaaab
DATA expv<>+88(SB)/4, $0x3d2aaaab
DATA expv<>+92(SB)/4, $0x3d2aaaab
DATA expv<>+96(SB)/4, $0x3e2aaaab
DATA expv<>+100(SB)/4, $0x3e2aaaab
DATA expv<>+104(SB)/4, $0x3e2aaaab
DATA expv<>+108(SB)/4, $0x3e2aaaab
DATA expv<>+112(SB)/4, $0x3e2aaaab
DATA expv<>+116(SB)/4, $0x3e2aaaab
DATA expv<>+120(SB)/4, $0x3e2aaaab
DATA expv<>+124(SB)/4, $0x3e2aaaab
DATA expv<>+128(SB)/4, $0x3f000000
DATA expv<>+132(SB)/4, $0x3f000000
DATA expv<>+136(SB)/4, $0x3f000000
DATA expv<>+140(SB)/4, $0x3f000000
DATA expv<>+144(SB)/4, $0x3f000000
DATA expv<>+148(SB)/4, $0x3f000000
DATA expv<>+152(SB)/4, $0x3f000000
DATA expv<>+156(SB)/4, $0x3f000000
GLOBL expv<>(SB), RODATA|NOPTR, $160

// Scalars broadcast into registers.
DATA expc<>+0(SB)/4, $0x3fb8aa3b   // log2e
DATA expc<>+4(SB)/4, $0x3f318000   // ln2hi
DATA expc<>+8(SB)/4, $0xb95e8083   // ln2lo
DATA expc<>+12(SB)/4, $0xc2ae999a  // -87.3
DATA expc<>+16(SB)/4, $0x42b0999a  // 88.3
DATA expc<>+20(SB)/4, $0x3f800000  // 1
DATA expc<>+24(SB)/4, $0x0000007f  // 127
GLOBL expc<>(SB), RODATA|NOPTR, $28

// EXP8 computes Y2 = exp(Y0) for Y0 already clamped to [-87.3, 88.3]; clobbers Y0, Y1,
// Y3. Needs Y4 log2e, Y5 ln2hi, Y6 ln2lo, Y12 one, Y13 127 (int32 lanes).
#define EXP8 \
	VMULPS Y4, Y0, Y1 \
	VROUNDPS $0, Y1, Y1 \
	VFNMADD231PS Y5, Y1, Y0 \
	VFNMADD231PS Y6, Y1, Y0 \
	VMOVUPS expv<>+0(SB), Y2 \
	VFMADD213PS expv<>+32(SB), Y0, Y2 \
	VFMADD213PS expv<>+64(SB), Y0, Y2 \
	VFMADD213PS expv<>+96(SB), Y0, Y2 \
	VFMADD213PS expv<>+128(SB), Y0, Y2 \
	VFMADD213PS Y12, Y0, Y2 \
	VFMADD213PS Y12, Y0, Y2 \
	VCVTPS2DQ Y1, Y3 \
	VPADDD Y13, Y3, Y3 \
	VPSLLD $23, Y3, Y3 \
	VMULPS Y3, Y2, Y2

#define LOADC \
	VBROADCASTSS expc<>+0(SB), Y4 \
	VBROADCASTSS expc<>+4(SB), Y5 \
	VBROADCASTSS expc<>+8(SB), Y6 \
	VBROADCASTSS expc<>+12(SB), Y8 \
	VBROADCASTSS expc<>+16(SB), Y9 \
	VBROADCASTSS expc<>+20(SB), Y12 \
	VPBROADCASTD expc<>+24(SB), Y13

// func expSumAVX2(x []float32, m float32) float32
// x[i] = exp(x[i] - m), 0 where x[i] - m < -87.3 (masked scores are -Inf); returns the
// sum. len(x) is a positive multiple of 8.
TEXT ·expSumAVX2(SB), NOSPLIT, $0-36
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	LOADC
	VBROADCASTSS m+24(FP), Y15
	VXORPS Y14, Y14, Y14
loop:
	VMOVUPS (SI), Y0
	VSUBPS Y15, Y0, Y0
	VCMPPS $1, Y8, Y0, Y7 // Y7 = (x - m) < -87.3
	VMAXPS Y8, Y0, Y0
	EXP8
	VANDNPS Y2, Y7, Y2    // Y2 = ^Y7 & Y2
	VMOVUPS Y2, (SI)
	VADDPS Y2, Y14, Y14
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ loop
	VEXTRACTF128 $1, Y14, X1
	VADDPS X1, X14, X14
	VHADDPS X14, X14, X14
	VHADDPS X14, X14, X14
	VZEROUPPER
	MOVSS X14, ret+32(FP)
	RET

// func siluMulAVX2(h, u []float32)
// h[i] = h[i]*u[i] / (1 + exp(-h[i])). len(h) is a positive multiple of 8, len(u) ≥ len(h).
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-48
	MOVQ h_base+0(FP), SI
	MOVQ h_len+8(FP), CX
	MOVQ u_base+24(FP), DI
	LOADC
	VXORPS Y10, Y10, Y10
loop:
	VMOVUPS (SI), Y11
	VSUBPS Y11, Y10, Y0   // -h
	VMAXPS Y8, Y0, Y0
	VMINPS Y9, Y0, Y0
	EXP8                  // Y2 = exp(-h)
	VADDPS Y12, Y2, Y2    // 1 + exp(-h)
	VMULPS (DI), Y11, Y11 // h*u
	VDIVPS Y2, Y11, Y11
	VMOVUPS Y11, (SI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JNZ loop
	VZEROUPPER
	RET

// func maxAVX2(x []float32) float32
// The largest x[i]; len(x) is a positive multiple of 8.
TEXT ·maxAVX2(SB), NOSPLIT, $0-28
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VMOVUPS (SI), Y0
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y0, Y3
max32:
	CMPQ CX, $32
	JLT max8
	VMAXPS (SI), Y0, Y0
	VMAXPS 32(SI), Y1, Y1
	VMAXPS 64(SI), Y2, Y2
	VMAXPS 96(SI), Y3, Y3
	ADDQ $128, SI
	SUBQ $32, CX
	JMP max32
max8:
	TESTQ CX, CX
	JZ maxreduce
	VMAXPS (SI), Y0, Y0
	ADDQ $32, SI
	SUBQ $8, CX
	JMP max8
maxreduce:
	VMAXPS Y1, Y0, Y0
	VMAXPS Y3, Y2, Y2
	VMAXPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET
