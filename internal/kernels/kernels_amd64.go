//go:build amd64 && !purego

package kernels

import "github.com/klauspost/cpuid/v2"

// useAVX512 selects the AVX-512 float kernels, useVNNI the AVX512_VNNI int8 kernels.
// Tests clear them to exercise the pure-Go kernels on the same machine.
var (
	useAVX512 = cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BW, cpuid.AVX512DQ, cpuid.AVX512VL, cpuid.F16C, cpuid.FMA3)
	useVNNI   = useAVX512 && cpuid.CPU.Supports(cpuid.AVX512VNNI)
)

// gemmF32x32x12 is the float micro-kernel (see asm_gen.go): c[j*ldc+r] (+)= Σ_k
// a[k*32+r]·b[k*12+j] for r < 32, j < 12; kc ≥ 1.
//
//go:noescape
func gemmF32x32x12(kc int, a, b, c *float32, ldc int, accum bool)

// gemmQ8x16x12 is the int8 micro-kernel over nsub ≥ 1 sub-blocks of 4·steps elements
// (steps 4 or 8); layouts in qgemm.go.
//
//go:noescape
func gemmQ8x16x12(nsub, steps int, a, b *byte, c *float32, ldc int, accum bool)
