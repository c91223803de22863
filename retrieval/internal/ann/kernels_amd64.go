package ann

import "golang.org/x/sys/cpu"

var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dotAVX2 is dot for len(a) ≥ 16 with AVX2 and FMA.
//
//go:noescape
func dotAVX2(a, b []float32) float32
