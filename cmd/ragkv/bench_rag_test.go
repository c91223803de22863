package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
)

// TestBenchRAGJSON: `ragkv bench rag --json` prints the table and one JSON object last
// with the keys the issue asks for, per method; bad flags name the flag.
func TestBenchRAGJSON(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	out, err := runFresh(t, "bench", "rag", "--stream", "musique", "--model", filepath.Join(dir, "stories260K.bin"),
		"--tokenizer", filepath.Join(dir, "tok512.bin"), "--queries", "6", "--docs", "2", "--k", "2", "--chunk-words", "30",
		"--window", "2", "--methods", "cacheblend,cachecraft", "--json")
	if err != nil {
		t.Fatal(err)
	}
	r := lastJSON(t, out)
	for _, k := range []string{"speedup_p50", "speedup_windows", "hit_ratio_windows", "ttft_ms_p50", "ttft_ms_p99", "fidelity", "recompute_frac"} {
		m, ok := r[k].(map[string]any)
		if !ok || m["full"] == nil || m["cacheblend"] == nil || m["cachecraft"] == nil {
			t.Fatalf("%s: %v", k, r[k])
		}
	}
	if w := r["speedup_windows"].(map[string]any)["cacheblend"].(map[string]any); w["first"] == nil || w["middle"] == nil || w["last"] == nil {
		t.Fatalf("speedup windows %v", w)
	}
	if r["cpu_path"] == "" || r["queries"].(float64) != 6 || !strings.Contains(out, "cacheblend ttft p50") {
		t.Fatalf("report %v\n%s", r, out)
	}
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"bench", "rag", "--stream", "trec", "--model", filepath.Join(dir, "stories260K.bin")}, "--stream"},
		{[]string{"bench", "rag", "--stream", "musique"}, "--model"},
		{[]string{"bench", "rag", "--stream", "musique", "--addr", "127.0.0.1:1", "--model", "x"}, "--model"},
		{[]string{"bench", "rag", "--stream", "musique", "--model", filepath.Join(dir, "stories260K.bin"), "--novel", "0.3"}, "--novel"},
		{[]string{"bench", "rag", "--stream", "musique", "--model", filepath.Join(dir, "stories260K.bin"), "--methods", "psychic"}, "--methods"},
		{[]string{"bench", "rag", "--stream", "musique", "--model", filepath.Join(dir, "stories260K.bin"), "--engine-decode-share", "1"}, "--engine-decode-share"},
		{[]string{"bench", "rag", "--stream", "musique", "--addr", "127.0.0.1:1", "--engine-decode-share", "0.3"}, "--engine-decode-share"},
	} {
		if _, err := runFresh(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("ragkv %s: error %v, want one naming %s", strings.Join(tc.args, " "), err, tc.flag)
		}
	}
}
