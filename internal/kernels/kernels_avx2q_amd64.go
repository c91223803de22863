//go:build amd64 && !purego

package kernels

//go:generate sh -c "go run asm_gen_avx2q.go > kernels_avx2q_amd64.s"

import "unsafe"

// The AVX2 kernels for quantized weights (see asm_gen_avx2q.go): they run on the avx2
// path, and on the avx512 path where the CPU lacks AVX-512 VNNI.

// quantXMatvecAVX2 is quantXMatvec for nblk 32-blocks of x (same bytes, padding aside).
//
//go:noescape
func quantXMatvecAVX2(nblk int, x *float32, dst *byte)

// quantXSub32AVX2 and quantXSub16AVX2 are quantXSub for nblk 32-blocks with l = 32 or 16.
//
//go:noescape
func quantXSub32AVX2(nblk int, x *float32, q *byte, d, s *float32)

//go:noescape
func quantXSub16AVX2(nblk int, x *float32, q *byte, d, s *float32)

// quantPanelAVX2S<steps> is quantPanelS<steps> (one token's column of a packed X panel).
//
//go:noescape
func quantPanelAVX2S8(nsub int, x *float32, dst *byte)

//go:noescape
func quantPanelAVX2S4(nsub int, x *float32, dst *byte)

// matvec<T>x4AVX2 dots four rows of type T (nblk blocks each, row i at w + i·ldw) with
// activations quantized by quantXMatvec, giving the VNNI kernels' bits.
//
//go:noescape
func matvecQ8_0x4AVX2(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32)

//go:noescape
func matvecQ4_0x4AVX2(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32)

//go:noescape
func matvecQ5_0x4AVX2(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32)

// matvecQ4KQ8AVX2, matvecQ5KQ8AVX2 and matvecQ6KQ8AVX2 are matvecQ4KQ8, matvecQ5KQ8 and
// matvecQ6KQ8 (same arguments, same bits).
//
//go:noescape
func matvecQ4KQ8AVX2(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32

//go:noescape
func matvecQ5KQ8AVX2(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32

//go:noescape
func matvecQ6KQ8AVX2(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32

// interleave16AVX2S<steps> is interleave16S<steps>.
//
//go:noescape
func interleave16AVX2S8(nchunk int, src unsafe.Pointer, lds int, dst unsafe.Pointer)

//go:noescape
func interleave16AVX2S4(nchunk int, src unsafe.Pointer, lds int, dst unsafe.Pointer)

// gemmQ<u>x16x12AVX2 are the int8 micro-kernels of gemmQ8x16x12 over nsub ≥ 1 sub-blocks,
// one per value range of the packed form: Q4 for u ≤ 15 (q4_0, q4_K; 8 steps), Q5 for
// u ≤ 31 (q5_0, q5_K; 8 steps), Q6 for u ≤ 63 (q6_K; 4 steps), and Q8 for q8_0 packed
// with signed values (unpackBlock's signed form: u = q, o = 0; 8 steps).
//
//go:noescape
func gemmQ4x16x12AVX2(nsub int, a, b *byte, c *float32, ldc int, accum bool)

//go:noescape
func gemmQ5x16x12AVX2(nsub int, a, b *byte, c *float32, ldc int, accum bool)

//go:noescape
func gemmQ6x16x12AVX2(nsub int, a, b *byte, c *float32, ldc int, accum bool)

//go:noescape
func gemmQ8x16x12AVX2(nsub int, a, b *byte, c *float32, ldc int, accum bool)
