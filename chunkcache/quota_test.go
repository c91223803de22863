package chunkcache

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"pgregory.net/rapid"

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

// TestCacheQuotaProperties drives a two-tier cache (two RAM tiers) whose namespaces
// "a" (quotas in both tiers) and "b" (quota in the first) share it with a namespace
// without a quota, with random puts, reads (promotions), deletes, pins and capacity
// changes, and checks after every step: no quota namespace holds more than its quota in
// a tier (counted from the index, not the quota accounting), no tier exceeds its
// capacity, the violations counter is 0, and an operation on one namespace (or a
// capacity change) never takes a chunk of another namespace out of a tier where that
// namespace has a quota.
func TestCacheQuotaProperties(t *testing.T) {
	policies := eviction.Policies()
	nsOf := func(seed int) string { return []string{"a", "b", "default"}[seed%3] }
	chunk := func(seed int) (PutSpec, [][]float32, [][]float32) {
		return testChunk(uint64(seed), nsOf(seed), F16, 1+seed%2, 4+2*seed)
	}
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		caps := []int64{rapid.Int64Range(8000, 30000).Draw(rt, "fastCap"), rapid.Int64Range(12000, 60000).Draw(rt, "slowCap")}
		quotas := []map[string]int64{
			{"a": caps[0] * rapid.Int64Range(2, 4).Draw(rt, "qa0") / 10, "b": caps[0] * rapid.Int64Range(2, 4).Draw(rt, "qb0") / 10},
			{"a": caps[1] * rapid.Int64Range(2, 6).Draw(rt, "qa1") / 10},
		}
		c, err := New(ctx, Options{Tiers: []TierConfig{
			{Tier: store.NewNamedMemory("fast"), Eviction: eviction.Config{Capacity: caps[0], Policy: rapid.SampledFrom(policies).Draw(rt, "p0")}, Quotas: quotas[0]},
			{Tier: store.NewNamedMemory("slow"), Eviction: eviction.Config{Capacity: caps[1], Policy: rapid.SampledFrom(policies).Draw(rt, "p1")},
				Quotas: quotas[1], WriteThrough: rapid.Bool().Draw(rt, "writeThrough")},
		}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			rt.Fatal(err)
		}
		defer c.Close()
		seedGen := rapid.IntRange(0, 17)
		// where[tier] is the set of keys of the namespaces with a quota in the tier that
		// the tier holds.
		where := func() []map[Key]string {
			out := []map[Key]string{{}, {}}
			c.mu.RLock()
			defer c.mu.RUnlock()
			for k, e := range c.index {
				for ti, t := range c.tiers {
					if _, quota := quotas[ti][e.ns]; quota && t.tracker.Contains(eviction.Key(k)) {
						out[ti][k] = e.ns
					}
				}
			}
			return out
		}
		var before []map[Key]string
		actor := ""
		act := func(ns string) { before, actor = where(), ns }
		rt.Repeat(map[string]func(*rapid.T){
			"put": func(rt *rapid.T) {
				seed := seedGen.Draw(rt, "seed")
				spec, ks, vs := chunk(seed)
				spec.Pin = rapid.SampledFrom([]Pin{Unpinned, Unpinned, Unpinned, SoftPin, HardPin}).Draw(rt, "pin")
				act(spec.Namespace)
				if _, err := c.PutFloat32(ctx, spec, ks, vs); err != nil && !errors.Is(err, ErrNoSpace) {
					rt.Fatal(err)
				}
			},
			"get": func(rt *rapid.T) {
				seed := seedGen.Draw(rt, "seed")
				spec, _, _ := chunk(seed)
				act(spec.Namespace)
				r, err := c.Open(ctx, spec.Namespace, keyOf(rt, spec))
				if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnknownNamespace) {
					return
				}
				if err != nil {
					rt.Fatal(err)
				}
				for l := 0; l < r.Info().Layout.Layers; l++ {
					if _, err := r.Section(ctx, l); err != nil {
						rt.Fatal(err)
					}
				}
				r.Close() // promotes a chunk read in full from the slow tier
			},
			"delete": func(rt *rapid.T) {
				seed := seedGen.Draw(rt, "seed")
				spec, _, _ := chunk(seed)
				act(spec.Namespace)
				if _, err := c.Delete(ctx, spec.Namespace, keyOf(rt, spec)); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnknownNamespace) {
					rt.Fatal(err)
				}
			},
			"unpin": func(rt *rapid.T) {
				seed := seedGen.Draw(rt, "seed")
				spec, _, _ := chunk(seed)
				act(spec.Namespace)
				if err := c.SetPin(ctx, spec.Namespace, keyOf(rt, spec), Unpinned); err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnknownNamespace) {
					rt.Fatal(err)
				}
			},
			"capacity": func(rt *rapid.T) {
				tier := rapid.IntRange(0, 1).Draw(rt, "tier")
				capb := rapid.Int64Range(6000, 60000).Draw(rt, "capacity")
				act("")
				_, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: []string{"fast", "slow"}[tier], Capacity: &capb}})
				if err != nil && !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrInvalidPolicy) {
					rt.Fatal(err)
				}
			},
			"": func(rt *rapid.T) {
				st := c.Stats()
				for ti, ts := range st.Tiers {
					if ts.Bytes > ts.Capacity || ts.QuotaViolationBytes != 0 {
						rt.Fatalf("tier %s: %d bytes of %d, quota violations %d", ts.Name, ts.Bytes, ts.Capacity, ts.QuotaViolationBytes)
					}
					for ns, q := range quotas[ti] {
						if got := indexBytes(c, ns, ti); got > q {
							rt.Fatalf("tier %s: %s holds %d bytes, quota %d", ts.Name, ns, got, q)
						}
					}
				}
				if before == nil {
					return
				}
				after := where()
				for ti := range before {
					for k, ns := range before[ti] {
						if _, ok := after[ti][k]; !ok && ns != actor {
							rt.Fatalf("an operation on %q took %s's chunk %s out of tier %d", actor, ns, k.Short(), ti)
						}
					}
				}
				before = nil
			},
		})
	})
}

