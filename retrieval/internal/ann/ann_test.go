package ann

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// clustered returns n unit vectors of dimension dim drawn around nc Gaussian centres,
// with per-dimension scales decaying like a power law (as real embeddings' do).
func clustered(n, dim, nc int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	centres := make([]float32, nc*dim)
	for i := range centres {
		centres[i] = float32(rng.NormFloat64())
	}
	out := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		c := rng.IntN(nc)
		v := out[i*dim : (i+1)*dim]
		var norm float64
		for j := range v {
			s := math.Pow(float64(j+1), -0.5)
			x := s * (float64(centres[c*dim+j]) + 0.6*rng.NormFloat64())
			v[j] = float32(x)
			norm += x * x
		}
		inv := float32(1 / math.Sqrt(norm))
		for j := range v {
			v[j] *= inv
		}
	}
	return out
}

// exactTopK is a brute-force reference.
func exactTopK(vecs []float32, dim int, q []float32, k int) []Result {
	n := len(vecs) / dim
	all := make([]Result, n)
	for i := 0; i < n; i++ {
		var s float64
		for j := 0; j < dim; j++ {
			s += float64(q[j]) * float64(vecs[i*dim+j])
		}
		all[i] = Result{ID: i, Score: float32(s)}
	}
	slices.SortFunc(all, func(a, b Result) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return a.ID - b.ID
	})
	return all[:k]
}

