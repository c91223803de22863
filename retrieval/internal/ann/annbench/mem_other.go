//go:build !linux

package annbench

// allocF32 returns n float32s from the Go heap (transparent huge pages are a Linux
// feature; see mem_linux.go).
func allocF32(n int) []float32 { return make([]float32, n) }
