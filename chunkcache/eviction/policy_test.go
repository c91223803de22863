package eviction

import (
	"errors"
	"slices"
	"testing"
)

func bigKey(i int) Key {
	var k Key
	k[0], k[1], k[2] = byte(i), byte(i>>8), byte(i>>16)
	k[3] = 0xa5
	return k
}

// hotSurvival fills a cache of 100 with 50 hot keys accessed 3 times each, then
// streams 1000 one-off keys through it and returns how many hot keys remain.
func hotSurvival(t *testing.T, pol, adm string) int {
	tr := mustTracker(t, Config{Policy: pol, Admission: adm, Capacity: 100})
	for r := 0; r < 3; r++ {
		for i := 0; i < 50; i++ {
			if !tr.Touch(bigKey(i)) {
				if _, err := tr.Reserve(bigKey(i), 1, 1); err != nil && !errors.Is(err, ErrNotAdmitted) {
					t.Fatal(err)
				}
			}
		}
	}
	for i := 1000; i < 2000; i++ {
		if _, err := tr.Reserve(bigKey(i), 1, 1); err != nil && !errors.Is(err, ErrNotAdmitted) {
			t.Fatal(err)
		}
		if i%2 == 0 { // hot keys keep being used, but each less often than the scan
			tr.Touch(bigKey((i / 2) % 50))
		}
	}
	n := 0
	for i := 0; i < 50; i++ {
		if tr.Contains(bigKey(i)) {
			n++
		}
	}
	return n
}

func TestScanResistance(t *testing.T) {
	lruKept := hotSurvival(t, PolicyLRU, AdmissionNone)
	for _, tc := range []struct {
		pol, adm string
		min      int
	}{
		{PolicyS3FIFO, AdmissionNone, 45}, // one-hit wonders die in the small queue
		{PolicyLFU, AdmissionNone, 45},
		{PolicyLRU, AdmissionTinyLFU, 45}, // TinyLFU rejects the scan
		{PolicyWTinyLFU, AdmissionNone, 45},
	} {
		if got := hotSurvival(t, tc.pol, tc.adm); got < tc.min || got <= lruKept {
			t.Errorf("%s/%s kept %d of 50 hot keys through a scan (LRU kept %d), want ≥ %d", tc.pol, tc.adm, got, lruKept, tc.min)
		}
	}
	if lruKept > 20 {
		t.Errorf("LRU kept %d hot keys through a scan: the scan is too weak to test anything", lruKept)
	}
}

func TestS3FIFOGhost(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyS3FIFO, Capacity: 20}) // small queue: 2
	for i := 0; i < 20; i++ {
		mustReserve(t, tr, bigKey(i), 1, 1)
	}
	// Key 0 was never hit: with S over its target it is the first victim, and the ghost
	// remembers it.
	if v := mustReserve(t, tr, bigKey(100), 1, 1); !slices.Equal(v, []Key{bigKey(0)}) {
		t.Fatalf("victims = %x, want key 0", v)
	}
	// Re-inserting key 0 sends it to main: later one-off inserts evict the small queue's
	// keys, not key 0.
	mustReserve(t, tr, bigKey(0), 1, 1)
	p := tr.pol.(*s3fifo)
	if q := tr.s.ents[tr.s.idx[bigKey(0)]].queue; q != queueMain {
		t.Fatalf("ghost hit went to queue %d, want main", q)
	}
	for i := 200; i < 205; i++ {
		mustReserve(t, tr, bigKey(i), 1, 1)
	}
	if !tr.Contains(bigKey(0)) {
		t.Fatal("ghost-admitted key evicted by one-off inserts")
	}
	if p.small.n+p.main.n != tr.Stats().Entries {
		t.Fatalf("queues hold %d, tracker %d", p.small.n+p.main.n, tr.Stats().Entries)
	}
}

func TestS3FIFOPromotesAccessed(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyS3FIFO, Capacity: 10}) // small queue: 1
	for i := 0; i < 10; i++ {
		mustReserve(t, tr, bigKey(i), 1, 1)
	}
	tr.Touch(bigKey(0)) // accessed in S: moves to M instead of being evicted
	v := mustReserve(t, tr, bigKey(10), 1, 1)
	if !slices.Equal(v, []Key{bigKey(1)}) {
		t.Fatalf("victims = %x, want key 1 (key 0 was accessed)", v)
	}
}

