package server

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"

	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
)

// TestCollectionLifecycleOverGRPC: upsert and delete in an ingest stream, list,
// compact, rebuild with refit, delete a collection; bad requests get precise codes.
func TestCollectionLifecycleOverGRPC(t *testing.T) {
	ctx := context.Background()
	c := retrievalClient(t)
	docs := testDocs(24)
	if _, err := ingestStream(t, c, &ragkvv1.IngestRequest{Collection: "a", Shards: 2, Documents: docs[:12]},
		&ragkvv1.IngestRequest{Documents: docs[12:]}); err != nil {
		t.Fatal(err)
	}
	if _, err := ingestStream(t, c, &ragkvv1.IngestRequest{Collection: "b", Documents: docs[:3]}); err != nil {
		t.Fatal(err)
	}
	changed := &ragkvv1.RetrievalDocument{Id: docs[0].Id, Title: "replaced", Text: "zebra zebra quokka"}
	res, err := ingestStream(t, c, &ragkvv1.IngestRequest{Collection: "a", Upsert: true, Shards: 1,
		Documents: []*ragkvv1.RetrievalDocument{changed}, DeleteIds: []string{docs[1].Id, "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetReplaced() != 1 || res.GetDeleted() != 1 || res.GetDeleteMissing() != 1 || res.GetTotalDocs() != 23 {
		t.Fatalf("upsert+delete: %+v", res)
	}
	r, err := c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "a", Query: "zebra quokka", K: 3, Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25})
	if err != nil || len(r.GetPassages()) != 1 || r.GetPassages()[0].GetText() != "zebra zebra quokka" {
		t.Fatalf("retrieve the upserted text: %v %v", r, err)
	}
	r, err = c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "a", Query: docs[1].Text, K: 50, Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.GetPassages() {
		if p.GetDocId() == docs[1].Id {
			t.Fatalf("deleted document %s retrieved", p.GetDocId())
		}
	}
	ls, err := c.ListCollections(ctx, &ragkvv1.ListCollectionsRequest{})
	if err != nil || len(ls.GetCollections()) != 2 || ls.GetCollections()[0].GetName() != "a" || ls.GetCollections()[0].GetShards() != 3 {
		t.Fatalf("list: %v %v", ls, err)
	}
	cr, err := c.CompactCollection(ctx, &ragkvv1.CompactCollectionRequest{Collection: "a"})
	// The default policy (tiers of 8, at most 16 shards, 25% tombstones) leaves these 3.
	if err != nil || cr.GetShardsBefore() != 3 || cr.GetShardsAfter() != 3 || cr.GetGeneration() != 2 {
		t.Fatalf("compact: %v %v", cr, err)
	}
	if _, err := c.RebuildCollection(ctx, &ragkvv1.RebuildCollectionRequest{Collection: "a", Shards: 2, Refit: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteCollection(ctx, &ragkvv1.DeleteCollectionRequest{Collection: "b"}); err != nil {
		t.Fatal(err)
	}
	ls, _ = c.ListCollections(ctx, &ragkvv1.ListCollectionsRequest{})
	if len(ls.GetCollections()) != 1 {
		t.Fatalf("after delete: %v", ls)
	}
	_, err = c.DeleteCollection(ctx, &ragkvv1.DeleteCollectionRequest{Collection: "b"})
	wantCode(t, err, codes.NotFound, "b")
	_, err = c.DeleteCollection(ctx, &ragkvv1.DeleteCollectionRequest{})
	wantCode(t, err, codes.InvalidArgument, "collection is required")
	_, err = c.CompactCollection(ctx, &ragkvv1.CompactCollectionRequest{Collection: "zz"})
	wantCode(t, err, codes.NotFound, "zz")
	_, err = ingestStream(t, c, &ragkvv1.IngestRequest{Collection: "a"}, &ragkvv1.IngestRequest{Upsert: true})
	wantCode(t, err, codes.InvalidArgument, "first message only")
}
