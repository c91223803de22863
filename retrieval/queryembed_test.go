package retrieval

import (
	"context"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/retrieval/embed"
)

// asymEmbedder is a two-dimensional asymmetric embedder: a passage mentioning "alpha"
// embeds to e0, any other to e1; a query the other way round (so a search that embeds
// its query as a passage finds the opposite document).
type asymEmbedder struct{}

func (asymEmbedder) Name() string { return "asym" }
func (asymEmbedder) Dim() int     { return 2 }
func (asymEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = []float32{0, 1}
		if strings.Contains(t, "alpha") {
			out[i] = []float32{1, 0}
		}
	}
	return out, nil
}
func (e asymEmbedder) EmbedQueries(ctx context.Context, qs []string) ([][]float32, error) {
	out, _ := e.Embed(ctx, qs)
	for _, v := range out {
		v[0], v[1] = v[1], v[0]
	}
	return out, nil
}

var _ embed.QueryEmbedder = asymEmbedder{}

// TestSearchEmbedsQueriesAsQueries: dense search and tool search embed the query with
// EmbedQueries, passages and tool descriptions with Embed.
func TestSearchEmbedsQueriesAsQueries(t *testing.T) {
	st := openStore(t, t.TempDir(), asymEmbedder{})
	defer st.Close()
	ingest(t, st, "c", &CollectionOptions{Dedup: DedupNone}, 1, []Document{
		{ID: "a", Text: "the alpha passage"}, {ID: "b", Text: "the beta passage"}})
	hits := search(t, st, SearchRequest{Collection: "c", Query: "alpha", K: 1, Mode: ModeDense})
	if len(hits) != 1 || hits[0].DocID != "b" {
		t.Fatalf("dense search for %q: %+v, want document b (query encoding e1)", "alpha", hits)
	}
	ti, err := BuildToolIndex(context.Background(), asymEmbedder{}, []Tool{{Name: "a", Description: "alpha tool"}, {Name: "b", Description: "beta tool"}}, nil, ToolMethodDescription)
	if err != nil {
		t.Fatal(err)
	}
	th, err := ti.Search(context.Background(), "alpha", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(th) != 1 || th[0].Name != "b" {
		t.Fatalf("tool search for %q: %+v, want tool b", "alpha", th)
	}
}
