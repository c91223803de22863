package ann

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestDotMatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 129} {
		a, b := make([]float32, n), make([]float32, n)
		var want float64
		for i := range a {
			a[i], b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			want += float64(a[i]) * float64(b[i])
		}
		for name, got := range map[string]float32{"dot": dot(a, b), "generic": dotGeneric(a, b)} {
			if math.Abs(float64(got)-want) > 1e-4*math.Max(1, math.Abs(want)) {
				t.Fatalf("%s n=%d: %v want %v", name, n, got, want)
			}
		}
	}
}

func TestDotsTMatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ nc, dim int }{{8, 2}, {13, 5}, {64, 32}, {100, 33}, {40, 1}} {
		dp := tc.dim + tc.dim%2
		cents := make([]float32, tc.nc*tc.dim)
		for i := range cents {
			cents[i] = float32(rng.NormFloat64())
		}
		blk := packT8(cents, tc.nc, tc.dim, dp)
		np := (tc.nc + 7) / 8 * 8
		bias := make([]float32, np)
		for i := range bias {
			bias[i] = float32(rng.NormFloat64())
		}
		q := make([]float32, dp)
		for i := 0; i < tc.dim; i++ {
			q[i] = float32(rng.NormFloat64())
		}
		got, ref := make([]float32, np), make([]float32, np)
		dotsT(got, q, blk, bias, dp)
		dotsTGeneric(ref, q, blk, bias, dp)
		for c := 0; c < tc.nc; c++ {
			want := float64(bias[c])
			for d := 0; d < tc.dim; d++ {
				want += float64(q[d]) * float64(cents[c*tc.dim+d])
			}
			for name, v := range map[string]float32{"dotsT": got[c], "generic": ref[c]} {
				if math.Abs(float64(v)-want) > 1e-4*math.Max(1, math.Abs(want)) {
					t.Fatalf("%s nc=%d dim=%d c=%d: %v want %v", name, tc.nc, tc.dim, c, v, want)
				}
			}
		}
	}
}

func TestScanBlocksMatchesGeneric(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, m2 := range []int{1, 2, 8, 16, 32, 64} {
		const nb = 5
		codes := make([]byte, nb*m2*chunkSize)
		for i := range codes {
			codes[i] = byte(rng.IntN(256))
		}
		lut := make([]byte, m2*32)
		for i := range lut {
			lut[i] = byte(rng.IntN(256))
		}
		// Sums reach 128·255 > 2^15 for m2=64: keep tables small enough there.
		if m2 == 64 {
			for i := range lut {
				lut[i] /= 2
			}
		}
		for _, thr := range []int{-1, 0, 1000, 2000, 32767} {
			acc, accRef := make([]uint16, nb*32), make([]uint16, nb*32)
			masks, masksRef := make([]uint32, nb), make([]uint32, nb)
			scanBlocks(codes, nb, m2, lut, thr, acc, masks)
			scanBlocksGeneric(codes, nb, m2, lut, thr, accRef, masksRef)
			for i := range acc {
				// Independent reference for one vector.
				b, v := i/32, i%32
				var want int
				for p := 0; p < m2; p++ {
					c := codes[b*m2*32+p*32+v]
					want += int(lut[32*p+int(c&15)]) + int(lut[32*p+16+int(c>>4)])
				}
				if int(acc[i]) != want || int(accRef[i]) != want {
					t.Fatalf("m2=%d vec %d: asm %d generic %d want %d", m2, i, acc[i], accRef[i], want)
				}
				if got := masks[b]>>v&1 == 1; got != (want > thr) {
					t.Fatalf("m2=%d thr=%d vec %d: mask %v for sum %d", m2, thr, i, got, want)
				}
			}
			for b := range masks {
				if masks[b] != masksRef[b] {
					t.Fatalf("m2=%d block %d: masks %x vs %x", m2, b, masks[b], masksRef[b])
				}
			}
		}
	}
}

func TestArgmax(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{8, 16, 24, 32, 40, 64, 4096, 4104} {
		for trial := 0; trial < 20; trial++ {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(rng.IntN(50)) // ties: the first index must win
			}
			if trial%5 == 0 {
				for i := range x {
					x[i] = float32(math.Inf(-1))
				}
				x[rng.IntN(n)] = -3
			}
			if got, want := argmax(x), argmaxGeneric(x); got != want {
				t.Fatalf("n=%d: %d want %d", n, got, want)
			}
		}
	}
}

func TestGroupMax32(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, groups := range []int{1, 2, 7, 128} {
		x := make([]float32, 32*groups+5)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		got, want := make([]float32, groups), make([]float32, groups)
		groupMax32(x, got)
		groupMax32Generic(x, want)
		for g := range want {
			m := float32(math.Inf(-1))
			for _, v := range x[32*g : 32*g+32] {
				m = max(m, v)
			}
			if got[g] != m || want[g] != m {
				t.Fatalf("groups %d g %d: %v %v want %v", groups, g, got[g], want[g], m)
			}
		}
	}
}
