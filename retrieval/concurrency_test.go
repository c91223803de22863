package retrieval

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// TestSearchDuringWrites runs searches while ingests, a rebuild and a fusion update
// switch generations: every search succeeds and sees one committed generation.
func TestSearchDuringWrites(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir(), testSIF(t))
	defer st.Close()
	docs := fixtureDocs(60)
	ingest(t, st, "c", &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5}, 2, docs[:20])
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				res, err := st.Search(ctx, SearchRequest{Collection: "c", Query: fixtureQueries[i%len(fixtureQueries)], K: 8})
				if err != nil {
					errs <- err
					return
				}
				if len(res.Hits) == 0 || res.Generation < 1 || res.Generation > 4 {
					errs <- errNoHits
					return
				}
			}
		}()
	}
	ingest(t, st, "c", nil, 2, docs[20:40])
	if _, err := st.Rebuild(ctx, "c", 3); err != nil {
		t.Fatal(err)
	}
	ingest(t, st, "c", nil, 1, docs[40:])
	w := 0.5
	if err := st.SetFusionWeights(ctx, "c", &FusionWeights{BM25: w}); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if info, _ := st.Collection("c"); info.Docs != 60 || info.Shards != 4 || info.Generation != 4 {
		t.Fatalf("final collection %+v", info)
	}
}

var errNoHits = errorString("search returned no hits or a bad generation")

type errorString string

func (e errorString) Error() string { return string(e) }
