//go:build !amd64 || purego

package kernels

import "unsafe"

// No amd64 assembly here: stubs for the AVX2 float kernels keep the call sites compiling;
// cpu.HasAVX2 is false on this platform, so they are never called.

func gemmF32x32x12AVX2(kc int, a, b, c *float32, ldc int, accum bool)                   {}
func matvecF32x4AVX2(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)        {}
func matvecF16x4AVX2(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)        {}
func matvecBF16x4AVX2(k int, w unsafe.Pointer, ldw int, x *float32, out *float32)       {}
func dotF32AVX2(n int, a, b *float32) float32                                           { return 0 }
func axpyF32AVX2(n int, a float32, x, y *float32)                                       {}
func scaleF32AVX2(n int, a float32, x *float32)                                         {}
func axpyRowsF32AVX2(cols, rows int, a *float32, m unsafe.Pointer, ldm int, y *float32) {}
func packF32T8AVX2(nblk int, src unsafe.Pointer, lds int, dst *float32)                 {}
func packF16T8AVX2(nblk int, src unsafe.Pointer, lds int, dst *float32)                 {}
func packBF16T8AVX2(nblk int, src unsafe.Pointer, lds int, dst *float32)                {}
func packX12T8AVX2(nblk int, src unsafe.Pointer, lds int, dst *float32)                 {}
