package eviction

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// The tests here replay random unit-size traces through a Tracker and through small,
// independent page-based implementations written from the papers (FIFO; SIEVE, NSDI
// 2024, Fig. 1; ARC, FAST 2003, Fig. 4, with libCacheSim's guard for an empty T2; LIRS,
// SIGMETRICS 2002, §4.3, with a 1% HIR share and ghosts bounded by the capacity) and
// require the same hit or miss on every request: they check that the tracker-driven
// implementations (miss hook, victim, remove, ghosts) are the algorithms.

type refCache interface {
	access(k int) bool // true on a hit
}

// refFIFO is FIFO over pages.
type refFIFO struct {
	c int
	q []int
}

func (r *refFIFO) access(k int) bool {
	if slices.Contains(r.q, k) {
		return true
	}
	if len(r.q) == r.c {
		r.q = r.q[1:]
	}
	r.q = append(r.q, k)
	return false
}

// refSIEVE keeps the queue oldest first; the hand walks towards newer entries.
type refSIEVE struct {
	c       int
	q       []int // oldest first
	visited map[int]bool
	hand    int // index into q, -1: start at the oldest
}

func (r *refSIEVE) access(k int) bool {
	if slices.Contains(r.q, k) {
		r.visited[k] = true
		return true
	}
	if len(r.q) == r.c {
		h := r.hand
		if h < 0 || h >= len(r.q) {
			h = 0
		}
		for r.visited[r.q[h]] {
			r.visited[r.q[h]] = false
			h++
			if h == len(r.q) {
				h = 0
			}
		}
		delete(r.visited, r.q[h])
		r.q = slices.Delete(r.q, h, h+1)
		r.hand = h // the next newer entry slid into position h
		if r.hand == len(r.q) {
			r.hand = -1
		}
	}
	r.q = append(r.q, k)
	return false
}

// refARC is the paper's ARC; lists are kept MRU first.
type refARC struct {
	c              int
	p              float64
	t1, t2, b1, b2 []int
}

func remove(l []int, k int) []int { return slices.DeleteFunc(l, func(x int) bool { return x == k }) }

func (r *refARC) replace(inB2 bool) {
	t1 := float64(len(r.t1))
	if len(r.t1) > 0 && (t1 > r.p || (inB2 && t1 == r.p)) || len(r.t2) == 0 {
		v := r.t1[len(r.t1)-1]
		r.t1 = r.t1[:len(r.t1)-1]
		r.b1 = append([]int{v}, r.b1...)
	} else {
		v := r.t2[len(r.t2)-1]
		r.t2 = r.t2[:len(r.t2)-1]
		r.b2 = append([]int{v}, r.b2...)
	}
}

func (r *refARC) access(k int) bool {
	switch {
	case slices.Contains(r.t1, k):
		r.t1 = remove(r.t1, k)
		r.t2 = append([]int{k}, r.t2...)
		return true
	case slices.Contains(r.t2, k):
		r.t2 = append([]int{k}, remove(r.t2, k)...)
		return true
	case slices.Contains(r.b1, k):
		r.p = min(float64(r.c), r.p+max(float64(len(r.b2))/float64(len(r.b1)), 1))
		r.b1 = remove(r.b1, k)
		if len(r.t1)+len(r.t2) == r.c {
			r.replace(false)
		}
		r.t2 = append([]int{k}, r.t2...)
	case slices.Contains(r.b2, k):
		r.p = max(0, r.p-max(float64(len(r.b1))/float64(len(r.b2)), 1))
		r.b2 = remove(r.b2, k)
		if len(r.t1)+len(r.t2) == r.c {
			r.replace(true)
		}
		r.t2 = append([]int{k}, r.t2...)
	default:
		if len(r.t1)+len(r.t2) == r.c {
			if len(r.t1)+len(r.b1) >= r.c {
				if len(r.b1) > 0 {
					r.b1 = r.b1[:len(r.b1)-1]
					r.replace(false)
				} else {
					r.t1 = r.t1[:len(r.t1)-1]
				}
			} else {
				if len(r.t1)+len(r.b1)+len(r.t2)+len(r.b2) >= 2*r.c && len(r.b2) > 0 {
					r.b2 = r.b2[:len(r.b2)-1]
				}
				r.replace(false)
			}
		}
		r.t1 = append([]int{k}, r.t1...)
	}
	return false
}

