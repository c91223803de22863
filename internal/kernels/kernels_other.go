//go:build !amd64 || purego

package kernels

import "unsafe"

// No amd64 assembly here: these stubs keep the call sites compiling; the internal/cpu
// queries that guard them are false on this platform, so they are never called.

func gemmF32x32x12(kc int, a, b, c *float32, ldc int, accum bool) {}

func gemmQ8x16x12(nsub, steps int, a, b *byte, c *float32, ldc int, accum bool) {}

func matvecF32x4(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)  {}
func matvecF16x4(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)  {}
func matvecBF16x4(k int, w unsafe.Pointer, ldw int, x *float32, out *float32) {}
func matvecQ8_0x4(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32) {
}

func dotF32(n int, a, b *float32) float32     { return 0 }
func axpyF32(n int, a float32, x, y *float32) {}
func scaleF32(n int, a float32, x *float32)   {}

func matvecQ4K(nsb int, w unsafe.Pointer, x, xs *float32) float32 { return 0 }
func matvecQ5K(nsb int, w unsafe.Pointer, x, xs *float32) float32 { return 0 }
func matvecQ6K(nsb int, w unsafe.Pointer, x, xs *float32) float32 { return 0 }

func packF32T16(nblk int, src unsafe.Pointer, lds int, dst *float32)  {}
func packF16T16(nblk int, src unsafe.Pointer, lds int, dst *float32)  {}
func packBF16T16(nblk int, src unsafe.Pointer, lds int, dst *float32) {}

func interleave16S8(nchunk int, src unsafe.Pointer, lds int, dst unsafe.Pointer) {}
func interleave16S4(nchunk int, src unsafe.Pointer, lds int, dst unsafe.Pointer) {}

func matvecQ4KQ8(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32 {
	return 0
}

func matvecQ6KQ8(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32 {
	return 0
}

func matvecQ4_0x4(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, out *float32) {}

func matvecQ5KQ8(nsb int, w unsafe.Pointer, xq unsafe.Pointer, xd, xs *float32) float32 {
	return 0
}

func quantPanelS8(nsub int, x *float32, dst *byte) {}
func quantPanelS4(nsub int, x *float32, dst *byte) {}

func packX12T16(nblk int, src unsafe.Pointer, lds int, dst *float32) {}

func axpyRowsF32(cols, rows int, a *float32, m unsafe.Pointer, ldm int, y *float32) {}
