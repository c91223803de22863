//go:build amd64 && !purego

package kernels

//go:generate sh -c "go run asm_gen_avx2f.go > kernels_avx2f_amd64.s"

import "unsafe"

// The AVX2+FMA kernels for float weights and vectors (see asm_gen_avx2f.go): they run on
// the avx2 path. Lengths and column counts are multiples of 8; the callers finish the rest.

// gemmF32x32x12AVX2 is gemmF32x32x12 (same packed panels, same result up to rounding).
//
//go:noescape
func gemmF32x32x12AVX2(kc int, a, b, c *float32, ldc int, accum bool)

// matvec<T>x4AVX2 is matvec<T>x4 for k a multiple of 8.
//
//go:noescape
func matvecF32x4AVX2(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)

//go:noescape
func matvecF16x4AVX2(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)

//go:noescape
func matvecBF16x4AVX2(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)

// dotF32AVX2, axpyF32AVX2 and scaleF32AVX2 are dotF32, axpyF32 and scaleF32 for n a
// multiple of 8.
//
//go:noescape
func dotF32AVX2(n int, a, b *float32) float32

//go:noescape
func axpyF32AVX2(n int, a float32, x, y *float32)

//go:noescape
func scaleF32AVX2(n int, a float32, x *float32)

// axpyRowsF32AVX2 is axpyRowsF32 for cols a multiple of 8.
//
//go:noescape
func axpyRowsF32AVX2(cols, rows int, a *float32, m unsafe.Pointer, ldm int, y *float32)

// pack<T>T8AVX2 converts 8 rows (row r at src + r·lds bytes) × nblk·8 columns of type T to
// float32 and writes them transposed into a float GEMM W panel: dst[c·mrF + r] = row_r[c].
//
//go:noescape
func packF32T8AVX2(nblk int, src unsafe.Pointer, lds int, dst *float32)

//go:noescape
func packF16T8AVX2(nblk int, src unsafe.Pointer, lds int, dst *float32)

//go:noescape
func packBF16T8AVX2(nblk int, src unsafe.Pointer, lds int, dst *float32)

// packX12T8AVX2 is packX12T16 over nblk blocks of 8 columns.
//
//go:noescape
func packX12T8AVX2(nblk int, src unsafe.Pointer, lds int, dst *float32)
