package resp

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/redistest"
	"github.com/ragkv/ragkv/store"
)

func startServer(t testing.TB, memCap int64, o Options) (*Server, *chunkcache.Cache, string) {
	t.Helper()
	c, err := chunkcache.New(context.Background(), chunkcache.Options{
		Tiers:  []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: memCap}}},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	o.Logger = slog.New(slog.DiscardHandler)
	s, err := New(c, o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(lis) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
		c.Close()
	})
	return s, c, lis.Addr().String()
}

func TestGoRedisClient(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	_, cache, addr := startServer(t, 64<<20, Options{Registerer: reg, SweepInterval: 20 * time.Millisecond})
	// go-redis v9 starts with HELLO 3, falls back to RESP2 on NOPROTO, and sends
	// CLIENT SETINFO.
	rc := redis.NewClient(&redis.Options{Addr: addr, ClientName: "tester"})
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	if err := rc.Set(ctx, "big", big, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := rc.Get(ctx, "big").Bytes(); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("get big: %v (equal %v)", err, bytes.Equal(got, big))
	}
	if err := rc.Get(ctx, "missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("missing: %v", err)
	}
	if err := rc.MSet(ctx, "a", "1", "b", "2").Err(); err != nil {
		t.Fatal(err)
	}
	vals, err := rc.MGet(ctx, "a", "missing", "b").Result()
	if err != nil || vals[0] != "1" || vals[1] != nil || vals[2] != "2" {
		t.Fatalf("mget %v %v", vals, err)
	}
	if n, err := rc.Exists(ctx, "a", "b", "a", "missing").Result(); err != nil || n != 3 {
		t.Fatalf("exists %d %v", n, err)
	}
	if err := rc.Set(ctx, "ex", "v", 2*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rc.TTL(ctx, "ex").Result(); err != nil || ttl != 2*time.Second {
		t.Fatalf("ttl %v %v", ttl, err)
	}
	if ttl, _ := rc.TTL(ctx, "a").Result(); ttl != -1 {
		t.Fatalf("ttl of a key without expiry %v", ttl)
	}
	if ttl, _ := rc.PTTL(ctx, "missing").Result(); ttl != -2 {
		t.Fatalf("pttl of a missing key %v", ttl)
	}
	if err := rc.Set(ctx, "px", "v", 30*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if err := rc.Get(ctx, "px").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("expired key: %v", err)
	}
	if err := rc.Do(ctx, "SET", "k", "v", "KEEPTTL").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Do(ctx, "SET", "nx", "v", "NX").Err(); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("SET NX: %v", err)
	}
	if err := rc.Do(ctx, "SET", "k", "v", "EX", "0").Err(); err == nil {
		t.Fatal("EX 0 accepted")
	}
	if n, err := rc.Del(ctx, "a", "a", "b", "missing").Result(); err != nil || n != 2 {
		t.Fatalf("del %d %v", n, err)
	}
	if n, _ := rc.DBSize(ctx).Result(); n != 3 { // big, ex, k
		t.Fatalf("dbsize %d", n)
	}
	if typ, _ := rc.Type(ctx, "big").Result(); typ != "string" {
		t.Fatalf("type %q", typ)
	}
	info, err := rc.Info(ctx, "keyspace", "memory").Result()
	if err != nil || !strings.Contains(info, "db0:keys=3") || !strings.Contains(info, "used_memory:") {
		t.Fatalf("info %q %v", info, err)
	}
	if name, _ := rc.ClientGetName(ctx).Result(); name != "tester" {
		t.Fatalf("client name %q", name)
	}
	if err := rc.Do(ctx, "FLUSHALL").Err(); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("unknown command: %v", err)
	}
	if err := rc.Do(ctx, "GET").Err(); err == nil || !strings.Contains(err.Error(), "wrong number of arguments") {
		t.Fatalf("arity: %v", err)
	}
	if err := rc.Do(ctx, "AUTH", "pw").Err(); err == nil {
		t.Fatal("AUTH accepted without a password")
	}
	// Pipelined.
	pipe := rc.Pipeline()
	for i := 0; i < 100; i++ {
		pipe.Set(ctx, "p"+strings.Repeat("x", i), i, 0)
	}
	get := pipe.Get(ctx, "pxxx")
	if _, err := pipe.Exec(ctx); err != nil || get.Val() != "3" {
		t.Fatalf("pipeline: %v %q", err, get.Val())
	}

	// The values are chunk-cache values in namespace "resp": in its tiers and events.
	k, _ := cache.ValueKey("resp", []byte("big"))
	res, err := cache.Lookup(ctx, "resp", []chunkcache.Key{k})
	if err != nil || !res[0].Present || res[0].Kind != chunkcache.KindValue || res[0].StoredBytes < 4<<20 {
		t.Fatalf("lookup %+v %v", res, err)
	}
	mfs, _ := reg.Gather()
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
	}
	for _, name := range []string{"ragkv_resp_commands_total", "ragkv_resp_connections", "ragkv_resp_read_bytes_total", "ragkv_resp_written_bytes_total"} {
		if !seen[name] {
			t.Errorf("metric %s missing", name)
		}
	}
}

// TestEvictionAndPins: the memory tier's budget holds; a pinned value survives.
func TestEvictionAndPins(t *testing.T) {
	ctx := context.Background()
	_, cache, addr := startServer(t, 1<<20, Options{})
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	val := bytes.Repeat([]byte("v"), 100<<10)
	if err := rc.Set(ctx, "pinned", val, 0).Err(); err != nil {
		t.Fatal(err)
	}
	k, _ := cache.ValueKey("resp", []byte("pinned"))
	if err := cache.SetPin(ctx, "resp", k, chunkcache.HardPin); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if err := rc.Set(ctx, string(rune('a'+i)), val, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	st := cache.Stats().Tiers[0]
	if st.Bytes > st.Capacity || st.Evictions == 0 {
		t.Fatalf("memory tier %+v", st)
	}
	if got, err := rc.Get(ctx, "pinned").Bytes(); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("pinned value: %v", err)
	}
	if err := rc.Get(ctx, "a").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("the oldest value was not evicted: %v", err)
	}
}

func TestRedisCLIAndBenchmark(t *testing.T) {
	cli := redistest.Tool(t, "redis-cli")
	bench := redistest.Tool(t, "redis-benchmark")
	_, _, addr := startServer(t, 64<<20, Options{})
	host, port, _ := net.SplitHostPort(addr)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("redis-cli %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := run("SET", "greeting", "hello world", "EX", "100"); got != "OK" {
		t.Fatalf("SET: %q", got)
	}
	if got := run("GET", "greeting"); got != "hello world" {
		t.Fatalf("GET: %q", got)
	}
	if got := run("EXISTS", "greeting", "nope"); got != "1" {
		t.Fatalf("EXISTS: %q", got)
	}
	if got := run("PING"); got != "PONG" {
		t.Fatalf("PING: %q", got)
	}
	out, err := exec.Command(bench, "-h", host, "-p", port, "-t", "set,get", "-n", "300", "-c", "4", "-d", "100000", "--csv").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"SET"`) || !strings.Contains(string(out), `"GET"`) {
		t.Fatalf("redis-benchmark: %v: %s", err, out)
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	for _, bad := range []string{"0.0.0.0:0", ":0", "[::]:0", "8.8.8.8:6379"} {
		if _, err := Listen(bad); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	for _, ok := range []string{"127.0.0.1:0", "localhost:0"} {
		l, err := Listen(ok)
		if err != nil {
			t.Errorf("%s: %v", ok, err)
			continue
		}
		l.Close()
	}
}
