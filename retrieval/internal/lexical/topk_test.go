package lexical

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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
