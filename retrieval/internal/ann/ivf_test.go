package ann

import (
	"context"
	"testing"
)

func measureRecall(t *testing.T, ix *Index, vecs, qs []float32, dim, k int, p SearchParams) float64 {
	t.Helper()
	nq := len(qs) / dim
	var sum float64
	var dst []Result
	for qi := 0; qi < nq; qi++ {
		q := qs[qi*dim : (qi+1)*dim]
		var err error
		dst, err = ix.SearchWith(q, k, p, dst)
		if err != nil {
			t.Fatal(err)
		}
		sum += recallAt(dst, exactTopK(vecs, dim, q, k))
	}
	return sum / float64(nq)
}

func TestIVFPQRecall(t *testing.T) {
	const n, dim, k = 20000, 32, 10
	vecs := clustered(n, dim, 200, 11)
	qs := clustered(100, dim, 200, 12)
	ix, err := Build(context.Background(), vecs, dim, Options{Kind: KindIVFPQ, NList: 128, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := ix.Params()
	t.Logf("nlist %d m %d nprobe %d bytes/vector %.2f", p.NList, p.M, p.NProbe, ix.BytesPerVector())
	for _, np := range []int{1, 4, 8, 16, 32} {
		r := measureRecall(t, ix, vecs, qs, dim, k, SearchParams{NProbe: np})
		t.Logf("nprobe %d: recall@10 (float tables) %.3f", np, r)
	}
	full, _ := NewVectors(vecs, dim)
	ix.SetRescorer(full)
	for _, np := range []int{1, 4, 8, 16, 32} {
		r := measureRecall(t, ix, vecs, qs, dim, k, SearchParams{NProbe: np})
		t.Logf("nprobe %d: recall@10 (rescored) %.3f", np, r)
	}
}
