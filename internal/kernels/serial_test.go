package kernels

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestSerialGemm(t *testing.T) {
	run := func(t *testing.T) {
		rng := rand.New(rand.NewPCG(7, 8))
		var g SerialGemm
		for _, sh := range []struct{ n, m, k, pad int }{
			{1, 1, 1, 0}, {12, 32, 16, 0}, {13, 33, 17, 3}, {384, 128, 64, 128}, {50, 64, 600, 5}, {7, 300, 9, 1}, {25, 64, 41, 2}, {24, 96, 263, 0},
		} {
			for _, bkMajor := range []bool{false, true} {
				n, m, k := sh.n, sh.m, sh.k
				lda, ldc := k+sh.pad, m+sh.pad
				bRows, bCols := m, k
				if bkMajor {
					bRows, bCols = k, m
				}
				ldb := bCols + 2*sh.pad
				a := randomF32(rng, (n-1)*lda+k)
				b := randomF32(rng, (bRows-1)*ldb+bCols)
				c := make([]float32, (n-1)*ldc+m)
				for i := range c {
					c[i] = float32(math.NaN())
				}
				var err error
				if bkMajor {
					err = g.MulAB(c, ldc, a, lda, b, ldb, n, m, k)
				} else {
					err = g.MulABt(c, ldc, a, lda, b, ldb, n, m, k)
				}
				if err != nil {
					t.Fatal(err)
				}
				name := fmt.Sprintf("%dx%dx%d pad %d kmajor %v", n, m, k, sh.pad, bkMajor)
				for i := range n {
					for r := range ldc {
						if i == n-1 && r >= m {
							break
						}
						got := c[i*ldc+r]
						if r >= m {
							if !math.IsNaN(float64(got)) {
								t.Fatalf("%s: wrote c[%d][%d] in the stride padding", name, i, r)
							}
							continue
						}
						var want, mag float64
						for x := range k {
							var bv float32
							if bkMajor {
								bv = b[x*ldb+r]
							} else {
								bv = b[r*ldb+x]
							}
							pr := float64(a[i*lda+x]) * float64(bv)
							want += pr
							mag += math.Abs(pr)
						}
						if math.Abs(float64(got)-want) > 1e-5*mag+1e-30 || math.IsNaN(float64(got)) {
							t.Fatalf("%s: c[%d][%d] = %g, want %g", name, i, r, got, want)
						}
					}
				}
			}
		}
	}
	forEachPath(t, run)
}

func TestSerialGemmErrorsAndAllocs(t *testing.T) {
	var g SerialGemm
	a, b, c := make([]float32, 64*64), make([]float32, 64*64), make([]float32, 64*64)
	for _, err := range []error{
		g.MulABt(c[:10], 64, a, 64, b, 64, 64, 64, 64),
		g.MulABt(c, 32, a, 64, b, 64, 2, 64, 64),
		g.MulAB(c, 64, a[:100], 64, b, 64, 64, 64, 64),
		g.MulAB(c, 64, a, 64, b, 64, 64, 64, 65),
		g.MulABt(c, 64, a, 64, b, 64, -1, 64, 64),
	} {
		if !errors.Is(err, ErrShape) {
			t.Errorf("got %v, want ErrShape", err)
		}
	}
	if err := g.MulAB(c, 64, a, 64, b, 64, 64, 64, 64); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(5, func() {
		_ = g.MulAB(c, 64, a, 64, b, 64, 60, 50, 64)
		_ = g.MulABt(c, 64, a, 64, b, 64, 64, 64, 64)
	}); n != 0 {
		t.Errorf("%v allocations per steady-state call", n)
	}
}
