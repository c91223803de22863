package kernels

import (
	"math"
	"testing"
)

func TestF16RoundTripExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if f != f { // NaN
			if g := F32ToF16(f); g&0x7fff != 0x7e00 {
				t.Fatalf("NaN %#04x -> %#04x", h, g)
			}
			continue
		}
		if g := F32ToF16(f); g != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, g)
		}
	}
}

// TestF32ToF16RoundsToNearestEven checks every midpoint between adjacent halves (and the
// floats just beside it) for both signs.
func TestF32ToF16RoundsToNearestEven(t *testing.T) {
	for _, sign := range []uint16{0, 0x8000} {
		for h := uint16(0); h < 0x7c00; h++ {
			a, b := F16ToF32(sign|h), F16ToF32(sign|(h+1))
			mid := (a + b) / 2 // exact: halves have 11 significant bits
			if h == 0x7bff {   // b is inf: the rounding boundary is 65520
				mid = 65520
				if sign != 0 {
					mid = -65520
				}
			} else if float64(mid) != (float64(a)+float64(b))/2 {
				t.Fatalf("midpoint of %#04x not exact", h)
			}
			even := h
			if h&1 == 1 {
				even = h + 1
			}
			if g := F32ToF16(mid); g != sign|even {
				t.Fatalf("mid(%#04x,%#04x)=%g -> %#04x, want %#04x", h, h+1, mid, g, sign|even)
			}
			away := float32(math.Inf(1))
			if sign != 0 {
				away = float32(math.Inf(-1))
			}
			if g := F32ToF16(math.Nextafter32(mid, away)); g != sign|(h+1) {
				t.Fatalf("above mid(%#04x) -> %#04x", h, g)
			}
			if g := F32ToF16(math.Nextafter32(mid, -away)); g != sign|h {
				t.Fatalf("below mid(%#04x) -> %#04x", h, g)
			}
		}
	}
	if g := F32ToF16(1e10); g != 0x7c00 {
		t.Fatalf("overflow -> %#04x", g)
	}
	if g := F32ToF16(float32(math.Inf(-1))); g != 0xfc00 {
		t.Fatalf("-inf -> %#04x", g)
	}
	if g := F32ToF16(math.Float32frombits(1)); g != 0 {
		t.Fatalf("tiny -> %#04x", g)
	}
}

func TestBF16(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80},
		{0x3f808000, 0x3f80}, // tie, even stays
		{0x3f818000, 0x3f82}, // tie, odd rounds up
		{0x3f808001, 0x3f81},
		{0x7f7fffff, 0x7f80}, // rounds to inf
		{0x7f800001, 0x7fc0}, // NaN made quiet
		{0x80000001, 0x8000},
	}
	for _, c := range cases {
		if g := F32ToBF16(math.Float32frombits(c.in)); g != c.want {
			t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", c.in, g, c.want)
		}
	}
	for h := 0; h < 1<<16; h++ {
		f := BF16ToF32(uint16(h))
		if f == f && F32ToBF16(f) != uint16(h) {
			t.Fatalf("bf16 %#04x does not round-trip", h)
		}
	}
}
