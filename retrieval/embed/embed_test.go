package embed_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
)

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestLoadGloVePlainAndGzip(t *testing.T) {
	dir := t.TempDir()
	words, vecs := embedtest.Words()
	for _, gz := range []bool{false, true} {
		path, err := embedtest.WriteGloVe(dir, gz)
		if err != nil {
			t.Fatal(err)
		}
		wv, err := embed.LoadGloVe(path, 0)
		if err != nil {
			t.Fatalf("gz=%v: %v", gz, err)
		}
		if wv.Len() != len(words) || wv.Dim() != embedtest.Dim {
			t.Fatalf("gz=%v: %d words × %d", gz, wv.Len(), wv.Dim())
		}
		i := wv.Lookup("cancer")
		if i < 0 || !slices.Equal(wv.Vector(i), vecs[i*embedtest.Dim:(i+1)*embedtest.Dim]) {
			t.Fatalf("gz=%v: vector of cancer differs", gz)
		}
		lim, err := embed.LoadGloVe(path, 5)
		if err != nil || lim.Len() != 5 || lim.Lookup(words[4]) != 4 || lim.Lookup(words[5]) != -1 {
			t.Fatalf("limit 5: %v", err)
		}
	}
}

func TestReadGloVeErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"a 1 2\nb 1\n", "g.txt:2: 1 values, want 2"},
		{"a 1 x\n", `g.txt:1: "x" is not a number`},
		{"lonely\n", "g.txt:1: want a word and its vector"},
		{"a 1 NaN\n", `g.txt:1: "NaN" is not a number`},
		{"", "no word vectors"},
	} {
		_, err := embed.ReadGloVe(strings.NewReader(c.in), "g.txt", 0)
		if !errors.Is(err, embed.ErrFormat) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ReadGloVe(%q) = %v, want %q", c.in, err, c.want)
		}
	}
}

