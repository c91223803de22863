package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
)

func runRetrievalCLI(t *testing.T, args ...string) (map[string]any, string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	defer rootCmd.SetOut(nil)
	err := executeRoot(args...)
	if err != nil {
		return nil, out.String(), err
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var m map[string]any
	if jerr := json.Unmarshal([]byte(lines[len(lines)-1]), &m); jerr != nil {
		t.Fatalf("last stdout line is not one JSON object: %v\n%s", jerr, out.String())
	}
	return m, out.String(), nil
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A BEIR fixture where every query names a marker word found only in its relevant
// document: BM25 must rank it first.
func beirFixture(t *testing.T, dir string) (corpus, queries, qrels string) {
	topics := []string{"animals", "vehicles", "food", "science"}
	var c, q, r strings.Builder
	r.WriteString("query-id\tcorpus-id\tscore\n")
	for i := 0; i < 24; i++ {
		ws := embedtest.Topics[topics[i%4]]
		text := fmt.Sprintf("%s %s the %s marker%d and %s", ws[i%10], ws[(i+3)%10], ws[(i+5)%10], i, ws[(i+7)%10])
		fmt.Fprintf(&c, `{"_id":"doc%d","title":"%s","text":"%s"}`+"\n", i, topics[i%4], text)
		if i%2 == 0 {
			fmt.Fprintf(&q, `{"_id":"q%d","text":"%s marker%d"}`+"\n", i, ws[i%10], i)
			fmt.Fprintf(&r, "q%d\tdoc%d\t1\n", i, i)
		}
	}
	return writeFile(t, dir, "corpus.jsonl", c.String()), writeFile(t, dir, "queries.jsonl", q.String()), writeFile(t, dir, "qrels.tsv", r.String())
}

func TestEvalRetrievalCLI(t *testing.T) {
	dir := t.TempDir()
	corpus, queries, qrels := beirFixture(t, dir)
	glove, err := embedtest.WriteGloVe(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	common := []string{"eval", "retrieval", "--corpus", corpus, "--queries", queries, "--qrels", qrels, "--json",
		"--chunk-words", "256", "--chunk-overlap", "32", "--fusion", "weighted", "--pca-dims", "0", "--pca-sweep", "", "--no-rescore=false",
		"--fit-queries", "", "--fit-qrels", "", "--embeddings", "", "--dense-index", "auto", "--k", "100", "--dedup", "exact"}
	var digests []any
	for _, shards := range []string{"1", "3"} {
		m, _, err := runRetrievalCLI(t, append(common, "--mode", "bm25", "--shards", shards)...)
		if err != nil {
			t.Fatal(err)
		}
		if m["ndcg@10"] != 1.0 || m["recall@100"] != 1.0 || m["mrr@10"] != 1.0 || m["queries"] != 12.0 {
			t.Fatalf("bm25 with %s shards: %v", shards, m)
		}
		digests = append(digests, m["scores_sha256"])
	}
	if digests[0] != digests[1] {
		t.Fatalf("1 and 3 shards rank differently: %v", digests)
	}
	m, _, err := runRetrievalCLI(t, append(common, "--mode", "hybrid", "--shards", "2", "--embeddings", glove, "--fit-queries", queries, "--fit-qrels", qrels)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ndcg@10", "recall@100", "mrr@10", "rrf", "bm25", "dense", "fit", "hybrid_minus_best_single"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("hybrid result lacks %q: %v", k, m)
		}
	}
	if fit := m["fit"].(map[string]any); fit["eval_queries_cross_validated"] != 12.0 {
		t.Fatalf("fit: %v", fit)
	}
	// Bad input names the flag and the line.
	bad := writeFile(t, dir, "bad.jsonl", `{"_id":"a","text":"x"}`+"\n"+`{"_id":"b","text":`+"\n")
	_, _, err = runRetrievalCLI(t, append(common, "--mode", "bm25", "--shards", "1", "--corpus", bad)...)
	if err == nil || !strings.Contains(err.Error(), "--corpus") || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Fatalf("malformed corpus: %v", err)
	}
	_, _, err = runRetrievalCLI(t, append(common, "--mode", "dense", "--shards", "1")...)
	if err == nil || !strings.Contains(err.Error(), "--embeddings") {
		t.Fatalf("dense without embeddings: %v", err)
	}
	_, _, err = runRetrievalCLI(t, append(common, "--mode", "bm25", "--shards", "0")...)
	if err == nil || !strings.Contains(err.Error(), "--shards") {
		t.Fatalf("0 shards: %v", err)
	}
	_, _, err = runRetrievalCLI(t, append(common, "--mode", "bm25", "--shards", "1", "--dedup", "fuzzy")...)
	if err == nil || !strings.Contains(err.Error(), "--dedup") {
		t.Fatalf("unknown dedup: %v", err)
	}
	_, _, err = runRetrievalCLI(t, append(common, "--mode", "dense", "--shards", "1", "--embeddings", glove, "--sif-weights", "zipf")...)
	if err == nil || !strings.Contains(err.Error(), "--sif-weights") {
		t.Fatalf("unknown sif weights: %v", err)
	}
}

func TestEvalToolsCLI(t *testing.T) {
	dir := t.TempDir()
	glove, err := embedtest.WriteGloVe(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	tools := writeFile(t, dir, "tools.json", `[{"name":"Zoo","description":"a place"},{"name":"Garage","description":"a place"},{"name":"Deli","description":"a place"},{"name":"Lab","description":"a place"}]`)
	topics := map[string]string{"Zoo": "animals", "Garage": "vehicles", "Deli": "food", "Lab": "science"}
	var b strings.Builder
	n := 0
	for _, tool := range []string{"Zoo", "Garage", "Deli", "Lab"} { // fixed order: deterministic ids
		ws := embedtest.Topics[topics[tool]]
		for i := 0; i < 25; i++ {
			fmt.Fprintf(&b, `{"_id":"u%d","query":"the %s and %s","tool":"%s"}`+"\n", n, ws[i%10], ws[(i*3+1)%10], tool)
			n++
		}
	}
	train := writeFile(t, dir, "train.jsonl", b.String())
	res := map[string]map[string]any{}
	for _, method := range []string{"tool2vec", "description"} {
		m, _, err := runRetrievalCLI(t, "eval", "tools", "--tools", tools, "--train", train, "--test", "", "--holdout", "0.2", "--seed", "1",
			"--method", method, "--embeddings", glove, "--sif-weights", "rank", "--json")
		if err != nil {
			t.Fatal(err)
		}
		res[method] = m
	}
	tv, de := res["tool2vec"], res["description"]
	if tv["test"].(float64) < 10 || tv["train"].(float64)+tv["test"].(float64) != 100 {
		t.Fatalf("split: %v", tv)
	}
	// Descriptions say nothing ("a place"): with 4 tools they rank by ties, so only
	// recall@1 leaves room for a margin; usage queries carry the topic.
	if tv["recall@1"].(float64) < 0.9 || tv["recall@1"].(float64) < de["recall@1"].(float64)+0.2 ||
		tv["recall@3"].(float64) < de["recall@3"].(float64) {
		t.Fatalf("tool2vec %v vs description %v", tv, de)
	}
	_, _, err = runRetrievalCLI(t, "eval", "tools", "--tools", tools, "--train", train, "--test", "", "--holdout", "1.5",
		"--method", "tool2vec", "--embeddings", glove, "--json")
	if err == nil || !strings.Contains(err.Error(), "--holdout") {
		t.Fatalf("bad holdout: %v", err)
	}
}
