package eviction

import (
	"fmt"
	"math"
	"sort"
	"sync"
)

// TrackerStats is a snapshot of a tracker's accounting and counters.
type TrackerStats struct {
	Policy          string `json:"policy"`
	Admission       string `json:"admission"`
	Entries         int    `json:"entries"`
	UsedBytes       int64  `json:"used_bytes"`
	CapacityBytes   int64  `json:"capacity_bytes"`
	PinnedBytes     int64  `json:"pinned_bytes"` // soft + hard
	SoftPinnedBytes int64  `json:"soft_pinned_bytes"`
	HardPinnedBytes int64  `json:"hard_pinned_bytes"`
	// Evictions counts victims returned by Reserve and SetCapacity.
	Evictions uint64 `json:"evictions"`
	// Admissions counts new keys accepted by Reserve; Rejections counts ErrNotAdmitted.
	Admissions uint64 `json:"admissions"`
	Rejections uint64 `json:"rejections"`
	// Updates counts Reserve calls on an already tracked key.
	Updates uint64 `json:"updates"`
	// QuotaViolationBytes sums the bytes a group held beyond its quota after a
	// reservation (0 unless the quota accounting is broken).
	QuotaViolationBytes uint64 `json:"quota_violation_bytes"`
	// Hits counts Touch calls on tracked keys, Misses on untracked ones.
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	// ProbationEntries and ProbationBytes are the probationary entries (reserved with
	// AppendReserveProbationary and not hit since); Promotions counts those that a hit
	// moved into the policy.
	ProbationEntries int    `json:"probation_entries"`
	ProbationBytes   int64  `json:"probation_bytes"`
	Promotions       uint64 `json:"promotions"`
}

// EntryInfo describes one tracked entry.
type EntryInfo struct {
	Size int64
	Cost float64
	Pin  Pin
	Hits uint32 // accesses since insert (insert counts as one), saturating
}

// Tracker decides which entries of one cache tier to evict. It does no I/O: the tier
// performs the moves it returns. It is safe for concurrent use.
type Tracker struct {
	mu  sync.Mutex
	cfg Config
	s   *store
	pol policy
	adm *tinyLFU // nil: admit everything

	soft list // soft-pinned entries, most recently used at the head
	// prob holds the probationary entries, most recently inserted at the head: unpinned
	// entries outside the policy until their first hit (see AppendReserveProbationary).
	prob      list
	probBytes int64
	probCap   int64

	used, softBytes, hardBytes int64
	highBytes, lowBytes        int64
	clock                      uint64

	evictions, admissions, rejections, updates, hits, misses, promotions uint64

	// Groups with quotas (quota.go): groups[g-1] is group g of an entry's grp.
	groups     []*group
	groupIdx   map[string]int32
	groupBytes int64 // bytes of all group entries (never the policy's victims)
	quotaSum   int64
	// quotaViolations sums, after each reservation, the bytes a group held beyond its
	// quota (should stay 0).
	quotaViolations uint64
}

// NewTracker returns an empty tracker for cfg (defaults applied, then validated).
func NewTracker(cfg Config) (*Tracker, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Tracker{cfg: cfg, s: newStore(), soft: newList(), prob: newList()}
	t.pol = newPolicy(cfg.Policy, t.s, cfg.Capacity)
	if cfg.Admission == AdmissionTinyLFU {
		t.adm = newTinyLFU(0)
	}
	t.setMarks()
	return t, nil
}

func (t *Tracker) setMarks() {
	c := float64(t.cfg.Capacity)
	t.highBytes = min(t.cfg.Capacity, int64(math.Floor(t.cfg.HighWatermark*c)))
	t.lowBytes = min(t.highBytes, int64(math.Floor(t.cfg.LowWatermark*c)))
	t.probCap = int64(math.Floor(t.cfg.Probation * c))
}

// Reserve accounts a new entry of size bytes whose hit saves cost (recompute cost, e.g.
// prefill FLOPs or token count). It returns the keys that must be evicted (already
// removed from the accounting) so that, after the caller removes them, usage ≤ capacity.
// If k is already tracked, its size and cost are updated (its pin is kept, and it is
// never its own victim). Errors: ErrNotAdmitted (the admission filter said no; no
// entry changed, though the filter counted the access), ErrNoSpace (room cannot be
// made without evicting hard-pinned entries, or size > capacity; nothing changed),
// ErrInvalid (negative size, negative or non-finite cost).
func (t *Tracker) Reserve(k Key, size int64, cost float64) (victims []Key, err error) {
	return t.reserve(nil, k, size, cost, false, Unpinned)
}

