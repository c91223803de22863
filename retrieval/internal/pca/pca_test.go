package pca

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func synth(n, d int, seed uint64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float32, n)
	for i := range out {
		v := make([]float32, d)
		a, b := r.NormFloat64(), r.NormFloat64()
		v[1] = float32(10*a) + 3 // strongest direction: axis 1 (offset: the mean)
		v[4] = float32(4 * b)    // second: axis 4
		for j := range v {
			v[j] += float32(0.1 * r.NormFloat64())
		}
		out[i] = v
	}
	return out
}

func TestFitFindsLeadingComponents(t *testing.T) {
	p, err := Fit(context.Background(), synth(2000, 8, 1), 2)
	if err != nil {
		t.Fatal(err)
	}
	if c := math.Abs(float64(p.comps[0*8+1])); c < 0.99 {
		t.Errorf("first component loads %v on axis 1", c)
	}
	if c := math.Abs(float64(p.comps[1*8+4])); c < 0.99 {
		t.Errorf("second component loads %v on axis 4", c)
	}
	if !(p.Variance[0] > 90 && p.Variance[0] < 110 && p.Variance[1] > 13 && p.Variance[1] < 19) {
		t.Errorf("variances %v, want ≈ 100 and 16", p.Variance)
	}
	if math.Abs(float64(p.mean[1])-3) > 0.5 {
		t.Errorf("mean[1] = %v, want ≈ 3", p.mean[1])
	}
	v := synth(1, 8, 2)[0]
	dst, buf := make([]float32, 2), make([]float32, 8)
	allocs := testing.AllocsPerRun(10, func() { p.Project(v, dst, buf) })
	if allocs != 0 {
		t.Errorf("Project allocates %v times", allocs)
	}
	if n := math.Hypot(float64(dst[0]), float64(dst[1])); math.Abs(n-1) > 1e-6 {
		t.Errorf("projection norm %v", n)
	}
	b, _ := p.MarshalBinary()
	q, err := UnmarshalProjection(b)
	if err != nil {
		t.Fatal(err)
	}
	dst2 := make([]float32, 2)
	q.Project(v, dst2, buf)
	if dst2[0] != dst[0] || dst2[1] != dst[1] {
		t.Fatal("round-tripped projection differs")
	}
	if _, err := UnmarshalProjection(b[:len(b)-1]); !errors.Is(err, ErrFormat) {
		t.Fatalf("truncated projection: %v", err)
	}
	if _, err := Fit(context.Background(), synth(10, 8, 1), 9); err == nil {
		t.Fatal("dims > input accepted")
	}
}

func TestQuantizerPreservesOrder(t *testing.T) {
	vs := synth(500, 8, 3)
	q, err := FitQuantizer(vs)
	if err != nil {
		t.Fatal(err)
	}
	codes := make([][]int8, len(vs))
	for i, v := range vs {
		codes[i] = make([]int8, 8)
		q.Encode(v, codes[i])
		for j, c := range codes[i] { // decoding error at most half a step
			dec := q.lo[j] + (float32(c)+128)*q.step[j]
			if math.Abs(float64(dec-v[j])) > float64(q.step[j])/2+1e-5 {
				t.Fatalf("vector %d dim %d: decoded %v, was %v (step %v)", i, j, dec, v[j], q.step[j])
			}
		}
	}
	// Σ w·code orders the codes exactly as the inner product with decoded vectors.
	query := synth(1, 8, 4)[0]
	w := make([]float32, 8)
	q.QueryWeights(query, w)
	decDot := func(c []int8) float64 {
		s := 0.0
		for j := range c {
			s += float64(query[j]) * float64(q.lo[j]+(float32(c[j])+128)*q.step[j])
		}
		return s
	}
	for i := 1; i < len(codes); i++ {
		a, b := DotI8(w, codes[i-1]), DotI8(w, codes[i])
		da, db := decDot(codes[i-1]), decDot(codes[i])
		if (a > b+1e-3 && da < db-1e-3) || (a < b-1e-3 && da > db+1e-3) {
			t.Fatalf("codes %d,%d: weights order %v vs %v, decoded %v vs %v", i-1, i, a, b, da, db)
		}
	}
	b, _ := q.MarshalBinary()
	if _, err := UnmarshalQuantizer(b); err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalQuantizer(b[:9]); !errors.Is(err, ErrFormat) {
		t.Fatalf("truncated quantizer: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	p, _ := Fit(context.Background(), synth(50, 8, 1), 2)
	pb, _ := p.MarshalBinary()
	q, _ := FitQuantizer(synth(50, 8, 2))
	qb, _ := q.MarshalBinary()
	f.Add(pb)
	f.Add(qb)
	f.Add([]byte("PCA1\x01\x00\x00\x00\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := UnmarshalProjection(b); err == nil {
			dst, buf := make([]float32, p.Out()), make([]float32, p.In())
			p.Project(make([]float32, p.In()), dst, buf)
		} else if !errors.Is(err, ErrFormat) {
			t.Fatal(err)
		}
		if q, err := UnmarshalQuantizer(b); err == nil {
			q.Encode(make([]float32, q.Dim()), make([]int8, q.Dim()))
		} else if !errors.Is(err, ErrFormat) {
			t.Fatal(err)
		}
	})
}
