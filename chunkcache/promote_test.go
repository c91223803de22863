package chunkcache

import (
	"context"
	"testing"
)

// A consumer that reads only some layers from disk (fused prefill recomputes the first
// layers instead of loading them) still promotes the chunk on Close, with every layer
// intact; a reader that reads nothing (a metadata look) does not promote.
func TestPartialReadPromotesOnClose(t *testing.T) {
	ctx := context.Background()
	spec0, _, _ := testChunk(0, "", F16, 4, 32)
	size := int64(4*encodedLayerBytes(spec0)) + 2000
	c, _, _ := openCache(t, cacheSetup{dir: t.TempDir(), memCap: size + size/2, diskCap: 100 * size})
	defer c.Close()
	var specs []PutSpec
	var kss, vss [][][]float32
	for i := 0; i < 3; i++ { // the memory tier holds one: chunks 0 and 1 are demoted
		spec, ks, vs := testChunk(uint64(i), "", F16, 4, 32)
		put(t, c, spec, ks, vs)
		specs, kss, vss = append(specs, spec), append(kss, ks), append(vss, vs)
	}
	tierOf := func(i int) string {
		lr, err := c.Lookup(ctx, "", []Key{keyOf(t, specs[i])})
		if err != nil {
			t.Fatal(err)
		}
		return lr[0].Tier
	}
	if tierOf(0) != "disk" || tierOf(1) != "disk" {
		t.Fatalf("setup: chunks 0,1 in %s,%s, want disk", tierOf(0), tierOf(1))
	}

	// Open without reading: no promotion.
	r, err := c.Open(ctx, "", keyOf(t, specs[1]))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tierOf(1); got != "disk" {
		t.Fatalf("unread chunk moved to %s", got)
	}

	// Read layers 2 and 3 only, then close: promoted.
	r, err = c.Open(ctx, "", keyOf(t, specs[0]))
	if err != nil {
		t.Fatal(err)
	}
	k := make([]float32, len(kss[0][0]))
	v := make([]float32, len(vss[0][0]))
	for _, l := range []int{2, 3} {
		if err := r.ReadLayer(ctx, l, k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := tierOf(0); got != "memory" {
		t.Fatalf("partially read chunk in %s, want memory", got)
	}
	if p := c.Stats().Tiers[0].Promotions; p != 1 {
		t.Fatalf("promotions %d, want 1", p)
	}
	// Served from memory now, every layer exact.
	if info := checkChunk(t, c, specs[0], kss[0], vss[0]); info.Tier != "memory" {
		t.Fatalf("served from %s", info.Tier)
	}
}
