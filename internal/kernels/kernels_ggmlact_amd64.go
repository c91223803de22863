//go:build amd64 && !purego

package kernels

//go:generate sh -c "go run asm_gen_ggmlact.go > kernels_ggmlact_amd64.s"

// The AVX2 (+F16C) kernels of ggml's activation quantization (asm_gen_ggmlact.go; pure-Go
// references in ggml_act.go). They run on the avx2 and avx512 paths.

// ggmlFakeQ8_0AVX2 is fakeQ8_0 for nblk 32-blocks.
//
//go:noescape
func ggmlFakeQ8_0AVX2(nblk int, x, dst *float32)

// ggmlXMatvecQ8_0AVX2 is quantXMatvecG for nblk 32-blocks (same bytes, padding aside).
//
//go:noescape
func ggmlXMatvecQ8_0AVX2(nblk int, x *float32, dst *byte)

// ggmlPanelQ8_0AVX2 is packXQ8G's work for one token (nsub 32-element sub-blocks, into the
// token's column of a packed X panel).
//
//go:noescape
func ggmlPanelQ8_0AVX2(nsub int, x *float32, dst *byte)

// ggmlFakeQ8KAVX2 is fakeQ8_K for nsb 256-blocks.
//
//go:noescape
func ggmlFakeQ8KAVX2(nsb int, x, dst *float32)

// ggmlPanelQ8KAVX2S<steps> is packXQ8K's work for one token (nsb 256-blocks, sub-blocks of
// 4·steps elements).
//
//go:noescape
func ggmlPanelQ8KAVX2S8(nsb int, x *float32, dst *byte)

//go:noescape
func ggmlPanelQ8KAVX2S4(nsb int, x *float32, dst *byte)

// ggmlXSubKAVX2L<l> is quantXSubK for nsb 256-blocks with sub-blocks of l elements.
//
//go:noescape
func ggmlXSubKAVX2L32(nsb int, x *float32, q *byte, d, s *float32)

//go:noescape
func ggmlXSubKAVX2L16(nsb int, x *float32, q *byte, d, s *float32)

// ggmlPanelQ8_0AVX512 and ggmlPanelQ8KAVX512S<steps> are ggmlPanelQ8_0AVX2 and
// ggmlPanelQ8KAVX2S<steps> with 512-bit registers (the avx512 path; same bytes).
//
//go:noescape
func ggmlPanelQ8_0AVX512(nsub int, x *float32, dst *byte)

//go:noescape
func ggmlPanelQ8KAVX512S8(nsb int, x *float32, dst *byte)

//go:noescape
func ggmlPanelQ8KAVX512S4(nsb int, x *float32, dst *byte)
