package retrievaleval

import (
	"context"
	"fmt"
	"testing"

	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/beir"
	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
)

// fixture: every query names a marker word found only in its relevant document.
func fixture(t *testing.T) Options {
	topics := []string{"animals", "vehicles", "food", "science"}
	o := Options{Qrels: beir.Qrels{}}
	for i := 0; i < 40; i++ {
		ws := embedtest.Topics[topics[i%4]]
		text := fmt.Sprintf("%s %s the %s marker%d and %s %s", ws[i%10], ws[(i+3)%10], ws[(i+5)%10], i, ws[(i+7)%10], ws[(i+1)%10])
		o.Docs = append(o.Docs, retrieval.Document{ID: fmt.Sprintf("doc%d", i), Title: topics[i%4], Text: text})
		if i%2 == 0 {
			id := fmt.Sprintf("q%d", i)
			o.Queries = append(o.Queries, beir.Query{ID: id, Text: fmt.Sprintf("%s %s", ws[i%10], ws[(i+5)%10])})
			o.Qrels[id] = map[string]int{fmt.Sprintf("doc%d", i): 1}
		}
	}
	sif, err := embed.NewSIF(embedtest.WordVectors(t), embed.SIFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.Embedders = []embed.Embedder{sif}
	o.Collection = retrieval.CollectionOptions{ChunkWords: 256, ChunkOverlap: 32, PCADims: 4, DenseIndex: retrieval.DenseExact}
	o.Collection.EnsureDefaults()
	return o
}

// NoRescore reaches the dense side of a hybrid run: scores change (codes instead of full
// vectors) while BM25's run stays the same.
func TestHybridNoRescore(t *testing.T) {
	ctx := context.Background()
	o := fixture(t)
	with, err := Evaluate(ctx, o, retrieval.ModeHybrid, retrieval.FusionWeighted, false)
	if err != nil {
		t.Fatal(err)
	}
	without, err := Evaluate(ctx, o, retrieval.ModeHybrid, retrieval.FusionWeighted, true)
	if err != nil {
		t.Fatal(err)
	}
	if with["no_rescore"] != false || without["no_rescore"] != true {
		t.Fatalf("no_rescore not reported: %v / %v", with["no_rescore"], without["no_rescore"])
	}
	h := func(m map[string]any, k string) any { return m[k].(map[string]any)["scores_sha256"] }
	if h(with, "bm25") != h(without, "bm25") {
		t.Fatal("bm25 run changed with no-rescore")
	}
	for _, k := range []string{"dense", "weighted", "rrf"} {
		if h(with, k) == h(without, k) {
			t.Errorf("%s: no-rescore scored identically to rescoring (not applied)", k)
		}
	}
}

func TestBM25AndValidation(t *testing.T) {
	ctx := context.Background()
	o := fixture(t)
	o.Embedders = nil
	o.Collection.Embedder = "none"
	for i := range o.Queries { // marker words: BM25 must rank the relevant document first
		o.Queries[i].Text += fmt.Sprintf(" marker%d", 2*i)
	}
	res, err := Evaluate(ctx, o, retrieval.ModeBM25, retrieval.FusionDefault, false)
	if err != nil {
		t.Fatal(err)
	}
	if res["ndcg@10"] != 1.0 || res["queries"] != 20 {
		t.Fatalf("bm25: %v", res)
	}
	o.K = 10
	if _, err := Evaluate(ctx, o, retrieval.ModeBM25, retrieval.FusionDefault, false); err == nil {
		t.Fatal("k = 10 accepted")
	}
}

func TestToolsHelpers(t *testing.T) {
	var qs []retrieval.LabeledToolQuery
	for i := 0; i < 1000; i++ {
		qs = append(qs, retrieval.LabeledToolQuery{ID: fmt.Sprint(i), Query: "q", Tool: fmt.Sprint("t", i%7)})
	}
	tr, te := SplitHoldout(qs, 1, 0.2)
	if len(tr)+len(te) != 1000 || len(te) < 150 || len(te) > 250 {
		t.Fatalf("split %d/%d", len(tr), len(te))
	}
	tr2, te2 := SplitHoldout(qs, 1, 0.2)
	if len(tr2) != len(tr) || te2[0].ID != te[0].ID {
		t.Fatal("split is not deterministic")
	}
	if got := len(CapUsage(qs, 2)); got != 14 {
		t.Fatalf("CapUsage(2) kept %d, want 14", got)
	}
}
