package kernels

import "math"

// F16ToF32 converts an IEEE 754 binary16 value to float32 (exact; NaNs stay NaN).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // inf or NaN
		if man != 0 {
			return math.Float32frombits(sign | 0x7fc00000 | man<<13)
		}
		return math.Float32frombits(sign | 0x7f800000)
	case exp == 0:
		if man == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal half: man × 2^-24, exactly representable as a normal float32.
		f := float32(man) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(f))
	default:
		return math.Float32frombits(sign | (exp+112)<<23 | man<<13)
	}
}

// F32ToF16 converts a float32 to IEEE 754 binary16 with round-to-nearest-even, as ggml's
// GGML_FP32_TO_FP16 does (overflow gives ±inf, NaN gives 0x7e00 with the sign kept).
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	man := b & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	if exp > 112 { // normal half range or overflow
		e := exp - 112
		if e >= 31 {
			return sign | 0x7c00
		}
		h := uint32(e)<<10 | man>>13
		rem := man & 0x1fff
		if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
			h++ // a carry into the exponent is correct, up to and including inf
		}
		return sign | uint16(h)
	}
	// Subnormal half or zero: value = m × 2^(exp-150); the half mantissa is m × 2^(exp-126).
	m := man
	if exp != 0 {
		m |= 0x800000
	} else {
		exp = 1 // float32 subnormal: same scale as exp 1 without the implicit bit
	}
	shift := uint(126 - exp)
	if shift > 24 {
		return sign
	}
	q := m >> shift
	rem := m & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	return sign | uint16(q)
}

// BF16ToF32 converts a bfloat16 value to float32 (exact).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 converts a float32 to bfloat16 with round-to-nearest-even, as ggml's
// GGML_FP32_TO_BF16 does (NaN is kept and made quiet).
func F32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}
