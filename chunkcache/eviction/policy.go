package eviction

// policy orders the unpinned entries of a tracker. It never changes the set of tracked
// entries or their accounting: the tracker calls insert/remove for every entry that
// enters or leaves the unpinned set and asks victim for the next entry to evict.
// Implementations keep their state in the store entries' link/priority fields and
// allocate nothing per operation in steady state.
type policy interface {
	name() string
	// setCapacity tells the policy the tier's byte capacity (S3-FIFO sizes its small
	// queue from it).
	setCapacity(bytes int64)
	// insert adds entry i. restored is true when i is not new (a policy switch, an
	// unpin, or a size update of a tracked key): policies then place it as an entry
	// with history (its hits and tick are set) rather than as a first access.
	insert(i int32, restored bool)
	// miss tells the policy that the tracker is about to make room for a key it does
	// not hold (hash h, size bytes): it comes before any victim call for that key and
	// before the entry's insert, if the key is admitted at all. ARC and LIRS look the
	// key up in their ghost lists here.
	miss(h uint64, size int64)
	// hit records an access to entry i.
	hit(i int32)
	// remove drops entry i. evicted is true when i leaves because victim chose it.
	remove(i int32, evicted bool)
	// victim returns the entry to evict next, or nilIdx when the policy holds none. It
	// may reorganize internal state (S3-FIFO moves and reinserts) but does not remove.
	victim() int32
}

func newPolicy(name string, s *store, capacity int64) policy {
	var p policy
	switch name {
	case PolicyLRU:
		p = newLRU(s)
	case PolicyLFU:
		p = newLFU(s)
	case PolicyS3FIFO:
		p = newS3FIFO(s)
	case PolicyGDSF:
		p = newGDSF(s)
	case PolicyWTinyLFU:
		p = newWTinyLFU(s)
	case PolicyFIFO:
		p = newFIFO(s)
	case PolicySIEVE:
		p = newSIEVE(s)
	case PolicyARC:
		p = newARC(s)
	case PolicyLIRS:
		p = newLIRS(s)
	}
	if p != nil {
		p.setCapacity(capacity)
	}
	return p
}

// lru evicts the least recently used entry.
type lru struct {
	s *store
	l list
}

func newLRU(s *store) *lru { return &lru{s: s, l: newList()} }

func (p *lru) name() string           { return PolicyLRU }
func (p *lru) setCapacity(int64)      {}
func (p *lru) miss(uint64, int64)     {}
func (p *lru) insert(i int32, _ bool) { p.l.pushHead(p.s, i) }
func (p *lru) hit(i int32)            { p.l.moveHead(p.s, i) }
func (p *lru) remove(i int32, _ bool) { p.l.unlink(p.s, i) }
func (p *lru) victim() int32          { return p.l.tail }
func (p *lru) count() int             { return p.l.n }
