//go:build !amd64 || purego

package kernels

import "unsafe"

// No amd64 assembly here: stubs for the AVX2 quantized kernels keep the call sites
// compiling; cpu.HasAVX2 is false on this platform, so they are never called.

func quantXMatvecAVX2(nblk int, x *float32, dst *byte)                                      {}
func quantXSub32AVX2(nblk int, x *float32, q *byte, d, s *float32)                          {}
func quantXSub16AVX2(nblk int, x *float32, q *byte, d, s *float32)                          {}
func quantPanelAVX2S8(nsub int, x *float32, dst *byte)                                      {}
func quantPanelAVX2S4(nsub int, x *float32, dst *byte)                                      {}
func matvecQ8_0x4AVX2(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32) {}
func matvecQ4_0x4AVX2(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32) {}
func matvecQ5_0x4AVX2(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32) {}

func matvecQ4KQ8AVX2(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32 {
	return 0
}

func matvecQ5KQ8AVX2(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32 {
	return 0
}

func matvecQ6KQ8AVX2(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32 {
	return 0
}

func interleave16AVX2S8(nchunk int, src unsafe.Pointer, lds int, dst unsafe.Pointer) {}
func interleave16AVX2S4(nchunk int, src unsafe.Pointer, lds int, dst unsafe.Pointer) {}

func gemmQ4x16x12AVX2(nsub int, a, b *byte, c *float32, ldc int, accum bool) {}
func gemmQ5x16x12AVX2(nsub int, a, b *byte, c *float32, ldc int, accum bool) {}
func gemmQ6x16x12AVX2(nsub int, a, b *byte, c *float32, ldc int, accum bool) {}
func gemmQ8x16x12AVX2(nsub int, a, b *byte, c *float32, ldc int, accum bool) {}
