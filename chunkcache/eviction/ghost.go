package eviction

// gnode is one node of a gset: a key remembered by its hash and size after its entry
// left (a ghost), or, for LIRS, a slot of the recency stack that may stand for a
// resident entry (ent ≠ nilIdx). A node sits on up to two lists at once: through the
// a-links (ARC's B1/B2, LIRS's stack) and the b-links (LIRS's non-resident order).
type gnode struct {
	hash   uint64
	size   int64
	ent    int32 // resident entry this node stands for, nilIdx for a ghost
	list   uint8 // which a-list holds the node (policy-defined; 0: none)
	onB    bool  // whether a b-list holds the node
	ap, an int32 // a-links: previous (newer), next (older)
	bp, bn int32 // b-links
}

// gset is a slab of gnodes with a hash index; like store, it allocates nothing in
// steady state.
type gset struct {
	nodes []gnode
	free  []int32
	idx   map[uint64]int32
}

func newGSet() gset { return gset{idx: make(map[uint64]int32)} }

func (g *gset) alloc(h uint64, size int64) int32 {
	var i int32
	if n := len(g.free); n > 0 {
		i = g.free[n-1]
		g.free = g.free[:n-1]
	} else {
		g.nodes = append(g.nodes, gnode{})
		i = int32(len(g.nodes) - 1)
	}
	g.nodes[i] = gnode{hash: h, size: size, ent: nilIdx, ap: nilIdx, an: nilIdx, bp: nilIdx, bn: nilIdx}
	g.idx[h] = i
	return i
}

// release frees node i (which must be on no list).
func (g *gset) release(i int32) {
	if j, ok := g.idx[g.nodes[i].hash]; ok && j == i {
		delete(g.idx, g.nodes[i].hash)
	}
	g.nodes[i] = gnode{ent: nilIdx, ap: nilIdx, an: nilIdx, bp: nilIdx, bn: nilIdx}
	g.free = append(g.free, i)
}

func (g *gset) find(h uint64) (int32, bool) {
	i, ok := g.idx[h]
	return i, ok
}

// glist is a list of gnodes through their a-links (b false) or b-links (b true); head
// is the newest end. bytes sums the members' sizes.
type glist struct {
	head, tail int32
	n          int
	bytes      int64
	b          bool
}

func newGList(b bool) glist { return glist{head: nilIdx, tail: nilIdx, b: b} }

func (l *glist) links(g *gset, i int32) (prev, next *int32) {
	nd := &g.nodes[i]
	if l.b {
		return &nd.bp, &nd.bn
	}
	return &nd.ap, &nd.an
}

func (l *glist) pushHead(g *gset, i int32) {
	prev, next := l.links(g, i)
	*prev, *next = nilIdx, l.head
	if l.head != nilIdx {
		hp, _ := l.links(g, l.head)
		*hp = i
	} else {
		l.tail = i
	}
	l.head = i
	l.n++
	l.bytes += g.nodes[i].size
}

func (l *glist) unlink(g *gset, i int32) {
	prev, next := l.links(g, i)
	p, n := *prev, *next
	if p != nilIdx {
		_, pn := l.links(g, p)
		*pn = n
	} else {
		l.head = n
	}
	if n != nilIdx {
		np, _ := l.links(g, n)
		*np = p
	} else {
		l.tail = p
	}
	*prev, *next = nilIdx, nilIdx
	l.n--
	l.bytes -= g.nodes[i].size
}

func (l *glist) moveHead(g *gset, i int32) {
	if l.head == i {
		return
	}
	l.unlink(g, i)
	l.pushHead(g, i)
}

// prevOf returns the node after i towards the head (newer), nilIdx at the head.
func (l *glist) prevOf(g *gset, i int32) int32 {
	p, _ := l.links(g, i)
	return *p
}
