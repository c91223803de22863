package eviction

// fifo evicts the oldest entry; hits change nothing.
type fifo struct {
	s *store
	l list
}

func newFIFO(s *store) *fifo { return &fifo{s: s, l: newList()} }

func (p *fifo) name() string           { return PolicyFIFO }
func (p *fifo) setCapacity(int64)      {}
func (p *fifo) miss(uint64, int64)     {}
func (p *fifo) insert(i int32, _ bool) { p.l.pushHead(p.s, i) }
func (p *fifo) hit(int32)              {}
func (p *fifo) remove(i int32, _ bool) { p.l.unlink(p.s, i) }
func (p *fifo) victim() int32          { return p.l.tail }
func (p *fifo) count() int             { return p.l.n }

// sieve is SIEVE (Zhang, Yang, Yue, Vigfusson, Rashmi, "SIEVE is Simpler than LRU: an
// Efficient Turn-Key Eviction Algorithm for Web Caches", NSDI 2024): one FIFO queue
// (new entries at the head), a visited bit per entry set by hits, and a hand that
// moves from the tail towards the head clearing visited bits until it finds an
// unvisited entry, which is the victim; after the eviction the hand continues from the
// victim's newer neighbour, wrapping to the tail. Unlike CLOCK, survivors stay where
// they are, so new entries are evicted quickly unless they are hit. The visited bit
// lives in entry.freq.
type sieve struct {
	s    *store
	l    list
	hand int32 // next entry to examine; nilIdx: start at the tail
}

func newSIEVE(s *store) *sieve { return &sieve{s: s, l: newList(), hand: nilIdx} }

func (p *sieve) name() string       { return PolicySIEVE }
func (p *sieve) setCapacity(int64)  {}
func (p *sieve) miss(uint64, int64) {}
func (p *sieve) count() int         { return p.l.n }

func (p *sieve) insert(i int32, restored bool) {
	e := &p.s.ents[i]
	e.freq = 0
	if restored && e.hits > 1 {
		e.freq = 1
	}
	p.l.pushHead(p.s, i)
}

func (p *sieve) hit(i int32) { p.s.ents[i].freq = 1 }

func (p *sieve) remove(i int32, _ bool) {
	if p.hand == i {
		p.hand = p.s.ents[i].prev
	}
	p.l.unlink(p.s, i)
}

func (p *sieve) victim() int32 {
	if p.l.n == 0 {
		return nilIdx
	}
	o := p.hand
	if o == nilIdx {
		o = p.l.tail
	}
	for p.s.ents[o].freq > 0 {
		p.s.ents[o].freq = 0
		o = p.s.ents[o].prev
		if o == nilIdx {
			o = p.l.tail
		}
	}
	p.hand = o
	return o
}
