package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/store"
)

// TestRouteCLI: three replicas hold different chunks of a request; `ragkv route`
// picks the one holding the most of its tokens, and skips a replica that is down.
func TestRouteCLI(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	fp := chunkcache.Fingerprint{Architecture: "llama", WeightsDigest: "sha256:route"}
	put := func(c *chunkcache.Cache, tokens int, seed uint32) string {
		toks := make([]uint32, tokens)
		for i := range toks {
			toks[i] = seed*1000 + uint32(i)
		}
		l := chunkcache.Layout{Layers: 1, KVHeads: 1, HeadDim: 4, DType: chunkcache.F32}
		n := l.Elems(tokens)
		res, err := c.PutFloat32(ctx, chunkcache.PutSpec{Model: fp, Tokens: toks, Layout: l}, [][]float32{make([]float32, n)}, [][]float32{make([]float32, n)})
		if err != nil {
			t.Fatal(err)
		}
		return res.Key.String()
	}
	var addrs []string
	var caches []*chunkcache.Cache
	for i := 0; i < 3; i++ {
		c, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 1 << 20}}}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(server.WithChunkCache(c), server.WithLogger(quiet))
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(func() { srv.Stop(ctx); c.Close() })
		addrs, caches = append(addrs, lis.Addr().String()), append(caches, c)
	}
	small := put(caches[0], 10, 1) // replica 0: one small chunk
	_ = put(caches[0], 10, 2)
	big := put(caches[2], 40, 3) // replica 2: the big chunk
	_ = put(caches[1], 10, 1)    // replica 1: the small one too
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()

	out, err := runCLI(t, "route", "--replicas", strings.Join(append(addrs, deadAddr), ","), "--key", small, "--key", big, "--json")
	if err != nil {
		t.Fatal(err)
	}
	res := lastJSON(t, out)
	if res["replica"] != addrs[2] {
		t.Fatalf("routed to %v, want %s: %s", res["replica"], addrs[2], out)
	}
	scores := res["scores"].([]any)
	if len(scores) != 3 || scores[0].(map[string]any)["cached_tokens"].(float64) != 40 {
		t.Fatalf("scores %v", scores)
	}
	if u := res["unreachable"].([]any); len(u) != 1 || !strings.HasPrefix(u[0].(string), deadAddr) {
		t.Fatalf("unreachable %v", u)
	}
	out, err = runCLI(t, "route", "--replicas", strings.Join(addrs, ","), "--key", small, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if got := lastJSON(t, out)["replica"]; got != addrs[0] { // replicas 0 and 1 tie: the first listed
		t.Fatalf("small chunk routed to %v", got)
	}
	if _, err := runCLI(t, "route", "--replicas", addrs[0]); err == nil || !strings.Contains(err.Error(), "--chunk") {
		t.Fatalf("no chunks: %v", err)
	}
	if _, err := runCLI(t, "route", "--replicas", deadAddr, "--key", small); err == nil || !strings.Contains(err.Error(), "no replica answered") {
		t.Fatalf("all down: %v", err)
	}
	out, err = runCLI(t, "cache", "watch", "--addr", addrs[2], "--count", "3")
	if err != nil || !strings.Contains(out, "RESET") || !strings.Contains(out, "STORED "+big+" memory") || !strings.Contains(out, "SNAPSHOT_DONE") {
		t.Fatalf("cache watch: %v %s", err, out)
	}
}
