package retrieval

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkSearch measures one query per mode on a 2,000-document fixture collection
// (about 6,000 passages) in 1 and 4 shards:
//
//	go test -run '^$' -bench Search -benchmem ./retrieval/
func BenchmarkSearch(b *testing.B) {
	st := openStore(b, b.TempDir(), testSIF(b))
	defer st.Close()
	docs := fixtureDocs(2000)
	for _, shards := range []int{1, 4} {
		name := fmt.Sprintf("s%d", shards)
		ingest(b, st, name, &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5, Dedup: DedupNone}, shards, docs)
		for _, mode := range []Mode{ModeBM25, ModeDense, ModeHybrid} {
			b.Run(fmt.Sprintf("%s/shards=%d", mode, shards), func(b *testing.B) {
				ctx := context.Background()
				for i := 0; b.Loop(); i++ {
					if _, err := st.Search(ctx, SearchRequest{Collection: name, Query: fixtureQueries[i%len(fixtureQueries)], K: 10, Mode: mode}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
