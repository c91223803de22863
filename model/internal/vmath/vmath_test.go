package vmath

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExpSum(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 64, 1001} {
		x := make([]float32, n)
		for i := range x {
			x[i] = -float32(i%97) * 0.93
			if i%5 == 3 {
				x[i] = float32(math.Inf(-1))
			}
		}
		x[0] = 0.5
		want := make([]float64, n)
		var wsum float64
		for i, v := range x {
			if !math.IsInf(float64(v), -1) {
				want[i] = math.Exp(float64(v - 0.5))
			}
			wsum += want[i]
		}
		s := ExpSum(x, 0.5)
		for i, v := range x {
			if want[i] == 0 {
				if v != 0 {
					t.Fatalf("n=%d: masked x[%d] = %g, want 0", n, i, v)
				}
				continue
			}
			if want[i] > 1e-30 && math.Abs(float64(v)-want[i])/want[i] > 5e-7 {
				t.Fatalf("n=%d: exp x[%d] = %g, want %g", n, i, v, want[i])
			}
		}
		if math.Abs(float64(s)-wsum)/wsum > 1e-5 {
			t.Fatalf("n=%d: sum %g, want %g", n, s, wsum)
		}
	}
}

func TestSiluMul(t *testing.T) {
	for _, n := range []int{3, 8, 100} {
		h := make([]float32, n)
		u := make([]float32, n)
		for i := range h {
			h[i] = float32(i-n/2) * 0.37
			u[i] = 1 + float32(i)*0.01
		}
		h[0] = -100
		if n > 4 {
			h[4] = 100
		}
		want := make([]float64, n)
		for i := range h {
			x := float64(h[i])
			want[i] = x / (1 + math.Exp(-x)) * float64(u[i])
		}
		SiluMul(h, u)
		for i := range h {
			if d := math.Abs(float64(h[i]) - want[i]); d > 1e-5*math.Max(1, math.Abs(want[i])) {
				t.Fatalf("n=%d: silu[%d] = %g, want %g", n, i, h[i], want[i])
			}
		}
	}
}

func TestExpScalar(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x <= 88; x += 0.0037 {
		w := math.Exp(float64(x))
		worst = math.Max(worst, math.Abs(float64(Exp(x))-w)/w)
	}
	if worst > 3e-7 {
		t.Fatalf("relative error %g", worst)
	}
	if Exp(float32(math.Inf(-1))) != 0 || Exp(-100) != 0 {
		t.Fatal("underflow not 0")
	}
}

func BenchmarkExpSum(b *testing.B) {
	x := make([]float32, 4096)
	for b.Loop() {
		for i := range x {
			x[i] = -float32(i%300) * 0.1
		}
		ExpSum(x, 0)
	}
}

func TestMax(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 1; n < 200; n++ {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64()) - 100
		}
		at := rng.IntN(n)
		x[at] = 7 // the maximum, anywhere (including the tail)
		if got := Max(x); got != 7 {
			t.Fatalf("n=%d, max at %d: Max = %v", n, at, got)
		}
	}
}
