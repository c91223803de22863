package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestVectorHelpers(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for n := 0; n <= 300; n++ {
		a, b := randomF32(rng, n), randomF32(rng, n+3)
		var want, mag float64
		for i := range n {
			want += float64(a[i]) * float64(b[i])
			mag += math.Abs(float64(a[i]) * float64(b[i]))
		}
		if got := Dot(a, b); math.Abs(float64(got)-want) > 1e-5*mag+1e-6 {
			t.Fatalf("Dot n=%d: %g want %g", n, got, want)
		}
		y := randomF32(rng, n)
		y0 := append([]float32(nil), y...)
		alpha := float32(rng.NormFloat64())
		Axpy(y, alpha, b)
		for i := range n {
			if w := y0[i] + alpha*b[i]; math.Abs(float64(y[i]-w)) > 1e-6*(math.Abs(float64(w))+1) {
				t.Fatalf("Axpy n=%d i=%d: %g want %g", n, i, y[i], w)
			}
		}
		z := append([]float32(nil), a...)
		Scale(z, alpha)
		for i := range n {
			if z[i] != a[i]*alpha {
				t.Fatalf("Scale n=%d i=%d: %g want %g", n, i, z[i], a[i]*alpha)
			}
		}
		// Views: Axpy must not touch y beyond len(x) and Scale nothing beyond len(x).
		if n > 2 {
			buf := randomF32(rng, n)
			keep := buf[n-1]
			Axpy(buf[:n-1], 2, a)
			Scale(buf[:n-2], 3)
			if buf[n-1] != keep {
				t.Fatalf("n=%d: wrote past the slice", n)
			}
		}
	}
}
