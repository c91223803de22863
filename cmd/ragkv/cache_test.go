package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/server"
)

func TestParseCacheBytes(t *testing.T) {
	cases := map[string]int64{
		"0": 0, "4096": 4096, "1KiB": 1024, "512MiB": 512 << 20, "4GiB": 4 << 30, "1.5GiB": 3 << 29,
		"100MB": 100e6, "2G": 2 << 30, "7b": 7, " 3 MiB ": 3 << 20,
	}
	for in, want := range cases {
		got, err := parseCacheBytes(in)
		if err != nil || got != want {
			t.Errorf("parseCacheBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1GiB", "12QB", "1e400"} {
		if _, err := parseCacheBytes(bad); err == nil {
			t.Errorf("parseCacheBytes(%q) accepted", bad)
		}
	}
}

func TestCacheConfigYAML(t *testing.T) {
	cfg := defaultServeConfig()
	src := `
cache:
  memory: {capacity: 256MiB, policy: s3fifo, admission: tinylfu, high_watermark: 0.9, low_watermark: 0.8, probation: 0.25}
  disk: {capacity: 1073741824, kv_format: q4, kv_formats: {exact: f16, archive: "q2:group=16"}}
  sync_writes: false
  namespaces: [default, tenant-a]
`
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg.Cache
	if c.Memory.Capacity != 256<<20 || c.Memory.Policy != "s3fifo" || c.Memory.Admission != "tinylfu" || c.Memory.LowWatermark != 0.8 ||
		c.Disk.Capacity != 1<<30 || c.Disk.Policy != "lru" || c.SyncWrites || !c.WriteThrough || len(c.Namespaces) != 2 {
		t.Fatalf("config %+v", c)
	}
	if err := c.Memory.validate("mem", "policy"); err != nil {
		t.Fatal(err)
	}
	if c.Memory.eviction().Probation != 0.25 {
		t.Fatalf("probation %v", c.Memory.eviction().Probation)
	}
	bad := c.Memory
	bad.Probation = 1.5
	if err := bad.validate("mem", "policy"); err == nil || !strings.Contains(err.Error(), "memory tier") || !strings.Contains(err.Error(), "probation") {
		t.Fatalf("bad probation: %v", err)
	}
	if nf, err := c.Disk.nsFormats("disk"); err != nil || nf["exact"].DType != chunkcache.F16 || nf["archive"].Format() != "q2:group=16" {
		t.Fatalf("disk namespace formats %v, %v", nf, err)
	}
	c.Disk.KVFormats["archive"] = "q3"
	if _, err := c.Disk.nsFormats("disk"); err == nil || !strings.Contains(err.Error(), `disk.kv_formats["archive"]`) {
		t.Fatalf("bad namespace format: %v", err)
	}
	c.Memory.Policy = "mru"
	var ue usageError
	if err := c.Memory.validate("mem", "policy"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--policy") {
		t.Fatalf("bad policy: %v", err)
	}
}

// TestRemoteKVFormatConfig: the remote tier's format comes from YAML (remote.kv_format,
// remote.kv_formats) or --remote-kv-format; errors name the flag or key, and a format
// without a remote tier is refused.
func TestRemoteKVFormatConfig(t *testing.T) {
	cfg := defaultServeConfig()
	src := `
cache:
  remote: {url: "redis://127.0.0.1:6379", kv_format: q4, kv_formats: {exact: f16}}
`
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	f, ns, err := cfg.Cache.Remote.formats()
	if err != nil || f.DType != chunkcache.Q4 || ns["exact"].DType != chunkcache.F16 {
		t.Fatalf("remote formats %v %v, %v", f.Format(), ns, err)
	}
	rc := cfg.Cache.Remote
	rc.KVFormat = "q3"
	var ue usageError
	if _, _, err := rc.formats(); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--remote-kv-format") {
		t.Fatalf("bad remote format: %v", err)
	}
	rc = cfg.Cache.Remote
	rc.KVFormats = map[string]string{"exact": "f17"}
	if _, _, err := rc.formats(); err == nil || !strings.Contains(err.Error(), `remote.kv_formats["exact"]`) {
		t.Fatalf("bad remote namespace format: %v", err)
	}
	rc = cfg.Cache.Remote
	rc.URL = ""
	if _, _, err := rc.formats(); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--remote") {
		t.Fatalf("format without a remote tier: %v", err)
	}
}

// runCLI runs the ragkv command line in-process and returns its stdout.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	outc := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		outc <- b
	}()
	err = executeRoot(args...)
	w.Close()
	os.Stdout = old
	return string(<-outc), err
}

