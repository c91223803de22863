//go:build !amd64 || purego

package kernels

// No amd64 assembly here: stubs for the ggml activation kernels keep the call sites
// compiling; cpu.HasAVX2 is false on this platform, so they are never called.

func ggmlFakeQ8_0AVX2(nblk int, x, dst *float32)                   {}
func ggmlXMatvecQ8_0AVX2(nblk int, x *float32, dst *byte)          {}
func ggmlPanelQ8_0AVX2(nsub int, x *float32, dst *byte)            {}
func ggmlFakeQ8KAVX2(nsb int, x, dst *float32)                     {}
func ggmlPanelQ8KAVX2S8(nsb int, x *float32, dst *byte)            {}
func ggmlPanelQ8KAVX2S4(nsb int, x *float32, dst *byte)            {}
func ggmlXSubKAVX2L32(nsb int, x *float32, q *byte, d, s *float32) {}
func ggmlXSubKAVX2L16(nsb int, x *float32, q *byte, d, s *float32) {}
func ggmlPanelQ8_0AVX512(nsub int, x *float32, dst *byte)          {}
func ggmlPanelQ8KAVX512S8(nsb int, x *float32, dst *byte)          {}
func ggmlPanelQ8KAVX512S4(nsb int, x *float32, dst *byte)          {}
