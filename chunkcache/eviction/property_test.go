package eviction

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// modelEntry is the reference model's view of one entry.
type modelEntry struct {
	size int64
	pin  Pin
	prob bool
}

// trackerMachine drives a Tracker with random operations and checks it against a simple
// model: a map of entries plus counters. The model does not predict which victims a
// policy picks; it checks every property a victim set must have.
type trackerMachine struct {
	tr        *Tracker
	ents      map[Key]modelEntry
	capacity  int64
	high, low float64
	admission bool

	evictions, admissions, rejections, updates, hits, misses, promotions uint64
}

func testKey(i int) Key {
	var k Key
	k[0] = byte(i)
	k[31] = byte(i * 7)
	return k
}

func (m *trackerMachine) probation() (n int, bytes int64) {
	for _, e := range m.ents {
		if e.prob {
			n++
			bytes += e.size
		}
	}
	return n, bytes
}

func (m *trackerMachine) used() (used, soft, hard int64) {
	for _, e := range m.ents {
		used += e.size
		switch e.pin {
		case SoftPin:
			soft += e.size
		case HardPin:
			hard += e.size
		}
	}
	return
}

func (m *trackerMachine) marks() (high, low int64) {
	c := float64(m.capacity)
	high = min(m.capacity, int64(math.Floor(m.high*c)))
	low = min(high, int64(math.Floor(m.low*c)))
	return
}

func (m *trackerMachine) key(t *rapid.T) Key {
	return testKey(rapid.IntRange(0, 23).Draw(t, "key"))
}

// checkVictims verifies a victim list against the model before the model applies it.
// exclude is the key being reserved (never its own victim), or nil.
func (m *trackerMachine) checkVictims(t *rapid.T, victims []Key, exclude *Key) {
	seen := map[Key]bool{}
	sawSoft := false
	for _, v := range victims {
		e, ok := m.ents[v]
		if !ok {
			t.Fatalf("victim %x is not tracked", v[:2])
		}
		if seen[v] {
			t.Fatalf("victim %x returned twice", v[:2])
		}
		seen[v] = true
		if exclude != nil && v == *exclude {
			t.Fatalf("reserved key %x returned as its own victim", v[:2])
		}
		switch e.pin {
		case HardPin:
			t.Fatalf("hard-pinned key %x returned as a victim", v[:2])
		case SoftPin:
			sawSoft = true
		case Unpinned:
			if sawSoft {
				t.Fatalf("unpinned victim %x after a soft-pinned one", v[:2])
			}
		}
	}
	if sawSoft {
		for k, e := range m.ents {
			if e.pin == Unpinned && !seen[k] && (exclude == nil || k != *exclude) {
				t.Fatalf("soft-pinned entry evicted while unpinned %x stays", k[:2])
			}
		}
	}
}

func (m *trackerMachine) Reserve(t *rapid.T) { m.reserve(t, false, false) }

// ReserveProbationary reserves an entry on probation.
func (m *trackerMachine) ReserveProbationary(t *rapid.T) { m.reserve(t, false, true) }

// ReservePin reserves and pins in one call.
func (m *trackerMachine) ReservePin(t *rapid.T) { m.reserve(t, true, false) }