// lastJSON decodes the last stdout line, which every --json command prints.
func lastJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("last line is not a JSON object: %q", out)
	}
	return m
}

// TestCacheCLI drives the client subcommands against a real server built by the serve
// component (memory + Badger tiers).
func TestCacheCLI(t *testing.T) {
	ctx := context.Background()
	cfg := defaultServeConfig()
	cfg.DataDir = t.TempDir()
	cfg.Cache.SyncWrites = false
	opt, val, closer, err := buildChunkCache(ctx, &cfg, &serveEnv{log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := val.(*chunkcache.Cache); !ok {
		t.Fatalf("component value is %T", val)
	}
	srv, err := server.New(opt, server.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer func() {
		srv.Stop(ctx)
		closer.Close()
	}()
	addr := "--addr=" + lis.Addr().String()

	if _, err := runCLI(t, "cache", "put", addr, "--tokens=1,2,3"); err == nil || !strings.Contains(err.Error(), "--weights-digest") {
		t.Fatalf("put without a weights digest: %v", err)
	}
	out, err := runCLI(t, "cache", "put", addr, "--namespace=docs", "--weights-digest=sha256:demo", "--tokens=5,6,7,8",
		"--layers=3", "--kv-heads=2", "--head-dim=8", "--dtype=int8", "--meta=cachecraft/summary=abc", "--json")
	if err != nil {
		t.Fatal(err)
	}
	put := lastJSON(t, out)
	key, _ := put["key"].(string)
	if len(key) != 64 || put["admitted"] != true {
		t.Fatalf("put: %v", put)
	}
	out, err = runCLI(t, "cache", "lookup", addr, "--namespace=docs", key, "--json")
	if err != nil || !strings.Contains(out, `"present":true`) || !strings.Contains(out, `"tiers":["memory","disk"]`) {
		t.Fatalf("lookup: %v %s", err, out)
	}
	blob1 := filepath.Join(t.TempDir(), "a.rkvb")
	out, err = runCLI(t, "cache", "get", addr, "--namespace=docs", key, "--out="+blob1, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if g := lastJSON(t, out); g["layers_received"] != 3.0 || g["dtype"] != "int8" || g["crc_ok"] != true {
		t.Fatalf("get: %v", g)
	}
	// The blob file puts back under another namespace and reads back byte-identical.
	out, err = runCLI(t, "cache", "put", addr, "--namespace=docs2", "--weights-digest=sha256:demo", "--tokens=5,6,7,8", "--in="+blob1, "--json")
	if err != nil {
		t.Fatal(err)
	}
	key2, _ := lastJSON(t, out)["key"].(string)
	if key2 == key || len(key2) != 64 {
		t.Fatalf("namespaced put gave key %q", key2)
	}
	blob2 := filepath.Join(t.TempDir(), "b.rkvb")
	if _, err := runCLI(t, "cache", "get", addr, "--namespace=docs2", key2, "--out="+blob2, "--json"); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(blob1)
	b2, _ := os.ReadFile(blob2)
	if len(b1) == 0 || !bytes.Equal(b1, b2) {
		t.Fatal("blob round trip through put --in / get --out is not byte-identical")
	}
	if _, err := runCLI(t, "cache", "pin", addr, "--namespace=docs", key, "--soft", "--json"); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "cache", "stats", addr, "--json")
	if err != nil {
		t.Fatal(err)
	}
	st := lastJSON(t, out)
	if st["chunks"] != 2.0 || !strings.Contains(out, `"pinned_bytes"`) {
		t.Fatalf("stats: %s", out)
	}
	out, err = runCLI(t, "cache", "policy", addr, "--tier=memory", "--policy=lfu", "--capacity=64MiB", "--json")
	if err != nil || !strings.Contains(out, `"policy":"lfu"`) || !strings.Contains(out, `"capacity_bytes":67108864`) {
		t.Fatalf("policy: %v %s", err, out)
	}
	if _, err := runCLI(t, "cache", "delete", addr, "--namespace=docs", key, "--json"); err != nil {
		t.Fatal(err)
	}
	if _, err := runCLI(t, "cache", "get", addr, "--namespace=docs", key, "--out=", "--json"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := runCLI(t, "cache", "lookup", addr, "--namespace=nobody", key); err == nil || !strings.Contains(err.Error(), "unknown namespace") {
		t.Fatalf("lookup in an unknown namespace: %v", err)
	}
	if _, err := runCLI(t, "cache", "delete", addr, "--namespace=docs", "zz"); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("bad key: %v", err)
	}
}
