package retrieval

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// clustered returns n unit vectors of dimension d around 20 centres whose variance
// decays across directions.
func clustered(n, d int, seed uint64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	centres := make([][]float64, 20)
	for c := range centres {
		centres[c] = make([]float64, d)
		for j := range centres[c] {
			centres[c][j] = r.NormFloat64() * math.Pow(0.9, float64(j))
		}
	}
	out := make([][]float32, n)
	for i := range out {
		c := centres[r.IntN(len(centres))]
		v := make([]float32, d)
		var s float64
		for j := range v {
			x := c[j] + 0.3*r.NormFloat64()*math.Pow(0.93, float64(j))
			v[j] = float32(x)
			s += x * x
		}
		for j := range v {
			v[j] /= float32(math.Sqrt(s))
		}
		out[i] = v
	}
	return out
}

// TestANNShards: a collection whose shards carry ANN indexes serves dense queries
// with high recall against the exact scan (a per-request override), keeps only the
// compact index in RAM, and survives a reopen.
func TestANNShards(t *testing.T) {
	const n, d = 3000, 48
	vecs := clustered(n, d, 1)
	docs := make([]Document, n)
	for i := range docs {
		docs[i] = Document{ID: fmt.Sprintf("v%04d", i), Text: fmt.Sprintf("vector %d", i), Vector: vecs[i]}
	}
	dir := t.TempDir()
	st := openStore(t, dir)
	opts := &CollectionOptions{Embedder: ClientVectors, Dim: d, ChunkWords: -1, PCADims: 24, DenseIndex: DenseANN, Dedup: DedupNone, Rescore: 20}
	ingest(t, st, "ann", opts, 2, docs)
	info, err := st.Collection("ann")
	if err != nil {
		t.Fatal(err)
	}
	if info.BytesPerVector <= 0 || info.BytesPerVector >= 4*24 {
		t.Fatalf("ANN collection keeps %v bytes per vector (float codes would be %d)", info.BytesPerVector, 4*24)
	}
	queries := clustered(60, d, 2)
	run := func(st *Store, di DenseIndex) [][]Hit {
		var out [][]Hit
		for _, q := range queries {
			out = append(out, search(t, st, SearchRequest{Collection: "ann", Vector: q, K: 10, Mode: ModeDense, DenseIndex: di}))
		}
		return out
	}
	approx, exact := run(st, DenseAuto), run(st, DenseExact)
	hit, total := 0, 0
	for i := range queries {
		want := map[string]bool{}
		for _, h := range exact[i] {
			want[h.PassageID] = true
		}
		for _, h := range approx[i] {
			if want[h.PassageID] {
				hit++
			}
		}
		total += len(exact[i])
		// Scores are exact full-vector inner products in both paths.
		for _, h := range approx[i] {
			var s float64
			var id int
			fmt.Sscanf(h.PassageID, "v%d#0", &id)
			for j, x := range vecs[id] {
				s += float64(x) * float64(queries[i][j])
			}
			if math.Abs(s-h.Score) > 1e-4 {
				t.Fatalf("query %d: %s scored %v, exact inner product %v", i, h.PassageID, h.Score, s)
			}
		}
	}
	recall := float64(hit) / float64(total)
	t.Logf("ANN recall@10 against the exact scan: %.3f, %.1f bytes per vector in RAM", recall, info.BytesPerVector)
	if recall < 0.9 {
		t.Fatalf("ANN recall@10 against the exact scan: %.3f", recall)
	}
	st.Close()
	st = openStore(t, dir)
	defer st.Close()
	again := run(st, DenseAuto)
	for i := range again {
		sameHits(t, fmt.Sprint("reopened ANN query ", i), approx[i], again[i])
	}
	_ = context.Background()
}