// AppendReserve is Reserve appending the victims to dst, so that a caller reusing dst
// allocates nothing in steady state.
func (t *Tracker) AppendReserve(dst []Key, k Key, size int64, cost float64) ([]Key, error) {
	return t.reserve(dst, k, size, cost, false, Unpinned)
}

// ReservePin is Reserve that also sets k's pin to p in the same critical section, so a
// concurrent Reserve cannot evict k between the two (as it could between Reserve and
// SetPin). A pinned reservation (p ≠ Unpinned) bypasses the admission filter: pinning
// is an explicit request to keep the entry.
func (t *Tracker) ReservePin(k Key, size int64, cost float64, p Pin) (victims []Key, err error) {
	return t.AppendReservePin(nil, k, size, cost, p)
}

// AppendReservePin is ReservePin appending the victims to dst.
func (t *Tracker) AppendReservePin(dst []Key, k Key, size int64, cost float64, p Pin) ([]Key, error) {
	if p > HardPin {
		return dst, fmt.Errorf("%w: pin %d", ErrInvalid, p)
	}
	return t.reserve(dst, k, size, cost, true, p)
}

func (t *Tracker) reserve(dst []Key, k Key, size int64, cost float64, setPin bool, newPin Pin) ([]Key, error) {
	return t.reserveIn(dst, k, size, cost, setPin, newPin, "", false)
}

// AppendReserveProbationary reserves a new unpinned entry on probation: an entry that
// nobody asked to keep (a chunk computed on the fly for one request) and that has not
// yet shown reuse. Probationary entries stay outside the policy, in their own LRU
// list, until their first Touch promotes them into it; they are the first victims of
// any other reservation, and a probationary reservation evicts other probationary
// entries rather than policy entries once they hold Config.Probation of the capacity.
// A stream of one-off entries therefore displaces at most that share of what the
// policy keeps (the segmented-LRU probation of Karedla et al., 1994, and the
// admission window of W-TinyLFU, applied to entries that carry their own "unproven"
// mark). If k is already tracked, this is an update that keeps its place.
func (t *Tracker) AppendReserveProbationary(dst []Key, k Key, size int64, cost float64) ([]Key, error) {
	return t.reserveIn(dst, k, size, cost, false, Unpinned, "", true)
}

// ReserveGroupProbationary is AppendReserveProbationary for an entry of group name. An
// entry of a group with a quota is not put on probation (its group's quota already
// bounds what it can displace): it is ReserveGroup with no pin.
func (t *Tracker) ReserveGroupProbationary(k Key, size int64, cost float64, name string) ([]Key, error) {
	return t.reserveIn(nil, k, size, cost, false, Unpinned, name, true)
}

