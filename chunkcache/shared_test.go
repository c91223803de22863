package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/redistest"
	"github.com/ragkv/ragkv/store"
)

// openSharedCache is a replica: a memory tier over the remote tier at addrs.
func openSharedCache(t testing.TB, addrs []string, memCap int64) *Cache {
	t.Helper()
	return openSharedCacheKeyed(t, addrs, memCap, nil)
}

// openSharedCacheKeyed is openSharedCache with a keyer (nil: public salts).
func openSharedCacheKeyed(t testing.TB, addrs []string, memCap int64, keyer *Keyer) *Cache {
	t.Helper()
	ctx := context.Background()
	rt, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: addrs, UsageInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Options{Tiers: []TierConfig{
		{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: memCap}},
		{Tier: rt},
	}, Keyer: keyer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func tierStats(c *Cache, name string) TierStats {
	for _, t := range c.Stats().Tiers {
		if t.Name == name {
			return t
		}
	}
	return TierStats{}
}

func TestSharedTierAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	a := openSharedCache(t, []string{srv.Addr()}, 64<<20)
	b := openSharedCache(t, []string{srv.Addr()}, 64<<20)
	if got := a.Tiers(); !slices.Equal(got, []string{"memory", "remote"}) {
		t.Fatalf("tiers %v", got)
	}

	spec, ks, vs := testChunk(1, "docs", F16, 4, 32)
	res := put(t, a, spec, ks, vs)
	if !slices.Equal(res.Tiers, []string{"memory", "remote"}) {
		t.Fatalf("put landed in %v", res.Tiers)
	}
	k := res.Key
	// B has never seen namespace "docs": the remote tier answers anyway.
	lr, err := b.Lookup(ctx, "docs", []Key{k})
	if err != nil || !lr[0].Present || lr[0].Tier != "remote" {
		t.Fatalf("lookup in B: %+v %v", lr, err)
	}
	pos := b.EventPosition()
	info := checkChunk(t, b, spec, ks, vs)
	if info.Tier != "remote" {
		t.Fatalf("B read from %s", info.Tier)
	}
	// Read in full, so promoted into B's memory tier.
	lr, _ = b.Lookup(ctx, "docs", []Key{k})
	if !slices.Equal(lr[0].Tiers, []string{"memory", "remote"}) || lr[0].Tokens != 32 {
		t.Fatalf("after the read: %+v", lr[0])
	}
	if st := tierStats(b, "remote"); st.Hits != 1 || !st.Shared {
		t.Fatalf("remote stats %+v", st)
	}
	// The remote tier is in the metrics like the others.
	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector(b)); err != nil {
		t.Fatal(err)
	}
	mfs, _ := reg.Gather()
	found := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if labelOf(m) == `{tier="remote"}` && (mf.GetName() == "ragkv_chunkcache_hits_total" && valueOf(m) == 1 ||
				mf.GetName() == "ragkv_chunkcache_errors_total" || mf.GetName() == "ragkv_chunkcache_bytes") {
				found++
			}
		}
	}
	if found != 3 {
		t.Fatalf("remote tier metrics: %d of 3", found)
	}
	if st := tierStats(b, "memory"); st.Promotions != 1 || st.Misses != 1 {
		t.Fatalf("memory stats %+v", st)
	}
	evs, err := b.Watch(pos).Next(ctx, 10)
	if err != nil || len(evs) != 1 || evs[0].Type != EventPromoted || evs[0].Tier != "memory" || evs[0].From != "remote" || evs[0].Key != k || evs[0].Tokens != 32 {
		t.Fatalf("events %+v %v", evs, err)
	}
	if info := checkChunk(t, b, spec, ks, vs); info.Tier != "memory" {
		t.Fatalf("second read from %s", info.Tier)
	}

	// Another namespace never sees it, even through the remote tier.
	if _, err := b.Open(ctx, "other", k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other namespace: %v", err)
	}

	// Delete through B: gone from the remote tier too; A keeps its local copy.
	if _, err := b.Delete(ctx, "docs", k); err != nil {
		t.Fatal(err)
	}
	lr, _ = a.Lookup(ctx, "docs", []Key{k})
	if !slices.Equal(lr[0].Tiers, []string{"memory"}) {
		t.Fatalf("A after B's delete: %+v", lr[0])
	}
	if _, err := b.Delete(ctx, "docs", k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// TestSharedTierDownOrRestarted: puts keep landing locally and reads miss (never an
// error) while Redis is down, and sharing resumes when it is back, empty.
func TestSharedTierDownOrRestarted(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	a := openSharedCache(t, []string{srv.Addr()}, 64<<20)
	b := openSharedCache(t, []string{srv.Addr()}, 64<<20)
	spec1, ks1, vs1 := testChunk(1, "", F32, 2, 8)
	k1 := put(t, a, spec1, ks1, vs1).Key

	srv.Kill()
	spec2, ks2, vs2 := testChunk(2, "", F32, 2, 8)
	res := put(t, a, spec2, ks2, vs2)
	if !slices.Equal(res.Tiers, []string{"memory"}) || !res.Admitted {
		t.Fatalf("put with Redis down: %+v", res)
	}
	if _, err := b.Open(ctx, "", k1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open with Redis down: %v (want a miss)", err)
	}
	lr, err := b.Lookup(ctx, "", []Key{k1})
	if err != nil || lr[0].Present {
		t.Fatalf("lookup with Redis down: %+v %v", lr, err)
	}
	if st := tierStats(b, "remote"); st.Errors == 0 {
		t.Fatalf("errors not counted: %+v", st)
	}
	checkChunk(t, a, spec1, ks1, vs1) // A's own copy still serves

	srv.Restart()
	spec3, ks3, vs3 := testChunk(3, "", F32, 2, 8)
	var k3 Key
	for i := 0; i < 50; i++ { // the first commands after the restart may still fail
		if res = put(t, a, spec3, ks3, vs3); len(res.Tiers) == 2 {
			k3 = res.Key
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if k3 == (Key{}) {
		t.Fatalf("puts never reached the restarted Redis")
	}
	// B skips the remote tier for a backoff after its failures, then reads it again.
	for i := 0; i < 200; i++ {
		if res, _ := b.Lookup(ctx, "", []Key{k3}); res[0].Present {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if info := checkChunk(t, b, spec3, ks3, vs3); info.Tier != "remote" {
		t.Fatalf("after the restart B read from %s", info.Tier)
	}
}

// TestSharedTierDemotionAndValues: a value put only locally reaches the remote tier
// when the last local tier evicts it, and another replica reads it there; values and
// chunks stay apart; a re-put value replaces the remote copy.
func TestSharedTierDemotionAndValues(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	a := openSharedCache(t, []string{srv.Addr()}, 1<<20)
	b := openSharedCache(t, []string{srv.Addr()}, 64<<20)
	val := bytes.Repeat([]byte("v"), 300<<10)
	res, err := a.PutValue(ctx, "resp", []byte("k1"), val, ValueOptions{})
	if err != nil || !slices.Equal(res.Tiers, []string{"memory"}) {
		t.Fatalf("put value: %+v %v", res, err)
	}
	if _, _, err := b.GetValue(ctx, "resp", []byte("k1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("B sees a local-only value: %v", err)
	}
	pos := a.EventPosition()
	for i := 0; i < 4; i++ { // push k1 out of A's 1 MiB memory tier
		if _, err := a.PutValue(ctx, "resp", []byte{'f', byte(i)}, val, ValueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	evs, _ := a.Watch(pos).Next(ctx, 100)
	demoted := false
	for _, e := range evs {
		if e.Type == EventDemoted && e.From == "memory" && e.Tier == "remote" && e.Kind == KindValue {
			demoted = true
		}
	}
	if !demoted {
		t.Fatalf("no demotion into the remote tier: %+v", evs)
	}
	parts, info, err := b.GetValue(ctx, "resp", []byte("k1"))
	if err != nil || info.Tier != "remote" || !bytes.Equal(bytes.Join(parts, nil), val) {
		t.Fatalf("B get: %v %+v", err, info)
	}
	// B promoted it; a new value under the same name from A replaces the remote copy.
	val2 := []byte("second")
	if _, err := a.PutValue(ctx, "resp", []byte("k1"), val2, ValueOptions{}); err != nil {
		t.Fatal(err)
	}
	c := openSharedCache(t, []string{srv.Addr()}, 64<<20)
	if _, _, err := c.GetValue(ctx, "resp", []byte("k1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a stale remote copy survived the re-put: %v", err)
	}
	// A value key is not a chunk.
	if _, err := c.Open(ctx, "resp", info.Key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("value opened as a chunk: %v", err)
	}
}