// refLIRS is the paper's LIRS over pages. s is the stack (top first) of {page,
// resident, lir}; q the resident HIR pages (newest first); ghosts the non-resident
// pages in the order they became non-resident (newest first).
type refLIRS struct {
	c, hirLimit, lirLimit int
	s                     []lirsSlot
	q, ghosts             []int
	lir                   map[int]bool
	resident              map[int]bool
}

type lirsSlot struct{ page int }

func newRefLIRS(c int) *refLIRS {
	h := max(1, int(0.01*float64(c)))
	return &refLIRS{c: c, hirLimit: h, lirLimit: c - h, lir: map[int]bool{}, resident: map[int]bool{}}
}

func (r *refLIRS) inS(k int) bool {
	return slices.ContainsFunc(r.s, func(x lirsSlot) bool { return x.page == k })
}

func (r *refLIRS) toTop(k int) {
	r.s = slices.DeleteFunc(r.s, func(x lirsSlot) bool { return x.page == k })
	r.s = append([]lirsSlot{{k}}, r.s...)
}

func (r *refLIRS) dropFromS(k int) {
	r.s = slices.DeleteFunc(r.s, func(x lirsSlot) bool { return x.page == k })
	if !r.resident[k] {
		r.ghosts = remove(r.ghosts, k)
	}
}

func (r *refLIRS) prune() {
	for len(r.s) > 0 && !r.lir[r.s[len(r.s)-1].page] {
		r.dropFromS(r.s[len(r.s)-1].page)
	}
}

func (r *refLIRS) nLIR() int { return len(r.lir) }

func (r *refLIRS) demote() {
	r.prune()
	b := r.s[len(r.s)-1].page
	r.s = r.s[:len(r.s)-1]
	delete(r.lir, b)
	r.q = append([]int{b}, r.q...)
	r.prune()
}

func (r *refLIRS) makeLIR(k int) {
	r.lir[k] = true
	for r.nLIR() > r.lirLimit && r.nLIR() > 1 {
		r.demote()
	}
}

func (r *refLIRS) access(k int) bool {
	if r.resident[k] {
		switch {
		case r.lir[k]:
			r.toTop(k)
			r.prune()
		case r.inS(k):
			r.toTop(k)
			r.q = remove(r.q, k)
			r.makeLIR(k)
			r.prune()
		default:
			r.toTop(k)
			r.q = append([]int{k}, remove(r.q, k)...)
			r.prune()
		}
		return true
	}
	if len(r.resident) == r.c { // evict the oldest resident HIR page
		if len(r.q) > 0 {
			v := r.q[len(r.q)-1]
			r.q = r.q[:len(r.q)-1]
			delete(r.resident, v)
			if r.inS(v) {
				r.ghosts = append([]int{v}, r.ghosts...)
				for len(r.ghosts) > r.c {
					r.dropFromS(r.ghosts[len(r.ghosts)-1])
				}
			}
		} else {
			r.prune()
			v := r.s[len(r.s)-1].page
			r.s = r.s[:len(r.s)-1]
			delete(r.resident, v)
			delete(r.lir, v)
			r.prune()
		}
	}
	r.resident[k] = true
	if r.inS(k) { // a ghost on the stack
		r.ghosts = remove(r.ghosts, k)
		r.toTop(k)
		r.makeLIR(k)
		r.prune()
		return false
	}
	r.toTop(k)
	if r.nLIR()+1 <= r.lirLimit {
		r.lir[k] = true
		return false
	}
	r.q = append([]int{k}, r.q...)
	r.prune()
	return false
}