func TestLFUKeepsFrequentAndAges(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyLFU, Capacity: 4})
	for i := 0; i < 4; i++ {
		mustReserve(t, tr, bigKey(i), 1, 1)
	}
	for r := 0; r < 3; r++ {
		tr.Touch(bigKey(0))
		tr.Touch(bigKey(1))
		tr.Touch(bigKey(2))
	}
	// Key 3 has the lowest frequency.
	if v := mustReserve(t, tr, bigKey(4), 1, 1); !slices.Equal(v, []Key{bigKey(3)}) {
		t.Fatalf("victims = %x, want key 3", v)
	}
	// Aging: the clock rose to 1 at that eviction. A newcomer hit repeatedly climbs
	// past the old frequent keys, which then go in LRU order among equals.
	for r := 0; r < 6; r++ {
		tr.Touch(bigKey(4))
	}
	v := mustReserve(t, tr, bigKey(5), 1, 1)
	if slices.Contains(v, bigKey(4)) || len(v) != 1 {
		t.Fatalf("victims = %x; the recently hot key 4 must stay", v)
	}
}

func TestGDSFKeepsHighCostPerByte(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyGDSF, Capacity: 900})
	// Same size, different recompute cost; and one big entry with high total cost but
	// low cost per byte.
	mustReserve(t, tr, bigKey(1), 100, 100) // 1.0 per byte
	mustReserve(t, tr, bigKey(2), 100, 500) // 5.0
	mustReserve(t, tr, bigKey(3), 100, 50)  // 0.5
	mustReserve(t, tr, bigKey(4), 600, 900) // 1.5
	// Need 100 bytes: the lowest cost per byte (key 3) goes.
	if v := mustReserve(t, tr, bigKey(5), 100, 1000); !slices.Equal(v, []Key{bigKey(3)}) {
		t.Fatalf("victims = %x, want key 3", v)
	}
	// Next: key 1 (1.0/byte) before key 4 (1.5/byte) even though key 4 is larger.
	if v := mustReserve(t, tr, bigKey(6), 100, 1000); !slices.Equal(v, []Key{bigKey(1)}) {
		t.Fatalf("victims = %x, want key 1", v)
	}
	// Recency decay: the clock is now 1.0, so a new entry at 0.6/byte is worth 1.6
	// and outranks key 4 (1.5), which was never hit.
	if v := mustReserve(t, tr, bigKey(7), 100, 60); !slices.Equal(v, []Key{bigKey(4)}) {
		t.Fatalf("victims = %x, want key 4 (aged out)", v)
	}
}

func TestTinyLFUAdmission(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyLRU, Admission: AdmissionTinyLFU, Capacity: 4})
	for i := 0; i < 4; i++ {
		mustReserve(t, tr, bigKey(i), 1, 1)
		for r := 0; r < 4; r++ {
			tr.Touch(bigKey(i))
		}
	}
	// A first-time key loses against the frequently used LRU victim.
	if _, err := tr.Reserve(bigKey(9), 1, 1); !errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("one-off candidate: err = %v, want ErrNotAdmitted", err)
	}
	if st := tr.Stats(); st.Rejections != 1 || st.Entries != 4 || tr.Contains(bigKey(9)) {
		t.Fatalf("rejection changed state: %+v", st)
	}
	// A candidate seen often enough (each rejected Reserve is a recorded miss) wins.
	var err error
	for r := 0; r < 10; r++ {
		if _, err = tr.Reserve(bigKey(8), 1, 1); err == nil {
			break
		}
	}
	if err != nil || !tr.Contains(bigKey(8)) {
		t.Fatalf("frequent candidate never admitted: %v", err)
	}
}

func TestTinyLFUSketch(t *testing.T) {
	f := newTinyLFU(1000)
	hot, cold := keyHash(bigKey(1)), keyHash(bigKey(2))
	for i := 0; i < 20; i++ {
		f.record(hot)
	}
	f.record(cold)
	if e := f.estimate(hot); e < 15 {
		t.Errorf("estimate(hot) = %d, want ≥ 15 (saturating 4-bit counter + doorkeeper)", e)
	}
	if e := f.estimate(cold); e != 1 {
		t.Errorf("estimate(cold) = %d, want 1 (doorkeeper only)", e)
	}
	if e := f.estimate(keyHash(bigKey(3))); e != 0 {
		t.Errorf("estimate(unseen) = %d", e)
	}
	// Aging: after a full sample period of other keys the hot count is halved and the
	// doorkeeper cleared.
	for i := uint64(0); i < f.period; i++ {
		f.record(mix64(i + 12345))
	}
	if e := f.estimate(hot); e > 8 {
		t.Errorf("estimate(hot) after reset = %d, want ≤ 8", e)
	}
}
