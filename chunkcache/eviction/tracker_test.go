package eviction

import (
	"errors"
	"slices"
	"testing"
)

func mustTracker(t *testing.T, cfg Config) *Tracker {
	t.Helper()
	tr, err := NewTracker(cfg)
	if err != nil {
		t.Fatalf("NewTracker(%+v): %v", cfg, err)
	}
	return tr
}

func mustReserve(t *testing.T, tr *Tracker, k Key, size int64, cost float64) []Key {
	t.Helper()
	v, err := tr.Reserve(k, size, cost)
	if err != nil {
		t.Fatalf("Reserve(%x, %d): %v", k[:1], size, err)
	}
	return v
}

func keysOf(ids ...int) []Key {
	out := make([]Key, len(ids))
	for i, id := range ids {
		out[i] = testKey(id)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want error
	}{
		{Config{Capacity: 1}, nil},
		{Config{Policy: "LRU", Admission: "TinyLFU", Capacity: 1}, nil},
		{Config{Policy: "mru", Capacity: 1}, ErrUnknownPolicy},
		{Config{Policy: "ARC", Capacity: 1}, nil},
		{Config{Admission: "bloom", Capacity: 1}, ErrUnknownPolicy},
		{Config{Capacity: 0}, ErrInvalid},
		{Config{Capacity: 10, HighWatermark: 0.5, LowWatermark: 0.8}, ErrInvalid},
		{Config{Capacity: 10, HighWatermark: 1.5}, ErrInvalid},
	} {
		c := tc.cfg
		c.EnsureDefaults()
		if err := c.Validate(); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("Validate(%+v) = %v, want %v", tc.cfg, err, tc.want)
		}
	}
	c := Config{Capacity: 1, HighWatermark: 0.9}
	c.EnsureDefaults()
	if c.Policy != DefaultPolicy || c.Admission != AdmissionNone || c.LowWatermark != 0.9 {
		t.Errorf("EnsureDefaults = %+v", c)
	}
	if _, err := NewTracker(Config{Policy: "nope", Capacity: 1}); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("NewTracker(unknown policy) = %v", err)
	}
}

func TestLRUOrder(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyLRU, Capacity: 3})
	for i := 0; i < 3; i++ {
		mustReserve(t, tr, testKey(i), 1, 1)
	}
	tr.Touch(testKey(0)) // order now (oldest first) 1, 2, 0
	if v := mustReserve(t, tr, testKey(3), 1, 1); !slices.Equal(v, keysOf(1)) {
		t.Fatalf("victims = %x, want key 1", v)
	}
	if v := mustReserve(t, tr, testKey(4), 2, 1); !slices.Equal(v, keysOf(2, 0)) {
		t.Fatalf("victims = %x, want keys 2, 0", v)
	}
}

func TestPins(t *testing.T) {
	for _, pol := range Policies() {
		t.Run(pol, func(t *testing.T) {
			tr := mustTracker(t, Config{Policy: pol, Capacity: 4})
			for i := 0; i < 4; i++ {
				mustReserve(t, tr, testKey(i), 1, 1)
			}
			tr.SetPin(testKey(0), HardPin)
			tr.SetPin(testKey(1), SoftPin)
			// Unpinned 2 and 3 go first, then soft-pinned 1; hard-pinned 0 never.
			v := mustReserve(t, tr, testKey(10), 2, 1)
			slices.SortFunc(v, func(a, b Key) int { return int(a[0]) - int(b[0]) })
			if !slices.Equal(v, keysOf(2, 3)) {
				t.Fatalf("victims = %x, want 2, 3", v)
			}
			tr.SetPin(testKey(10), HardPin)
			if v := mustReserve(t, tr, testKey(11), 1, 1); !slices.Equal(v, keysOf(1)) {
				t.Fatalf("victims = %x, want soft-pinned 1", v)
			}
			tr.SetPin(testKey(11), HardPin)
			before := tr.Stats()
			if _, err := tr.Reserve(testKey(12), 1, 1); !errors.Is(err, ErrNoSpace) {
				t.Fatalf("Reserve with only hard pins left = %v, want ErrNoSpace", err)
			}
			if after := tr.Stats(); after != before || tr.Contains(testKey(12)) {
				t.Fatalf("failed Reserve changed state: %+v -> %+v", before, after)
			}
			if _, err := tr.SetCapacity(3); !errors.Is(err, ErrNoSpace) {
				t.Fatalf("SetCapacity below hard-pinned bytes = %v", err)
			}
			tr.SetPin(testKey(11), Unpinned)
			if v, err := tr.SetCapacity(3); err != nil || !slices.Equal(v, keysOf(11)) {
				t.Fatalf("SetCapacity(3) = %x, %v; want key 11", v, err)
			}
		})
	}
}

func TestReserveErrors(t *testing.T) {
	tr := mustTracker(t, Config{Capacity: 10})
	if _, err := tr.Reserve(testKey(1), 11, 1); !errors.Is(err, ErrNoSpace) {
		t.Errorf("oversized entry: %v", err)
	}
	if _, err := tr.Reserve(testKey(1), -1, 1); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative size: %v", err)
	}
	if _, err := tr.Reserve(testKey(1), 1, -1); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative cost: %v", err)
	}
	if err := tr.SetPolicy("mru"); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("SetPolicy(mru): %v", err)
	}
	if err := tr.SetAdmission("bloom"); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("SetAdmission(bloom): %v", err)
	}
	if err := tr.SetWatermarks(0.5, 0.6); !errors.Is(err, ErrInvalid) {
		t.Errorf("SetWatermarks(0.5, 0.6): %v", err)
	}
	if tr.Stats().Entries != 0 {
		t.Errorf("errors changed state: %+v", tr.Stats())
	}
}