func (m *trackerMachine) reserve(t *rapid.T, withPin, prob bool) {
	k := m.key(t)
	newPin := Unpinned
	if withPin {
		newPin = Pin(rapid.IntRange(0, 2).Draw(t, "pin"))
	}
	size := rapid.Int64Range(0, m.capacity/2+2).Draw(t, "size")
	cost := rapid.Float64Range(0, 100).Draw(t, "cost")
	old, tracked := m.ents[k]
	used, _, hard := m.used()
	newUsed := used - old.size + size
	high, low := m.marks()
	hardOthers := hard
	if tracked && old.pin == HardPin {
		hardOthers -= old.size
	}

	var victims []Key
	var err error
	if withPin {
		victims, err = m.tr.ReservePin(k, size, cost, newPin)
	} else if prob {
		victims, err = m.tr.AppendReserveProbationary(nil, k, size, cost)
	} else {
		victims, err = m.tr.Reserve(k, size, cost)
	}
	switch {
	case errors.Is(err, ErrNoSpace):
		if size <= m.capacity && hardOthers+size <= m.capacity {
			t.Fatalf("ErrNoSpace although %d hard-pinned + %d fits capacity %d", hardOthers, size, m.capacity)
		}
		if len(victims) != 0 {
			t.Fatalf("victims returned with error")
		}
		return
	case errors.Is(err, ErrNotAdmitted):
		if !m.admission || tracked || newUsed <= high || newPin != Unpinned {
			t.Fatalf("ErrNotAdmitted without admission filter / for tracked key / without eviction need / for a pinned reservation")
		}
		m.rejections++
		return
	case err != nil:
		t.Fatalf("Reserve: %v", err)
	}
	if size > m.capacity || hardOthers+size > m.capacity {
		t.Fatalf("Reserve succeeded although it cannot fit (hard %d + %d > %d)", hardOthers, size, m.capacity)
	}
	m.checkVictims(t, victims, &k)
	if newUsed <= high && len(victims) > 0 {
		t.Fatalf("evicted %d entries although %d ≤ high watermark %d", len(victims), newUsed, high)
	}
	after := newUsed
	for _, v := range victims {
		after -= m.ents[v].size
	}
	if len(victims) > 0 {
		last := m.ents[victims[len(victims)-1]].size
		if after+last <= low {
			t.Fatalf("evicted more than needed: %d ≤ low %d before the last victim", after+last, low)
		}
	}
	for _, v := range victims {
		delete(m.ents, v)
	}
	m.evictions += uint64(len(victims))
	pin := old.pin
	if withPin {
		pin = newPin
	}
	if tracked {
		m.ents[k] = modelEntry{size: size, pin: pin, prob: prob && old.prob}
		m.updates++
	} else {
		m.ents[k] = modelEntry{size: size, pin: pin, prob: prob}
		m.admissions++
	}
	if newUsed > high && after > low {
		// Best effort: stopping above the low watermark is fine only if nothing
		// evictable is left.
		for kk, e := range m.ents {
			if kk != k && e.pin != HardPin {
				t.Fatalf("stopped at %d > low %d with evictable %x left", after, low, kk[:2])
			}
		}
	}
	if u, _, _ := m.used(); u > m.capacity {
		t.Fatalf("used %d > capacity %d after Reserve", u, m.capacity)
	}
}

func (m *trackerMachine) Touch(t *rapid.T) {
	k := m.key(t)
	_, want := m.ents[k]
	if got := m.tr.Touch(k); got != want {
		t.Fatalf("Touch = %v, want %v", got, want)
	}
	if want {
		m.hits++
		if e := m.ents[k]; e.prob {
			e.prob = false
			m.ents[k] = e
			m.promotions++
		}
	} else {
		m.misses++
	}
}

func (m *trackerMachine) Remove(t *rapid.T) {
	k := m.key(t)
	_, want := m.ents[k]
	if got := m.tr.Remove(k); got != want {
		t.Fatalf("Remove = %v, want %v", got, want)
	}
	delete(m.ents, k)
}

func (m *trackerMachine) SetPin(t *rapid.T) {
	k := m.key(t)
	p := Pin(rapid.IntRange(0, 2).Draw(t, "pin"))
	e, want := m.ents[k]
	if got := m.tr.SetPin(k, p); got != want {
		t.Fatalf("SetPin = %v, want %v", got, want)
	}
	if want {
		if e.pin != p {
			e.prob = false
		}
		e.pin = p
		m.ents[k] = e
	}
}

func (m *trackerMachine) SetPolicy(t *rapid.T) {
	p := rapid.SampledFrom(Policies()).Draw(t, "policy")
	if err := m.tr.SetPolicy(p); err != nil {
		t.Fatalf("SetPolicy(%s): %v", p, err)
	}
}

func (m *trackerMachine) SetAdmission(t *rapid.T) {
	m.admission = rapid.Bool().Draw(t, "tinylfu")
	name := AdmissionNone
	if m.admission {
		name = AdmissionTinyLFU
	}
	if err := m.tr.SetAdmission(name); err != nil {
		t.Fatalf("SetAdmission: %v", err)
	}
}

