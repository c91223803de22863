package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
)

// TestCollectionLifecycleCLI drives ingest --upsert/--delete and collection
// list/compact/rebuild --refit/delete against `ragkv serve`.
func TestCollectionLifecycleCLI(t *testing.T) {
	work := t.TempDir()
	glove, err := embedtest.WriteGloVe(work, false)
	if err != nil {
		t.Fatal(err)
	}
	addrs := startServe(t, "--data-dir", filepath.Join(work, "data"), "--listen", "127.0.0.1:0", "--admin-listen", "",
		"--retrieval-embeddings", glove, "--retrieval-compact-every", "0")
	corpus := filepath.Join(work, "corpus.jsonl")
	var cb strings.Builder
	for i, d := range []string{"the cat sat on the mat", "a fast boat on the water", "the dog ran in the park", "bread and cheese"} {
		fmt.Fprintf(&cb, `{"_id":"d%d","title":"","text":%q}`+"\n", i, d)
	}
	if err := os.WriteFile(corpus, []byte(cb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	up := filepath.Join(work, "up.jsonl")
	if err := os.WriteFile(up, []byte(`{"_id":"d0","title":"","text":"a zebra on the mat"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := addrs["grpc"]
	for _, args := range [][]string{
		{"ingest", "--addr", g, "--collection", "kb", "--corpus", corpus},
		{"ingest", "--addr", g, "--collection", "other", "--corpus", corpus},
	} {
		if _, err := runFresh(t, args...); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runFresh(t, "ingest", "--addr", g, "--collection", "kb", "--corpus", up, "--upsert", "--delete", "d1,d2")
	if err != nil || !strings.Contains(out, "1 replaced, 2 deleted") || !strings.Contains(out, "total 2 docs") {
		t.Fatalf("upsert+delete: %q %v", out, err)
	}
	out, err = runFresh(t, "query", "--addr", g, "--collection", "kb", "--query", "zebra", "--k", "2", "--mode", "bm25")
	if err != nil || !strings.Contains(out, "zebra") {
		t.Fatalf("query the upserted text: %q %v", out, err)
	}
	if out, err = runFresh(t, "collection", "compact", "--addr", g, "--collection", "kb"); err != nil || !strings.Contains(out, "kb: generation") {
		t.Fatalf("compact: %q %v", out, err)
	}
	if out, err = runFresh(t, "collection", "rebuild", "--addr", g, "--collection", "kb", "--refit"); err != nil {
		t.Fatalf("rebuild --refit: %q %v", out, err)
	}
	if out, err = runFresh(t, "collection", "delete", "--addr", g, "--collection", "other"); err != nil || !strings.Contains(out, "other: deleted") {
		t.Fatalf("delete: %q %v", out, err)
	}
	out, err = runFresh(t, "collection", "list", "--addr", g, "--json")
	if err != nil || !strings.Contains(out, "kb: generation 4, 2 docs, 2 passages, 1 shards") || strings.Contains(out, "other") {
		t.Fatalf("list: %q %v", out, err)
	}
	if _, err = runFresh(t, "collection", "delete", "--addr", g); err == nil || !strings.Contains(err.Error(), "collection") {
		t.Fatalf("delete without --collection: %v", err)
	}
}
