package lexical

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// zipfCorpus is a deterministic corpus with Zipf word frequencies and varied lengths
// (long posting lists spanning many blocks, and rare terms).
func zipfCorpus(n int, seed uint64) ([]string, []string) {
	r := rand.New(rand.NewPCG(seed, 1))
	vocab := make([]string, 3000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%dx", i)
	}
	z := rand.NewZipf(r, 1.1, 2, uint64(len(vocab)-1))
	docs := make([]string, n)
	for i := range docs {
		l := 3 + r.IntN(120)
		ws := make([]string, l)
		for j := range ws {
			ws[j] = vocab[z.Uint64()]
		}
		docs[i] = strings.Join(ws, " ")
	}
	return docs, vocab
}

// exhaustiveTop is the reference: every live matching document sorted by (score desc,
// ordinal asc), cut to n.
func exhaustiveTop(t *testing.T, r *Resolved, p Params, n int, dead func(uint32) bool) []Hit {
	t.Helper()
	acc := make([]float64, r.s.Stats().Docs)
	matched, err := r.Accumulate(context.Background(), p, acc, nil)
	if err != nil {
		t.Fatal(err)
	}
	var all []Hit
	for _, o := range matched {
		if dead == nil || !dead(o) {
			all = append(all, Hit{o, acc[o]})
		}
	}
	slices.SortFunc(all, func(a, b Hit) int {
		if worse(b, a) {
			return -1
		}
		if worse(a, b) {
			return 1
		}
		return 0
	})
	if len(all) > n {
		all = all[:n]
	}
	return all
}

// TestTopKEqualsExhaustive: MaxScore with block bounds returns exactly the top of the
// exhaustive ranking (ordinals and float64 scores), with and without dead documents,
// for query lengths 1-8 and k from 1 to beyond the matches, and Scores agrees.
func TestTopKEqualsExhaustive(t *testing.T) {
	docs, vocab := zipfCorpus(6000, 7)
	s := build(t, docs)
	r := rand.New(rand.NewPCG(3, 3))
	ctx := context.Background()
	deadSet := map[uint32]bool{}
	for i := 0; i < 600; i++ {
		deadSet[uint32(r.IntN(len(docs)))] = true
	}
	pruned := 0
	for qi := 0; qi < 300; qi++ {
		var ws []string
		for j := 0; j < 1+r.IntN(8); j++ {
			switch r.IntN(3) {
			case 0:
				ws = append(ws, vocab[r.IntN(20)]) // frequent
			case 1:
				ws = append(ws, vocab[r.IntN(len(vocab))])
			default:
				ws = append(ws, vocab[r.IntN(300)])
			}
		}
		if qi%10 == 0 {
			ws = append(ws, "absentterm")
		}
		q, err := Analyze(strings.Join(ws, " "))
		if err != nil {
			t.Fatal(err)
		}
		rs, err := s.Resolve(q)
		if err != nil {
			t.Fatal(err)
		}
		df := make([]int64, len(q.Terms))
		rs.AddDocFreqs(df)
		p := GlobalParams(q, s.Stats(), df)
		var dead func(uint32) bool
		if qi%2 == 1 {
			dead = func(o uint32) bool { return deadSet[o] }
		}
		for _, n := range []int{1, 10, 100, 1000, 10000} {
			want := exhaustiveTop(t, rs, p, n, dead)
			got, exhausted, err := rs.TopK(ctx, p, n, dead)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("query %q n=%d: TopK %v…, exhaustive %v…", ws, n, got[:min(5, len(got))], want[:min(5, len(want))])
			}
			if exhausted != (len(want) < n) {
				t.Fatalf("query %q n=%d: exhausted %v with %d hits", ws, n, exhausted, len(want))
			}
			if n == 10 && len(want) == 10 {
				pruned++
			}
		}
		ords := []uint32{5, 3, 5999, 0, 1234, 1233}
		out := make([]float64, len(ords))
		if err := rs.Scores(p, ords, out); err != nil {
			t.Fatal(err)
		}
		acc := make([]float64, len(docs))
		if _, err := rs.Accumulate(ctx, p, acc, nil); err != nil {
			t.Fatal(err)
		}
		for j, o := range ords {
			if out[j] != acc[o] {
				t.Fatalf("query %q: Scores(%d) = %v, Accumulate %v", ws, o, out[j], acc[o])
			}
		}
	}
	if pruned < 100 {
		t.Fatalf("only %d queries filled the top 10: the pruning path is barely exercised", pruned)
	}
}