func TestPoliciesMatchReferenceImplementations(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		pol string
		ref func(c int) refCache
	}{
		{PolicyFIFO, func(c int) refCache { return &refFIFO{c: c} }},
		{PolicySIEVE, func(c int) refCache { return &refSIEVE{c: c, visited: map[int]bool{}, hand: -1} }},
		{PolicyARC, func(c int) refCache { return &refARC{c: c} }},
		{PolicyLIRS, func(c int) refCache { return newRefLIRS(c) }},
	} {
		for trial := 0; trial < 200; trial++ {
			c := 1 + rng.IntN(12)
			if trial%10 == 0 {
				c = 100 + rng.IntN(150) // several HIR slots for LIRS
			}
			universe := c + 1 + rng.IntN(3*c+4)
			n := 300 + rng.IntN(1500)
			tr := mustTracker(t, Config{Policy: tc.pol, Capacity: int64(c)})
			ref := tc.ref(c)
			skew := rng.Float64() < 0.5
			for i := 0; i < n; i++ {
				k := rng.IntN(universe)
				if skew {
					k = min(k, rng.IntN(universe)) // favour small ids
				}
				want := ref.access(k)
				got := tr.Touch(bigKey(k))
				if !got {
					if _, err := tr.Reserve(bigKey(k), 1, 1); err != nil && !errors.Is(err, ErrNotAdmitted) {
						t.Fatal(err)
					}
				}
				if got != want {
					t.Fatalf("%s, capacity %d, trial %d, request %d (key %d): tracker hit=%v, reference hit=%v",
						tc.pol, c, trial, i, k, got, want)
				}
			}
			tr.checkInternal(t)
		}
	}
}

func TestNewPoliciesScanResistance(t *testing.T) {
	lruKept := hotSurvival(t, PolicyLRU, AdmissionNone)
	for _, tc := range []struct {
		pol string
		min int
	}{
		{PolicyARC, 40},  // hot keys live in T2; the scan churns T1
		{PolicyLIRS, 45}, // hot keys are LIR; the scan passes through the 1% HIR queue
		{PolicySIEVE, 30},
	} {
		if got := hotSurvival(t, tc.pol, AdmissionNone); got < tc.min || got <= lruKept {
			t.Errorf("%s kept %d of 50 hot keys through a scan (LRU kept %d), want ≥ %d", tc.pol, got, lruKept, tc.min)
		}
	}
	if got := hotSurvival(t, PolicyFIFO, AdmissionNone); got > lruKept+5 {
		t.Errorf("FIFO kept %d hot keys, LRU %d: FIFO cannot be scan-resistant", got, lruKept)
	}
}

// TestNewPoliciesKeepGhostsBounded: a long stream of one-off keys leaves ghost lists
// no larger than the capacity allows (ARC: 2c bytes; LIRS: c bytes of ghosts).
func TestNewPoliciesKeepGhostsBounded(t *testing.T) {
	for _, pol := range []string{PolicyARC, PolicyLIRS} {
		tr := mustTracker(t, Config{Policy: pol, Capacity: 64})
		for i := 0; i < 20000; i++ {
			k := bigKey(i)
			if i%3 == 0 {
				k = bigKey(i % 97) // some reuse, so both ghost lists fill
			}
			if !tr.Touch(k) {
				if _, err := tr.Reserve(k, int64(1+i%4), 1); err != nil {
					t.Fatal(err)
				}
			}
		}
		tr.mu.Lock()
		switch p := tr.pol.(type) {
		case *arc:
			if p.b1.bytes+p.b2.bytes > 2*64 || len(p.g.idx) != p.b1.n+p.b2.n {
				t.Errorf("ARC ghosts: B1 %d B2 %d bytes, index %d for %d nodes", p.b1.bytes, p.b2.bytes, len(p.g.idx), p.b1.n+p.b2.n)
			}
		case *lirs:
			if p.nonres.bytes > 64 || p.stack.n > len(tr.s.idx)+p.nonres.n {
				t.Errorf("LIRS: %d ghost bytes, stack %d nodes for %d entries + %d ghosts", p.nonres.bytes, p.stack.n, len(tr.s.idx), p.nonres.n)
			}
		}
		tr.mu.Unlock()
		tr.checkInternal(t)
	}
}
