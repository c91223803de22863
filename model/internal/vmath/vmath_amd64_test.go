//go:build amd64 && !purego

package vmath

import (
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
)

// TestPureGo runs the tests on the Go fallback too.
func TestPureGo(t *testing.T) {
	t.Logf("AVX2+FMA: %v", useAVX2())
	saved := cpu.Active()
	if err := cpu.Set(cpu.Generic); err != nil {
		t.Fatal(err)
	}
	defer cpu.Set(saved)
	TestExpSum(t)
	TestSiluMul(t)
	TestMax(t)
}