// countingTopK measures how many documents TopK scores: it must be far fewer than the
// matching documents on a frequent-term query (the point of MaxScore).
func TestTopKSkipsMostDocuments(t *testing.T) {
	docs, vocab := zipfCorpus(20000, 9)
	s := build(t, docs)
	q, _ := Analyze(vocab[2] + " " + vocab[3] + " " + vocab[900] + " " + vocab[1500])
	rs, err := s.Resolve(q)
	if err != nil {
		t.Fatal(err)
	}
	df := make([]int64, len(q.Terms))
	rs.AddDocFreqs(df)
	p := GlobalParams(q, s.Stats(), df)
	visited := 0
	dead := func(uint32) bool { visited++; return false }
	if _, _, err := rs.TopK(context.Background(), p, 10, dead); err != nil {
		t.Fatal(err)
	}
	matched := 0
	for _, d := range df {
		matched += int(d)
	}
	if visited*4 > matched {
		t.Fatalf("TopK visited %d documents of %d postings", visited, matched)
	}
	t.Logf("visited %d of %d postings", visited, matched)
}

// TestTopKSharedEqualsMerged: shards searched concurrently with one shared Floor give,
// after the merge, exactly the global top n of the unshared per-shard lists (ties
// decided by shard then ordinal, as the store decides them by passage id), and they
// visit fewer documents.
func TestTopKSharedEqualsMerged(t *testing.T) {
	const nShards = 6
	shards := make([]*Shard, nShards)
	var vocab []string
	for i := range shards {
		var docs []string
		docs, vocab = zipfCorpus(3000, uint64(20+i))
		shards[i] = build(t, docs)
	}
	type sh struct {
		shard int
		Hit
	}
	merge := func(lists [][]Hit, n int) []sh {
		var all []sh
		for i, l := range lists {
			for _, h := range l {
				all = append(all, sh{i, h})
			}
		}
		slices.SortFunc(all, func(a, b sh) int {
			switch {
			case a.Score > b.Score:
				return -1
			case a.Score < b.Score:
				return 1
			case a.shard != b.shard:
				return a.shard - b.shard
			}
			return int(a.Ord) - int(b.Ord)
		})
		return all[:min(n, len(all))]
	}
	r := rand.New(rand.NewPCG(5, 5))
	ctx := context.Background()
	var visitsPlain, visitsShared int
	for qi := 0; qi < 150; qi++ {
		var ws []string
		for j := 0; j < 1+r.IntN(6); j++ {
			if r.IntN(2) == 0 {
				ws = append(ws, vocab[r.IntN(30)])
			} else {
				ws = append(ws, vocab[r.IntN(len(vocab))])
			}
		}
		q, err := Analyze(strings.Join(ws, " "))
		if err != nil {
			t.Fatal(err)
		}
		rs := make([]*Resolved, nShards)
		df := make([]int64, len(q.Terms))
		var st Stats
		for i, s := range shards {
			if rs[i], err = s.Resolve(q); err != nil {
				t.Fatal(err)
			}
			rs[i].AddDocFreqs(df)
			st.Docs += s.Stats().Docs
			st.TotalLength += s.Stats().TotalLength
		}
		p := GlobalParams(q, st, df)
		for _, n := range []int{1, 10, 100} {
			plain := make([][]Hit, nShards)
			shared := make([][]Hit, nShards)
			var wp, wsh [nShards]topKStats
			f := NewFloor(n)
			var wg sync.WaitGroup
			errs := make([]error, nShards)
			for i := range rs {
				if _, _, err := rs[i].topK(ctx, p, n, nil, nil, &wp[i]); err != nil {
					t.Fatal(err)
				}
				plain[i], _, _ = rs[i].TopK(ctx, p, n, nil)
				wg.Add(1)
				go func() {
					defer wg.Done()
					shared[i], _, errs[i] = rs[i].topK(ctx, p, n, nil, f, &wsh[i])
				}()
			}
			wg.Wait()
			for i := range errs {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				visitsPlain += wp[i].visits
				visitsShared += wsh[i].visits
			}
			if got, want := merge(shared, n), merge(plain, n); !slices.Equal(got, want) {
				t.Fatalf("query %q n=%d: shared-floor merge %v…, plain %v…", ws, n, got[:min(4, len(got))], want[:min(4, len(want))])
			}
		}
	}
	if visitsShared >= visitsPlain {
		t.Fatalf("the shared floor visited %d documents, the plain search %d", visitsShared, visitsPlain)
	}
	t.Logf("visits: plain %d, shared floor %d", visitsPlain, visitsShared)
}
