package retrieval

import (
	"context"
	"fmt"
	"testing"

	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
)

// TestBenchDatastoreSmall runs the datastore benchmark on a tiny synthetic corpus: the
// report is complete and consistent (not a speed test).
func TestBenchDatastoreSmall(t *testing.T) {
	words, _ := embedtest.Words()
	vocab := append([]string(nil), words...)
	for i := len(vocab); i < 300; i++ { // synth needs ≥ 200 words; unknown ones embed to nothing
		vocab = append(vocab, fmt.Sprintf("tok%d", i))
	}
	cfg := DatastoreBenchConfig{
		Dir: t.TempDir(), Passages: 3000, Batch: 1000, ShardsPerCommit: 2, Embedder: testSIF(t), Vocab: vocab,
		PCADims: 8, Queries: 20,
	}
	res, err := BenchDatastore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Passages != 3000 || res.Shards != 6 || res.IngestPassagesPerS <= 0 || res.DiskBytesPerPassage <= 0 ||
		res.BM25P99ms < res.BM25P50ms || res.HybridP99ms <= 0 || res.QPS <= 0 || res.ANNRecall10 != 1 || res.ExactScanRecall10 <= 0 || res.RecallQueries != 20 || res.IngestCPUSeconds <= 0 || res.PeakRSSBytes <= 0 {
		t.Fatalf("report: %+v", res)
	}
	// Reuse queries the same store again without ingesting: same shards, no ingest figures.
	cfg.Reuse = true
	again, err := BenchDatastore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reused || again.Shards != res.Shards || again.IngestSeconds != 0 || again.HybridP99ms <= 0 || again.ANNRecall10 != res.ANNRecall10 {
		t.Fatalf("reused report: %+v", again)
	}
	cfg.Passages = 4000
	if _, err := BenchDatastore(context.Background(), cfg); err == nil {
		t.Fatal("a reused store of another size accepted")
	}
	if _, err := BenchDatastore(context.Background(), DatastoreBenchConfig{Dir: t.TempDir(), Passages: 10}); err == nil {
		t.Fatal("no embedder accepted")
	}
}
