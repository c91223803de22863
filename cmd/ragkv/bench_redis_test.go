package main

import (
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/redistest"
	"github.com/ragkv/ragkv/internal/shared"
)

// TestBenchRemoteAndRESPJSON runs both benchmarks small: one JSON object last, with
// the fields the README reports.
func TestBenchRemoteAndRESPJSON(t *testing.T) {
	redistest.Binary(t)
	redistest.Tool(t, "redis-benchmark")
	shared.Path(t)
	out, err := runCLI(t, "bench", "remote", "--count", "4", "--chunk-bytes", "65536", "--layers", "4", "--rounds", "1", "--iters", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	r := lastJSON(t, out)
	p, _ := r["prefill"].(map[string]any)
	if !(r["tier_read_gbps"].(float64) > 0) || !(r["redis_get_gbps"].(float64) > 0) || p == nil || !(p["ttft_remote_cacheblend_s"].(float64) > 0) || p["same_first_token"] != true {
		t.Fatalf("bench remote: %s", out)
	}
	out, err = runCLI(t, "bench", "resp", "--value-bytes", "1000", "--requests", "500", "--rounds", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	r = lastJSON(t, out)
	if !(r["get_ratio"].(float64) > 0) || !strings.Contains(out, `"redis_version"`) {
		t.Fatalf("bench resp: %s", out)
	}
	if _, err := runCLI(t, "bench", "resp", "--value-bytes", "0"); err == nil || !strings.Contains(err.Error(), "--value-bytes") {
		t.Fatalf("bad --value-bytes: %v", err)
	}
}