func recallAt(got, want []Result) float64 {
	set := map[int]bool{}
	for _, r := range want {
		set[r.ID] = true
	}
	hit := 0
	for _, r := range got {
		if set[r.ID] {
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}

func TestFlatExact(t *testing.T) {
	const n, dim, k = 3000, 24, 10
	vecs := clustered(n, dim, 30, 1)
	qs := clustered(50, dim, 30, 2)
	ix, err := Build(context.Background(), vecs, dim, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Kind() != KindFlat || ix.Len() != n || ix.Dim() != dim {
		t.Fatalf("kind %s len %d dim %d", ix.Kind(), ix.Len(), ix.Dim())
	}
	if got := ix.BytesPerVector(); got != 4*dim {
		t.Fatalf("bytes per vector %v", got)
	}
	var dst []Result
	for qi := 0; qi < 50; qi++ {
		q := qs[qi*dim : (qi+1)*dim]
		dst = ix.Search(q, k, dst)
		want := exactTopK(vecs, dim, q, k)
		if len(dst) != k {
			t.Fatalf("got %d results", len(dst))
		}
		for i := range want {
			if dst[i].ID != want[i].ID && math.Abs(float64(dst[i].Score-want[i].Score)) > 1e-5 {
				t.Fatalf("query %d rank %d: got %+v want %+v", qi, i, dst[i], want[i])
			}
			if math.Abs(float64(dst[i].Score-want[i].Score)) > 1e-5 {
				t.Fatalf("query %d rank %d: score %v want %v", qi, i, dst[i].Score, want[i].Score)
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	if _, err := Build(ctx, make([]float32, 10), 3, Options{}); !errors.Is(err, ErrDimension) {
		t.Fatalf("ragged vectors: %v", err)
	}
	if _, err := Build(ctx, nil, 0, Options{}); !errors.Is(err, ErrDimension) {
		t.Fatalf("dim 0: %v", err)
	}
	if _, err := Build(ctx, make([]float32, 8*100), 8, Options{Kind: KindIVFPQ}); !errors.Is(err, ErrTooFewVectors) {
		t.Fatalf("ivfpq on 100 vectors: %v", err)
	}
	nan := clustered(300, 4, 3, 1)
	nan[4*17+2] = float32(math.NaN())
	if _, err := Build(ctx, nan, 4, Options{}); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("NaN vector: %v", err)
	}
	if _, err := ParseKind("hnsw2"); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("parse kind: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Build(cctx, make([]float32, 8*10), 8, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled build: %v", err)
	}

	ix, err := Build(ctx, clustered(100, 8, 4, 3), 8, Options{})
	if err != nil {
		t.Fatal(err)
	}
	q := make([]float32, 8)
	q[0] = 1
	if _, err := ix.SearchWith(q[:7], 5, SearchParams{}, nil); !errors.Is(err, ErrDimension) {
		t.Fatalf("wrong dim: %v", err)
	}
	for _, k := range []int{0, -1, maxK + 1} {
		if _, err := ix.SearchWith(q, k, SearchParams{}, nil); !errors.Is(err, ErrInvalidK) {
			t.Fatalf("k=%d: %v", k, err)
		}
		if got := ix.Search(q, k, nil); len(got) != 0 {
			t.Fatalf("k=%d gave %d results", k, len(got))
		}
	}
	if _, err := ix.SearchWith([]float32{0, 0, float32(math.Inf(1)), 0, 0, 0, 0, 0}, 5, SearchParams{}, nil); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("infinite query: %v", err)
	}
	if got := ix.Search(q, 1000, nil); len(got) != 100 {
		t.Fatalf("k > n gave %d results, want all 100", len(got))
	}

	empty, err := Build(ctx, nil, 8, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := empty.SearchWith(q, 3, SearchParams{}, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty index: %v %v", got, err)
	}
	if empty.BytesPerVector() != 0 {
		t.Fatal("empty index bytes per vector")
	}
}

// roundTrip writes ix and reads it back.
func roundTrip(t *testing.T, ix *Index) (*Index, []byte) {
	t.Helper()
	var buf bytes.Buffer
	n, err := ix.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	data := append([]byte(nil), buf.Bytes()...)
	back, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return back, data
}

func TestSerializeFlat(t *testing.T) {
	const dim = 16
	vecs := clustered(500, dim, 10, 4)
	ix, err := Build(context.Background(), vecs, dim, Options{Kind: KindFlat})
	if err != nil {
		t.Fatal(err)
	}
	back, data := roundTrip(t, ix)
	checkSameSearch(t, ix, back, clustered(20, dim, 10, 5), dim)
	checkCorruption(t, data)
}

func checkSameSearch(t *testing.T, a, b *Index, qs []float32, dim int) {
	t.Helper()
	if a.Len() != b.Len() || a.Dim() != b.Dim() || a.Kind() != b.Kind() || a.BytesPerVector() != b.BytesPerVector() {
		t.Fatalf("metadata differs: %v %v", a.Params(), b.Params())
	}
	for qi := 0; qi < len(qs)/dim; qi++ {
		q := qs[qi*dim : (qi+1)*dim]
		ra, rb := a.Search(q, 10, nil), b.Search(q, 10, nil)
		if !slices.Equal(ra, rb) {
			t.Fatalf("query %d: %v vs %v", qi, ra, rb)
		}
	}
}

// checkCorruption flips, truncates and extends data: every variant must fail cleanly.
func checkCorruption(t *testing.T, data []byte) {
	t.Helper()
	for _, cut := range []int{0, 3, 11, len(data) / 2, len(data) - 1} {
		if _, err := Read(bytes.NewReader(data[:cut])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: %v", cut, err)
		}
	}
	for _, pos := range []int{9, 13, len(data) / 3, len(data) - 2} {
		bad := append([]byte(nil), data...)
		bad[pos] ^= 0x40
		_, err := Read(bytes.NewReader(bad))
		if err == nil {
			t.Fatalf("flip at %d accepted", pos)
		}
		if pos == 9 && !errors.Is(err, ErrVersion) {
			t.Fatalf("version flip: %v", err)
		}
	}
	if _, err := Read(bytes.NewReader(append(append([]byte(nil), data...), 0))); !errors.Is(err, ErrCorrupt) {
		t.Fatal("trailing byte accepted")
	}
}

// TestConcurrentSearch runs searches from several goroutines (run with -race).
func TestConcurrentSearch(t *testing.T) {
	for _, kind := range testKinds {
		t.Run(string(kind), func(t *testing.T) {
			const dim = 16
			vecs := clustered(4000, dim, 20, 6)
			ix, err := Build(context.Background(), vecs, dim, Options{Kind: kind, NList: 32, NProbe: 4, Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			full, _ := NewVectors(vecs, dim)
			qs := clustered(64, dim, 20, 7)
			want := make([][]Result, 64)
			for i := range want {
				want[i] = ix.Search(qs[i*dim:(i+1)*dim], 5, nil)
			}
			var wg sync.WaitGroup
			errs := make(chan string, 8)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					var dst []Result
					for r := 0; r < 4; r++ {
						for i := range want {
							dst = ix.Search(qs[i*dim:(i+1)*dim], 5, dst)
							if !slices.Equal(dst, want[i]) {
								errs <- "concurrent result differs"
								return
							}
						}
					}
					if g == 0 {
						ix.SetRescorer(full)
						ix.SetRescorer(nil)
					}
				}(g)
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Fatal(e)
			}
		})
	}
}

func TestSearchAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	const dim = 16
	vecs := clustered(2000, dim, 10, 8)
	ix, err := Build(context.Background(), vecs, dim, Options{Kind: KindFlat})
	if err != nil {
		t.Fatal(err)
	}
	q := vecs[:dim]
	dst := ix.Search(q, 10, nil)
	allocs := testing.AllocsPerRun(50, func() { dst = ix.Search(q, 10, dst) })
	if allocs > 0 {
		t.Fatalf("%v allocations per search", allocs)
	}
}

// testKinds are the kinds the generic tests cover.
var testKinds = []Kind{KindFlat, KindIVFPQ}

func TestExactSearch(t *testing.T) {
	const n, dim, k = 3000, 13, 7
	vecs := clustered(n, dim, 30, 21)
	qs := clustered(19, dim, 30, 22)
	for _, threads := range []int{1, 3} {
		got, err := ExactSearch(context.Background(), vecs, dim, qs, k, threads)
		if err != nil {
			t.Fatal(err)
		}
		for qi := range got {
			want := exactTopK(vecs, dim, qs[qi*dim:(qi+1)*dim], k)
			if len(got[qi]) != k {
				t.Fatalf("query %d: %d results", qi, len(got[qi]))
			}
			for i := range want {
				if got[qi][i].ID != want[i].ID || math.Abs(float64(got[qi][i].Score-want[i].Score)) > 1e-5 {
					t.Fatalf("threads %d query %d rank %d: %+v want %+v", threads, qi, i, got[qi][i], want[i])
				}
			}
		}
	}
	if _, err := ExactSearch(context.Background(), vecs, dim, qs[:5], k, 1); !errors.Is(err, ErrDimension) {
		t.Fatalf("ragged queries: %v", err)
	}
}

// TestDegenerateData: constant and duplicated vectors must build and search without
// failing (empty clusters, zero-range tables).
func TestDegenerateData(t *testing.T) {
	const n, dim = 2000, 8
	for name, vecs := range map[string][]float32{
		"zeros": make([]float32, n*dim),
		"dups": func() []float32 {
			v := make([]float32, n*dim)
			base := clustered(3, dim, 3, 5)
			for i := 0; i < n; i++ {
				copy(v[i*dim:], base[(i%3)*dim:(i%3+1)*dim])
			}
			return v
		}(),
	} {
		ix, err := Build(context.Background(), vecs, dim, Options{Kind: KindIVFPQ, NList: 64})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		q := clustered(1, dim, 1, 6)
		if got := ix.Search(q, 10, nil); len(got) != 10 {
			t.Fatalf("%s: %d results", name, len(got))
		}
	}
}
