//go:build amd64 && !purego

package vmath

import "golang.org/x/sys/cpu"

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func expSumAVX2(x []float32, m float32) float32

//go:noescape
func siluMulAVX2(h, u []float32)

//go:noescape
func maxAVX2(x []float32) float32