func (m *trackerMachine) SetCapacity(t *rapid.T) {
	c := rapid.Int64Range(1, 400).Draw(t, "capacity")
	_, _, hard := m.used()
	victims, err := m.tr.SetCapacity(c)
	if hard > c {
		if !errors.Is(err, ErrNoSpace) {
			t.Fatalf("SetCapacity(%d) with %d hard-pinned: err = %v, want ErrNoSpace", c, hard, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("SetCapacity(%d): %v", c, err)
	}
	m.checkVictims(t, victims, nil)
	for _, v := range victims {
		delete(m.ents, v)
	}
	m.evictions += uint64(len(victims))
	m.capacity = c
	if u, _, _ := m.used(); u > c {
		t.Fatalf("used %d > capacity %d after SetCapacity", u, c)
	}
}

func (m *trackerMachine) SetWatermarks(t *rapid.T) {
	low := rapid.Float64Range(0.05, 1).Draw(t, "low")
	high := rapid.Float64Range(low, 1).Draw(t, "high")
	if err := m.tr.SetWatermarks(high, low); err != nil {
		t.Fatalf("SetWatermarks(%v, %v): %v", high, low, err)
	}
	m.high, m.low = high, low
}

// Check compares every observable of the tracker with the model.
func (m *trackerMachine) Check(t *rapid.T) {
	used, soft, hard := m.used()
	st := m.tr.Stats()
	want := TrackerStats{
		Policy: st.Policy, Admission: st.Admission,
		Entries: len(m.ents), UsedBytes: used, CapacityBytes: m.capacity,
		PinnedBytes: soft + hard, SoftPinnedBytes: soft, HardPinnedBytes: hard,
		Evictions: m.evictions, Admissions: m.admissions, Rejections: m.rejections,
		Updates: m.updates, Hits: m.hits, Misses: m.misses, Promotions: m.promotions,
	}
	want.ProbationEntries, want.ProbationBytes = m.probation()
	if st != want {
		t.Fatalf("Stats = %+v\nmodel = %+v", st, want)
	}
	keys := m.tr.Keys()
	if len(keys) != len(m.ents) {
		t.Fatalf("Keys has %d, model %d", len(keys), len(m.ents))
	}
	for _, k := range keys {
		e, ok := m.ents[k]
		if !ok {
			t.Fatalf("Keys has untracked %x", k[:2])
		}
		if p := m.tr.Pin(k); p != e.pin {
			t.Fatalf("Pin(%x) = %v, model %v", k[:2], p, e.pin)
		}
		if info, _ := m.tr.Lookup(k); info.Size != e.size {
			t.Fatalf("Lookup(%x).Size = %d, model %d", k[:2], info.Size, e.size)
		}
	}
	m.tr.checkInternal(t)
}

func TestTrackerProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{
			Policy:    rapid.SampledFrom(Policies()).Draw(t, "policy"),
			Capacity:  rapid.Int64Range(1, 400).Draw(t, "capacity"),
			Admission: rapid.SampledFrom([]string{AdmissionNone, AdmissionTinyLFU}).Draw(t, "admission"),
		}
		tr, err := NewTracker(cfg)
		if err != nil {
			t.Fatalf("NewTracker: %v", err)
		}
		m := &trackerMachine{tr: tr, ents: map[Key]modelEntry{}, capacity: cfg.Capacity,
			high: 1, low: 1, admission: cfg.Admission == AdmissionTinyLFU}
		t.Repeat(rapid.StateMachineActions(m))
	})
}

// checkInternal verifies the tracker's internal structures agree with its index: every
// unpinned entry is reachable through the policy, every soft-pinned one through the
// soft list, and the byte sums match.
func (t *Tracker) checkInternal(tb interface{ Fatalf(string, ...any) }) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var soft []int32
	for i := t.soft.head; i != nilIdx; i = t.s.ents[i].next {
		soft = append(soft, i)
		if len(soft) > len(t.s.idx) {
			tb.Fatalf("soft list cycle")
		}
	}
	nsoft := 0
	for _, i := range t.s.idx {
		e := &t.s.ents[i]
		if !e.live {
			tb.Fatalf("index points at a free slot")
		}
		if e.pin == SoftPin && e.grp == 0 {
			nsoft++
			if !slices.Contains(soft, i) {
				tb.Fatalf("soft-pinned entry missing from soft list")
			}
		}
	}
	if nsoft != len(soft) || t.soft.n != nsoft {
		tb.Fatalf("soft list has %d (n=%d), index %d soft-pinned", len(soft), t.soft.n, nsoft)
	}
	var prob []int32
	var probBytes int64
	for i := t.prob.head; i != nilIdx; i = t.s.ents[i].next {
		prob = append(prob, i)
		probBytes += t.s.ents[i].size
		if len(prob) > len(t.s.idx) {
			tb.Fatalf("probation list cycle")
		}
		if e := &t.s.ents[i]; !e.prob || e.pin != Unpinned || e.grp != 0 {
			tb.Fatalf("probation list holds an entry with prob=%v pin=%v group %d", e.prob, e.pin, e.grp)
		}
	}
	nprob := 0
	for _, i := range t.s.idx {
		if t.s.ents[i].prob {
			nprob++
		}
	}
	if nprob != len(prob) || t.prob.n != nprob || probBytes != t.probBytes {
		tb.Fatalf("probation list has %d (n=%d, %d bytes vs %d), index %d probationary", len(prob), t.prob.n, probBytes, t.probBytes, nprob)
	}
	if c, ok := t.pol.(interface{ count() int }); ok {
		n := 0
		for _, i := range t.s.idx {
			if t.s.ents[i].pin == Unpinned && t.s.ents[i].grp == 0 && !t.s.ents[i].prob {
				n++
			}
		}
		if c.count() != n {
			tb.Fatalf("policy %s holds %d entries, index has %d unpinned", t.pol.name(), c.count(), n)
		}
	}
	if c, ok := t.pol.(interface{ selfCheck() string }); ok {
		if msg := c.selfCheck(); msg != "" {
			tb.Fatalf("policy %s: %s", t.pol.name(), msg)
		}
	}
}

