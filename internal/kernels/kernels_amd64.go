//go:build amd64 && !purego

package kernels

//go:generate sh -c "go run asm_gen.go > kernels_amd64.s"

import "unsafe"

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

// matvec<T>x4 computes out[i] = Σ_c W_i[c]·x[c] over k ≥ 0 columns for the four rows
// W_i = w + i·ldw bytes of element type T.
//
//go:noescape
func matvecF32x4(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)

//go:noescape
func matvecF16x4(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)

//go:noescape
func matvecBF16x4(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)

// matvecQ8_0x4 dots four q8_0 rows (nblk blocks each, row i at w + i·ldw) with activations
// quantized by quantXMatvec.
//
//go:noescape
func matvecQ8_0x4(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32)

//go:noescape
func dotF32(n int, a, b *float32) float32

//go:noescape
func axpyF32(n int, a float32, x, y *float32)

//go:noescape
func scaleF32(n int, a float32, x *float32)

// matvecQ4K, matvecQ5K and matvecQ6K return the dot product of one row of nsb k-quant
// super-blocks with float32 activations x; xs holds the sums of x per sub-block (32
// elements for q4_K/q5_K, 16 for q6_K).
//
//go:noescape
func matvecQ4K(nsb int, w unsafe.Pointer, x, xs *float32) float32

//go:noescape
func matvecQ5K(nsb int, w unsafe.Pointer, x, xs *float32) float32

//go:noescape
func matvecQ6K(nsb int, w unsafe.Pointer, x, xs *float32) float32

// pack<T>T16 converts 16 rows (row r at src + r·lds bytes) × nblk·16 columns of type T to
// float32 and writes them transposed into a float GEMM panel: dst[c·mrF + r] = row_r[c].
//
//go:noescape
func packF32T16(nblk int, src unsafe.Pointer, lds int, dst *float32)

//go:noescape
func packF16T16(nblk int, src unsafe.Pointer, lds int, dst *float32)

//go:noescape
func packBF16T16(nblk int, src unsafe.Pointer, lds int, dst *float32)

// interleave16S<steps> rewrites 16 rows of unsigned bytes (row r at src + r·lds), nchunk
// chunks of 64 bytes, into the quantized GEMM's panel layout for sub-blocks of 4·steps
// elements (scales and offsets are left alone).
//
//go:noescape
func interleave16S8(nchunk int, src unsafe.Pointer, lds int, dst unsafe.Pointer)

//go:noescape
func interleave16S4(nchunk int, src unsafe.Pointer, lds int, dst unsafe.Pointer)

// matvecQ4KQ8 returns the dot product of one q4_K row of nsb super-blocks with
// activations quantized per 32-block: int8 xq, scales xd, and xs = xd·Σq per block.
//
//go:noescape
func matvecQ4KQ8(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32

// matvecQ6KQ8 returns the dot product of one q6_K row of nsb super-blocks with
// activations quantized per 32-block (int8 xq), given per 16-element sub-block the scale
// xd and xs = xd·Σq.
//
//go:noescape
func matvecQ6KQ8(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32

// matvecQ4_0x4 is matvecQ8_0x4 for q4_0 rows.
//
//go:noescape
func matvecQ4_0x4(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32)

// matvecQ5KQ8 is matvecQ4KQ8 for q5_K rows.
//
//go:noescape
func matvecQ5KQ8(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32

// quantPanelS<steps> quantizes one token's activations, nsub blocks of 4·steps floats,
// into its column of a packed quantized-GEMM X panel (dst = panel + 4·token), exactly as
// packXQ8's pure-Go loop does.
//
//go:noescape
func quantPanelS8(nsub int, x *float32, dst *byte)

//go:noescape
func quantPanelS4(nsub int, x *float32, dst *byte)

// packX12T16 packs 12 rows of float32 (row j at src + j·lds bytes), nblk blocks of 16
// columns, into the float GEMM's X panel layout: dst[c·12 + j] = row_j[c].
//
//go:noescape
func packX12T16(nblk int, src unsafe.Pointer, lds int, dst *float32)

// axpyRowsF32 adds Σ_j a[j]·row_j[c] to y[c] for c < cols (a multiple of 16) and the
// rows ≥ 1 rows row_j at m + j·ldm bytes.
//
//go:noescape
func axpyRowsF32(cols, rows int, a *float32, m unsafe.Pointer, ldm int, y *float32)
