package chunkcache

import (
	"context"
	"log/slog"
	"math"
	"testing"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/redistest"
	"github.com/ragkv/ragkv/store"
)

// TestSharedTierFormat: the shared (Redis) tier stores its own format — q4 on the
// remote tier under f16 in RAM, f16 for a namespace that overrides it — on puts and on
// demotion from the last local tier; another replica reads the remote copy in that
// format; Stats reports the remote tier's bytes per token (about a third of f16's);
// a bad remote format is refused at New.
func TestSharedTierFormat(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	f16, _ := ParseFormat("f16")
	q4, _ := ParseFormat("q4")
	open := func(memCap int64, mem, remote Layout, nsRemote map[string]Layout) (*Cache, *store.Redis) {
		t.Helper()
		rt, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: []string{srv.Addr()}, UsageInterval: -1, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(ctx, Options{Tiers: []TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: memCap}, Format: mem},
			{Tier: rt, Format: remote, NamespaceFormats: nsRemote},
		}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, rt
	}
	a, rt := open(64<<20, f16, q4, map[string]Layout{"exact": f16})
	b, _ := open(64<<20, Layout{}, Layout{}, nil) // reads the remote tier as stored

	readRemote := func(spec PutSpec) (*ChunkInfo, [][]float32) {
		t.Helper()
		info, ks, _, err := b.GetFloat32(ctx, spec.Namespace, keyOf(t, spec))
		if err != nil {
			t.Fatal(err)
		}
		if info.Tier != "remote" {
			t.Fatalf("B read %s from %s, want the remote tier", spec.Namespace, info.Tier)
		}
		return info, ks
	}
	near := func(what string, got, want [][]float32) {
		t.Helper()
		for l := range want {
			// q4: half a step of a group's range, at most 2·max|x|/15/2, plus f16 rounding.
			var mx float64
			for _, x := range want[l] {
				mx = max(mx, math.Abs(float64(x)))
			}
			for j := range want[l] {
				if d := math.Abs(float64(got[l][j] - want[l][j])); d > 0.07*mx+1e-3 {
					t.Fatalf("%s: layer %d value %d = %v, put %v", what, l, j, got[l][j], want[l][j])
				}
			}
		}
	}

	spec, ks, vs := testChunk(90, "", F16, 2, 64)
	put(t, a, spec, ks, vs)
	if info, _, _, err := a.GetFloat32(ctx, "", keyOf(t, spec)); err != nil || info.Tier != "memory" || info.Layout.DType != F16 {
		t.Fatalf("A's memory copy: %+v %v", info, err)
	}
	info, got := readRemote(spec)
	if info.Layout.DType != Q4 {
		t.Fatalf("remote copy is %s, want q4", info.Layout.Format())
	}
	near("remote q4 copy", got, ks)

	exact, eks, evs := testChunk(91, "exact", F16, 2, 64)
	put(t, a, exact, eks, evs)
	if info, _ := readRemote(exact); info.Layout.DType != F16 {
		t.Fatalf("namespace exact on the remote tier: %s, want f16", info.Layout.Format())
	}

	// Demotion: drop the remote copy of a chunk, then evict it from A's RAM by filling
	// it; the demoted copy is re-encoded to q4 too.
	dem, dks, dvs := testChunk(92, "", F16, 2, 64)
	put(t, a, dem, dks, dvs)
	if err := rt.Delete(ctx, keyOf(t, dem)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "memory", Capacity: ptr(int64(1))}}); err != nil {
		t.Fatal(err)
	}
	if st := tierStats(a, "memory"); st.Demotions == 0 {
		t.Fatalf("nothing demoted from memory: %+v", st)
	}
	info, got = readRemote(dem)
	if info.Layout.DType != Q4 {
		t.Fatalf("demoted remote copy is %s, want q4", info.Layout.Format())
	}
	near("demoted q4 copy", got, dks)

	st := a.Stats()
	var mem, rem TierStats
	for _, ts := range st.Tiers {
		switch ts.Name {
		case "memory":
			mem = ts
		case "remote":
			rem = ts
		}
	}
	// 3 puts of 64 tokens (one f16 by its namespace) and one demotion.
	if rem.ChunkTokens != 4*64 || rem.BytesPerToken <= 0 {
		t.Fatalf("remote stats: %+v", rem)
	}
	f16PerToken := float64(2 * 2 * 16 * 2) // layers × K,V × channels × 2 bytes
	if rem.BytesPerToken > 0.75*f16PerToken || rem.BytesPerToken < 0.25*f16PerToken {
		t.Fatalf("remote tier %.1f bytes/token, f16 payload %.0f: not mostly q4", rem.BytesPerToken, f16PerToken)
	}
	_ = mem

	bad := Layout{DType: Q4, Group: -1}
	rt2, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: []string{srv.Addr()}, UsageInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := New(ctx, Options{Tiers: []TierConfig{{Tier: store.NewMemory()}, {Tier: rt2, Format: bad}}, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		c.Close()
		t.Fatal("a bad remote format was accepted")
	}
}
