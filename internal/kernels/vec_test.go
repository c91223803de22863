package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestVectorHelpers(t *testing.T) { forEachPath(t, testVectorHelpers) }

func testVectorHelpers(t *testing.T) {
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

// TestRowHelpers checks DotRows and AxpyRows against float64 sums for row counts and
// widths around the vector sizes, with a row stride larger than the width.
func TestRowHelpers(t *testing.T) { forEachPath(t, testRowHelpers) }

func testRowHelpers(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, rows := range []int{0, 1, 2, 3, 4, 5, 9, 130} {
		for _, cols := range []int{0, 1, 7, 8, 9, 15, 16, 17, 24, 41, 64, 80, 128, 131} {
			ld := cols + 5
			m := randomF32(rng, max(0, (rows-1)*ld+cols))
			x := randomF32(rng, cols)
			out := randomF32(rng, rows+1)
			keep := out[rows]
			DotRows(out[:rows], x, m, ld)
			for j := range rows {
				var want, mag float64
				for c := range cols {
					p := float64(x[c]) * float64(m[j*ld+c])
					want += p
					mag += math.Abs(p)
				}
				if math.Abs(float64(out[j])-want) > 1e-5*mag+1e-6 {
					t.Fatalf("DotRows %d×%d: out[%d] = %g, want %g", rows, cols, j, out[j], want)
				}
			}
			if out[rows] != keep {
				t.Fatalf("DotRows %d×%d wrote past out", rows, cols)
			}
			a := randomF32(rng, rows)
			y := randomF32(rng, cols+1)
			y0 := append([]float32(nil), y...)
			AxpyRows(y[:cols], a, m, ld)
			for c := range cols {
				want, mag := float64(y0[c]), math.Abs(float64(y0[c]))
				for j := range rows {
					p := float64(a[j]) * float64(m[j*ld+c])
					want += p
					mag += math.Abs(p)
				}
				if math.Abs(float64(y[c])-want) > 1e-5*mag+1e-6 {
					t.Fatalf("AxpyRows %d×%d: y[%d] = %g, want %g", rows, cols, c, y[c], want)
				}
			}
			if y[cols] != y0[cols] {
				t.Fatalf("AxpyRows %d×%d wrote past y", rows, cols)
			}
		}
	}
}
