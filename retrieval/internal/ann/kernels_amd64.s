#include "textflag.h"

// func dotAVX2(a, b []float32) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-52
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), CX
	MOVQ b_base+24(FP), DI
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

loop32:
	CMPQ CX, $32
	JL   loop8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  loop32

loop8:
	CMPQ CX, $8
	JL   reduce
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  loop8

reduce:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0

scalar:
	TESTQ CX, CX
	JE    done
	VMOVSS (SI), X1
	VFMADD231SS (DI), X1, X0
	ADDQ $4, SI
	ADDQ $4, DI
	DECQ CX
	JMP  scalar

done:
	VZEROUPPER
	MOVSS X0, ret+48(FP)
	RET

// func dotsTAVX2(out, q, blk, bias []float32, dp int)
// Four groups of 8 centroids at a time, even and odd dimensions in separate
// accumulators (8 independent FMA chains).
TEXT ·dotsTAVX2(SB), NOSPLIT, $0-104
	MOVQ out_base+0(FP), DI
	MOVQ out_len+8(FP), CX
	SHRQ $3, CX                 // groups
	MOVQ q_base+24(FP), SI
	MOVQ blk_base+48(FP), BX
	MOVQ bias_base+72(FP), R8
	MOVQ dp+96(FP), DX
	MOVQ DX, R9
	SHLQ $5, R9                 // bytes per group: dp*8*4

g4:
	CMPQ CX, $4
	JL   g1
	VMOVUPS (R8), Y0
	VMOVUPS 32(R8), Y1
	VMOVUPS 64(R8), Y2
	VMOVUPS 96(R8), Y3
	VXORPS  Y4, Y4, Y4
	VXORPS  Y5, Y5, Y5
	VXORPS  Y6, Y6, Y6
	VXORPS  Y7, Y7, Y7
	LEAQ (BX)(R9*1), R10
	LEAQ (R10)(R9*1), R11
	LEAQ (R11)(R9*1), R12
	MOVQ SI, R13
	MOVQ DX, AX                 // dims left
	XORQ R14, R14               // byte offset within a group

d4:
	VBROADCASTSS (R13), Y8
	VBROADCASTSS 4(R13), Y9
	VFMADD231PS (BX)(R14*1), Y8, Y0
	VFMADD231PS (R10)(R14*1), Y8, Y1
	VFMADD231PS (R11)(R14*1), Y8, Y2
	VFMADD231PS (R12)(R14*1), Y8, Y3
	VFMADD231PS 32(BX)(R14*1), Y9, Y4
	VFMADD231PS 32(R10)(R14*1), Y9, Y5
	VFMADD231PS 32(R11)(R14*1), Y9, Y6
	VFMADD231PS 32(R12)(R14*1), Y9, Y7
	ADDQ $8, R13
	ADDQ $64, R14
	SUBQ $2, AX
	JNZ  d4

	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $128, R8
	LEAQ (R12)(R9*1), BX
	SUBQ $4, CX
	JMP  g4

g1:
	TESTQ CX, CX
	JE    gdone
	VMOVUPS (R8), Y0
	VXORPS  Y4, Y4, Y4
	MOVQ SI, R13
	MOVQ DX, AX
	XORQ R14, R14

d1:
	VBROADCASTSS (R13), Y8
	VBROADCASTSS 4(R13), Y9
	VFMADD231PS (BX)(R14*1), Y8, Y0
	VFMADD231PS 32(BX)(R14*1), Y9, Y4
	ADDQ $8, R13
	ADDQ $64, R14
	SUBQ $2, AX
	JNZ  d1
	VADDPS  Y4, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ R9, BX
	DECQ CX
	JMP  g1

gdone:
	VZEROUPPER
	RET

DATA nibbleMask<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibbleMask<>(SB), RODATA|NOPTR, $8

// func scanBlocksAVX2(codes []byte, nb, m2 int, lut []byte, thr int, acc []uint16, masks []uint32)
// Per 32-byte chunk: split nibbles, look both up with VPSHUFB (tables broadcast to both
// lanes), accumulate bytes into 16-bit words as (low + 256·high) and high separately;
// low = accA - 256·accB at the end (exact modulo 2^16).
TEXT ·scanBlocksAVX2(SB), NOSPLIT, $0-120
	MOVQ codes_base+0(FP), SI
	MOVQ nb+24(FP), CX
	MOVQ m2+32(FP), DX
	MOVQ lut_base+40(FP), BX
	MOVQ thr+64(FP), AX
	MOVQ acc_base+72(FP), DI
	MOVQ masks_base+96(FP), R10
	VPBROADCASTB nibbleMask<>(SB), Y15
	MOVQ AX, X14
	VPBROADCASTW X14, Y14

block:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	MOVQ BX, R8
	MOVQ DX, R9