func TestSIFEmbedsTopicsApart(t *testing.T) {
	ctx := context.Background()
	s, err := embed.NewSIF(embedtest.WordVectors(t), embed.SIFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	texts := []string{
		"the dog and the cat with fur", "a puppy is a pet", "my car on the road", "a truck engine for traffic",
		"bake bread in the kitchen", "a recipe for soup", "patients in a clinical study", "the tumor cell and the gene",
	}
	state, err := s.Fit(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	fe, err := s.WithState(state)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := fe.Embed(ctx, append(texts, "xyzzy unknown words"))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs[:len(texts)] {
		if math.Abs(norm(v)-1) > 1e-5 {
			t.Fatalf("vector %d has norm %v", i, norm(v))
		}
	}
	if n := norm(vs[len(texts)]); n != 0 {
		t.Fatalf("text without known words: norm %v, want a zero vector", n)
	}
	// Same-topic pairs are closer than cross-topic pairs.
	for p := 0; p < 4; p++ {
		same := embed.Dot(vs[2*p], vs[2*p+1])
		for q := 0; q < 4; q++ {
			if q == p {
				continue
			}
			if cross := embed.Dot(vs[2*p], vs[2*q]); cross >= same {
				t.Errorf("topic %d: cross-topic similarity %v ≥ same-topic %v", p, cross, same)
			}
		}
	}
	// Fitting removed the common component: the fitted embedder's vectors have a much
	// smaller mean resultant than the unfitted ones.
	raw, _ := s.Embed(ctx, texts)
	if mr, mf := meanLen(raw), meanLen(vs[:len(texts)]); mf >= mr/2 {
		t.Errorf("common component not removed: mean resultant %v fitted vs %v unfitted", mf, mr)
	}
	// The state round-trips and rejects garbage.
	fe2, err := s.WithState(slices.Clone(state))
	if err != nil {
		t.Fatal(err)
	}
	vs2, _ := fe2.Embed(ctx, texts[:1])
	if !slices.Equal(vs2[0], vs[0]) {
		t.Fatal("embedder from the same state differs")
	}
	if _, err := s.WithState(state[:len(state)-1]); !errors.Is(err, embed.ErrFormat) {
		t.Fatalf("truncated state: %v", err)
	}
}

func meanLen(vs [][]float32) float64 {
	m := make([]float32, len(vs[0]))
	for _, v := range vs {
		for j, x := range v {
			m[j] += x / float32(len(vs))
		}
	}
	return norm(m)
}

func TestSIFCorpusFrequencies(t *testing.T) {
	ctx := context.Background()
	s, err := embed.NewSIF(embedtest.WordVectors(t), embed.SIFOptions{CorpusFrequencies: true, RemoveComponents: -1})
	if err != nil {
		t.Fatal(err)
	}
	// "cat" is frequent in the fitting corpus, "dog" rare: with corpus weights the text
	// "cat dog" leans towards dog.
	corpus := []string{"cat cat cat cat cat", "cat cat cat", "cat", "dog"}
	st, err := s.Fit(ctx, corpus)
	if err != nil {
		t.Fatal(err)
	}
	fe, err := s.WithState(st)
	if err != nil {
		t.Fatal(err)
	}
	vs, _ := fe.Embed(ctx, []string{"cat dog", "cat", "dog"})
	if embed.Dot(vs[0], vs[2]) <= embed.Dot(vs[0], vs[1]) {
		t.Fatalf("corpus SIF weights: sim(text, dog) %v ≤ sim(text, cat) %v", embed.Dot(vs[0], vs[2]), embed.Dot(vs[0], vs[1]))
	}
	if _, err := embed.NewSIF(embedtest.WordVectors(t), embed.SIFOptions{A: -1}); err == nil {
		t.Fatal("negative a accepted")
	}
}

func TestHTTPEmbedder(t *testing.T) {
	ctx := context.Background()
	srv := embedtest.NewServer(t)
	srv.APIKey = "sekret"
	e, err := embed.NewHTTP(ctx, embed.HTTPOptions{URL: srv.URL, Model: "test-model", APIKey: "sekret", BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if e.Dim() != embedtest.Dim || e.Name() != "http:test-model" {
		t.Fatalf("dim %d name %q", e.Dim(), e.Name())
	}
	texts := []string{"dog and cat", "car on the road", "bread", "tumor cell", "soup recipe"}
	vs, err := e.Embed(ctx, texts)
	if err != nil {
		t.Fatal(err)
	}
	// Batches of 2 after the dimension probe; results in input order despite the
	// server's reversed listing, normalized.
	if b := srv.Batches(); !slices.Equal(b, []int{1, 2, 2, 1}) {
		t.Fatalf("batches %v, want [1 2 2 1]", b)
	}
	wv := embedtest.WordVectors(t)
	for i, text := range texts {
		want := embedtest.MeanVector(wv, text)
		embed.Normalize(want)
		for j := range want {
			if math.Abs(float64(want[j]-vs[i][j])) > 1e-6 {
				t.Fatalf("text %d: vector differs from the server's at %d: %v vs %v", i, j, vs[i][j], want[j])
			}
		}
	}
	// Errors: server failure, bad key, closed server.
	srv.Fail(http.StatusServiceUnavailable)
	if _, err := e.Embed(ctx, texts[:1]); !errors.Is(err, embed.ErrRemote) || !strings.Contains(err.Error(), "injected failure") {
		t.Fatalf("server failure: %v", err)
	}
	srv.Fail(0)
	bad, err := embed.NewHTTP(ctx, embed.HTTPOptions{URL: srv.URL, Model: "m", APIKey: "wrong", Dim: embedtest.Dim})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Embed(ctx, texts[:1]); !errors.Is(err, embed.ErrRemote) || !strings.Contains(err.Error(), "invalid api key") {
		t.Fatalf("bad key: %v", err)
	}
	wrongDim, _ := embed.NewHTTP(ctx, embed.HTTPOptions{URL: srv.URL, Model: "m", APIKey: "sekret", Dim: 8})
	if _, err := wrongDim.Embed(ctx, texts[:1]); !errors.Is(err, embed.ErrDimension) {
		t.Fatalf("dimension mismatch: %v", err)
	}
	if _, err := embed.NewHTTP(ctx, embed.HTTPOptions{URL: "ftp://x", Model: "m"}); err == nil {
		t.Fatal("bad URL accepted")
	}
	srv.Close()
	if _, err := e.Embed(ctx, texts[:1]); !errors.Is(err, embed.ErrRemote) {
		t.Fatalf("closed server: %v", err)
	}
}

func FuzzReadGloVe(f *testing.F) {
	f.Add([]byte("a 1 2\nb 3 4\n"))
	f.Add([]byte("a 1e40 -0\n\n"))
	f.Add([]byte("a NaN 1\nb 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		wv, err := embed.ReadGloVe(bytes.NewReader(b), "fuzz", 0)
		if err != nil {
			if !errors.Is(err, embed.ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		if wv.Len() == 0 || wv.Dim() == 0 {
			t.Fatal("empty table accepted")
		}
	})
}

func FuzzSIFState(f *testing.F) {
	wv := embedtest.WordVectors(f)
	s, err := embed.NewSIF(wv, embed.SIFOptions{CorpusFrequencies: true})
	if err != nil {
		f.Fatal(err)
	}
	st, err := s.Fit(context.Background(), []string{"the cat", "a car"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(st)
	f.Add([]byte("SIF1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := s.WithState(b)
		if err != nil {
			if !errors.Is(err, embed.ErrFormat) {
				t.Fatalf("error does not wrap ErrFormat: %v", err)
			}
			return
		}
		if _, err := e.Embed(context.Background(), []string{"the dog"}); err != nil {
			t.Fatal(err)
		}
	})
}
