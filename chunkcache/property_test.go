package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"testing"

	"pgregory.net/rapid"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// propChunk is chunk `seed` of the property test: sizes vary with the seed.
func propChunk(seed int) (PutSpec, [][]float32, [][]float32) {
	return testChunk(uint64(seed), "", F16, 1+seed%3, 4+3*seed)
}

// TestCacheProperties drives a two-tier cache (two RAM tiers, so that each step is
// fast) with random puts, reads, deletes, pins and capacity changes, and checks after
// every step: no tier's accounting or real contents exceed its budget, the tiers hold
// exactly what is accounted, a hard-pinned chunk is never evicted, and every chunk the
// cache reports present reads back bit-exactly.
func TestCacheProperties(t *testing.T) {
	policies := eviction.Policies()
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		wt := rapid.Bool().Draw(rt, "writeThrough")
		fast, slow := store.NewNamedMemory("fast"), store.NewNamedMemory("slow")
		caps := []int64{rapid.Int64Range(2000, 20000).Draw(rt, "fastCap"), rapid.Int64Range(5000, 60000).Draw(rt, "slowCap")}
		c, err := New(ctx, Options{
			Tiers: []TierConfig{
				{Tier: fast, Eviction: eviction.Config{Capacity: caps[0], Policy: rapid.SampledFrom(policies).Draw(rt, "p0")}},
				{Tier: slow, Eviction: eviction.Config{Capacity: caps[1], Policy: rapid.SampledFrom(policies).Draw(rt, "p1")}, WriteThrough: wt},
			},
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			rt.Fatal(err)
		}
		defer c.Close()
		mems := []*store.Memory{fast, slow}
		hard := map[int]bool{} // seeds that must stay present
		seedGen := rapid.IntRange(0, 11)
		pinGen := rapid.SampledFrom([]Pin{Unpinned, Unpinned, SoftPin, HardPin})

		rt.Repeat(map[string]func(*rapid.T){
			"put": func(rt *rapid.T) {
				seed := seedGen.Draw(rt, "seed")
				spec, ks, vs := propChunk(seed)
				spec.Pin = pinGen.Draw(rt, "pin")
				res, err := c.PutFloat32(ctx, spec, ks, vs)
				if err != nil && !errors.Is(err, ErrNoSpace) {
					rt.Fatal(err)
				}
				if err == nil && res.Admitted && spec.Pin == HardPin {
					hard[seed] = true
				}
			},
			"get": func(rt *rapid.T) {
				seed := seedGen.Draw(rt, "seed")
				spec, ks, vs := propChunk(seed)
				r, err := c.Open(ctx, "", keyOf(rt, spec))
				if errors.Is(err, ErrNotFound) {
					if hard[seed] {
						rt.Fatalf("hard-pinned chunk %d not found", seed)
					}
					return
				}
				if err != nil {
					rt.Fatal(err)
				}
				want := encoded(rt, spec, ks, vs)
				for l := range want {
					s, err := r.Section(ctx, l)
					if err != nil || !bytes.Equal(s, want[l]) {
						rt.Fatalf("chunk %d layer %d differs (%v)", seed, l, err)
					}
				}
				r.Close()
			},
			"delete": func(rt *rapid.T) {
				seed := seedGen.Draw(rt, "seed")
				spec, _, _ := propChunk(seed)
				if _, err := c.Delete(ctx, "", keyOf(rt, spec)); err != nil && !errors.Is(err, ErrNotFound) {
					rt.Fatal(err)
				}
				delete(hard, seed)
			},
			"pin": func(rt *rapid.T) {
				seed := seedGen.Draw(rt, "seed")
				p := pinGen.Draw(rt, "pin")
				spec, _, _ := propChunk(seed)
				err := c.SetPin(ctx, "", keyOf(rt, spec), p)
				if err != nil && !errors.Is(err, ErrNotFound) {
					rt.Fatal(err)
				}
				if err == nil {
					if p == HardPin {
						hard[seed] = true
					} else {
						delete(hard, seed)
					}
				}
			},
			"capacity": func(rt *rapid.T) {
				tier := rapid.IntRange(0, 1).Draw(rt, "tier")
				capb := rapid.Int64Range(1000, 60000).Draw(rt, "capacity")
				name := []string{"fast", "slow"}[tier]
				_, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: name, Capacity: &capb}})
				if err != nil && !errors.Is(err, ErrNoSpace) {
					rt.Fatal(err)
				}
			},
			"": func(rt *rapid.T) {
				st := c.Stats()
				for i, ts := range st.Tiers {
					if ts.Bytes > ts.Capacity {
						rt.Fatalf("tier %s accounts %d bytes over capacity %d", ts.Name, ts.Bytes, ts.Capacity)
					}
					if mems[i].Bytes() != ts.Bytes || int64(mems[i].Len()) != ts.Entries {
						rt.Fatalf("tier %s holds %d bytes / %d chunks, accounts %d / %d", ts.Name, mems[i].Bytes(), mems[i].Len(), ts.Bytes, ts.Entries)
					}
				}
				for seed := range hard {
					spec, _, _ := propChunk(seed)
					lr, err := c.Lookup(ctx, "", []Key{keyOf(rt, spec)})
					if err != nil || !lr[0].Present || lr[0].Pin != HardPin {
						rt.Fatalf("hard-pinned chunk %d: %+v %v", seed, lr, err)
					}
				}
			},
		})
	})
}

// A re-put that no tier can take (here: RAM full of hard pins, the older copy hard-pinned
// in the tier below, not write-through) fails and leaves the stored copy alone (found by
// TestCacheProperties: the copy below was deleted as "stale").
func TestFailedReputKeepsStoredCopy(t *testing.T) {
	ctx := context.Background()
	fast, slow := store.NewNamedMemory("fast"), store.NewNamedMemory("slow")
	c, err := New(ctx, Options{Tiers: []TierConfig{
		{Tier: fast, Eviction: eviction.Config{Capacity: 2183}},
		{Tier: slow, Eviction: eviction.Config{Capacity: 5000}},
	}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s0, k0, v0 := propChunk(0)
	s2, k2, v2 := propChunk(2)
	put(t, c, s0, k0, v0) // RAM
	s2.Pin = HardPin
	put(t, c, s2, k2, v2) // RAM; chunk 0 demoted below
	key0 := keyOf(t, s0)
	if err := c.SetPin(ctx, "", key0, HardPin); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutFloat32(ctx, s0, k0, v0); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("re-put into a RAM tier full of hard pins: %v", err)
	}
	lr, err := c.Lookup(ctx, "", []Key{key0})
	if err != nil || !lr[0].Present || lr[0].Pin != HardPin || lr[0].Tier != "slow" {
		t.Fatalf("the stored copy after a failed re-put: %+v %v", lr, err)
	}
}
