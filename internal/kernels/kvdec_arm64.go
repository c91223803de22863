//go:build arm64 && !purego

package kernels

//go:generate sh -c "go run asm_gen_kvdec.go arm64 > kvdec_arm64.s"

import "github.com/ragkv/ragkv/internal/cpu"

// The arm64 KV-decode kernels (kvdec_arm64.s, from asm_gen_kvdec.go; shapes as on amd64,
// see kvdec_amd64.go).

//go:noescape
func kvdRow4NEON(n int, q *byte, s, m, out *float32)

//go:noescape
func kvdRow2NEON(n int, q *byte, s, m, out *float32)

//go:noescape
func kvdRow8NEON(n int, q *byte, s, m, out *float32)

//go:noescape
func kvdGroups4NEON(ng, gsz int, q *byte, sm, out *float32)

//go:noescape
func kvdGroups2NEON(ng, gsz int, q *byte, sm, out *float32)

//go:noescape
func kvdGroups8NEON(ng, gsz int, q *byte, sm, out *float32)

//go:noescape
func kvdF16NEON(n int, src *byte, dst *float32)

func init() {
	kvdTables[cpu.NEON] = kvdKernels{
		row:    [3]func(int, *byte, *float32, *float32, *float32){kvdRow4NEON, kvdRow2NEON, kvdRow8NEON},
		groups: [3]func(int, int, *byte, *float32, *float32){kvdGroups4NEON, kvdGroups2NEON, kvdGroups8NEON},
		f16:    kvdF16NEON,
	}
}