pair:
	VMOVDQU (SI), Y2
	VPSRLW  $4, Y2, Y3
	VPAND   Y15, Y2, Y2
	VPAND   Y15, Y3, Y3
	VBROADCASTI128 (R8), Y4
	VBROADCASTI128 16(R8), Y5
	VPSHUFB Y2, Y4, Y4
	VPSHUFB Y3, Y5, Y5
	VPADDW  Y4, Y5, Y6
	VPSRLW  $8, Y4, Y4
	VPSRLW  $8, Y5, Y5
	VPADDW  Y6, Y0, Y0
	VPADDW  Y4, Y1, Y1
	VPADDW  Y5, Y1, Y1
	ADDQ $32, SI
	ADDQ $32, R8
	DECQ R9
	JNZ  pair

	VPSLLW $8, Y1, Y2
	VPSUBW Y2, Y0, Y0           // even vectors
	VPUNPCKLWD Y1, Y0, Y2       // vectors 0-7 | 16-23
	VPUNPCKHWD Y1, Y0, Y3       // vectors 8-15 | 24-31
	VPERM2I128 $0x20, Y3, Y2, Y4
	VPERM2I128 $0x31, Y3, Y2, Y5
	VMOVDQU Y4, (DI)
	VMOVDQU Y5, 32(DI)
	VPCMPGTW Y14, Y4, Y6
	VPCMPGTW Y14, Y5, Y7
	VPACKSSWB Y7, Y6, Y6
	VPERMQ $0xD8, Y6, Y6
	VPMOVMSKB Y6, AX
	MOVL AX, (R10)
	ADDQ $64, DI
	ADDQ $4, R10
	DECQ CX
	JNZ  block

	VZEROUPPER
	RET

// func prefetchRows(data []float32, ids []int32, rowBytes int)
// PREFETCHT0 every cache line of rows ids[i] (rowBytes each) of data; prefetches do
// not fault, and callers pass valid ids anyway.
TEXT ·prefetchRows(SB), NOSPLIT, $0-56
	MOVQ data_base+0(FP), SI
	MOVQ ids_base+24(FP), DI
	MOVQ ids_len+32(FP), CX
	MOVQ rowBytes+48(FP), DX

row:
	TESTQ CX, CX
	JE    pdone
	MOVLQSX (DI), AX
	IMULQ DX, AX
	LEAQ (SI)(AX*1), BX
	LEAQ -1(BX)(DX*1), R9       // last byte of the row
	PREFETCHT0 (R9)
	MOVQ DX, R8

line:
	PREFETCHT0 (BX)
	ADDQ $64, BX
	SUBQ $64, R8
	JG   line
	ADDQ $4, DI
	DECQ CX
	JMP  row

pdone:
	RET

// func argmaxAVX2(x []float32) int
// len(x) is a positive multiple of 8. Pass 1 finds the maximum, pass 2 its first index.
TEXT ·argmaxAVX2(SB), NOSPLIT, $0-32
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	SHRQ $3, CX                 // chunks of 8
	VMOVUPS (SI), Y0
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y0, Y3
	MOVQ SI, DI
	MOVQ CX, DX

max4:
	CMPQ DX, $4
	JL   max1
	VMAXPS (DI), Y0, Y0
	VMAXPS 32(DI), Y1, Y1
	VMAXPS 64(DI), Y2, Y2
	VMAXPS 96(DI), Y3, Y3
	ADDQ $128, DI
	SUBQ $4, DX
	JMP  max4

max1:
	TESTQ DX, DX
	JE    hmax
	VMAXPS (DI), Y0, Y0
	ADDQ $32, DI
	DECQ DX
	JMP  max1

hmax:
	VMAXPS Y1, Y0, Y0
	VMAXPS Y3, Y2, Y2
	VMAXPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4E, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xB1, X0, X1
	VMAXPS X1, X0, X0
	VBROADCASTSS X0, Y0
	XORQ AX, AX

find:
	VCMPPS $0, (SI)(AX*4), Y0, Y1
	VMOVMSKPS Y1, BX
	TESTQ BX, BX
	JNZ   found
	ADDQ $8, AX
	DECQ CX
	JNZ  find
	XORQ AX, AX
	JMP  aret

found:
	BSFQ BX, BX
	ADDQ BX, AX

aret:
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET

// func prefetchBytes(b []byte)
// PREFETCHT0 every cache line of b.
TEXT ·prefetchBytes(SB), NOSPLIT, $0-24
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	TESTQ CX, CX
	JE    bdone
	LEAQ -1(SI)(CX*1), DX       // last byte
	PREFETCHT0 (DX)

bline:
	PREFETCHT0 (SI)
	ADDQ $64, SI
	SUBQ $64, CX
	JG   bline

bdone:
	RET

// func groupMax32AVX2(x []float32, out []float32)
// out[g] = max(x[32g : 32g+32]) for g < len(out); len(x) ≥ 32·len(out).
TEXT ·groupMax32AVX2(SB), NOSPLIT, $0-48
	MOVQ x_base+0(FP), SI
	MOVQ out_base+24(FP), DI
	MOVQ out_len+32(FP), CX
	TESTQ CX, CX
	JE    gmdone

gm:
	VMOVUPS (SI), Y0
	VMAXPS 32(SI), Y0, Y0
	VMOVUPS 64(SI), Y1
	VMAXPS 96(SI), Y1, Y1
	VMAXPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4E, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xB1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, (DI)
	ADDQ $128, SI
	ADDQ $4, DI
	DECQ CX
	JNZ  gm

gmdone:
	VZEROUPPER
	RET
