package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/ragkv/ragkv/internal/tmpfstest"
	"github.com/ragkv/ragkv/server"
)

// TestServeDiskMinFree: --disk-min-free (YAML cache.disk_min_free) is the disk tier's
// free-space reserve. On a 48 MiB tmpfs a chunk put succeeds with a 16 MiB reserve and
// is refused (ResourceExhausted) with a 48 MiB one; a reserve under 16 MiB is an error
// naming the flag.
func TestServeDiskMinFree(t *testing.T) {
	ctx := context.Background()
	var yc struct {
		Cache cacheConfig `yaml:"cache"`
	}
	if err := yaml.Unmarshal([]byte("cache:\n  disk_min_free: 20MiB\n"), &yc); err != nil || yc.Cache.DiskMinFree != 20<<20 {
		t.Fatalf("YAML disk_min_free: %v %d", err, yc.Cache.DiskMinFree)
	}
	build := func(dataDir string, reserve cacheBytes) (string, func(), error) {
		cfg := defaultServeConfig()
		cfg.DataDir = dataDir
		cfg.Cache.SyncWrites = false
		cfg.Cache.DiskMinFree = reserve
		opt, _, closer, err := buildChunkCache(ctx, &cfg, &serveEnv{log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}, nil)
		if err != nil {
			return "", nil, err
		}
		srv, err := server.New(opt, server.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			closer.Close()
			return "", nil, err
		}
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(lis) }()
		return "--addr=" + lis.Addr().String(), func() { srv.Stop(ctx); closer.Close() }, nil
	}
	if _, _, err := build(t.TempDir(), 1<<20); err == nil || !strings.Contains(err.Error(), "--disk-min-free") {
		t.Fatalf("a 1 MiB reserve: %v, want an error naming --disk-min-free", err)
	}
	put := func(addr string, tok string) error {
		_, err := runCLI(t, "cache", "put", addr, "--weights-digest=sha256:demo", "--tokens="+tok,
			"--layers=2", "--kv-heads=2", "--head-dim=8", "--json")
		return err
	}
	for _, tc := range []struct {
		reserve cacheBytes
		refused bool
	}{{16 << 20, false}, {48 << 20, true}} {
		addr, stop, err := build(tmpfstest.Mount(t, "48m"), tc.reserve)
		if err != nil {
			t.Fatal(err)
		}
		err = put(addr, "1,2,3,4")
		stop()
		switch {
		case tc.refused && (err == nil || !strings.Contains(err.Error(), "ResourceExhausted")):
			t.Errorf("reserve %d on a 48 MiB disk: put %v, want ResourceExhausted", tc.reserve, err)
		case !tc.refused && err != nil:
			t.Errorf("reserve %d on a 48 MiB disk: put %v", tc.reserve, err)
		}
	}
}