func (t *Tracker) reserveIn(dst []Key, k Key, size int64, cost float64, setPin bool, newPin Pin, gname string, probIns bool) ([]Key, error) {
	if size < 0 {
		return dst, fmt.Errorf("%w: size %d", ErrInvalid, size)
	}
	if cost < 0 || math.IsNaN(cost) || math.IsInf(cost, 0) {
		return dst, fmt.Errorf("%w: cost %v", ErrInvalid, cost)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if size > t.cfg.Capacity {
		return dst, fmt.Errorf("%w: entry of %d bytes exceeds capacity %d", ErrNoSpace, size, t.cfg.Capacity)
	}
	i, tracked := t.s.idx[k]
	var h, oldSize uint64 = 0, 0
	pin := Unpinned
	var g int32
	if tracked {
		e := &t.s.ents[i]
		h, oldSize, pin, g = e.hash, uint64(e.size), e.pin, e.grp
		// An update stays on probation only if it is itself probationary; any other
		// reservation (an explicit put, a pin) promotes the entry.
		probIns = probIns && e.prob
	} else {
		g = t.groupOf(gname)
	}
	probIns = probIns && g == 0
	var gr *group
	if g != 0 {
		gr = t.groups[g-1]
		if size > gr.quota {
			return dst, fmt.Errorf("%w: entry of %d bytes exceeds the quota of %q (%d bytes)", ErrNoSpace, size, gr.name, gr.quota)
		}
		if gNew := gr.used - int64(oldSize) + size; gNew > gr.quota {
			own := gr.used - gr.hard
			if tracked && pin != HardPin {
				own -= int64(oldSize)
			}
			if gNew-own > gr.quota {
				return dst, fmt.Errorf("%w: %q needs %d bytes, %d of its quota of %d are hard-pinned", ErrNoSpace, gr.name, size, gr.hard, gr.quota)
			}
		}
	}
	if !tracked {
		h = keyHash(k)
		if t.adm != nil {
			t.adm.record(h)
		}
		if g == 0 {
			t.pol.miss(h, size)
		}
	}
	newUsed := t.used - int64(oldSize) + size
	if newUsed > t.highBytes {
		// Evictable: what the policy may take (never group entries) plus the reserving
		// group's own entries.
		evictable := t.used - t.hardBytes - t.groupBytes
		if tracked && pin != HardPin && g == 0 {
			evictable -= int64(oldSize)
		}
		if gr != nil {
			own := gr.used - gr.hard
			if tracked && pin != HardPin {
				own -= int64(oldSize)
			}
			evictable += own
		}
		if newUsed-evictable > t.cfg.Capacity {
			return dst, fmt.Errorf("%w: need %d bytes, %d of %d are hard-pinned or other namespaces' quota shares", ErrNoSpace, size, t.used-evictable, t.cfg.Capacity)
		}
		if !tracked && t.adm != nil && (!setPin || newPin == Unpinned) {
			if v := t.nextVictim(probIns, size); v != nilIdx && !t.adm.admit(h, t.s.ents[v].hash) {
				t.rejections++
				return dst, ErrNotAdmitted
			}
		}
	}
	if tracked {
		t.detach(i)
	}
	// A group over its quota evicts its own entries first.
	if gr != nil {
		for gr.used+size > gr.quota {
			v := t.groupVictim(g)
			if v == nilIdx {
				break
			}
			dst = append(dst, t.s.ents[v].key)
			t.evict(v)
		}
	}
	// Evict down to the low watermark (best effort: whatever is evictable), which the
	// feasibility check above guarantees brings usage within capacity: the policy's
	// victims, then the reserving group's own entries.
	if newUsed > t.highBytes {
		for t.used+size > t.lowBytes {
			v := t.nextVictim(probIns, size)
			if v == nilIdx {
				v = t.groupVictim(g)
			}
			if v == nilIdx {
				break
			}
			dst = append(dst, t.s.ents[v].key)
			t.evict(v)
		}
	}
	t.clock++
	if tracked {
		e := &t.s.ents[i]
		e.size, e.cost, e.tick = size, cost, t.clock
		if setPin {
			e.pin = newPin
		}
		e.prob = probIns && e.pin == Unpinned
		t.attach(i, true)
		t.updates++
	} else {
		i = t.s.alloc(k, h)
		e := &t.s.ents[i]
		e.size, e.cost, e.tick, e.hits, e.grp = size, cost, t.clock, 1, g
		if setPin {
			e.pin = newPin
		}
		e.prob = probIns && e.pin == Unpinned
		t.attach(i, false)
		t.admissions++
		if t.adm != nil && t.adm.needsGrow(len(t.s.idx)) {
			t.adm.regrow(len(t.s.idx), t.trackedHashes)
		}
	}
	if gr != nil && gr.used > gr.quota {
		t.quotaViolations += uint64(gr.used - gr.quota)
	}
	return dst, nil
}

func (t *Tracker) trackedHashes(yield func(h uint64)) {
	for _, i := range t.s.idx {
		yield(t.s.ents[i].hash)
	}
}

// nextVictim returns the entry to evict next to make room for size bytes (probIns: a
// probationary reservation; size 0 outside reservations): the oldest probationary entry
// when the reservation is not probationary or probation is over its share, else the
// policy's choice among unpinned entries, else the oldest probationary entry, else the
// least recently used soft-pinned entry, else nilIdx. Never a group's entry.
func (t *Tracker) nextVictim(probIns bool, size int64) int32 {
	if t.prob.tail != nilIdx && (!probIns || t.probBytes+size > t.probCap) {
		return t.prob.tail
	}
	if v := t.pol.victim(); v != nilIdx {
		return v
	}
	if t.prob.tail != nilIdx {
		return t.prob.tail
	}
	return t.soft.tail
}

func (t *Tracker) evict(i int32) {
	e := &t.s.ents[i]
	if e.pin == Unpinned && e.grp == 0 && !e.prob {
		t.pol.remove(i, true)
		t.used -= e.size
	} else {
		t.detach(i)
	}
	t.s.release(i)
	t.evictions++
}

// detach takes entry i out of its ordering structure and the usage accounting.
func (t *Tracker) detach(i int32) {
	e := &t.s.ents[i]
	if e.grp != 0 {
		g := t.groups[e.grp-1]
		switch e.pin {
		case Unpinned:
			g.lru.unlink(t.s, i)
		case SoftPin:
			g.softl.unlink(t.s, i)
			g.soft -= e.size
		case HardPin:
			g.hard -= e.size
		}
		g.used -= e.size
		t.groupBytes -= e.size
		t.used -= e.size
		return
	}
	switch {
	case e.prob:
		t.prob.unlink(t.s, i)
		t.probBytes -= e.size
	case e.pin == Unpinned:
		t.pol.remove(i, false)
	case e.pin == SoftPin:
		t.soft.unlink(t.s, i)
		t.softBytes -= e.size
	case e.pin == HardPin:
		t.hardBytes -= e.size
	}
	t.used -= e.size
}

// attach puts entry i into the structure for its pin and into the accounting.
func (t *Tracker) attach(i int32, restored bool) {
	e := &t.s.ents[i]
	t.used += e.size
	if e.grp != 0 {
		g := t.groups[e.grp-1]
		g.used += e.size
		t.groupBytes += e.size
		switch e.pin {
		case Unpinned:
			g.lru.pushHead(t.s, i)
		case SoftPin:
			g.softl.pushHead(t.s, i)
			g.soft += e.size
		case HardPin:
			g.hard += e.size
		}
		return
	}
	switch {
	case e.prob:
		t.prob.pushHead(t.s, i)
		t.probBytes += e.size
	case e.pin == Unpinned:
		t.pol.insert(i, restored)
	case e.pin == SoftPin:
		t.soft.pushHead(t.s, i)
		t.softBytes += e.size
	case e.pin == HardPin:
		t.hardBytes += e.size
	}
}

// Touch records a hit on k. It returns false (and counts a miss) if k is not tracked.
func (t *Tracker) Touch(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.s.idx[k]
	if !ok {
		t.misses++
		return false
	}
	t.hits++
	t.clock++
	e := &t.s.ents[i]
	e.tick = t.clock
	if e.hits < math.MaxUint32 {
		e.hits++
	}
	if t.adm != nil {
		t.adm.record(e.hash)
	}
	if e.grp != 0 {
		g := t.groups[e.grp-1]
		switch e.pin {
		case Unpinned:
			g.lru.moveHead(t.s, i)
		case SoftPin:
			g.softl.moveHead(t.s, i)
		}
		return true
	}
	switch {
	case e.prob: // reuse shown: promote into the policy as a new entry
		t.detach(i)
		e.prob = false
		t.attach(i, false)
		t.promotions++
	case e.pin == Unpinned:
		t.pol.hit(i)
	case e.pin == SoftPin:
		t.soft.moveHead(t.s, i)
	}
	return true
}

// Remove forgets k (the caller deleted it or moved it out of the tier). It returns
// false if k is not tracked.
func (t *Tracker) Remove(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.s.idx[k]
	if !ok {
		return false
	}
	t.detach(i)
	t.s.release(i)
	return true
}

// Contains reports whether k is tracked.
func (t *Tracker) Contains(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.s.idx[k]
	return ok
}

// Lookup returns what the tracker knows about k.
func (t *Tracker) Lookup(k Key) (EntryInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.s.idx[k]
	if !ok {
		return EntryInfo{}, false
	}
	e := &t.s.ents[i]
	return EntryInfo{Size: e.size, Cost: e.cost, Pin: e.pin, Hits: e.hits}, true
}

// SetPin sets k's pin. It returns false if k is not tracked or p is not a known pin.
func (t *Tracker) SetPin(k Key, p Pin) bool {
	if p > HardPin {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.s.idx[k]
	if !ok {
		return false
	}
	if t.s.ents[i].pin == p {
		return true
	}
	t.detach(i)
	t.s.ents[i].pin = p
	t.s.ents[i].prob = false // a pin (or its removal) is an explicit decision: out of probation
	t.attach(i, true)
	return true
}

// Pin returns k's pin (Unpinned if k is not tracked).
func (t *Tracker) Pin(k Key) Pin {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.s.idx[k]; ok {
		return t.s.ents[i].pin
	}
	return Unpinned
}

// SetPolicy switches the eviction policy at run time. Every entry stays tracked; the
// new policy is seeded with the unpinned entries in recency order along with their hit
// counts. Switching to the current policy is a no-op.
func (t *Tracker) SetPolicy(name string) error {
	c := Config{Policy: name}
	c.EnsureDefaults()
	if !validPolicy(c.Policy) {
		return fmt.Errorf("%w %q (want one of %v)", ErrUnknownPolicy, name, policyNames)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.Policy == t.cfg.Policy {
		return nil
	}
	order := make([]int32, 0, len(t.s.idx))
	for _, i := range t.s.idx {
		if t.s.ents[i].pin == Unpinned && t.s.ents[i].grp == 0 && !t.s.ents[i].prob {
			order = append(order, i)
		}
	}
	sort.Slice(order, func(a, b int) bool { return t.s.ents[order[a]].tick < t.s.ents[order[b]].tick })
	for _, i := range order {
		t.pol.remove(i, false)
	}
	t.pol = newPolicy(c.Policy, t.s, t.cfg.Capacity)
	for _, i := range order {
		t.pol.insert(i, true)
	}
	t.cfg.Policy = c.Policy
	return nil
}

// SetAdmission switches the admission filter ("none"/"" or "tinylfu"). Enabling
// TinyLFU starts with an empty sketch.
func (t *Tracker) SetAdmission(name string) error {
	c := Config{Admission: name}
	c.EnsureDefaults()
	if !validAdmission(c.Admission) {
		return fmt.Errorf("%w: admission %q (want none or tinylfu)", ErrUnknownPolicy, name)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.Admission == t.cfg.Admission {
		return nil
	}
	t.cfg.Admission = c.Admission
	if c.Admission == AdmissionTinyLFU {
		t.adm = newTinyLFU(len(t.s.idx))
	} else {
		t.adm = nil
	}
	return nil
}

// SetCapacity changes the byte capacity. Shrinking evicts (to the low watermark) and
// returns the victims. ErrNoSpace (nothing changed) if the hard-pinned bytes exceed
// the new capacity; ErrInvalid if bytes ≤ 0.
func (t *Tracker) SetCapacity(bytes int64) (victims []Key, err error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("%w: capacity %d bytes (must be > 0)", ErrInvalid, bytes)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.quotaSum > bytes {
		return nil, fmt.Errorf("%w: capacity %d bytes is below the namespace quotas' sum %d", ErrInvalid, bytes, t.quotaSum)
	}
	if t.hardBytes+t.groupBytes > bytes {
		return nil, fmt.Errorf("%w: %d bytes are hard-pinned or in namespace quota shares, more than the new capacity %d", ErrNoSpace, t.hardBytes+t.groupBytes, bytes)
	}
	t.cfg.Capacity = bytes
	t.setMarks()
	t.pol.setCapacity(bytes)
	if t.used > t.highBytes {
		for t.used > t.lowBytes {
			v := t.nextVictim(false, 0)
			if v == nilIdx {
				break
			}
			victims = append(victims, t.s.ents[v].key)
			t.evict(v)
		}
	}
	return victims, nil
}

// SetWatermarks changes the watermarks (0 < low ≤ high ≤ 1). They apply from the next
// Reserve on.
func (t *Tracker) SetWatermarks(high, low float64) error {
	if err := validWatermarks(high, low); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cfg.HighWatermark, t.cfg.LowWatermark = high, low
	t.setMarks()
	return nil
}

// Config returns the current configuration (reflecting run-time changes).
func (t *Tracker) Config() Config {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cfg
}

// Stats returns a snapshot of the accounting and counters.
func (t *Tracker) Stats() TrackerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	soft, hard := t.softBytes, t.hardBytes
	for _, g := range t.groups {
		soft, hard = soft+g.soft, hard+g.hard
	}
	return TrackerStats{
		Policy:              t.cfg.Policy,
		Admission:           t.cfg.Admission,
		Entries:             len(t.s.idx),
		UsedBytes:           t.used,
		CapacityBytes:       t.cfg.Capacity,
		PinnedBytes:         soft + hard,
		SoftPinnedBytes:     soft,
		HardPinnedBytes:     hard,
		QuotaViolationBytes: t.quotaViolations,
		Evictions:           t.evictions,
		Admissions:          t.admissions,
		Rejections:          t.rejections,
		Updates:             t.updates,
		Hits:                t.hits,
		Misses:              t.misses,

		ProbationEntries: t.prob.n,
		ProbationBytes:   t.probBytes,
		Promotions:       t.promotions,
	}
}

// Keys returns a snapshot of the tracked keys (in no particular order), for tests and
// tools.
func (t *Tracker) Keys() []Key {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Key, 0, len(t.s.idx))
	for k := range t.s.idx {
		out = append(out, k)
	}
	return out
}
