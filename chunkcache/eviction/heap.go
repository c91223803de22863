package eviction

// prioHeap is an indexed binary min-heap of store entries ordered by (prio, tick): the
// lowest priority first, the least recently used among equals. Each entry records its
// position in hpos, so fix and remove are O(log n).
type prioHeap struct {
	s     *store
	items []int32
}

func (h *prioHeap) less(a, b int32) bool {
	ea, eb := &h.s.ents[a], &h.s.ents[b]
	if ea.prio != eb.prio {
		return ea.prio < eb.prio
	}
	return ea.tick < eb.tick
}

func (h *prioHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.s.ents[h.items[i]].hpos = int32(i)
	h.s.ents[h.items[j]].hpos = int32(j)
}

func (h *prioHeap) push(i int32) {
	h.s.ents[i].hpos = int32(len(h.items))
	h.items = append(h.items, i)
	h.up(len(h.items) - 1)
}

func (h *prioHeap) min() int32 {
	if len(h.items) == 0 {
		return nilIdx
	}
	return h.items[0]
}

func (h *prioHeap) remove(i int32) {
	p := int(h.s.ents[i].hpos)
	last := len(h.items) - 1
	if p != last {
		h.swap(p, last)
	}
	h.items = h.items[:last]
	h.s.ents[i].hpos = nilIdx
	if p != last {
		h.fixAt(p)
	}
}

func (h *prioHeap) fix(i int32) { h.fixAt(int(h.s.ents[i].hpos)) }

func (h *prioHeap) fixAt(p int) {
	if !h.down(p) {
		h.up(p)
	}
}

func (h *prioHeap) up(j int) {
	for j > 0 {
		parent := (j - 1) / 2
		if !h.less(h.items[j], h.items[parent]) {
			break
		}
		h.swap(j, parent)
		j = parent
	}
}

func (h *prioHeap) down(i0 int) bool {
	i, n := i0, len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h.less(h.items[r], h.items[l]) {
			j = r
		}
		if !h.less(h.items[j], h.items[i]) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}
