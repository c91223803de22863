package chunkcache

import (
	"context"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/failpoint"
)

// TestFailedEvictionDeleteIsRetried: an eviction whose delete from the tier fails
// (failpoint chunkcache/evict/delete) leaves the object stored but untracked; it is
// a pending delete (Stats), retried after a later eviction, and then the tier holds
// only what it accounts — without a restart. A key put again before the retry keeps
// its new copy.
func TestFailedEvictionDeleteIsRetried(t *testing.T) {
	ctx := context.Background()
	c, _, _ := openCache(t, cacheSetup{dir: t.TempDir(), memCap: 1 << 20, diskCap: 1 << 24})
	defer c.Close()
	c.orphanRetryEvery = 0
	seeds := map[Key]uint64{} // every put's key → its seed
	spec, ks, vs := testChunk(0, "", F16, 2, 8)
	seeds[put(t, c, spec, ks, vs).Key] = 0
	one := c.Stats().Tiers[0].Bytes
	if _, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "memory", Capacity: ptr(3 * one)}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(failpoint.Reset)
	// Fail the first eviction delete.
	if err := failpoint.Enable("chunkcache/evict/delete", "error@1"); err != nil {
		t.Fatal(err)
	}
	seed := uint64(1)
	for ; c.Stats().Tiers[0].Evictions == 0; seed++ {
		spec, ks, vs := testChunk(seed, "", F16, 2, 8)
		seeds[put(t, c, spec, ks, vs).Key] = seed
	}
	failpoint.Disable("chunkcache/evict/delete")
	st := c.Stats().Tiers[0]
	if st.PendingDeletes != 1 || c.PendingDeletes() != 1 {
		t.Fatalf("after a failed eviction delete: %d pending (memory tier), %d in all; want 1", st.PendingDeletes, c.PendingDeletes())
	}
	rep, err := c.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Tiers[0].Untracked != 1 || !strings.Contains(strings.Join(rep.Problems, "\n"), "is stored but not tracked") {
		t.Fatalf("verify with the stale object: %+v", rep)
	}
	// The next eviction retries the delete.
	for ev := st.Evictions; c.Stats().Tiers[0].Evictions == ev; seed++ {
		spec, ks, vs := testChunk(seed, "", F16, 2, 8)
		seeds[put(t, c, spec, ks, vs).Key] = seed
	}
	st = c.Stats().Tiers[0]
	if st.PendingDeletes != 0 || st.RetriedDeletes != 1 {
		t.Fatalf("after the next eviction: %d pending, %d retried; want 0, 1", st.PendingDeletes, st.RetriedDeletes)
	}
	if rep, err := c.Verify(ctx); err != nil || !rep.OK {
		t.Fatalf("verify after the retry: %+v %v", rep, err)
	}

	// A failed delete of a key that is put again before the retry: the retry must not
	// delete the new copy.
	if err := failpoint.Enable("chunkcache/evict/delete", "error@1"); err != nil {
		t.Fatal(err)
	}
	for ev := st.Evictions; c.Stats().Tiers[0].Evictions == ev; seed++ {
		spec, ks, vs := testChunk(seed, "", F16, 2, 8)
		seeds[put(t, c, spec, ks, vs).Key] = seed
	}
	failpoint.Disable("chunkcache/evict/delete")
	c.tiers[0].orphanMu.Lock()
	var orphan Key
	for k := range c.tiers[0].orphans {
		orphan = k
	}
	c.tiers[0].orphanMu.Unlock()
	s0, ok := seeds[orphan]
	if c.PendingDeletes() != 1 || !ok {
		t.Fatalf("pending deletes %d; orphan among the puts: %v", c.PendingDeletes(), ok)
	}
	vspec, vks, vvs := testChunk(s0, "", F16, 2, 8)
	c.orphanRetryEvery = 1 << 62 // only the put below may resolve it
	put(t, c, vspec, vks, vvs)
	if !c.tiers[0].tracker.Contains(eviction.Key(orphan)) {
		t.Fatal("the re-put is not in RAM")
	}
	c.retryOrphans(ctx)
	if c.PendingDeletes() != 0 {
		t.Fatal("the retry kept an orphan that was stored again")
	}
	checkChunk(t, c, vspec, vks, vvs)
	if rep, err := c.Verify(ctx); err != nil || !rep.OK {
		t.Fatalf("verify after re-put and retry: %+v %v", rep, err)
	}
}
