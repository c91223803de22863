// Package vmath holds the engine's element-wise float32 math that is too hot for scalar
// Go: exp for softmax and the SwiGLU gate, and the row maximum of softmax. On amd64 with AVX2 and FMA the loops run in
// Go assembly (8 lanes; Cody–Waite range reduction and a degree-6 polynomial, relative
// error < 3e-7); elsewhere (or with the purego build tag, as in internal/kernels), and
// for the tails, the same formula in Go.
package vmath

import "math"

// ExpSum replaces x[i] by exp(x[i] − m) and returns their sum. Every x[i] must be ≤ m
// or −Inf (which gives exactly 0, as masked attention scores need).
func ExpSum(x []float32, m float32) float32 {
	n := 0
	var s float32
	if useAVX2() && len(x) >= 8 {
		n = len(x) &^ 7
		s = expSumAVX2(x[:n], m)
	}
	for i := n; i < len(x); i++ {
		e := Exp(x[i] - m)
		x[i] = e
		s += e
	}
	return s
}

// Max returns the largest element of a non-empty x (with NaNs, which one wins is
// unspecified).
func Max(x []float32) float32 {
	m := x[0]
	n := 0
	if useAVX2() && len(x) >= 8 {
		n = len(x) &^ 7
		m = maxAVX2(x[:n])
	}
	for _, v := range x[n:] {
		if v > m {
			m = v
		}
	}
	return m
}

// SiluMul sets h[i] = silu(h[i])·u[i] = h[i]·u[i] / (1 + exp(−h[i])).
func SiluMul(h, u []float32) {
	u = u[:len(h)]
	n := 0
	if useAVX2() && len(h) >= 8 {
		n = len(h) &^ 7
		siluMulAVX2(h[:n], u[:n])
	}
	for i := n; i < len(h); i++ {
		h[i] = h[i] * u[i] / (1 + Exp(-h[i]))
	}
}

// Exp is a float32 exp with the same formula as the vector code (inputs clamped to
// [−87.3, 88.3]; below −87.3 the result is 0).
func Exp(x float32) float32 {
	if !(x >= -87.3) { // also NaN → 0
		return 0
	}
	if x > 88.3 {
		x = 88.3
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	k := float32(math.RoundToEven(float64(x * log2e)))
	r := x - k*ln2hi
	r -= k * ln2lo
	p := float32(1.0 / 720)
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}
