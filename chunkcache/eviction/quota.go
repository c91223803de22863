package eviction

import (
	"fmt"
	"math"
	"sort"
)

// Groups with quotas (chunkcache: namespaces with a byte quota in this tier).
//
// An entry reserved with ReserveGroup in a group that has a quota is kept out of the
// eviction policy: the group keeps its own recency lists (unpinned, soft-pinned), and
// its entries are evicted only to make room for the group's own entries:
//
//   - a reservation that would take the group over its quota first evicts the group's
//     least recently used entries (unpinned, then soft-pinned; never hard-pinned)
//     until the group fits; if it cannot (hard pins, or the entry alone is larger than
//     the quota) it fails with ErrNoSpace and nothing changes;
//   - room in the tier as a whole comes from the policy's victims, which are never
//     group entries, and only then from the reserving group's own entries.
//
// So a group's bytes never exceed its quota, and no reservation — of another group or
// of an entry without a quota — evicts a group's entries while the group is within its
// quota. The quotas of a tier must sum to at most its capacity (SetGroupQuotas,
// SetCapacity), so each group can always have its share.

// group is one group with a quota.
type group struct {
	name             string
	quota            int64
	used, soft, hard int64
	lru, softl       list // unpinned and soft-pinned members, most recent at the head
}

// SetGroupQuotas sets the byte quota of each named group (replacing any earlier ones;
// a quota applies to entries reserved after it is set). ErrInvalid if a quota is ≤ 0,
// a name is empty, or the quotas sum to more than the capacity; nothing changes then.
// Call it before reserving group entries.
func (t *Tracker) SetGroupQuotas(quotas map[string]int64) error {
	var sum int64
	names := make([]string, 0, len(quotas))
	for n, q := range quotas {
		if n == "" || q <= 0 {
			return fmt.Errorf("%w: quota %d bytes for group %q (want a name and > 0)", ErrInvalid, q, n)
		}
		if sum > math.MaxInt64-q {
			return fmt.Errorf("%w: quotas overflow", ErrInvalid)
		}
		sum += q
		names = append(names, n)
	}
	sort.Strings(names)
	t.mu.Lock()
	defer t.mu.Unlock()
	if sum > t.cfg.Capacity {
		return fmt.Errorf("%w: quotas sum to %d bytes, more than the capacity %d", ErrInvalid, sum, t.cfg.Capacity)
	}
	for _, g := range t.groups {
		if g.used > 0 {
			return fmt.Errorf("%w: group %q already holds entries", ErrInvalid, g.name)
		}
	}
	t.groups = t.groups[:0]
	t.groupIdx = make(map[string]int32, len(names))
	for _, n := range names {
		t.groups = append(t.groups, &group{name: n, quota: quotas[n], lru: newList(), softl: newList()})
		t.groupIdx[n] = int32(len(t.groups)) // 1-based: 0 is "no group"
	}
	t.quotaSum = sum
	return nil
}

// GroupQuota is the quota of group name (0: none).
func (t *Tracker) GroupQuota(name string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g := t.groupOf(name); g != 0 {
		return t.groups[g-1].quota
	}
	return 0
}

// GroupStats is one group's accounting.
type GroupStats struct {
	Name        string `json:"name"`
	QuotaBytes  int64  `json:"quota_bytes"`
	UsedBytes   int64  `json:"used_bytes"`
	PinnedBytes int64  `json:"pinned_bytes"`
	Entries     int    `json:"entries"`
}

// Groups reports every group with a quota, by name.
func (t *Tracker) Groups() []GroupStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]GroupStats, len(t.groups))
	for i, g := range t.groups {
		out[i] = GroupStats{Name: g.name, QuotaBytes: g.quota, UsedBytes: g.used, PinnedBytes: g.soft + g.hard}
	}
	for _, i := range t.s.idx {
		if g := t.s.ents[i].grp; g != 0 {
			out[g-1].Entries++
		}
	}
	return out
}

func (t *Tracker) groupOf(name string) int32 {
	if name == "" || len(t.groupIdx) == 0 {
		return 0
	}
	return t.groupIdx[name]
}

// groupVictim is the entry group g evicts next: its least recently used unpinned
// entry, else its least recently used soft-pinned one, else nilIdx.
func (t *Tracker) groupVictim(g int32) int32 {
	if g == 0 {
		return nilIdx
	}
	gr := t.groups[g-1]
	if gr.lru.tail != nilIdx {
		return gr.lru.tail
	}
	return gr.softl.tail
}

// ReserveGroup is ReservePin for an entry of group name ("" or a group without a
// quota: exactly ReservePin). An entry keeps the group it was first reserved with.
// Besides ReservePin's errors: ErrNoSpace when the group cannot fit the entry within
// its quota (nothing changed).
func (t *Tracker) ReserveGroup(k Key, size int64, cost float64, p Pin, name string) ([]Key, error) {
	if p > HardPin {
		return nil, fmt.Errorf("%w: pin %d", ErrInvalid, p)
	}
	return t.reserveIn(nil, k, size, cost, true, p, name, false)
}
