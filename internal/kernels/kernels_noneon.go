//go:build !arm64 || purego

package kernels

import "unsafe"

// No arm64 assembly here: these stubs keep the call sites compiling; cpu.HasNEON and
// cpu.HasDotProd, which guard them, are false on this platform, so they are never called.

func gemmF32NEON(kc int, a, b, c *float32, ldc int, accum bool)                   {}
func gemmQ8NEON(nsub, steps int, a, b *byte, c *float32, ldc int, accum bool)     {}
func matvecF32x4NEON(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)  {}
func matvecF16x4NEON(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)  {}
func matvecBF16x4NEON(k int, w unsafe.Pointer, ldw int, x *float32, out *float32) {}

func matvecQ8_0x4NEON(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, xd *float32, out *float32) {
}

func matvecQ8_0x4NEONnd(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, xd *float32, out *float32) {
}

func matvecQ4_0x4NEON(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, xd *float32, out *float32) {
}

func matvecQ4_0x4NEONnd(nblk int, w unsafe.Pointer, ldw int, xq unsafe.Pointer, xd *float32, out *float32) {
}

func dotNEON(n int, a, b *float32) float32                                           { return 0 }
func axpyNEON(n int, a float32, x, y *float32)                                       {}
func scaleNEON(n int, a float32, x *float32)                                         {}
func axpyRowsNEON(cols, rows int, a *float32, m unsafe.Pointer, ldm int, y *float32) {}

func kdotQ4KNEON(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)   {}
func kdotQ4KNEONnd(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32) {}
func kdotQ5KNEON(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)   {}
func kdotQ5KNEONnd(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32) {}
func kdotQ6KNEON(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32)   {}
func kdotQ6KNEONnd(nsb int, w unsafe.Pointer, xq unsafe.Pointer, out *int32) {}
