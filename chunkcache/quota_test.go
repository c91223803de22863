package chunkcache

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

func nsTier(t *testing.T, st Stats, ns, tier string) NamespaceTierUsage {
	t.Helper()
	for _, n := range st.NamespaceStats {
		if n.Name != ns {
			continue
		}
		for _, u := range n.Tiers {
			if u.Tier == tier {
				return u
			}
		}
	}
	t.Fatalf("no stats for namespace %s tier %s in %+v", ns, tier, st.NamespaceStats)
	return NamespaceTierUsage{}
}

// indexBytes sums, from the index and the tier's tracker (not the quota accounting),
// the bytes namespace ns holds in tier ti.
func indexBytes(c *Cache, ns string, ti int) int64 {
	c.mu.RLock()
	var keys []Key
	for k, e := range c.index {
		if e.ns == ns {
			keys = append(keys, k)
		}
	}
	c.mu.RUnlock()
	var n int64
	for _, k := range keys {
		if ei, ok := c.tiers[ti].tracker.Lookup(eviction.Key(k)); ok {
			n += ei.Size
		}
	}
	return n
}

// TestNamespaceQuotas: a namespace at its RAM quota evicts (demotes) its own oldest
// chunks, never another namespace's; a namespace without a quota filling RAM evicts
// neither quota namespace's chunks; a chunk larger than the quota, or a quota full of
// hard pins, is refused with ErrNoSpace; Stats reports bytes against quota; the
// violations metric stays 0.
func TestNamespaceQuotas(t *testing.T) {
	ctx := context.Background()
	spec0, ks0, vs0 := testChunk(0, "a", F16, 2, 8)
	probe, _, _ := openCache(t, cacheSetup{memCap: 1 << 20})
	one := put(t, probe, spec0, ks0, vs0).StoredBytes // bytes of one such chunk
	probe.Close()
	quota := 3 * one
	reg := prometheus.NewRegistry()
	mem := store.NewMemory()
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: t.TempDir(), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Options{Tiers: []TierConfig{
		{Tier: mem, Eviction: eviction.Config{Capacity: 10 * one}, Quotas: map[string]int64{"a": quota, "b": quota}},
		{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 24}, WriteThrough: true},
	}, Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var keysA, keysB []Key
	for i := range 5 {
		spec, ks, vs := testChunk(uint64(i), "a", F16, 2, 8)
		keysA = append(keysA, put(t, c, spec, ks, vs).Key)
		if got := indexBytes(c, "a", 0); got > quota {
			t.Fatalf("after put %d: a holds %d bytes of RAM, quota %d", i, got, quota)
		}
	}
	for i := range 2 {
		spec, ks, vs := testChunk(uint64(100+i), "b", F16, 2, 8)
		keysB = append(keysB, put(t, c, spec, ks, vs).Key)
	}
	// a's two oldest chunks left RAM (demoted: still on disk), its newest three stayed.
	lr, _ := c.Lookup(ctx, "a", keysA)
	for i, r := range lr {
		inRAM := r.Tier == "memory"
		if inRAM != (i >= 2) || !r.Present {
			t.Fatalf("a's chunk %d: %+v (want RAM only for the 3 newest, every chunk present)", i, r)
		}
	}
	// A namespace without a quota fills RAM: it evicts its own, never a's or b's.
	for i := range 12 {
		spec, ks, vs := testChunk(uint64(200+i), "c", F16, 2, 8)
		put(t, c, spec, ks, vs)
	}
	lr, _ = c.Lookup(ctx, "a", keysA[2:])
	lb, _ := c.Lookup(ctx, "b", keysB)
	for _, r := range append(lr, lb...) {
		if r.Tier != "memory" {
			t.Fatalf("a namespace without a quota evicted a quota namespace's chunk within its share: %+v", r)
		}
	}
	st := c.Stats()
	if u := nsTier(t, st, "a", "memory"); u.Quota != quota || u.Bytes != indexBytes(c, "a", 0) || u.Bytes > quota {
		t.Fatalf("Stats for a in RAM: %+v (index says %d, quota %d)", u, indexBytes(c, "a", 0), quota)
	}
	if u := nsTier(t, st, "c", "memory"); u.Quota != 0 || u.Bytes == 0 {
		t.Fatalf("Stats for c in RAM: %+v", u)
	}
	if u := nsTier(t, st, "a", "disk"); u.Quota != 0 || u.Bytes != 5*one {
		t.Fatalf("Stats for a on disk: %+v, want 5 chunks of %d", u, one)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "ragkv_chunkcache_quota_violations_total" {
			found = true
			for _, m := range mf.GetMetric() {
				if m.GetCounter().GetValue() != 0 {
					t.Fatalf("quota violations %v", m)
				}
			}
		}
	}
	if !found {
		t.Fatal("no ragkv_chunkcache_quota_violations_total metric")
	}

	// RAM only: a chunk larger than the quota, and a quota full of hard pins, fail.
	small, err := New(ctx, Options{Tiers: []TierConfig{
		{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 10 * one}, Quotas: map[string]int64{"a": 2*one + 64}},
	}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	big, bk, bv := testChunk(300, "a", F16, 2, 24) // 3× the bytes
	if _, err := small.PutFloat32(ctx, big, bk, bv); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("chunk larger than the quota: %v", err)
	}
	for i := range 2 {
		spec, ks, vs := testChunk(uint64(400+i), "a", F16, 2, 8)
		spec.Pin = HardPin
		put(t, small, spec, ks, vs)
	}
	spec, ks, vs := testChunk(402, "a", F16, 2, 8)
	if _, err := small.PutFloat32(ctx, spec, ks, vs); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("quota full of hard pins: %v", err)
	}
	spec, ks, vs = testChunk(403, "other", F16, 2, 8)
	put(t, small, spec, ks, vs) // room outside the quota is still there

	// Bad quotas are refused.
	for name, q := range map[string]map[string]int64{"sum over capacity": {"a": 6 * one, "b": 6 * one}, "bad name": {"no spaces!": one}, "zero": {"a": 0}} {
		_, err := New(ctx, Options{Tiers: []TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 10 * one}, Quotas: q}},
			Logger: slog.New(slog.DiscardHandler)})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
