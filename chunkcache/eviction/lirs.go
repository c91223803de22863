package eviction

// lirs is LIRS (Jiang, Zhang, "LIRS: An Efficient Low Inter-reference Recency Set
// Replacement Policy to Improve Buffer Cache Performance", SIGMETRICS 2002) over bytes.
// Resident entries are LIR (low inter-reference recency: re-referenced while still on
// the recency stack S) or HIR. LIR entries fill up to 99% of the capacity; resident HIR
// entries sit in the FIFO queue Q, whose oldest entry is the victim. S orders LIR
// entries, resident HIR entries and non-resident HIR ghosts by recency and is pruned so
// that its bottom is always LIR. A hit on an HIR entry still in S (or a miss on one of
// its ghosts) shows a reuse distance shorter than the oldest LIR entry's: it becomes
// LIR and the bottom LIR entry is demoted to Q. Ghost bytes are bounded by the capacity
// (S ≤ 2× the capacity, as in libCacheSim's LIRS.c), oldest ghost first. The HIR share
// (1%) is the paper's and libCacheSim's default.
//
// An entry's state lives in entry.queue (LIR or HIR) and entry.hpos (its stack node,
// nilIdx if it is not on S); Q uses the entry links.
type lirs struct {
	s *store
	g gset
	// stack is S through the nodes' a-links; nonres orders the ghosts through the
	// b-links, oldest at the tail.
	stack, nonres glist
	q             list

	lirBytes           int64
	lirN               int
	lirLimit, hirLimit int64
	cap                int64
}

const (
	queueLIR     uint8 = 9
	queueHIR     uint8 = 10
	lirsHIRShare       = 0.01
)

func newLIRS(s *store) *lirs {
	return &lirs{s: s, g: newGSet(), stack: newGList(false), nonres: newGList(true), q: newList()}
}

func (p *lirs) name() string       { return PolicyLIRS }
func (p *lirs) count() int         { return p.lirN + p.q.n }
func (p *lirs) miss(uint64, int64) {}

func (p *lirs) setCapacity(bytes int64) {
	p.cap = bytes
	p.hirLimit = max(1, int64(lirsHIRShare*float64(bytes)))
	p.lirLimit = max(0, bytes-p.hirLimit)
	for p.lirBytes > p.lirLimit && p.lirN > 0 {
		p.demoteBottom()
	}
	p.trimGhosts()
}

// pushStack puts entry i on top of S with a fresh node (it must have none).
func (p *lirs) pushStack(i int32) {
	e := &p.s.ents[i]
	n := p.g.alloc(e.hash, e.size)
	p.g.nodes[n].ent = i
	p.stack.pushHead(&p.g, n)
	e.hpos = n
}

// dropNode takes node n off S (and off the ghost order) and frees it.
func (p *lirs) dropNode(n int32) {
	nd := &p.g.nodes[n]
	if nd.ent != nilIdx {
		p.s.ents[nd.ent].hpos = nilIdx
	}
	if nd.onB {
		p.nonres.unlink(&p.g, n)
		nd.onB = false
	}
	p.stack.unlink(&p.g, n)
	p.g.release(n)
}

// prune removes HIR nodes (resident or not) from the bottom of S until an LIR entry is
// there.
func (p *lirs) prune() {
	for p.stack.tail != nilIdx {
		nd := &p.g.nodes[p.stack.tail]
		if nd.ent != nilIdx && p.s.ents[nd.ent].queue == queueLIR {
			return
		}
		p.dropNode(p.stack.tail)
	}
}

// demoteBottom turns the LIR entry at the bottom of S into a resident HIR entry at the
// newest end of Q, then prunes.
func (p *lirs) demoteBottom() {
	p.prune()
	n := p.stack.tail
	if n == nilIdx {
		return
	}
	i := p.g.nodes[n].ent
	p.dropNode(n)
	e := &p.s.ents[i]
	e.queue = queueHIR
	p.lirBytes -= e.size
	p.lirN--
	p.q.pushHead(p.s, i)
	p.prune()
}

// makeLIR turns entry i (not on Q) into an LIR entry whose stack node is n (already on
// top of S), demoting bottom LIR entries while the LIR share is exceeded.
func (p *lirs) makeLIR(i int32) {
	e := &p.s.ents[i]
	e.queue = queueLIR
	p.lirBytes += e.size
	p.lirN++
	for p.lirBytes > p.lirLimit && p.lirN > 1 {
		if p.g.nodes[p.stack.tail].ent == i {
			break // i itself is the only LIR entry left below the limit check
		}
		p.demoteBottom()
	}
}

func (p *lirs) insert(i int32, restored bool) {
	e := &p.s.ents[i]
	e.hpos = nilIdx
	if n, ok := p.g.find(e.hash); ok && !restored && p.g.nodes[n].ent == nilIdx {
		// A ghost still on S: its reuse distance beats the oldest LIR entry's.
		nd := &p.g.nodes[n]
		p.nonres.unlink(&p.g, n)
		nd.onB = false
		p.stack.unlink(&p.g, n)
		nd.size, nd.ent = e.size, i
		p.stack.pushHead(&p.g, n)
		e.hpos = n
		p.makeLIR(i)
		p.prune()
		return
	}
	if p.lirBytes+e.size <= p.lirLimit {
		p.pushStack(i)
		e.queue = queueLIR
		p.lirBytes += e.size
		p.lirN++
		return
	}
	p.pushStack(i)
	e.queue = queueHIR
	p.q.pushHead(p.s, i)
	p.prune() // with no LIR entry yet, an HIR node cannot be the bottom
}

func (p *lirs) hit(i int32) {
	e := &p.s.ents[i]
	if e.queue == queueLIR {
		p.stack.moveHead(&p.g, e.hpos)
		p.prune()
		return
	}
	if e.hpos != nilIdx {
		p.stack.moveHead(&p.g, e.hpos)
		p.q.unlink(p.s, i)
		p.makeLIR(i)
		p.prune()
		return
	}
	p.pushStack(i)
	p.q.moveHead(p.s, i)
	p.prune()
}

func (p *lirs) victim() int32 {
	if p.q.tail != nilIdx {
		return p.q.tail
	}
	p.prune()
	if n := p.stack.tail; n != nilIdx {
		return p.g.nodes[n].ent
	}
	return nilIdx
}

func (p *lirs) remove(i int32, evicted bool) {
	e := &p.s.ents[i]
	n := e.hpos
	if e.queue == queueLIR {
		p.lirBytes -= e.size
		p.lirN--
		p.dropNode(n)
		p.prune()
	} else {
		p.q.unlink(p.s, i)
		if n != nilIdx {
			if evicted {
				// Stays on S as a ghost.
				nd := &p.g.nodes[n]
				nd.ent = nilIdx
				nd.onB = true
				p.nonres.pushHead(&p.g, n)
				e.hpos = nilIdx
				p.trimGhosts()
			} else {
				p.dropNode(n)
			}
		}
	}
	e.queue = 0
	e.hpos = nilIdx
}

// trimGhosts drops the oldest ghosts while they exceed the capacity in bytes.
func (p *lirs) trimGhosts() {
	for p.nonres.bytes > p.cap && p.nonres.tail != nilIdx {
		p.dropNode(p.nonres.tail)
	}
}
