//go:build amd64 && !purego

package vmath

import "github.com/ragkv/ragkv/internal/cpu"

// useAVX2 follows the kernel path chosen in internal/cpu (RAGKV_CPU, tests).
func useAVX2() bool { return cpu.HasAVX2() }

//go:noescape
func expSumAVX2(x []float32, m float32) float32

//go:noescape
func siluMulAVX2(h, u []float32)

//go:noescape
func maxAVX2(x []float32) float32
