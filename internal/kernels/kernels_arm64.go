//go:build arm64 && !purego

package kernels

//go:generate sh -c "go run asm_gen_arm64.go > kernels_arm64.s"

import "unsafe"

// The arm64 Advanced SIMD kernels (asm_gen_arm64.go writes kernels_arm64.s; a test checks
// that it is up to date). The internal/cpu queries HasNEON and HasDotProd guard every call.

// gemmF32NEON is the float micro-kernel: c[j*ldc+r] (+)= Σ_k a[k*32+r]·b[k*12+j] for
// r < 32, j < 12; kc ≥ 1.
//
//go:noescape
func gemmF32NEON(kc int, a, b, c *float32, ldc int, accum bool)

// gemmQ8NEON is the int8 (SDOT) micro-kernel over nsub ≥ 1 sub-blocks of 4·steps
// elements, for W panels rewritten by signW.
//
//go:noescape
func gemmQ8NEON(nsub, steps int, a, b *byte, c *float32, ldc int, accum bool)

// matvec<T>x4NEON computes out[i] = Σ_c W_i[c]·x[c] over k columns (a multiple of 8) for
// the four rows W_i = w + i·ldw bytes of element type T.
//
//go:noescape
func matvecF32x4NEON(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)

//go:noescape
func matvecF16x4NEON(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)

//go:noescape
func matvecBF16x4NEON(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)

// matvecQ8_0x4NEON dots four q8_0 rows (nblk blocks each, row i at w + i·ldw) with
// activations quantized per 32-block (int8 xq, scales xd) using SDOT; the ...nd variants
// do without dotprod (SMULL/SMLAL2/SADALP).
//
//go:noescape
func matvecQ8_0x4NEON(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, xd *float32, out *float32)

//go:noescape
func matvecQ8_0x4NEONnd(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, xd *float32, out *float32)

//go:noescape
func matvecQ4_0x4NEON(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, xd *float32, out *float32)

//go:noescape
func matvecQ4_0x4NEONnd(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, xd *float32, out *float32)

// dotNEON, axpyNEON and scaleNEON are Dot, Axpy and Scale over n (a multiple of 16)
// elements.
//
//go:noescape
func dotNEON(n int, a, b *float32) float32

//go:noescape
func axpyNEON(n int, a float32, x, y *float32)

//go:noescape
func scaleNEON(n int, a float32, x *float32)

// axpyRowsNEON adds Σ_j a[j]·row_j[c] to y[c] for c < cols (a multiple of 16) and rows ≥ 1
// rows at m + j·ldm bytes.
//
//go:noescape
func axpyRowsNEON(cols, rows int, a *float32, m unsafe.Pointer, ldm int, y *float32)

// kdot<T>NEON write, for one row of nsb k-quant super-blocks (q4_K, q5_K, q6_K) and int8
// activations xq, the integer dot products of every sub-block to out (8 per super-block
// for q4_K/q5_K, 16 for q6_K, whose values count from −32); the ...nd variants do without
// dotprod.
//
//go:noescape
func kdotQ4KNEON(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)

//go:noescape
func kdotQ4KNEONnd(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)

//go:noescape
func kdotQ5KNEON(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)

//go:noescape
func kdotQ5KNEONnd(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)

//go:noescape
func kdotQ6KNEON(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)

//go:noescape
func kdotQ6KNEONnd(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)
