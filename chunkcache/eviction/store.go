package eviction

import "encoding/binary"

// nilIdx marks the absence of an entry in links and heaps.
const nilIdx int32 = -1

// entry is one tracked key. Entries live in a slab (store.ents) and refer to each other
// by index, so steady-state operation allocates nothing. The link and priority fields
// belong to whichever structure holds the entry: the active policy for unpinned
// entries, the soft-pin list for soft-pinned ones, none for hard-pinned ones.
type entry struct {
	key  Key
	hash uint64 // mixed from key, for the admission sketch and the S3-FIFO ghost
	size int64
	cost float64
	tick uint64 // logical time of the last access (insert or hit)
	hits uint32 // accesses since insert, saturating; carried across policy switches
	pin  Pin
	live bool
	grp  int32 // group with a quota (quota.go), 1-based; 0: none
	prob bool  // probationary: in the tracker's probation list, not the policy (never in a group)

	// Policy state.
	prev, next int32   // list links
	queue      uint8   // which list holds the entry (policy-defined)
	freq       uint32  // policy frequency counter
	prio       float64 // heap priority
	hpos       int32   // heap position
}

// store is the slab of entries plus the key index.
type store struct {
	ents []entry
	free []int32
	idx  map[Key]int32
}

func newStore() *store { return &store{idx: make(map[Key]int32)} }

// alloc adds k, whose keyHash is h, to the slab and the index.
func (s *store) alloc(k Key, h uint64) int32 {
	var i int32
	if n := len(s.free); n > 0 {
		i = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		s.ents = append(s.ents, entry{})
		i = int32(len(s.ents) - 1)
	}
	s.ents[i] = entry{key: k, hash: h, live: true, prev: nilIdx, next: nilIdx, hpos: nilIdx}
	s.idx[k] = i
	return i
}

func (s *store) release(i int32) {
	delete(s.idx, s.ents[i].key)
	s.ents[i] = entry{prev: nilIdx, next: nilIdx, hpos: nilIdx}
	s.free = append(s.free, i)
}

// keyHash mixes the four words of a key (splitmix64 finalizer chain). Content keys are
// already uniform, but tests and simulations use structured keys.
func keyHash(k Key) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for i := 0; i < 32; i += 8 {
		h = mix64(h ^ binary.LittleEndian.Uint64(k[i:]))
	}
	return h
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// list is an intrusive doubly linked list over store entries; head is the most recent
// end, tail the oldest. bytes sums the members' sizes.
type list struct {
	head, tail int32
	n          int
	bytes      int64
}

func newList() list { return list{head: nilIdx, tail: nilIdx} }

func (l *list) pushHead(s *store, i int32) {
	e := &s.ents[i]
	e.prev = nilIdx
	e.next = l.head
	if l.head != nilIdx {
		s.ents[l.head].prev = i
	} else {
		l.tail = i
	}
	l.head = i
	l.n++
	l.bytes += e.size
}

func (l *list) unlink(s *store, i int32) {
	e := &s.ents[i]
	if e.prev != nilIdx {
		s.ents[e.prev].next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nilIdx {
		s.ents[e.next].prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nilIdx, nilIdx
	l.n--
	l.bytes -= e.size
}

func (l *list) moveHead(s *store, i int32) {
	if l.head == i {
		return
	}
	l.unlink(s, i)
	l.pushHead(s, i)
}
