package cputime

import (
	"testing"
	"time"
)

func TestProcessAdvances(t *testing.T) {
	a, ok := Process()
	if !ok {
		t.Skip("no process CPU time on this platform")
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	b, _ := Process()
	if b <= a {
		t.Fatalf("CPU time did not advance: %v -> %v (%d loops)", a, b, x)
	}
}
