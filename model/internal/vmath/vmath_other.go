//go:build !amd64 || purego

package vmath

func useAVX2() bool { return false }

// The assembly kernels exist only on amd64 (without purego); useAVX2 is always false here, so these
// are never reached. They keep the portable call sites compiling.
func expSumAVX2(x []float32, m float32) float32 { return 0 }
func siluMulAVX2(h, u []float32)                {}
func maxAVX2(x []float32) float32               { return 0 }
