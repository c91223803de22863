package lexical

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/synth"
)

// BenchmarkTopK measures exact top-10 BM25 on one shard of synthetic passages
// (package retrieval/synth over the shared GloVe vocabulary, the corpus of `ragkv
// bench datastore`, and its queries):
//
//	RAGKV_SHARED=/work/shared RAGKV_BENCH_DOCS=200000 go test -run '^$' -bench TopK ./retrieval/internal/lexical/
func BenchmarkTopK(b *testing.B) {
	corpus, n := benchCorpus(b)
	s, st := benchShard(b, corpus, n, 0, 1)
	defer s.Close()
	qs := benchQueries(b, corpus, n, []*Shard{s}, st)
	ctx := context.Background()
	var work topKStats
	runtime.LockOSThread() // threadCPU measures this goroutine's thread
	defer runtime.UnlockOSThread()
	c0 := threadCPU()
	ops := 0
	for i := 0; b.Loop(); i++ {
		q := qs[i%len(qs)]
		if _, _, err := q.rs[0].topK(ctx, q.p, 10, nil, nil, &work); err != nil {
			b.Fatal(err)
		}
		ops++
	}
	// Work per query, independent of the machine's load: documents visited, blocks
	// decoded, and the CPU time of the searching thread.
	b.ReportMetric(float64(work.visits)/float64(ops), "docs/op")
	b.ReportMetric(float64(work.blocks)/float64(ops), "blocks/op")
	if c := threadCPU() - c0; c > 0 {
		b.ReportMetric(float64(c.Nanoseconds())/float64(ops), "cpu-ns/op")
	}
}

// benchCorpus is the synthetic corpus of `ragkv bench datastore` over the shared GloVe
// vocabulary and its size (RAGKV_BENCH_DOCS, default 100,000).
func benchCorpus(b *testing.B) (*synth.Corpus, int) {
	shared := os.Getenv("RAGKV_SHARED")
	if shared == "" {
		shared = filepath.Join("..", "..", "..", "..", "shared")
	}
	wv, err := embed.LoadGloVe(filepath.Join(shared, "embeddings", "glove.6B.100d.top50k.txt.gz"), 0)
	if err != nil {
		b.Skipf("no shared GloVe vectors: %v", err)
	}
	vocab := make([]string, wv.Len())
	for i := range vocab {
		vocab[i] = wv.Word(i)
	}
	n := 100_000
	if v := os.Getenv("RAGKV_BENCH_DOCS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1000 {
			b.Fatalf("RAGKV_BENCH_DOCS=%q", v)
		}
	}
	corpus, err := synth.New(synth.Options{Vocab: vocab, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	return corpus, n
}

// BenchmarkTopKShards measures one query over 10 shards of the bench corpus, the
// shards searched concurrently as Search does, merged at depth 10 (bm25) and 100 (the
// lexical half of hybrid), with and without the shared Floor:
//
//	RAGKV_SHARED=/work/shared RAGKV_BENCH_DOCS=1000000 go test -run '^$' -bench TopKShards ./retrieval/internal/lexical/
func BenchmarkTopKShards(b *testing.B) {
	corpus, n := benchCorpus(b)
	const nShards = 10
	shards := make([]*Shard, nShards)
	var st Stats
	for si := range shards {
		var sst Stats
		shards[si], sst = benchShard(b, corpus, n, si, nShards)
		defer shards[si].Close()
		st.Docs += sst.Docs
		st.TotalLength += sst.TotalLength
	}
	qs := benchQueries(b, corpus, n, shards, st)
	ctx := context.Background()
	for _, depth := range []int{10, 100} {
		for _, shared := range []bool{false, true} {
			b.Run(fmt.Sprintf("depth=%d/shared=%v", depth, shared), func(b *testing.B) {
				var work [nShards]topKStats
				ops := 0
				for i := 0; b.Loop(); i++ {
					q := qs[i%len(qs)]
					var f *Floor
					if shared {
						f = NewFloor(depth)
					}
					var wg sync.WaitGroup
					for si := range q.rs {
						wg.Add(1)
						go func() {
							defer wg.Done()
							if _, _, err := q.rs[si].topK(ctx, q.p, depth, nil, f, &work[si]); err != nil {
								b.Error(err)
							}
						}()
					}
					wg.Wait()
					ops++
				}
				visits := 0
				for _, w := range work {
					visits += w.visits
				}
				b.ReportMetric(float64(visits)/float64(ops), "docs/op")
			})
		}
	}
}

// benchShard builds and opens a shard of the corpus documents first, first+step, ...
// below n.
func benchShard(b *testing.B, corpus *synth.Corpus, n, first, step int) (*Shard, Stats) {
	bl, err := NewBuilder()
	if err != nil {
		b.Fatal(err)
	}
	for i := first; i < n; i += step {
		_, title, text, _ := corpus.Doc(i)
		if err := bl.Add(title + "\n" + text); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	st, err := bl.Write(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	return s, st
}

// benchQuery is a bench query resolved on every shard, with collection-global params.
type benchQuery struct {
	rs []*Resolved
	p  Params
}

// benchQueries prepares the corpus's first 200 queries on shards (st: their summed stats).
func benchQueries(b *testing.B, corpus *synth.Corpus, n int, shards []*Shard, st Stats) []benchQuery {
	var qs []benchQuery
	for i := 0; i < 200; i++ {
		text, _ := corpus.Query(i, n)
		q, err := Analyze(text)
		if err != nil {
			b.Fatal(err)
		}
		df := make([]int64, len(q.Terms))
		rs := make([]*Resolved, len(shards))
		for si, s := range shards {
			if rs[si], err = s.Resolve(q); err != nil {
				b.Fatal(err)
			}
			rs[si].AddDocFreqs(df)
		}
		qs = append(qs, benchQuery{rs, GlobalParams(q, st, df)})
	}
	return qs
}
