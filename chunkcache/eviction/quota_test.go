package eviction

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestGroupQuotaEvictsOwnFirst: a group over its quota evicts its own least recently
// used entry; room in a full tier comes from entries without a quota, never from
// another group within its quota; an entry larger than the quota or a quota full of
// hard pins fails with ErrNoSpace and changes nothing.
func TestGroupQuotaEvictsOwnFirst(t *testing.T) {
	tr := mustTracker(t, Config{Capacity: 1000})
	if err := tr.SetGroupQuotas(map[string]int64{"a": 300, "b": 300}); err != nil {
		t.Fatal(err)
	}
	res := func(id int, size int64, p Pin, g string) ([]Key, error) {
		return tr.ReserveGroup(testKey(id), size, 1, p, g)
	}
	must := func(id int, size int64, p Pin, g string) []Key {
		t.Helper()
		v, err := res(id, size, p, g)
		if err != nil {
			t.Fatalf("reserve %d in %q: %v", id, g, err)
		}
		return v
	}
	for id := 1; id <= 3; id++ {
		if v := must(id, 100, Unpinned, "a"); len(v) != 0 {
			t.Fatalf("a within quota evicted %v", v)
		}
	}
	tr.Touch(testKey(1))
	if v := must(4, 100, Unpinned, "a"); !slices.Equal(v, keysOf(2)) {
		t.Fatalf("a over its quota evicted %v, want its LRU entry 2", v)
	}
	// Entries without a quota fill the rest: 300 (a) + 700.
	for id := 10; id < 17; id++ {
		must(id, 100, Unpinned, "")
	}
	if st := tr.Stats(); st.UsedBytes != 1000 {
		t.Fatalf("used %d", st.UsedBytes)
	}
	// b's puts in the full tier evict entries without a quota, not a's.
	v := must(20, 200, Unpinned, "b")
	if !slices.Equal(v, keysOf(10, 11)) {
		t.Fatalf("b in a full tier evicted %v, want the oldest entries without a quota", v)
	}
	// An entry without a quota cannot take room from a or b: with only hard-pinned
	// entries without a quota left, it fails.
	for id := 12; id < 17; id++ {
		tr.SetPin(testKey(id), HardPin)
	}
	if _, err := res(30, 100, Unpinned, ""); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("entry without a quota in a tier of quota shares and hard pins: %v", err)
	}
	if _, err := res(21, 301, Unpinned, "b"); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("entry larger than the quota: %v", err)
	}
	// a hard-pins its whole quota: a new a entry cannot fit, nothing changes.
	for _, id := range []int{1, 3, 4} {
		tr.SetPin(testKey(id), HardPin)
	}
	before := tr.Stats()
	if _, err := res(5, 50, Unpinned, "a"); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a full of hard pins: %v", err)
	}
	if after := tr.Stats(); after.UsedBytes != before.UsedBytes || after.Entries != before.Entries {
		t.Fatalf("a refused reservation changed the accounting: %+v → %+v", before, after)
	}
	for _, g := range tr.Groups() {
		if g.UsedBytes > g.QuotaBytes {
			t.Fatalf("group %s holds %d bytes over its quota %d", g.Name, g.UsedBytes, g.QuotaBytes)
		}
	}
	if st := tr.Stats(); st.QuotaViolationBytes != 0 {
		t.Fatalf("quota violations %d", st.QuotaViolationBytes)
	}
	if err := tr.SetGroupQuotas(map[string]int64{"a": 600, "b": 600}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("quotas over the capacity: %v", err)
	}
	if _, err := tr.SetCapacity(500); !errors.Is(err, ErrInvalid) {
		t.Fatalf("capacity below the quotas' sum: %v", err)
	}
}

// TestGroupQuotaRandom: random reservations, touches, pins and removals in two groups
// and outside them, under every policy: no group ever exceeds its quota, and a
// reservation's victims are entries without a quota or of the reserving group only.
func TestGroupQuotaRandom(t *testing.T) {
	for _, pol := range Policies() {
		t.Run(pol, func(t *testing.T) {
			tr := mustTracker(t, Config{Policy: pol, Capacity: 4000, HighWatermark: 0.9, LowWatermark: 0.8})
			quota := map[string]int64{"a": 1000, "b": 1500}
			if err := tr.SetGroupQuotas(quota); err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			groupOf := map[Key]string{}
			own, other := 0, 0 // victims of the reserving group / without a quota
			names := []string{"a", "b", ""}
			for op := 0; op < 4000; op++ {
				id := r.IntN(300)
				k := testKey(id)
				g, ok := groupOf[k]
				if !ok {
					g = names[id%3]
				}
				switch r.IntN(10) {
				case 0:
					tr.Remove(k)
					delete(groupOf, k)
				case 1:
					tr.SetPin(k, Pin(r.IntN(3)))
				case 2, 3:
					tr.Touch(k)
				default:
					pin := Unpinned
					if r.IntN(20) == 0 {
						pin = Pin(1 + r.IntN(2))
					}
					v, err := tr.ReserveGroup(k, int64(10+r.IntN(200)), 1, pin, g)
					if err != nil {
						if !errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrNotAdmitted) {
							t.Fatal(err)
						}
						continue
					}
					groupOf[k] = g
					for _, vk := range v {
						switch vg := groupOf[vk]; {
						case vg != "" && vg != g:
							t.Fatalf("op %d: a reservation in %q evicted %x of %q", op, g, vk[:2], vg)
						case vg != "":
							own++
						default:
							other++
						}
						delete(groupOf, vk)
					}
				}
				used := map[string]int64{}
				for k, g := range groupOf {
					if e, ok := tr.Lookup(k); ok {
						used[g] += e.Size
					}
				}
				for g, q := range quota {
					if used[g] > q {
						t.Fatalf("op %d: %q holds %d bytes, quota %d", op, g, used[g], q)
					}
				}
				if st := tr.Stats(); st.UsedBytes > st.CapacityBytes || st.QuotaViolationBytes != 0 {
					t.Fatalf("op %d: %+v", op, st)
				}
			}
			tr.checkInternal(t)
			if own == 0 || other == 0 {
				t.Fatalf("the run evicted %d group entries for their own group and %d without a quota: it tests nothing", own, other)
			}
		})
	}
}

// BenchmarkReserveGroup: a new key into a full group (one own eviction per op) beside
// a full policy side, against BenchmarkReserve's plain case (lru):
//
//	go test -run '^$' -bench 'ReserveGroup' -benchmem ./chunkcache/eviction
func BenchmarkReserveGroup(b *testing.B) {
	for _, grouped := range []bool{false, true} {
		name := "lru/no-quota"
		if grouped {
			name = "lru/quota"
		}
		b.Run(name, func(b *testing.B) {
			tr, err := NewTracker(Config{Policy: "lru", Capacity: 2 * benchEntries})
			if err != nil {
				b.Fatal(err)
			}
			g := ""
			if grouped {
				if err := tr.SetGroupQuotas(map[string]int64{"a": benchEntries}); err != nil {
					b.Fatal(err)
				}
				g = "a"
			}
			for i := uint64(0); i < 2*benchEntries; i++ {
				name := ""
				if i%2 == 0 {
					name = g
				}
				if _, err := tr.ReserveGroup(benchKey(i), 1, 1, Unpinned, name); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := tr.ReserveGroup(benchKey(uint64(4*benchEntries+i)), 1, 1, Unpinned, g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
