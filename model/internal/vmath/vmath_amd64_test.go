//go:build amd64 && !purego

package vmath

import "testing"

// TestPureGo runs the tests on the Go fallback too.
func TestPureGo(t *testing.T) {
	t.Logf("AVX2+FMA: %v", useAVX2)
	saved := useAVX2
	useAVX2 = false
	defer func() { useAVX2 = saved }()
	TestExpSum(t)
	TestSiluMul(t)
	TestMax(t)
}
