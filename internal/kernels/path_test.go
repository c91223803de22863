package kernels

import (
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
)

// testPath is one configuration forEachPath runs: a kernel path, optionally with its
// optional sub-features (AVX-512 VNNI, arm64 dotprod) switched off to run their fallbacks.
type testPath struct {
	path   cpu.Path
	subOff bool
}

func (tp testPath) String() string {
	switch {
	case !tp.subOff:
		return tp.path.String()
	case tp.path == cpu.NEON:
		return "neon-nodotprod"
	}
	return tp.path.String() + "-novnni"
}

// allPaths lists every kernel path, best first; forEachPath skips the ones this CPU lacks.
var allPaths = []testPath{
	{cpu.AVX512, false}, {cpu.AVX512, true}, {cpu.AVX2, false},
	{cpu.NEON, false}, {cpu.NEON, true}, {cpu.Generic, false},
}

// forEachPath runs fn as one subtest per kernel path (named after it), with that path
// active; a path this CPU or build cannot run is a skipped subtest whose message names
// the missing features, and a sub-feature variant is skipped where the CPU lacks the
// sub-feature (it would repeat the plain path). This is test-backend-ops in ggml's sense:
// every path against the same float64 references.
func forEachPath(t *testing.T, fn func(t *testing.T)) {
	t.Helper()
	saved := cpu.Active()
	defer cpu.Set(saved)
	for _, tp := range allPaths {
		t.Run(tp.String(), func(t *testing.T) {
			if err := cpu.Set(tp.path); err != nil {
				t.Skip(err)
			}
			defer cpu.Set(saved)
			if tp.subOff {
				had := cpu.HasVNNI512() || cpu.HasDotProd()
				v, d := cpu.SetSubFeatures(false, false)
				defer cpu.SetSubFeatures(v, d)
				if !had {
					t.Skipf("%v has no optional sub-feature on this CPU", tp.path)
				}
			}
			fn(t)
		})
	}
}

// testThreads is the worker counts the product tests run with: 1 to 3, or just 2 with
// -short (make test-arm64 runs the tests under qemu, about 20 times slower).
func testThreads() []int {
	if testing.Short() {
		return []int{2}
	}
	return []int{1, 2, 3}
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
