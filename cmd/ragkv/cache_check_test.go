package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// TestCacheCheck: `ragkv cache check --dir D --json` reports a clean disk tier as ok
// (one JSON object, the chunk count), and fails naming the problem once a byte of a
// stored layer is flipped; a missing directory is an error naming the flag.
func TestCacheCheck(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, GCInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{{Tier: disk, Eviction: eviction.Config{Capacity: math.MaxInt32}}},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := fillPut(ctx, c, "ns", uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := runFresh(t, "cache", "check", "--dir", dir, "--json")
	if err != nil {
		t.Fatalf("clean: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rep cacheCheckResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil || !rep.OK || rep.Chunks != 3 {
		t.Fatalf("clean: %+v %v\n%s", rep, err, out)
	}
	// Flip a byte in the middle of one blob file (the layers of one chunk).
	var blob string
	err = filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && blob == "" {
			blob = p
		}
		return err
	})
	if err != nil || blob == "" {
		t.Fatalf("no blob file found: %v", err)
	}
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := os.WriteFile(blob, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runFresh(t, "cache", "check", "--dir", dir)
	if err == nil || !strings.Contains(err.Error(), "1 problems") || !strings.Contains(out, "1 corrupt") {
		t.Fatalf("corrupt layer: %v\n%s", err, out)
	}
	if _, err := runFresh(t, "cache", "check", "--data-dir", dir+"/nope"); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("missing dir: %v", err)
	}
}
