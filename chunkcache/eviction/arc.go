package eviction

// arc is ARC (Megiddo, Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache",
// FAST 2003) over bytes. T1 holds entries seen once recently, T2 entries seen at least
// twice; B1 and B2 remember (by hash and size) what T1 and T2 evicted. p is the target
// size of T1 in bytes: a miss that hits B1 grows it by max(|B2|/|B1|, 1)·size, one that
// hits B2 shrinks it by max(|B1|/|B2|, 1)·size (|X| in bytes; with unit sizes this is
// the paper's rule), and such a returning key enters T2. REPLACE evicts T1's LRU end
// when |T1| > p (or |T1| = p and the key came from B2) and T2's otherwise. On a miss in
// all four lists (the paper's case IV): if |T1|+|B1|+size exceeds the capacity, B1's
// oldest ghost is dropped before REPLACE, or, with B1 empty, T1's LRU end is evicted
// without a ghost; else, when all four lists reach twice the capacity, B2's oldest
// ghost is dropped before REPLACE. The case structure follows libCacheSim's ARC.c
// (Yang et al.), so unit-size replays agree with it.
type arc struct {
	s      *store
	t1, t2 list
	g      gset
	b1, b2 glist
	p      float64
	cap    int64

	// The pending miss (set by miss, consumed by insert): its hash and size, and which
	// ghost list it was found on (0: none).
	pendHash  uint64
	pendSize  int64
	pendGhost uint8
	pending   bool

	// The decision of the last victim call, applied when that entry is evicted.
	lastVictim     int32
	dropB1, dropB2 bool
	noGhost        bool
}

const (
	queueT1 uint8 = 7
	queueT2 uint8 = 8
	listB1  uint8 = 1
	listB2  uint8 = 2
)

func newARC(s *store) *arc {
	return &arc{s: s, t1: newList(), t2: newList(), g: newGSet(), b1: newGList(false), b2: newGList(false),
		lastVictim: nilIdx}
}

func (p *arc) name() string { return PolicyARC }
func (p *arc) count() int   { return p.t1.n + p.t2.n }

func (p *arc) setCapacity(bytes int64) {
	p.cap = bytes
	p.p = min(p.p, float64(bytes))
	p.trimGhosts()
}

func (p *arc) miss(h uint64, size int64) {
	p.pending, p.pendHash, p.pendSize, p.pendGhost = true, h, size, 0
	n, ok := p.g.find(h)
	if !ok {
		return
	}
	b1, b2 := float64(p.b1.bytes), float64(p.b2.bytes)
	sz := float64(max(size, 1))
	switch p.g.nodes[n].list {
	case listB1:
		p.p = min(p.p+max(b2/b1, 1)*sz, float64(p.cap))
		p.b1.unlink(&p.g, n)
		p.pendGhost = listB1
	case listB2:
		p.p = max(p.p-max(b1/b2, 1)*sz, 0)
		p.b2.unlink(&p.g, n)
		p.pendGhost = listB2
	}
	p.g.release(n)
}

func (p *arc) insert(i int32, restored bool) {
	e := &p.s.ents[i]
	toT2 := restored && e.hits > 1
	if !restored && p.pending && p.pendHash == e.hash && p.pendGhost != 0 {
		toT2 = true
	}
	if !restored {
		p.pending = false
	}
	if toT2 {
		e.queue = queueT2
		p.t2.pushHead(p.s, i)
	} else {
		e.queue = queueT1
		p.t1.pushHead(p.s, i)
	}
}

func (p *arc) hit(i int32) {
	e := &p.s.ents[i]
	if e.queue == queueT1 {
		p.t1.unlink(p.s, i)
		e.queue = queueT2
		p.t2.pushHead(p.s, i)
		return
	}
	p.t2.moveHead(p.s, i)
}

// replace is the paper's REPLACE: the LRU end of T1 or of T2.
func (p *arc) replace() int32 {
	t1 := float64(p.t1.bytes)
	fromB2 := p.pending && p.pendGhost == listB2
	if (p.t1.n > 0 && (t1 > p.p || (t1 == p.p && fromB2))) || p.t2.n == 0 {
		return p.t1.tail
	}
	return p.t2.tail
}

func (p *arc) victim() int32 {
	p.dropB1, p.dropB2, p.noGhost = false, false, false
	var v int32
	size := int64(0)
	if p.pending {
		size = p.pendSize
	}
	switch {
	case p.pending && p.pendGhost != 0:
		v = p.replace()
	case p.t1.bytes+p.b1.bytes+size > p.cap:
		if p.b1.n > 0 {
			p.dropB1 = true
			v = p.replace()
		} else {
			v, p.noGhost = p.t1.tail, true
			if v == nilIdx {
				v = p.t2.tail
			}
		}
	default:
		if p.t1.bytes+p.b1.bytes+p.t2.bytes+p.b2.bytes >= 2*p.cap && p.b2.n > 0 {
			p.dropB2 = true
		}
		v = p.replace()
	}
	p.lastVictim = v
	return v
}

func (p *arc) remove(i int32, evicted bool) {
	e := &p.s.ents[i]
	from := e.queue
	if from == queueT1 {
		p.t1.unlink(p.s, i)
	} else {
		p.t2.unlink(p.s, i)
	}
	e.queue = 0
	if !evicted {
		return
	}
	decided := i == p.lastVictim
	p.lastVictim = nilIdx
	if decided && p.dropB1 && p.b1.n > 0 {
		p.dropTail(&p.b1)
	}
	if decided && p.dropB2 && p.b2.n > 0 {
		p.dropTail(&p.b2)
	}
	if decided && p.noGhost {
		return
	}
	if old, ok := p.g.find(e.hash); ok { // cannot happen for a tracked key; keep the index exact
		p.unlinkGhost(old)
	}
	n := p.g.alloc(e.hash, e.size)
	if from == queueT1 {
		p.g.nodes[n].list = listB1
		p.b1.pushHead(&p.g, n)
	} else {
		p.g.nodes[n].list = listB2
		p.b2.pushHead(&p.g, n)
	}
	p.trimGhosts()
}

func (p *arc) dropTail(l *glist) {
	n := l.tail
	l.unlink(&p.g, n)
	p.g.release(n)
}

func (p *arc) unlinkGhost(n int32) {
	switch p.g.nodes[n].list {
	case listB1:
		p.b1.unlink(&p.g, n)
	case listB2:
		p.b2.unlink(&p.g, n)
	}
	p.g.release(n)
}

// trimGhosts bounds the ghosts to twice the capacity in bytes (a safety net: the case
// IV rules keep them within it for unit sizes).
func (p *arc) trimGhosts() {
	for p.b1.bytes+p.b2.bytes > 2*p.cap && p.b1.n+p.b2.n > 0 {
		if p.b1.bytes >= p.b2.bytes && p.b1.n > 0 {
			p.dropTail(&p.b1)
		} else {
			p.dropTail(&p.b2)
		}
	}
}
