package retrieval

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"

	"github.com/ragkv/ragkv/retrieval/beir"
	"github.com/ragkv/ragkv/retrieval/embed"
)

// TestSciFactLifecycleMatchesScratch runs the SciFact corpus through upserts, deletes,
// re-adds, compaction and a refitting rebuild that end at the original corpus, and
// checks every ranking of the 809 training queries against a from-scratch build:
// BM25 identical (passage ids, scores, chunk ids) with tombstones and after
// compaction, dense and hybrid identical after the refit, BM25 nDCG@10 ≥ 0.70.
func TestSciFactLifecycleMatchesScratch(t *testing.T) {
	if testing.Short() {
		t.Skip("indexes SciFact three times")
	}
	dir := shared.Path(t, "data", "scifact")
	f, err := os.Open(filepath.Join(dir, "corpus.jsonl"))
	if err != nil {
		t.Skipf("SciFact: %v", err)
	}
	defer f.Close()
	var docs []Document
	if err := beir.ReadCorpus(f, "corpus.jsonl", func(d beir.Doc) error {
		docs = append(docs, Document{ID: d.ID, Title: d.Title, Text: d.Text})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	qs, err := beir.LoadQueries(filepath.Join(dir, "queries.train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	qrels, err := beir.LoadQrels(filepath.Join(dir, "qrels.train.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	wv, err := embed.LoadGloVe(shared.Path(t, "embeddings", "glove.6B.100d.top50k.txt.gz"), 0)
	if err != nil {
		t.Fatal(err)
	}
	sif, err := embed.NewSIF(wv, embed.SIFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opts := &CollectionOptions{Dedup: DedupNone}
	ref := openStore(t, t.TempDir(), sif)
	defer ref.Close()
	ingest(t, ref, "c", opts, 2, docs)

	st := openStore(t, t.TempDir(), sif)
	defer st.Close()
	ingest(t, st, "c", opts, 2, docs[:4000])
	ingest(t, st, "c", nil, 2, docs[4000:])
	// Upsert 300 documents with other texts, delete 200 others.
	in, err := st.BeginIngest(ctx, "c", IngestOptions{Upsert: true})
	if err != nil {
		t.Fatal(err)
	}
	var changed, gone []Document
	for i := 0; i < 500; i++ {
		d := docs[(i*977+13)%len(docs)]
		if i < 300 {
			changed = append(changed, d)
			d.Text = docs[(i*31+7)%len(docs)].Text + " " + d.Text[:len(d.Text)/2]
			if err := in.Add(ctx, d); err != nil {
				t.Fatal(err)
			}
		} else {
			gone = append(gone, d)
			if err := in.Delete(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := in.Commit(ctx)
	if err != nil || r.Replaced != 300 || r.Deleted != 200 {
		t.Fatalf("mutating ingest: %+v, %v", r, err)
	}
	tombstoned := r.Tombstoned
	// Back to the original corpus: upsert the originals, re-add the deleted ones.
	in, err = st.BeginIngest(ctx, "c", IngestOptions{Upsert: true, Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Add(ctx, append(changed, gone...)...); err != nil {
		t.Fatal(err)
	}
	if r, err = in.Commit(ctx); err != nil || r.Replaced != 300 || r.Docs != 500 {
		t.Fatalf("restoring ingest: %+v, %v", r, err)
	}
	tombstoned += r.Tombstoned

	compare := func(label string, mode Mode) beir.Scores {
		run := map[string][]string{}
		for _, q := range qs {
			req := SearchRequest{Collection: "c", Query: q.Text, K: 100, Mode: mode, GroupByDoc: true, NoText: true}
			a, b := search(t, st, req), search(t, ref, req)
			sameHits(t, label+" "+string(mode)+" "+q.ID, a, b)
			for _, h := range a {
				run[q.ID] = append(run[q.ID], h.DocID)
			}
		}
		s := beir.Evaluate(run, qrels)
		t.Logf("%s %s: nDCG@10 %.4f recall@100 %.4f (identical to the from-scratch build)", label, mode, s.NDCG10, s.Recall100)
		return s
	}
	compare("tombstones", ModeBM25)
	st.opts.Compaction = CompactionPolicy{MergeFactor: 4, MaxShards: 2, MaxDeadFraction: 0.05}
	cr, err := st.Compact(ctx, "c")
	if err != nil || cr.ShardsAfter > 2 || cr.Dropped != tombstoned {
		t.Fatalf("compaction: %+v, %v", cr, err)
	}
	t.Logf("compaction: %+v", cr)
	if s := compare("compacted", ModeBM25); s.NDCG10 < 0.70 {
		t.Errorf("BM25 nDCG@10 %.4f < 0.70", s.NDCG10)
	}
	if _, err := st.RebuildWith(ctx, "c", RebuildOptions{Shards: 2, Refit: true}); err != nil {
		t.Fatal(err)
	}
	compare("refit", ModeDense)
	compare("refit", ModeHybrid)
}