func TestUpdateExistingKey(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyLRU, Capacity: 10})
	mustReserve(t, tr, testKey(1), 4, 1)
	mustReserve(t, tr, testKey(2), 4, 1)
	// Growing key 1 to 8 bytes must evict 2, never 1 itself.
	if v := mustReserve(t, tr, testKey(1), 8, 3); !slices.Equal(v, keysOf(2)) {
		t.Fatalf("victims = %x, want key 2", v)
	}
	info, _ := tr.Lookup(testKey(1))
	if info.Size != 8 || info.Cost != 3 {
		t.Fatalf("Lookup = %+v", info)
	}
	if st := tr.Stats(); st.UsedBytes != 8 || st.Updates != 1 || st.Admissions != 2 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestWatermarks(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyLRU, Capacity: 10, HighWatermark: 0.9, LowWatermark: 0.5})
	for i := 0; i < 9; i++ {
		if v := mustReserve(t, tr, testKey(i), 1, 1); len(v) != 0 {
			t.Fatalf("evicted below the high watermark at %d", i)
		}
	}
	// 10 bytes > 9 (high): evict down to 5 (low): the 5 oldest of 0..8 go.
	if v := mustReserve(t, tr, testKey(9), 1, 1); !slices.Equal(v, keysOf(0, 1, 2, 3, 4)) {
		t.Fatalf("victims = %x", v)
	}
	if st := tr.Stats(); st.UsedBytes != 5 {
		t.Fatalf("used = %d, want 5", st.UsedBytes)
	}
}

func TestSetPolicyKeepsEntries(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyLRU, Capacity: 100})
	for i := 0; i < 50; i++ {
		mustReserve(t, tr, testKey(i), 2, float64(i))
	}
	tr.SetPin(testKey(3), SoftPin)
	tr.SetPin(testKey(4), HardPin)
	for _, p := range append(Policies(), PolicyLRU) {
		if err := tr.SetPolicy(p); err != nil {
			t.Fatal(err)
		}
		if st := tr.Stats(); st.Entries != 50 || st.UsedBytes != 100 || st.Policy != p {
			t.Fatalf("after SetPolicy(%s): %+v", p, st)
		}
		if tr.Pin(testKey(3)) != SoftPin || tr.Pin(testKey(4)) != HardPin {
			t.Fatalf("pins lost after SetPolicy(%s)", p)
		}
		tr.checkInternal(t)
	}
	// Recency order survives an LRU → other → LRU round trip: key 0 is the oldest.
	if v := mustReserve(t, tr, testKey(99), 2, 1); !slices.Equal(v, keysOf(0)) {
		t.Fatalf("victims after round trip = %x, want key 0", v)
	}
}

func TestAppendReserveAllocs(t *testing.T) {
	for _, pol := range Policies() {
		for _, adm := range Admissions() {
			tr := mustTracker(t, Config{Policy: pol, Admission: adm, Capacity: 100})
			for i := 0; i < 2000; i++ { // warm up: slab, map and ghost reach steady size
				tr.Reserve(testKey(i%256), 1, 1)
				tr.Touch(testKey((i * 7) % 256))
			}
			buf := make([]Key, 0, 8)
			n := 0
			allocs := testing.AllocsPerRun(1000, func() {
				n++
				k := testKey(n % 256)
				buf, _ = tr.AppendReserve(buf[:0], k, 1, 1)
				tr.Touch(testKey((n * 13) % 256))
			})
			if allocs > 0.05 {
				t.Errorf("%s/%s: %.2f allocs per Reserve+Touch", pol, adm, allocs)
			}
		}
	}
}

func TestReservePin(t *testing.T) {
	tr := mustTracker(t, Config{Policy: PolicyLRU, Admission: AdmissionTinyLFU, Capacity: 3})
	for i := 0; i < 3; i++ {
		mustReserve(t, tr, testKey(i), 1, 1)
		for r := 0; r < 5; r++ {
			tr.Touch(testKey(i))
		}
	}
	if _, err := tr.Reserve(testKey(9), 1, 1); !errors.Is(err, ErrNotAdmitted) {
		t.Fatalf("unpinned one-off: %v, want ErrNotAdmitted", err)
	}
	// A pinned reservation bypasses admission and is pinned on return.
	v, err := tr.ReservePin(testKey(9), 1, 1, HardPin)
	if err != nil || !slices.Equal(v, keysOf(0)) {
		t.Fatalf("ReservePin = %x, %v; want victim 0", v, err)
	}
	if tr.Pin(testKey(9)) != HardPin || tr.Stats().HardPinnedBytes != 1 {
		t.Fatalf("pin not set: %v %+v", tr.Pin(testKey(9)), tr.Stats())
	}
	// Re-reserving with a new pin updates it.
	if _, err := tr.ReservePin(testKey(9), 2, 1, SoftPin); err != nil || tr.Pin(testKey(9)) != SoftPin {
		t.Fatalf("ReservePin update: %v, pin %v", err, tr.Pin(testKey(9)))
	}
	if _, err := tr.ReservePin(testKey(9), 1, 1, Pin(7)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad pin: %v", err)
	}
}
