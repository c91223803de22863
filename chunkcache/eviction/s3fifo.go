package eviction

// s3fifo is S3-FIFO (Yang et al., SOSP 2023) over bytes. New entries enter the small
// FIFO S (target 10% of capacity) unless the ghost queue G remembers them, in which
// case they go to the main FIFO M. Hits only bump a 2-bit frequency. Eviction: while S
// holds at least its target (or M is empty), S's tail moves to M if it was accessed
// since insertion, else it is evicted and remembered in G; otherwise M's tail is
// reinserted with its frequency decremented while nonzero, else evicted.
type s3fifo struct {
	s           *store
	small, main list
	smallTarget int64
	g           ghost
}

const (
	queueSmall uint8 = 1
	queueMain  uint8 = 2
	s3MaxFreq        = 3
)

func newS3FIFO(s *store) *s3fifo {
	return &s3fifo{s: s, small: newList(), main: newList(), g: ghost{idx: make(map[uint64]uint64)}}
}

func (p *s3fifo) miss(uint64, int64) {}

func (p *s3fifo) name() string { return PolicyS3FIFO }
func (p *s3fifo) count() int   { return p.small.n + p.main.n }

func (p *s3fifo) setCapacity(bytes int64) {
	p.smallTarget = max(1, bytes/10)
}

func (p *s3fifo) insert(i int32, restored bool) {
	e := &p.s.ents[i]
	e.freq = 0
	switch {
	case restored:
		if e.hits > 1 {
			e.freq = min(s3MaxFreq, e.hits-1)
		}
		e.queue = queueMain
		p.main.pushHead(p.s, i)
	case p.g.take(e.hash):
		e.queue = queueMain
		p.main.pushHead(p.s, i)
	default:
		e.queue = queueSmall
		p.small.pushHead(p.s, i)
	}
}

func (p *s3fifo) hit(i int32) {
	if e := &p.s.ents[i]; e.freq < s3MaxFreq {
		e.freq++
	}
}

func (p *s3fifo) remove(i int32, evicted bool) {
	e := &p.s.ents[i]
	if e.queue == queueSmall {
		p.small.unlink(p.s, i)
		if evicted {
			p.g.add(e.hash, p.small.n+p.main.n+1)
		}
	} else {
		p.main.unlink(p.s, i)
	}
	e.queue = 0
}

func (p *s3fifo) victim() int32 {
	for {
		if p.small.n > 0 && (p.small.bytes >= p.smallTarget || p.main.n == 0) {
			t := p.small.tail
			e := &p.s.ents[t]
			if e.freq == 0 {
				return t
			}
			p.small.unlink(p.s, t)
			e.freq = 0
			e.queue = queueMain
			p.main.pushHead(p.s, t)
			continue
		}
		if p.main.n == 0 {
			return nilIdx
		}
		t := p.main.tail
		e := &p.s.ents[t]
		if e.freq == 0 {
			return t
		}
		e.freq--
		p.main.moveHead(p.s, t)
	}
}

// ghost remembers the hashes of keys recently evicted from S, about as many as the
// cache holds entries, in a FIFO ring with a hash → sequence index.
type ghost struct {
	ring    []ghostSlot
	head, n int // oldest slot, occupied slots
	seq     uint64
	idx     map[uint64]uint64
}

type ghostSlot struct{ hash, seq uint64 }

const minGhost = 16

// add remembers h, keeping at most max(limit, minGhost) hashes.
func (g *ghost) add(h uint64, limit int) {
	limit = max(limit, minGhost)
	for g.n >= limit {
		g.popOldest()
	}
	if g.n == len(g.ring) {
		g.grow(limit)
	}
	g.seq++
	g.ring[(g.head+g.n)%len(g.ring)] = ghostSlot{h, g.seq}
	g.n++
	g.idx[h] = g.seq
}

func (g *ghost) popOldest() {
	s := g.ring[g.head]
	if cur, ok := g.idx[s.hash]; ok && cur == s.seq {
		delete(g.idx, s.hash)
	}
	g.head = (g.head + 1) % len(g.ring)
	g.n--
}

func (g *ghost) grow(limit int) {
	nr := make([]ghostSlot, max(limit, 2*len(g.ring)))
	for j := 0; j < g.n; j++ {
		nr[j] = g.ring[(g.head+j)%len(g.ring)]
	}
	g.ring, g.head = nr, 0
}

// take reports whether h is remembered and forgets it.
func (g *ghost) take(h uint64) bool {
	if _, ok := g.idx[h]; ok {
		delete(g.idx, h)
		return true
	}
	return false
}
