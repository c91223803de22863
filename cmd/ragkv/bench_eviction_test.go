package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/chunkcache/eviction/sim"
)

// TestBenchEvictionTrace: `bench eviction --trace` replays a libCacheSim text trace
// (unit size: with Belady) and a chunk trace (sizes and costs: without), and prints the
// results list the issue asks for.
func TestBenchEvictionTrace(t *testing.T) {
	dir := t.TempDir()
	tr := sim.Zipf("z", 0.9, 300, 4000, 1)
	var txt strings.Builder
	for _, id := range tr.Requests {
		txt.WriteString("obj")
		txt.WriteString(strings.Repeat("x", int(id%3)))
		txt.WriteString(string(rune('a' + id%26)))
		txt.WriteString(string(rune('a' + id/26%26)))
		txt.WriteString("\n")
	}
	txtPath := filepath.Join(dir, "t.txt")
	if err := os.WriteFile(txtPath, []byte(txt.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "bench", "eviction", "--trace", txtPath, "--sizes", "0.05,0.2", "--json")
	if err != nil {
		t.Fatal(err)
	}
	res := lastJSON(t, out)
	rows, _ := res["results"].([]any)
	if want := 2 * (1 + 2*len(eviction.Policies())); len(rows) != want {
		t.Fatalf("%d result rows, want %d", len(rows), want)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		m := r.(map[string]any)
		for _, k := range []string{"policy", "admission", "size_frac", "hit_ratio"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("row %v lacks %q", m, k)
			}
		}
		seen[m["policy"].(string)] = true
		if h := m["hit_ratio"].(float64); h <= 0 || h >= 1 {
			t.Fatalf("row %v: hit ratio %v", m, h)
		}
	}
	if !seen["belady"] || !seen["lirs"] || !seen["arc"] || !seen["sieve"] || res["format"] != "txt" {
		t.Fatalf("policies %v, format %v", seen, res["format"])
	}

	// A chunk trace: per-chunk sizes and recompute costs.
	chPath := filepath.Join(dir, "c.trace")
	f, err := os.Create(chPath)
	if err != nil {
		t.Fatal(err)
	}
	w, err := sim.NewChunkTraceWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range tr.Requests {
		tok := 50 + int(id%7)*40
		if err := w.Write(sim.ChunkRequest{Key: strings.Repeat("0", 60) + string(rune('a'+id%16)) + string(rune('a'+id/16%16)) + "00",
			SizeBytes: int64(tok) * 4096, Cost: float64(tok * tok), Namespace: "docs", Tokens: tok}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err = runCLI(t, "bench", "eviction", "--trace", chPath, "--sizes", "0.1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	res = lastJSON(t, out)
	if res["format"] != "chunk" || strings.Contains(out, `"policy":"belady"`) || !strings.Contains(out, `"cost_saved_ratio"`) {
		t.Fatalf("chunk trace: %s", out[max(0, len(out)-600):])
	}
	for _, bad := range []struct {
		args []string
		flag string
	}{
		{[]string{"--trace", txtPath, "--sizes", "0"}, "--sizes"},
		{[]string{"--trace", txtPath, "--sizes", "0.1,0.1"}, "--sizes"},
		{[]string{"--trace", txtPath, "--format", "parquet"}, "--format"},
		{[]string{"--trace", txtPath, "--trace-params", "obj-id-col=2"}, "--trace-params"},
		{[]string{"--trace", filepath.Join(dir, "none")}, "--trace"},
		{[]string{"--trace", chPath, "--format", "oraclegeneral"}, "--trace"},
		{[]string{"--ignore-size"}, "--ignore-size"},
		{[]string{"--trace", chPath, "--libcachesim", "/nonexistent"}, "--libcachesim"},
	} {
		if _, err := runCLI(t, append([]string{"bench", "eviction"}, bad.args...)...); err == nil || !strings.Contains(err.Error(), bad.flag) {
			t.Errorf("%v: error %v, want one naming %s", bad.args, err, bad.flag)
		}
	}
}
