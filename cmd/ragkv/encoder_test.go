package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalRetrievalEncoderCLI: `eval retrieval --embeddings gguf:FILE` end to end with
// in-engine encoders written by `model synth` (a BERT encoder and a Llama-family decoder):
// queries that repeat a document's text retrieve that document first (full vectors), the
// JSON names the embedder, and bad --embeddings values are errors naming the flag.
func TestEvalRetrievalEncoderCLI(t *testing.T) {
	dir := t.TempDir()
	words := strings.Fields("the park dog cat tom lily red big small happy went found cake mom dad tree sun water protein cell gene study patients cancer")
	var c, q, r strings.Builder
	r.WriteString("query-id\tcorpus-id\tscore\n")
	for i := 0; i < 16; i++ {
		text := fmt.Sprintf("%s %s %s %s %s", words[i%len(words)], words[(i*7+3)%len(words)], words[(i*5+1)%len(words)], words[(i*3+2)%len(words)], words[(i+9)%len(words)])
		fmt.Fprintf(&c, `{"_id":"doc%d","title":"","text":"%s"}`+"\n", i, text)
		fmt.Fprintf(&q, `{"_id":"q%d","text":"%s"}`+"\n", i, text)
		fmt.Fprintf(&r, "q%d\tdoc%d\t1\n", i, i)
	}
	corpus, queries, qrels := writeFile(t, dir, "corpus.jsonl", c.String()), writeFile(t, dir, "queries.jsonl", q.String()), writeFile(t, dir, "qrels.tsv", r.String())
	bert, dec := filepath.Join(dir, "tiny-bert.gguf"), filepath.Join(dir, "tiny-llama3.gguf")
	for _, s := range [][]string{{"tiny-bert", bert}, {"tiny-llama3", dec}} {
		if _, err := runCLI(t, "model", "synth", "--shape", s[0], "--dtype", "f32", "--seed", "1", "--layers", "0", "--ctx", "0", "--out", s[1]); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runCLI(t, "model", "inspect", "--json", "--tensors=false", bert)
	if err != nil {
		t.Fatal(err)
	}
	if enc, ok := lastJSON(t, out)["encoder"].(map[string]any); !ok || enc["dim"] != 64.0 || enc["pooling"] != "mean" {
		t.Errorf("model inspect: %s", out)
	}
	common := []string{"eval", "retrieval", "--corpus", corpus, "--queries", queries, "--qrels", qrels, "--json",
		"--chunk-words", "256", "--chunk-overlap", "32", "--fusion", "weighted", "--pca-dims", "-1", "--pca-sweep", "", "--no-rescore=false",
		"--fit-queries", "", "--fit-qrels", "", "--dense-index", "exact", "--k", "100", "--dedup", "none", "--shards", "1"}
	for _, tc := range []struct{ spec, name string }{
		{"gguf:" + bert, "bert:tiny-bert.gguf"},
		{"gguf:" + bert + ",pool=cls", "bert:tiny-bert.gguf+pool=cls"},
		{"gguf:" + dec + ",pool=mean", "decoder:tiny-llama3.gguf+pool=mean"},
	} {
		m, out, err := runRetrievalCLI(t, append(common, "--mode", "dense", "--embeddings", tc.spec)...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.spec, err, out)
		}
		if m["embedder"] != tc.name || m["mrr@10"] != 1.0 || m["queries"] != 16.0 {
			t.Errorf("%s: %v", tc.spec, m)
		}
	}
	m, hout, err := runRetrievalCLI(t, append(common, "--mode", "hybrid", "--embeddings", "gguf:"+bert)...)
	if err != nil || m["mode"] != "hybrid" || m["ndcg@10"] != 1.0 {
		t.Errorf("hybrid: %v %v\n%s", m, err, hout)
	}
	for _, bad := range []string{"gguf:" + filepath.Join(dir, "missing.gguf"), "gguf:" + bert + ",pool=max", "gguf:" + bert + ",max=0", "gguf:", "gguf:" + corpus} {
		_, _, err := runRetrievalCLI(t, append(common, "--mode", "dense", "--embeddings", bad)...)
		if err == nil || !strings.Contains(err.Error(), "--embeddings") {
			t.Errorf("%s: error %v, want one naming --embeddings", bad, err)
		}
	}
}

