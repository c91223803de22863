package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func runBenchRetrieval(t *testing.T, args ...string) (string, error) {
	t.Helper()
	// Flags persist on the global command between runs: set every one that matters.
	base := []string{"bench", "retrieval", "--n", "20000", "--dim", "100", "--pca-dims", "32", "--k", "10",
		"--queries", "100", "--threads", "2", "--seed", "1", "--kind", "ivfpq", "--nlist", "0", "--m", "0",
		"--nprobe", "32", "--rescore", "150", "--seconds", "0.2", "--sweep", "", "--dump", ""}
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	defer rootCmd.SetOut(nil)
	err := executeRoot(append(base, args...)...)
	return out.String(), err
}

// TestBenchRetrievalJSON runs the benchmark on 20k vectors and checks its report.
func TestBenchRetrievalJSON(t *testing.T) {
	out, err := runBenchRetrieval(t, "--json", "--sweep", "8:50")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var res map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"qps", "recall@10", "bytes_per_vector", "build_seconds", "nlist", "m", "nprobe", "rescore", "pca_dims", "sweep", "target_met"} {
		if _, ok := res[k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
	if r := res["recall@10"].(float64); r < 0.9 {
		t.Errorf("recall@10 %.3f", r)
	}
	if b := res["bytes_per_vector"].(float64); b < 20 || b > 60 {
		t.Errorf("bytes per vector %.1f", b)
	}
	if res["qps"].(float64) <= 0 || res["target_met"].(bool) {
		t.Errorf("qps %v target_met %v (20k vectors cannot meet the 10^6 target)", res["qps"], res["target_met"])
	}
	if sw := res["sweep"].([]any); len(sw) != 1 {
		t.Errorf("sweep %v", sw)
	}
}

func TestBenchRetrievalBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--n", "10"}, "--n"},
		{[]string{"--pca-dims", "200"}, "--pca-dims"},
		{[]string{"--k", "0"}, "--k"},
		{[]string{"--kind", "hnsw"}, "--kind"},
		{[]string{"--sweep", "4:x"}, "--sweep"},
		{[]string{"--nlist", "16", "--nprobe", "32"}, "--nprobe"},
		{[]string{"--dump", "/nonexistent/dir"}, "--dump"},
		{[]string{"--decay", "-1"}, "--decay"},
	} {
		_, err := runBenchRetrieval(t, tc.args...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%v: error %v, want a usage error naming %s", tc.args, err, tc.flag)
		}
	}
}
