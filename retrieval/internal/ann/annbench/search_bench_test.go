package annbench

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/ragkv/ragkv/retrieval/internal/ann"
)

// benchSet is a 200k-vector instance of the `ragkv bench retrieval` pipeline, built once.
var benchSet struct {
	once    sync.Once
	ix      *ann.Index
	pca     *PCA
	queries []float32
	err     error
}

const benchN, benchDim, benchPCA = 200_000, 100, 32

func loadBenchSet(b *testing.B) {
	benchSet.once.Do(func() {
		ctx := context.Background()
		s := Synthetic{Dim: benchDim, Clusters: 600, Noise: 0.5, Decay: 1.5, Seed: 1}
		full, err := s.Generate(ctx, benchN, 0, 2, nil)
		if err != nil {
			benchSet.err = err
			return
		}
		benchSet.queries, _ = s.Generate(ctx, 1000, 1, 2, nil)
		benchSet.pca, err = FitPCA(full[:50_000*benchDim], benchDim, benchPCA)
		if err != nil {
			benchSet.err = err
			return
		}
		proj := benchSet.pca.ProjectAll(full, 2)
		benchSet.ix, benchSet.err = ann.Build(ctx, proj, benchPCA, ann.Options{Kind: ann.KindIVFPQ, NList: 1024, Seed: 1})
		if benchSet.err == nil {
			v, _ := ann.NewVectors(full, benchDim)
			benchSet.ix.SetRescorer(v)
		}
	})
	if benchSet.err != nil {
		b.Fatal(benchSet.err)
	}
}

// BenchmarkSearch measures one query (projection, list scan, rescoring of the best
// candidates with the 100-d vectors) on a 200k-vector IVF-PQ index; -cpu sets the
// parallelism (b.RunParallel).
func BenchmarkSearch(b *testing.B) {
	loadBenchSet(b)
	for _, pt := range []Point{{8, 100}, {16, 100}, {32, 200}} {
		b.Run(fmt.Sprintf("nprobe=%d/rescore=%d", pt.NProbe, pt.Rescore), func(b *testing.B) {
			nq := len(benchSet.queries) / benchDim
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				s := &searcher{ix: benchSet.ix, pca: benchSet.pca, proj: make([]float32, benchPCA),
					p: ann.SearchParams{NProbe: pt.NProbe, Rescore: pt.Rescore}}
				i := 0
				for pb.Next() {
					q := benchSet.queries[(i%nq)*benchDim : (i%nq+1)*benchDim]
					if _, err := s.search(q, 10); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
