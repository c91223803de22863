package eviction

import (
	"encoding/binary"
	"errors"
	"testing"
)

func pkey(i int) Key {
	var k Key
	binary.LittleEndian.PutUint64(k[:], uint64(i))
	return k
}

// fill reserves n policy entries of size 1 with keys [from, from+n).
func fill(t *testing.T, tr *Tracker, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := tr.Reserve(pkey(i), 1, 1); err != nil {
			t.Fatal(err)
		}
	}
}

func countKept(tr *Tracker, from, n int) int {
	kept := 0
	for i := from; i < from+n; i++ {
		if tr.Contains(pkey(i)) {
			kept++
		}
	}
	return kept
}

// A flood of one-off probationary entries displaces at most the probation share of
// what the policy keeps; the same flood as plain entries displaces all of it.
func TestProbationBoundsOneOffFlood(t *testing.T) {
	for _, pol := range Policies() {
		t.Run(pol, func(t *testing.T) {
			tr, err := NewTracker(Config{Policy: pol, Capacity: 100, Probation: 0.1})
			if err != nil {
				t.Fatal(err)
			}
			fill(t, tr, 0, 100)
			for i := 0; i < 3; i++ { // the precomputed set is in use
				for k := 0; k < 100; k++ {
					tr.Touch(pkey(k))
				}
			}
			for i := 1000; i < 3000; i++ {
				if _, err := tr.AppendReserveProbationary(nil, pkey(i), 1, 1); err != nil {
					t.Fatal(err)
				}
			}
			if kept := countKept(tr, 0, 100); kept < 90 {
				t.Fatalf("probationary flood left %d of 100 policy entries, want ≥ 90", kept)
			}
			st := tr.Stats()
			if st.ProbationBytes > 10 || st.UsedBytes > 100 || st.ProbationEntries != int(st.ProbationBytes) {
				t.Fatalf("stats %+v", st)
			}
			tr.checkInternal(t)
		})
	}
	// Without probation (plain reservations), LRU loses the whole set to the flood.
	tr, _ := NewTracker(Config{Policy: PolicyLRU, Capacity: 100})
	fill(t, tr, 0, 100)
	fill(t, tr, 1000, 2000)
	if kept := countKept(tr, 0, 100); kept != 0 {
		t.Fatalf("plain flood kept %d", kept)
	}
}

// A hit promotes a probationary entry into the policy; a plain reservation evicts
// probationary entries first; pins and explicit puts take an entry out of probation.
func TestProbationPromotionAndOrder(t *testing.T) {
	tr, err := NewTracker(Config{Policy: PolicyLRU, Capacity: 10, Probation: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, tr, 0, 5)
	for i := 100; i < 105; i++ {
		if _, err := tr.AppendReserveProbationary(nil, pkey(i), 1, 1); err != nil {
			t.Fatal(err)
		}
	}
	if st := tr.Stats(); st.ProbationEntries != 5 || st.UsedBytes != 10 {
		t.Fatalf("stats %+v", st)
	}
	tr.Touch(pkey(102)) // reuse shown
	if st := tr.Stats(); st.Promotions != 1 || st.ProbationEntries != 4 {
		t.Fatalf("after a hit: %+v", st)
	}
	// A plain reservation takes the oldest probationary entry, not the LRU policy entry.
	vs, err := tr.Reserve(pkey(7), 1, 1)
	if err != nil || len(vs) != 1 || vs[0] != pkey(100) {
		t.Fatalf("plain reservation evicted %v (%v), want the oldest probationary entry", vs, err)
	}
	// An explicit re-put of a probationary entry promotes it; so does a pin.
	if _, err := tr.Reserve(pkey(101), 1, 1); err != nil {
		t.Fatal(err)
	}
	if !tr.SetPin(pkey(103), SoftPin) {
		t.Fatal("SetPin")
	}
	if st := tr.Stats(); st.ProbationEntries != 1 {
		t.Fatalf("after a re-put and a pin: %+v", st)
	}
	// A probationary re-reservation of a policy entry keeps it in the policy.
	if _, err := tr.AppendReserveProbationary(nil, pkey(0), 1, 1); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.ProbationEntries != 1 {
		t.Fatalf("policy entry demoted to probation: %+v", st)
	}
	// Switching policies keeps probationary entries out of the new policy.
	if err := tr.SetPolicy(PolicyS3FIFO); err != nil {
		t.Fatal(err)
	}
	tr.checkInternal(t)
	if _, err := tr.SetCapacity(5); err != nil {
		t.Fatal(err)
	}
	if tr.Contains(pkey(104)) {
		t.Fatal("shrinking kept the probationary entry while evicting policy entries")
	}
	tr.checkInternal(t)
}

func TestProbationConfig(t *testing.T) {
	for _, p := range []float64{-0.1, 1.5} {
		if _, err := NewTracker(Config{Capacity: 10, Probation: p}); !errors.Is(err, ErrInvalid) {
			t.Errorf("probation %v: %v", p, err)
		}
	}
	c := Config{Capacity: 10}
	c.EnsureDefaults()
	if c.Probation != DefaultProbation {
		t.Fatalf("default probation %v", c.Probation)
	}
}
