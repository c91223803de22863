package ann

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// decaying returns clustered unit vectors whose variance decays like (d+1)^-1.5 (as
// PCA-projected embeddings' does), around the given centres.
func decaying(n, dim, nc int, noise float64, seed uint64, centres []float64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		c := rng.IntN(nc)
		var nn float64
		v := out[i*dim : (i+1)*dim]
		for d := range v {
			x := math.Pow(float64(d+1), -0.75) * (centres[c*dim+d] + noise*rng.NormFloat64())
			v[d] = float32(x)
			nn += x * x
		}
		for d := range v {
			v[d] /= float32(math.Sqrt(nn))
		}
	}
	return out
}

func TestAllocateSlots(t *testing.T) {
	for _, tc := range []struct{ dims, m int }{{32, 32}, {32, 48}, {32, 8}, {3, 24}, {100, 48}, {1, 8}} {
		imp := make([]float64, tc.dims)
		for d := range imp {
			imp[d] = math.Pow(float64(d+1), -3)
		}
		groups := allocateSlots(imp, tc.m)
		if len(groups) != tc.m {
			t.Fatalf("%+v: %d slots", tc, len(groups))
		}
		bits := make([]float64, tc.dims)
		for _, g := range groups {
			if len(g) == 0 || len(g) > maxGroup {
				t.Fatalf("%+v: group %v", tc, g)
			}
			for _, d := range g {
				bits[d] += 4 / float64(len(g))
			}
		}
		for d := 1; d < tc.dims; d++ {
			if bits[d] > bits[d-1]+1e-9 {
				t.Fatalf("%+v: dimension %d gets %.2f bits, more than the more important %d (%.2f)", tc, d, bits[d], d-1, bits[d-1])
			}
		}
		if tc.m >= 2*tc.dims && bits[0] < 8 {
			t.Fatalf("%+v: leading dimension gets only %.1f bits", tc, bits[0])
		}
	}
}

// TestBitAllocationHelps: on data with a decaying spectrum, allocating bits by expected
// inner-product error must beat 4 bits on every dimension at the same code size.
func TestBitAllocationHelps(t *testing.T) {
	const n, dim, nc, nq = 20000, 32, 300, 50
	rng := rand.New(rand.NewPCG(1, 1))
	centres := make([]float64, nc*dim)
	for i := range centres {
		centres[i] = rng.NormFloat64()
	}
	vecs := decaying(n, dim, nc, 0.5, 2, centres)
	qs := decaying(nq, dim, nc, 0.5, 3, centres)
	rms := func(uniform bool) float64 {
		uniformAlloc = uniform
		defer func() { uniformAlloc = false }()
		ix, err := Build(context.Background(), vecs, dim, Options{Kind: KindIVFPQ, NList: 64, M: 32, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		var sq float64
		var cnt int
		for qi := 0; qi < nq; qi++ {
			q := qs[qi*dim : (qi+1)*dim]
			got, err := ix.SearchWith(q, 20, SearchParams{NProbe: 64, Rescore: 40}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range got {
				e := float64(g.Score - dot(q, vecs[g.ID*dim:(g.ID+1)*dim]))
				sq += e * e
				cnt++
			}
		}
		return math.Sqrt(sq / float64(cnt))
	}
	alloc, uni := rms(false), rms(true)
	t.Logf("rms inner-product error: allocated %.5f, uniform %.5f", alloc, uni)
	if alloc > 0.85*uni {
		t.Fatalf("allocation does not help: %.5f vs uniform %.5f", alloc, uni)
	}
}
