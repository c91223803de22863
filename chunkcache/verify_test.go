package chunkcache

import (
	"context"
	"strings"
	"testing"
)

// TestVerifyFindsCorruptUntrackedAndMissing: a clean cache verifies OK; a flipped
// byte in a stored layer, an object deleted behind the cache's back and an object
// written behind its back are each reported.
func TestVerifyFindsCorruptUntrackedAndMissing(t *testing.T) {
	ctx := context.Background()
	c, mem, disk := openCache(t, cacheSetup{dir: t.TempDir(), memCap: 1 << 20, diskCap: 1 << 22, writeThrough: true})
	defer c.Close()
	var keys []Key
	for i := range 3 {
		spec, ks, vs := testChunk(uint64(i), "", F16, 3, 4)
		keys = append(keys, put(t, c, spec, ks, vs).Key)
	}
	rep, err := c.Verify(ctx)
	if err != nil || !rep.OK || rep.Chunks != 6 || rep.Index != 3 || len(rep.Tiers) != 2 || rep.Tiers[1].Objects != 3 {
		t.Fatalf("clean cache: %+v, %v", rep, err)
	}
	spec, _, _ := testChunk(0, "", F16, 3, 4)
	flipDiskByte(t, disk, keys[0], encodedLayerBytes(spec)+3)
	if err := disk.Delete(ctx, keys[1]); err != nil {
		t.Fatal(err)
	}
	// Evict everything from RAM, then write keys[2]'s object into the memory tier
	// behind the cache's back: stored there but not tracked.
	if _, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "memory", Capacity: ptr(int64(1))}}); err != nil {
		t.Fatal(err)
	}
	obj, err := readObject(ctx, disk, keys[2])
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Put(ctx, keys[2], obj); err != nil {
		t.Fatal(err)
	}
	rep, err = c.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := rep.Tiers[1]
	if rep.OK || d.Corrupt != 1 || d.Missing != 1 || rep.Tiers[0].Untracked != 1 {
		t.Fatalf("after damage: %+v", rep)
	}
	joined := strings.Join(rep.Problems, "\n")
	for _, want := range []string{keys[0].Short() + ": layer 1", "tracked key " + keys[1].Short() + " is not stored",
		"tier memory: object " + keys[2].Short() + " (", "is stored but not tracked"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems do not name %q:\n%s", want, joined)
		}
	}
}