// selfCheck verifies ARC's lists: byte sums, queue tags, and the ghost index.
func (p *arc) selfCheck() string {
	for _, l := range []struct {
		l list
		q uint8
	}{{p.t1, queueT1}, {p.t2, queueT2}} {
		var b int64
		n := 0
		for i := l.l.head; i != nilIdx; i = p.s.ents[i].next {
			if p.s.ents[i].queue != l.q {
				return "entry on the wrong list"
			}
			b += p.s.ents[i].size
			n++
		}
		if b != l.l.bytes || n != l.l.n {
			return fmt.Sprintf("list sums %d bytes/%d entries, recorded %d/%d", b, n, l.l.bytes, l.l.n)
		}
	}
	if len(p.g.idx) != p.b1.n+p.b2.n {
		return fmt.Sprintf("ghost index %d, ghost lists %d", len(p.g.idx), p.b1.n+p.b2.n)
	}
	if p.b1.bytes+p.b2.bytes > 2*p.cap || p.p < 0 || p.p > float64(p.cap) {
		return fmt.Sprintf("ghosts %d bytes, p %v for capacity %d", p.b1.bytes+p.b2.bytes, p.p, p.cap)
	}
	return ""
}

// selfCheck verifies LIRS's stack and queue: every LIR entry has a stack node pointing
// back at it, every resident HIR entry is on Q, the stack bottom is LIR, and the byte
// counts match.
func (p *lirs) selfCheck() string {
	var lirBytes int64
	lirN, nodes, ghosts := 0, 0, 0
	for n := p.stack.head; n != nilIdx; n = p.g.nodes[n].an {
		nodes++
		nd := &p.g.nodes[n]
		if nd.ent == nilIdx {
			ghosts++
			if !nd.onB {
				return "ghost not on the non-resident list"
			}
			continue
		}
		e := &p.s.ents[nd.ent]
		if e.hpos != n {
			return "stack node and entry disagree"
		}
		if e.queue == queueLIR {
			lirBytes += e.size
			lirN++
		}
	}
	if nodes != p.stack.n || ghosts != p.nonres.n {
		return fmt.Sprintf("stack walk %d nodes/%d ghosts, recorded %d/%d", nodes, ghosts, p.stack.n, p.nonres.n)
	}
	if lirBytes != p.lirBytes || lirN != p.lirN {
		return fmt.Sprintf("LIR %d bytes/%d entries on the stack, recorded %d/%d", lirBytes, lirN, p.lirBytes, p.lirN)
	}
	if t := p.stack.tail; t != nilIdx && (p.g.nodes[t].ent == nilIdx || p.s.ents[p.g.nodes[t].ent].queue != queueLIR) {
		return "stack bottom is not LIR"
	}
	for i := p.q.head; i != nilIdx; i = p.s.ents[i].next {
		if p.s.ents[i].queue != queueHIR {
			return "non-HIR entry on Q"
		}
	}
	if p.nonres.bytes > p.cap {
		return fmt.Sprintf("%d ghost bytes for capacity %d", p.nonres.bytes, p.cap)
	}
	return ""
}
