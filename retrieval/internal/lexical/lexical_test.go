package lexical

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var corpus = []string{
	"The quick brown fox jumps over the lazy dog.",
	"Foxes are quick; dogs are lazy. A fox is not a dog.",
	"Vitamin D deficiency is associated with cancer risk in clinical studies.",
	"Clinical trials of vitamin supplements show no effect on cancer.",
	"The dog's owner fed the dogs vitamin-rich food.",
	"Quantum entanglement of photons.",
}

// textbook computes Okapi BM25 from the analyzed tokens, independently of the index.
func textbook(t *testing.T, docs []string, query string) []float64 {
	t.Helper()
	toks := make([][]string, len(docs))
	total := 0
	for i, d := range docs {
		tk, err := Tokens(d)
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = tk
		total += len(tk)
	}
	avg := float64(total) / float64(len(docs))
	qt, err := Tokens(query)
	if err != nil {
		t.Fatal(err)
	}
	scores := make([]float64, len(docs))
	for _, term := range qt { // a repeated query term counts each time
		df := 0
		for _, tk := range toks {
			for _, x := range tk {
				if x == term {
					df++
					break
				}
			}
		}
		idf := math.Log(1 + (float64(len(docs))-float64(df)+0.5)/(float64(df)+0.5))
		for i, tk := range toks {
			tf := 0
			for _, x := range tk {
				if x == term {
					tf++
				}
			}
			if tf == 0 {
				continue
			}
			dl := float64(len(tk))
			scores[i] += idf * float64(tf) * (K1 + 1) / (float64(tf) + K1*(1-B+B*dl/avg))
		}
	}
	return scores
}

func build(t *testing.T, docs []string) *Shard {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := Build(context.Background(), dir, docs); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func score(t *testing.T, shards []*Shard, query string) [][]float64 {
	t.Helper()
	ctx := context.Background()
	q, err := Analyze(query)
	if err != nil {
		t.Fatal(err)
	}
	df := make([]int64, len(q.Terms))
	var st Stats
	for _, s := range shards {
		if err := s.DocFreqs(ctx, q, df); err != nil {
			t.Fatal(err)
		}
		st.Docs += s.Stats().Docs
		st.TotalLength += s.Stats().TotalLength
	}
	p := GlobalParams(q, st, df)
	out := make([][]float64, len(shards))
	for i, s := range shards {
		acc := make([]float64, s.Stats().Docs)
		if _, err := s.Accumulate(ctx, q, p, acc, nil); err != nil {
			t.Fatal(err)
		}
		out[i] = acc
	}
	return out
}

func TestTextbookBM25(t *testing.T) {
	s := build(t, corpus)
	for _, query := range []string{"quick fox", "vitamin cancer clinical", "dog dog owner", "the", "photons entangled"} {
		want := textbook(t, corpus, query)
		got := score(t, []*Shard{s}, query)[0]
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-9 {
				t.Errorf("%q doc %d: BM25 %v, textbook %v", query, i, got[i], want[i])
			}
		}
	}
	// Stop words only: nothing matches.
	if got := score(t, []*Shard{s}, "the a of"); got[0][0] != 0 {
		t.Fatalf("stop-word query scored %v", got[0])
	}
}

func TestShardedScoresEqualSingleShard(t *testing.T) {
	var docs []string
	for i := 0; i < 60; i++ {
		docs = append(docs, corpus[i%len(corpus)]+" doc"+strconv.Itoa(i%7)+" extra words "+strconv.Itoa(i))
	}
	one := build(t, docs)
	a, b := build(t, docs[:25]), build(t, docs[25:])
	for _, query := range []string{"quick dog doc3", "vitamin clinical cancer words", "photons doc1 doc2"} {
		whole := score(t, []*Shard{one}, query)[0]
		split := score(t, []*Shard{a, b}, query)
		joined := append(append([]float64{}, split[0]...), split[1]...)
		for i := range whole {
			if whole[i] != joined[i] { // bitwise: same statistics, same summation order
				t.Fatalf("%q doc %d: one shard %v, two shards %v", query, i, whole[i], joined[i])
			}
		}
	}
}

func TestOpenRejectsMismatchedFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := Build(context.Background(), dir, corpus); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, indexFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{b[:len(b)-1], b[:headerSize-1], append(append([]byte{}, b[:20]...), append([]byte{0xff}, b[21:]...)...)} {
		if err := writeFileSync(filepath.Join(dir, indexFile), bad); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); err == nil {
			t.Fatalf("Open accepted a damaged index of %d bytes", len(bad))
		}
	}
}
