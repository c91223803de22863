package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// TestServeSaltSecretAndQuotas: `ragkv serve` creates its salt secret 0600 in the data
// directory, reports a --namespace-quota in `cache stats`, and `cache rotate-salt`
// deletes the namespace's chunks under the old keys; bad quotas name the flag.
func TestServeSaltSecretAndQuotas(t *testing.T) {
	dir := t.TempDir()
	// YAML quotas and the flag's are merged (the flag wins per namespace and tier).
	cfgFile := filepath.Join(dir, "ragkv.yaml")
	if err := os.WriteFile(cfgFile, []byte("cache:\n  quotas:\n    y: {memory: 32KiB}\n    q: {memory: 1KiB}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--config", cfgFile, "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", "", "--sync-writes=false"}
	addrs := startServe(t, append(base, "--namespace-quota", "q=memory:64KiB,q=disk:1MiB")...)
	g := addrs["grpc"]
	fi, err := os.Stat(filepath.Join(dir, "keys", "salt.secret"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("salt secret: %v %v", fi, err)
	}
	last := func(out string) map[string]any {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var v map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return v
	}
	for i, toks := range []string{"1,2,3", "4,5,6", "7"} {
		if _, err := runFresh(t, "cache", "put", "--addr", g, "--namespace", []string{"q", "r", "y"}[i], "--weights-digest", "sha256:demo",
			"--tokens", toks, "--layers", "2", "--dtype", "f16"); err != nil {
			t.Fatal(err)
		}
	}
	out, err := runFresh(t, "cache", "stats", "--addr", g, "--json")
	if err != nil {
		t.Fatal(err)
	}
	st := last(out)
	quotas := map[string]float64{}
	for _, n := range st["namespace_stats"].([]any) {
		m := n.(map[string]any)
		for _, tu := range m["tiers"].([]any) {
			u := tu.(map[string]any)
			if q, ok := u["quota_bytes"].(float64); ok {
				quotas[m["namespace"].(string)+"/"+u["tier"].(string)] = q
			}
		}
	}
	if quotas["q/memory"] != 64<<10 || quotas["q/disk"] != 1<<20 || quotas["r/memory"] != 0 || quotas["y/memory"] != 32<<10 {
		t.Fatalf("quotas in stats: %v\n%s", quotas, out)
	}
	out, err = runFresh(t, "cache", "rotate-salt", "--addr", g, "--namespace", "q", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if r := last(out); r["generation"] != 2.0 || r["deleted"] != 1.0 {
		t.Fatalf("rotate-salt: %s", out)
	}
	out, err = runFresh(t, "cache", "stats", "--addr", g, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if c := last(out)["chunks"]; c != 2.0 {
		t.Fatalf("after rotating q: chunks %v, want r's and y's\n%s", c, out)
	}

	other := []string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", ""}
	for _, bad := range []string{"q=remote:1GiB", "q=memory:2GiB", "q:memory:1", "bad name!=memory:1MiB"} {
		_, err := runFresh(t, append(other, "--namespace-quota", bad)...)
		if err == nil || !strings.Contains(err.Error(), "--namespace-quota") {
			t.Errorf("--namespace-quota %s: %v", bad, err)
		}
	}
	_, err = runFresh(t, append(other, "--disk-capacity", "0", "--namespace-quota", "q=disk:1MiB")...)
	if err == nil || !strings.Contains(err.Error(), "--namespace-quota") || !strings.Contains(err.Error(), "disk tier off") {
		t.Errorf("disk quota with the disk tier off: %v", err)
	}
	if serveCfg.Cache.Quotas != nil || serveCfg.Cache.Disk.Capacity == 0 {
		t.Errorf("flags not reset after the runs: quotas %v, disk capacity %d", serveCfg.Cache.Quotas, serveCfg.Cache.Disk.Capacity)
	}
}

// TestServeRefusesForeignSaltSecret: `ragkv serve` on a data directory whose chunks were
// written under another salt secret refuses to start, naming --salt-secret-file, and
// deletes nothing.
func TestServeRefusesForeignSaltSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keyer, err := chunkcache.OpenKeyer(filepath.Join(dir, chunkcache.SaltSecretFile))
	if err != nil {
		t.Fatal(err)
	}
	open := func(k *chunkcache.Keyer) *chunkcache.Cache {
		disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: filepath.Join(dir, "chunkcache"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 30}}},
			Keyer: k, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open(keyer)
	l := chunkcache.Layout{Layers: 1, KVHeads: 1, HeadDim: 4, DType: chunkcache.F32}
	kv := [][]float32{make([]float32, 8)}
	if _, err := c.PutFloat32(ctx, chunkcache.PutSpec{Model: chunkcache.Fingerprint{Architecture: "llama", WeightsDigest: "sha256:x"},
		Tokens: []uint32{1, 2}, Layout: l}, kv, kv); err != nil {
		t.Fatal(err)
	}
	c.Close()
	other := filepath.Join(t.TempDir(), "other.secret")
	if _, err := chunkcache.OpenKeyer(other); err != nil { // an existing, different secret
		t.Fatal(err)
	}
	_, err = runFresh(t, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", "", "--salt-secret-file", other)
	if err == nil || !strings.Contains(err.Error(), "--salt-secret-file") || !strings.Contains(err.Error(), "another salt secret") {
		t.Fatalf("serve with another secret: %v", err)
	}
	c = open(keyer)
	defer c.Close()
	if n := c.Stats().Chunks; n != 1 {
		t.Fatalf("after the refused start: %d chunks, want 1", n)
	}
}
