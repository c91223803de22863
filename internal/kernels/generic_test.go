package kernels

import (
	"math"
	"testing"
)

// TestF16Fast checks the generic kernels' binary16 conversion against F16ToF32 for every
// one of the 65536 values (NaNs: any NaN of the same sign).
func TestF16Fast(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		got, want := f16Fast(h), F16ToF32(h)
		if math.IsNaN(float64(want)) {
			if !math.IsNaN(float64(got)) || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
				t.Fatalf("f16Fast(%#04x) = %v, want a NaN like %v", h, got, want)
			}
			continue
		}
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("f16Fast(%#04x) = %v (%#08x), want %v (%#08x)", h, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
}
