package kernels

import (
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
)

// allPaths lists every kernel path, best first; forEachPath skips the ones this CPU lacks.
var allPaths = []cpu.Path{cpu.AVX512, cpu.AVX2, cpu.NEON, cpu.Generic}

// forEachPath runs fn as one subtest per kernel path (named after it), with that path
// active; a path this CPU or build cannot run is a skipped subtest whose message names
// the missing features. This is test-backend-ops in ggml's sense: every path against the
// same float64 references.
//
// Where the CPU has AVX-512 VNNI, the avx512 path also runs without it ("avx512-novnni":
// AVX-512 CPUs such as Skylake-X, whose int8 products take the AVX2 kernels).
func forEachPath(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	saved := cpu.Active()
	defer cpu.Set(saved)
	for _, p := range allPaths {
		t.Run(p.String(), func(t *testing.T) {
			if err := cpu.Set(p); err != nil {
				t.Skip(err)
			}
			defer cpu.Set(saved)
			fn(t)
		})
		if p == cpu.AVX512 {
			t.Run("avx512-novnni", func(t *testing.T) {
				if err := cpu.Set(p); err != nil {
					t.Skip(err)
				}
				if !cpu.HasVNNI512() {
					cpu.Set(saved)
					t.Skip("no AVX-512 VNNI: the avx512 subtest ran without it")
				}
				prev, prevDot := cpu.SetSubFeatures(false, true)
				defer func() {
					cpu.SetSubFeatures(prev, prevDot)
					cpu.Set(saved)
				}()
				fn(t)
			})
		}
	}
}

// withPath makes p active until the test ends (skipping the test if the CPU lacks it).
func withPath(t *testing.T, p cpu.Path) {
	t.Helper()
	saved := cpu.Active()
	if err := cpu.Set(p); err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { cpu.Set(saved) })
}
