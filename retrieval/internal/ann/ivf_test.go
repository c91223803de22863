package ann

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"testing"
)

func measureRecall(t *testing.T, ix *Index, truth [][]Result, qs []float32, dim, k int, p SearchParams) float64 {
	t.Helper()
	var sum float64
	var dst []Result
	for qi := range truth {
		var err error
		dst, err = ix.SearchWith(qs[qi*dim:(qi+1)*dim], k, p, dst)
		if err != nil {
			t.Fatal(err)
		}
		sum += recallAt(dst, truth[qi])
	}
	return sum / float64(len(truth))
}

type ivfFixture struct {
	vecs, qs []float32
	truth    [][]Result
	ix       *Index
}

// newIVFFixture builds a 20k-vector, 32-d ivfpq index on data with a decaying spectrum.
func newIVFFixture(t *testing.T, threads int) *ivfFixture {
	t.Helper()
	const n, dim, nc, nq = 20000, 32, 200, 100
	rng := rand.New(rand.NewPCG(11, 1))
	centres := make([]float64, nc*dim)
	for i := range centres {
		centres[i] = rng.NormFloat64()
	}
	f := &ivfFixture{vecs: decaying(n, dim, nc, 0.5, 12, centres), qs: decaying(nq, dim, nc, 0.5, 13, centres)}
	var err error
	f.truth, err = ExactSearch(context.Background(), f.vecs, dim, f.qs, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	f.ix, err = Build(context.Background(), f.vecs, dim, Options{Kind: KindIVFPQ, NList: 128, NProbe: 16, Seed: 1, Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestIVFPQRecall checks recall@10 against exact search: with exact rescoring of the
// best 100 candidates it must be near perfect once enough lists are probed; the 4-bit
// codes alone (float tables) must still rank well.
func TestIVFPQRecall(t *testing.T) {
	const dim = 32
	f := newIVFFixture(t, 2)
	p := f.ix.Params()
	if p.NList != 128 || p.M != 48 || p.NProbe != 16 || p.Rescore != 100 {
		t.Fatalf("params %+v", p)
	}
	if b := f.ix.BytesPerVector(); b < 24 || b > 40 {
		t.Fatalf("bytes per vector %.2f", b)
	}
	floors := map[int]float64{1: 0.6, 4: 0.8, 16: 0.88, 64: 0.88}
	for np, floor := range floors {
		r := measureRecall(t, f.ix, f.truth, f.qs, dim, 10, SearchParams{NProbe: np})
		t.Logf("nprobe %d: recall@10 (codes, float tables) %.3f", np, r)
		if r < floor {
			t.Errorf("nprobe %d: recall %.3f below %.2f", np, r, floor)
		}
	}
	full, _ := NewVectors(f.vecs, dim)
	f.ix.SetRescorer(full)
	prev := 0.0
	for _, np := range []int{1, 4, 16, 64} {
		r := measureRecall(t, f.ix, f.truth, f.qs, dim, 10, SearchParams{NProbe: np})
		t.Logf("nprobe %d: recall@10 (rescored) %.3f", np, r)
		if r+1e-9 < prev {
			t.Errorf("recall fell from %.3f to %.3f when probing more lists", prev, r)
		}
		prev = r
	}
	if prev < 0.99 {
		t.Errorf("rescored recall at nprobe 64 is %.3f, want ≥ 0.99", prev)
	}
	// Rescored scores are exact.
	q := f.qs[:dim]
	for _, r := range f.ix.Search(q, 10, nil) {
		if want := dot(q, f.vecs[r.ID*dim:(r.ID+1)*dim]); r.Score != want {
			t.Fatalf("id %d: score %v, exact %v", r.ID, r.Score, want)
		}
	}
}

// TestIVFDeterministic: the same data, options and seed give the same bytes whatever
// the number of build threads.
func TestIVFDeterministic(t *testing.T) {
	var enc [2][]byte
	for i, threads := range []int{1, 3} {
		f := newIVFFixture(t, threads)
		var buf bytes.Buffer
		if _, err := f.ix.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		enc[i] = buf.Bytes()
	}
	if !bytes.Equal(enc[0], enc[1]) {
		t.Fatal("index bytes depend on the number of build threads")
	}
}

func TestSerializeIVF(t *testing.T) {
	const dim = 32
	f := newIVFFixture(t, 2)
	back, data := roundTrip(t, f.ix)
	if back.Params() != f.ix.Params() {
		t.Fatalf("params %+v vs %+v", back.Params(), f.ix.Params())
	}
	checkSameSearch(t, f.ix, back, f.qs, dim)
	checkCorruption(t, data)
}

func TestIVFSearchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	const dim = 32
	f := newIVFFixture(t, 2)
	full, _ := NewVectors(f.vecs, dim)
	f.ix.SetRescorer(full)
	q := f.qs[:dim]
	dst := f.ix.Search(q, 10, nil)
	allocs := testing.AllocsPerRun(50, func() { dst = f.ix.Search(q, 10, dst) })
	if allocs > 0 {
		t.Fatalf("%v allocations per search", allocs)
	}
}

// TestSelectLists: the group-maximum pruning must pick exactly the lists a full heap
// scan picks, ties included.
func TestSelectLists(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for trial := 0; trial < 300; trial++ {
		nlist := 1 + rng.IntN(3000)
		nprobe := 1 + rng.IntN(min(nlist, 64))
		iv := &ivfIndex{nlist: nlist}
		cs := make([]float32, (nlist+7)/8*8)
		for i := range cs {
			if i < nlist {
				cs[i] = float32(rng.IntN(40))
			} else {
				cs[i] = negInf
			}
		}
		var s scratch
		iv.selectLists(cs, nprobe, &s)
		var ref topK
		ref.reset(nprobe)
		for l := 0; l < nlist; l++ {
			ref.push(cs[l], int32(l))
		}
		ref.sortDesc()
		if !slices.Equal(s.lists.ids, ref.ids) {
			t.Fatalf("nlist %d nprobe %d: %v want %v", nlist, nprobe, s.lists.ids, ref.ids)
		}
	}
}
