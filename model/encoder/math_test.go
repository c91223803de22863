package encoder

import (
	"math"
	"testing"
)

// TestGELU: the erf GELU is within 2e-7·max(1, |x|) of 0.5·x·(1 + math.Erf(x/√2)), and
// the tanh form within 1e-6 of its formula, over [-12, 12].
func TestGELU(t *testing.T) {
	var xs []float32
	for x := -12.0; x <= 12; x += 0.001 {
		xs = append(xs, float32(x))
	}
	g := append([]float32(nil), xs...)
	geluErf(g)
	worst := 0.0
	for i, x := range xs {
		want := 0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2))
		d := math.Abs(float64(g[i])-want) / math.Max(1, math.Abs(float64(x)))
		worst = max(worst, d)
	}
	if worst > 2e-7 {
		t.Errorf("erf GELU: relative error %.2e", worst)
	}
	h := append([]float32(nil), xs...)
	geluTanh(h)
	for i, x := range xs {
		f := float64(x)
		want := 0.5 * f * (1 + math.Tanh(0.7978845608028654*(f+0.044715*f*f*f)))
		if math.Abs(float64(h[i])-want) > 1e-6*math.Max(1, math.Abs(f)) {
			t.Fatalf("tanh GELU(%g) = %g, want %g", x, h[i], want)
		}
	}
	// layerNorm: zero mean, unit variance before the affine part.
	v := []float32{1, 2, 3, 4, 10}
	out := make([]float32, 5)
	layerNorm(out, v, []float32{1, 1, 1, 1, 1}, []float32{0, 0, 0, 0, 0}, 1e-12)
	var m, s float64
	for _, x := range out {
		m += float64(x)
	}
	for _, x := range out {
		s += (float64(x) - m/5) * (float64(x) - m/5)
	}
	if math.Abs(m/5) > 1e-6 || math.Abs(s/5-1) > 1e-5 {
		t.Errorf("layerNorm mean %g var %g", m/5, s/5)
	}
}