// TestQuotaShieldsTenantFromFlood: tenant a re-reads a working set that fits its RAM
// quota while tenant b floods RAM with one-off chunks. With the quota every read of a
// is a RAM hit; without it (same capacity, same stream) b's flood pushes a's chunks
// down to disk, so the comparison shows the quota is what keeps them.
func TestQuotaShieldsTenantFromFlood(t *testing.T) {
	ctx := context.Background()
	spec0, ks0, vs0 := testChunk(0, "a", F16, 2, 8)
	probe, _, _ := openCache(t, cacheSetup{memCap: 1 << 20})
	one := put(t, probe, spec0, ks0, vs0).StoredBytes
	probe.Close()
	run := func(quotas map[string]int64) float64 {
		disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: t.TempDir(), GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(ctx, Options{Tiers: []TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 20 * one}, Quotas: quotas},
			{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 26}, WriteThrough: true},
		}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var working []PutSpec
		for i := range 8 {
			spec, ks, vs := testChunk(uint64(i), "a", F16, 2, 8)
			put(t, c, spec, ks, vs)
			working = append(working, spec)
		}
		hits, reads := 0, 0
		for round := range 40 {
			for i := range 3 { // b's flood: 120 one-off chunks, 6× RAM
				spec, ks, vs := testChunk(uint64(1000+3*round+i), "b", F16, 2, 8)
				put(t, c, spec, ks, vs)
			}
			spec := working[round%len(working)]
			r, err := c.Open(ctx, "a", keyOf(t, spec))
			if err != nil {
				t.Fatal(err)
			}
			if r.Info().Tier == "memory" {
				hits++
			}
			reads++
			r.Close()
		}
		return float64(hits) / float64(reads)
	}
	with := run(map[string]int64{"a": 10 * one})
	without := run(nil)
	t.Logf("tenant a's RAM hit ratio under b's flood: %.2f with a 10-chunk quota, %.2f without", with, without)
	if with != 1 || without >= with {
		t.Fatalf("RAM hit ratio %.2f with the quota (want 1), %.2f without", with, without)
	}
}
