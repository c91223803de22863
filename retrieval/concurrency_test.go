package retrieval

import (
	"context"
	"errors"
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

// TestStaleHandleAfterDelete: a search or writer that looked a collection up just before
// it was deleted neither uses its closed shards nor writes a manifest for it (which would
// resurrect it with deleted shard directories, and make the next Open fail).
func TestStaleHandleAfterDelete(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	ingest(t, st, "c", nil, 2, fixtureDocs(10))
	c, err := st.collection("c")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if sn, err := c.pin(); !errors.Is(err, ErrCollectionNotFound) {
		if sn != nil {
			sn.release()
		}
		t.Fatalf("pin of a deleted collection: %v", err)
	}
	if err := st.lockLive(ctx, c); !errors.Is(err, ErrCollectionNotFound) {
		t.Fatalf("write lock of a deleted collection: %v", err)
	}
	ingest(t, st, "c", nil, 1, fixtureDocs(4)) // recreated: the stale handle shares its lock
	if err := st.lockLive(ctx, c); !errors.Is(err, ErrCollectionNotFound) {
		t.Fatalf("write lock through the handle of the deleted collection: %v", err)
	}
	if err := st.SetFusionWeights(ctx, "c", &FusionWeights{BM25: 0.5}); err != nil {
		t.Fatal(err) // the recreated collection's lock was released
	}
	st.Close()
	st = openStore(t, dir)
	defer st.Close()
	if info, err := st.Collection("c"); err != nil || info.Docs != 4 || info.Fusion == nil {
		t.Fatalf("reopened: %+v, %v", info, err)
	}
}
