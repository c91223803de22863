//go:build amd64 && !purego

package kernels

//go:generate sh -c "go run asm_gen_kvdec.go amd64 > kvdec_amd64.s"

import "github.com/ragkv/ragkv/internal/cpu"

// The amd64 KV-decode kernels (kvdec_amd64.s, from asm_gen_kvdec.go; see kvdec.go):
// kvdRow<bits><path>(n, ...) decodes n (a positive multiple of 16) codes with per-element
// scales and minima, kvdGroups<bits><path>(ng, g, ...) ng ≥ 1 groups of g (a positive
// multiple of 16) codes with one (scale, minimum) pair each, kvdF16<path>(n, ...) n
// (a positive multiple of 16) f16 values.

//go:noescape
func kvdRow4AVX512(n int, q *byte, s, m, out *float32)

//go:noescape
func kvdRow2AVX512(n int, q *byte, s, m, out *float32)

//go:noescape
func kvdRow8AVX512(n int, q *byte, s, m, out *float32)

//go:noescape
func kvdGroups4AVX512(ng, gsz int, q *byte, sm, out *float32)

//go:noescape
func kvdGroups2AVX512(ng, gsz int, q *byte, sm, out *float32)

//go:noescape
func kvdGroups8AVX512(ng, gsz int, q *byte, sm, out *float32)

//go:noescape
func kvdRow4AVX2(n int, q *byte, s, m, out *float32)

//go:noescape
func kvdRow2AVX2(n int, q *byte, s, m, out *float32)

//go:noescape
func kvdRow8AVX2(n int, q *byte, s, m, out *float32)

//go:noescape
func kvdGroups4AVX2(ng, gsz int, q *byte, sm, out *float32)

//go:noescape
func kvdGroups2AVX2(ng, gsz int, q *byte, sm, out *float32)

//go:noescape
func kvdGroups8AVX2(ng, gsz int, q *byte, sm, out *float32)

//go:noescape
func kvdF16AVX512(n int, src *byte, dst *float32)

//go:noescape
func kvdF16AVX2(n int, src *byte, dst *float32)

func init() {
	kvdTables[cpu.AVX512] = kvdKernels{
		row:    [3]func(int, *byte, *float32, *float32, *float32){kvdRow4AVX512, kvdRow2AVX512, kvdRow8AVX512},
		groups: [3]func(int, int, *byte, *float32, *float32){kvdGroups4AVX512, kvdGroups2AVX512, kvdGroups8AVX512},
		f16:    kvdF16AVX512,
	}
	kvdTables[cpu.AVX2] = kvdKernels{
		row:    [3]func(int, *byte, *float32, *float32, *float32){kvdRow4AVX2, kvdRow2AVX2, kvdRow8AVX2},
		groups: [3]func(int, int, *byte, *float32, *float32){kvdGroups4AVX2, kvdGroups2AVX2, kvdGroups8AVX2},
		f16:    kvdF16AVX2,
	}
}
