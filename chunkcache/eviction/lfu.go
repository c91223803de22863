package eviction

import "math"

// agingHeap implements the two inflation-clock policies:
//
//   - LFU-DA (costAware false): priority = L + freq;
//   - GDSF (costAware true): priority = L + freq·cost/size.
//
// L starts at 0 and is set to the priority of each evicted entry, so an entry that is
// not accessed keeps its old priority while newly inserted or hit entries are valued on
// top of the raised clock: that is the recency decay (dynamic aging). Ties go to the
// least recently used entry.
type agingHeap struct {
	h         prioHeap
	clock     float64
	costAware bool
}

func newLFU(s *store) *agingHeap  { return &agingHeap{h: prioHeap{s: s}} }
func newGDSF(s *store) *agingHeap { return &agingHeap{h: prioHeap{s: s}, costAware: true} }

func (p *agingHeap) miss(uint64, int64) {}

func (p *agingHeap) name() string {
	if p.costAware {
		return PolicyGDSF
	}
	return PolicyLFU
}

func (p *agingHeap) setCapacity(int64) {}
func (p *agingHeap) count() int        { return len(p.h.items) }

func (p *agingHeap) value(e *entry) float64 {
	f := float64(e.freq)
	if !p.costAware {
		return f
	}
	size := e.size
	if size < 1 {
		size = 1
	}
	return f * e.cost / float64(size)
}

func (p *agingHeap) insert(i int32, restored bool) {
	e := &p.h.s.ents[i]
	e.freq = 1
	if restored && e.hits > 1 {
		e.freq = e.hits
	}
	e.prio = p.clock + p.value(e)
	p.h.push(i)
}

func (p *agingHeap) hit(i int32) {
	e := &p.h.s.ents[i]
	if e.freq < math.MaxUint32 {
		e.freq++
	}
	e.prio = p.clock + p.value(e)
	p.h.fix(i)
}

func (p *agingHeap) remove(i int32, evicted bool) {
	if evicted {
		if pr := p.h.s.ents[i].prio; pr > p.clock {
			p.clock = pr
		}
	}
	p.h.remove(i)
}

func (p *agingHeap) victim() int32 { return p.h.min() }
