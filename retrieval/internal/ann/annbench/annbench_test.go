package annbench

import (
	"context"
	"math"
	"slices"
	"testing"
)

func TestGenerateDeterministic(t *testing.T) {
	s := Synthetic{Dim: 16, Clusters: 10, Noise: 0.5, Decay: 1.5, Seed: 3}
	a, err := s.Generate(context.Background(), 20000, 0, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Generate(context.Background(), 20000, 0, 3, nil)
	if !slices.Equal(a, b) {
		t.Fatal("data depend on the number of threads")
	}
	q, _ := s.Generate(context.Background(), 100, 1, 1, nil)
	if slices.Equal(q, a[:len(q)]) {
		t.Fatal("queries repeat database rows")
	}
	// Unit norm; variance decays across dimensions.
	var first, last float64
	for i := 0; i < 20000; i++ {
		row := a[i*16 : (i+1)*16]
		var nn float64
		for _, v := range row {
			nn += float64(v) * float64(v)
		}
		if math.Abs(nn-1) > 1e-4 {
			t.Fatalf("row %d has norm² %v", i, nn)
		}
		first += float64(row[0]) * float64(row[0])
		last += float64(row[15]) * float64(row[15])
	}
	if first < 5*last {
		t.Fatalf("energy of dim 0 %.1f vs dim 15 %.1f: no decay", first, last)
	}
	if _, err := (Synthetic{Dim: 4, Clusters: 0}).Generate(context.Background(), 10, 0, 1, nil); err == nil {
		t.Fatal("zero clusters accepted")
	}
}

func TestPCA(t *testing.T) {
	s := Synthetic{Dim: 24, Clusters: 20, Noise: 0.5, Decay: 1.5, Seed: 4}
	x, _ := s.Generate(context.Background(), 5000, 0, 2, nil)
	p, err := FitPCA(x, 24, 8)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		for j := 0; j < 8; j++ {
			d := float64(dot(p.Components[i*24:(i+1)*24], p.Components[j*24:(j+1)*24]))
			if want := map[bool]float64{true: 1, false: 0}[i == j]; math.Abs(d-want) > 1e-4 {
				t.Fatalf("components %d·%d = %v", i, j, d)
			}
		}
	}
	// The projection keeps the reported share of the energy.
	proj := p.ProjectAll(x, 2)
	var kept float64
	for _, v := range proj {
		kept += float64(v) * float64(v)
	}
	if got := kept / 5000; math.Abs(got-p.Retained) > 1e-3 || p.Retained < 0.5 || p.Retained >= 1 {
		t.Fatalf("energy kept %.4f, reported %.4f", got, p.Retained)
	}
	if _, err := FitPCA(x, 24, 30); err == nil {
		t.Fatal("pca to more dimensions than the input accepted")
	}
}

func TestRunSmall(t *testing.T) {
	res, err := Run(context.Background(), Config{N: 20000, Dim: 64, PCADims: 16, K: 10, Queries: 100, Threads: 2, Seed: 1,
		Data: Synthetic{Clusters: 100, Noise: 0.5, Decay: 1.5}, NProbe: 32, Rescore: 100, Sweep: []Point{{NProbe: 4, Rescore: 20}},
		MinSeconds: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != "ivfpq" || res.N != 20000 || res.PCADims != 16 || res.NProbe != 32 || res.Rescore != 100 || len(res.Sweep) != 1 {
		t.Fatalf("report %+v", res)
	}
	if res.Recall < 0.9 || res.Sweep[0].Recall >= res.Recall || res.QPS <= 0 || res.BytesPerVector <= 0 {
		t.Fatalf("recall %.3f (sweep %.3f), qps %.0f, bytes %.1f", res.Recall, res.Sweep[0].Recall, res.QPS, res.BytesPerVector)
	}
}