// TestServeEncoderEmbedder: the serve configuration's retrieval embeddings accept an
// encoder spec (the embedder is built, named, and closed with the others); bad specs are
// errors naming --retrieval-embeddings.
func TestServeEncoderEmbedder(t *testing.T) {
	dir := t.TempDir()
	bert := filepath.Join(dir, "tiny-bert.gguf")
	if _, err := runCLI(t, "model", "synth", "--shape", "tiny-bert", "--dtype", "q8_0", "--seed", "1", "--layers", "0", "--ctx", "0", "--out", bert); err != nil {
		t.Fatal(err)
	}
	rc := retrievalConfig{Embeddings: "gguf:" + bert + ",pool=cls"}
	embs, err := rc.buildEmbedders(t.Context(), "retrieval-")
	if err != nil {
		t.Fatal(err)
	}
	if len(embs) != 1 || embs[0].Name() != "bert:tiny-bert.gguf+pool=cls" || embs[0].Dim() != 64 {
		t.Fatalf("embedders %v", embs)
	}
	v, err := embs[0].Embed(t.Context(), []string{"the park"})
	if err != nil || len(v) != 1 || len(v[0]) != 64 {
		t.Fatalf("embed: %v", err)
	}
	if err := closeEmbedders(embs); err != nil {
		t.Fatal(err)
	}
	rc = retrievalConfig{Embeddings: "gguf:" + filepath.Join(dir, "missing.gguf")}
	if _, err := rc.buildEmbedders(t.Context(), "retrieval-"); err == nil || !strings.Contains(err.Error(), "--retrieval-embeddings") {
		t.Errorf("missing file: %v", err)
	}
	// An encoder opened before a failing HTTP embedder is closed again (no error leaks).
	rc = retrievalConfig{Embeddings: "gguf:" + bert}
	rc.HTTPEmbedder.URL = "http://127.0.0.1:1"
	if _, err := rc.buildEmbedders(t.Context(), "retrieval-"); err == nil || !strings.Contains(err.Error(), "--retrieval-http-url") {
		t.Errorf("failing HTTP embedder: %v", err)
	}
}

// TestModelEmbedCLI: `model embed` prints one JSON object with unit vectors and token ids
// ([CLS] … [SEP]); a missing model or text is an error naming the flag.
func TestModelEmbedCLI(t *testing.T) {
	bert := filepath.Join(t.TempDir(), "tiny-bert.gguf")
	if _, err := runCLI(t, "model", "synth", "--shape", "tiny-bert", "--dtype", "f32", "--seed", "1", "--layers", "0", "--ctx", "0", "--out", bert); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "model", "embed", "--model", "gguf:"+bert+",pool=cls", "--text", "the park", "--text", "a red ball", "--json")
	if err != nil {
		t.Fatal(err)
	}
	m := lastJSON(t, out)
	embs, _ := m["embeddings"].([]any)
	toks, _ := m["tokens"].([]any)
	if m["pooling"] != "cls" || m["dim"] != 64.0 || len(embs) != 2 || len(toks) != 2 {
		t.Fatalf("model embed: %s", out)
	}
	var n float64
	for _, x := range embs[0].([]any) {
		n += x.(float64) * x.(float64)
	}
	if ids := toks[0].([]any); n < 0.999 || n > 1.001 || len(ids) != 4 || ids[0] != 2.0 || ids[3] != 3.0 {
		t.Errorf("norm² %g, tokens %v", n, toks[0])
	}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"model", "embed", "--model", "", "--text", "x"}, "--model"},
		{[]string{"model", "embed", "--model", bert + ".missing", "--text", "x"}, "--model"},
	} {
		if _, err := runCLI(t, c.args...); err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%v: %v", c.args, err)
		}
	}
}
