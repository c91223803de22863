package chunkcache

import (
	"context"
	"testing"
)

// Chunks put on probation (computed on the fly for one request) cannot flood out the
// precomputed chunks of a full memory tier; one that is read again is promoted.
func TestProbationaryPutsKeepPrecomputedChunks(t *testing.T) {
	ctx := context.Background()
	spec0, _, _ := testChunk(0, "", F16, 2, 16)
	size := int64(2*encodedLayerBytes(spec0)) + 2000
	const held = 20
	c, _, _ := openCache(t, cacheSetup{memCap: held * size})
	defer c.Close()
	var keys []Key
	for i := 0; i < held; i++ { // precomputed, and read by retrieval's favourite queries
		spec, ks, vs := testChunk(uint64(i), "", F16, 2, 16)
		put(t, c, spec, ks, vs)
		checkChunk(t, c, spec, ks, vs)
		keys = append(keys, keyOf(t, spec))
	}
	resident := func() int {
		lr, err := c.Lookup(ctx, "", keys)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range lr {
			if r.Tier == "memory" {
				n++
			}
		}
		return n
	}
	for i := 1000; i < 1200; i++ { // novel queries: one-off chunks
		spec, ks, vs := testChunk(uint64(i), "", F16, 2, 16)
		spec.Probationary = true
		put(t, c, spec, ks, vs)
	}
	if n := resident(); n < held-held/10 {
		t.Fatalf("one-off chunks left %d of %d precomputed chunks in memory, want ≥ %d (probation share 0.1)", n, held, held-held/10)
	}
	tr := c.tiers[0].tracker.Stats()
	if tr.ProbationEntries == 0 || tr.Evictions < 150 { // probation may fill free space, then recycles itself
		t.Fatalf("tracker %+v", tr)
	}
	// A probationary chunk that is read again is promoted into the policy.
	spec, ks, vs := testChunk(1199, "", F16, 2, 16)
	spec.Probationary = true
	checkChunk(t, c, spec, ks, vs)
	if st := c.tiers[0].tracker.Stats(); st.Promotions != 1 {
		t.Fatalf("promotions %d after a read of a probationary chunk", st.Promotions)
	}

	// The same flood as plain puts (what ragkv did before) displaces them all.
	c2, _, _ := openCache(t, cacheSetup{memCap: held * size})
	defer c2.Close()
	keys = keys[:0]
	for i := 0; i < held; i++ {
		spec, ks, vs := testChunk(uint64(i), "", F16, 2, 16)
		put(t, c2, spec, ks, vs)
		keys = append(keys, keyOf(t, spec))
	}
	for i := 1000; i < 1200; i++ {
		spec, ks, vs := testChunk(uint64(i), "", F16, 2, 16)
		put(t, c2, spec, ks, vs)
	}
	c = c2
	if n := resident(); n != 0 {
		t.Fatalf("plain flood kept %d", n)
	}
}
