package chunkcache

import (
	"container/heap"
	"sort"

	"github.com/ragkv/ragkv/chunkcache/eviction"
)

// ChunkUsage describes one chunk for operators: where it is, how big, how used.
type ChunkUsage struct {
	Key       string   `json:"key"` // hex
	Namespace string   `json:"namespace"`
	Bytes     int64    `json:"bytes"`
	Cost      float64  `json:"cost"`
	Pin       Pin      `json:"pin"`
	Hits      uint64   `json:"hits"`
	Tiers     []string `json:"tiers"`
}

// NamespaceUsage sums one namespace's chunks (each chunk counted once, whatever the
// tiers holding it).
type NamespaceUsage struct {
	Name         string `json:"name"`
	Chunks       int    `json:"chunks"`
	Bytes        int64  `json:"bytes"`
	PinnedChunks int    `json:"pinned_chunks"`
	PinnedBytes  int64  `json:"pinned_bytes"`
	Hits         uint64 `json:"hits"`
}

// Usage is a snapshot of what the cache holds, by namespace and by chunk.
type Usage struct {
	Namespaces []NamespaceUsage `json:"namespaces"`
	// Hottest are the chunks with the most reads since they were put (or found at
	// startup), Largest the biggest; Pinned lists pinned chunks (hard first, then by
	// size); each at most the top asked for. PinnedChunks counts all pinned chunks.
	Hottest      []ChunkUsage `json:"hottest"`
	Largest      []ChunkUsage `json:"largest"`
	Pinned       []ChunkUsage `json:"pinned"`
	PinnedChunks int          `json:"pinned_chunks"`
}

// Usage scans the index (O(chunks), no I/O) and returns per-namespace sums and the top
// chunks by reads, by size, and pinned (at most top of each; top ≤ 0 means 10).
// Namespaces without chunks that the cache knows are listed with zeros.
func (c *Cache) Usage(top int) Usage {
	if top <= 0 {
		top = 10
	}
	type ranked struct {
		k    Key
		e    entry
		hits uint64
	}
	byNS := map[string]*NamespaceUsage{}
	hot := &topHeap[ranked]{less: func(a, b ranked) bool { return a.hits < b.hits || a.hits == b.hits && string(a.k[:]) > string(b.k[:]) }}
	big := &topHeap[ranked]{less: func(a, b ranked) bool {
		return a.e.size < b.e.size || a.e.size == b.e.size && string(a.k[:]) > string(b.k[:])
	}}
	pinRank := func(r ranked) int64 { return int64(r.e.pin)<<56 | min(r.e.size, 1<<55) }
	pin := &topHeap[ranked]{less: func(a, b ranked) bool {
		return pinRank(a) < pinRank(b) || pinRank(a) == pinRank(b) && string(a.k[:]) > string(b.k[:])
	}}
	var u Usage
	c.mu.RLock()
	for ns := range c.known {
		byNS[ns] = &NamespaceUsage{Name: ns}
	}
	for k, e := range c.index {
		n := byNS[e.ns]
		if n == nil {
			n = &NamespaceUsage{Name: e.ns}
			byNS[e.ns] = n
		}
		var hits uint64
		if e.hits != nil {
			hits = e.hits.Load()
		}
		n.Chunks++
		n.Bytes += e.size
		n.Hits += hits
		r := ranked{k: k, e: *e, hits: hits}
		if e.pin != Unpinned {
			n.PinnedChunks++
			n.PinnedBytes += e.size
			u.PinnedChunks++
			pin.offer(r, top)
		}
		if hits > 0 {
			hot.offer(r, top)
		}
		big.offer(r, top)
	}
	c.mu.RUnlock()
	for _, n := range byNS {
		u.Namespaces = append(u.Namespaces, *n)
	}
	sort.Slice(u.Namespaces, func(i, j int) bool { return u.Namespaces[i].Name < u.Namespaces[j].Name })
	conv := func(h *topHeap[ranked]) []ChunkUsage {
		rs := h.sorted()
		out := make([]ChunkUsage, len(rs))
		for i, r := range rs {
			out[i] = ChunkUsage{Key: r.k.String(), Namespace: r.e.ns, Bytes: r.e.size, Cost: r.e.cost, Pin: r.e.pin, Hits: r.hits, Tiers: c.tiersHolding(r.k)}
		}
		return out
	}
	u.Hottest, u.Largest, u.Pinned = conv(hot), conv(big), conv(pin)
	return u
}

func (c *Cache) tiersHolding(k Key) []string {
	out := []string{}
	for _, t := range c.tiers {
		if t.tracker.Contains(eviction.Key(k)) {
			out = append(out, t.name)
		}
	}
	return out
}

// topHeap keeps the n greatest items offered (a min-heap under less).
type topHeap[T any] struct {
	items []T
	less  func(a, b T) bool
}

func (h *topHeap[T]) Len() int           { return len(h.items) }
func (h *topHeap[T]) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *topHeap[T]) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *topHeap[T]) Push(x any)         { h.items = append(h.items, x.(T)) }
func (h *topHeap[T]) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

func (h *topHeap[T]) offer(x T, n int) {
	if len(h.items) < n {
		heap.Push(h, x)
		return
	}
	if h.less(h.items[0], x) {
		h.items[0] = x
		heap.Fix(h, 0)
	}
}

// sorted returns the items greatest first.
func (h *topHeap[T]) sorted() []T {
	out := append([]T(nil), h.items...)
	sort.Slice(out, func(i, j int) bool { return h.less(out[j], out[i]) })
	return out
}
