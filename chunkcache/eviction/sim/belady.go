package sim

import (
	"container/heap"
	"errors"
)

// ErrNotUnitSize is returned by Belady for traces with sizes or costs.
var ErrNotUnitSize = errors.New("sim: Belady's optimum needs a unit-size trace")

// NextUses returns, for each request i, the index of the next request for the same
// chunk, or len(requests) if there is none.
func NextUses(requests []uint32) []int32 {
	maxID := uint32(0)
	for _, id := range requests {
		maxID = max(maxID, id)
	}
	last := make([]int32, int(maxID)+1)
	n := int32(len(requests))
	for i := range last {
		last[i] = n
	}
	next := make([]int32, len(requests))
	for i := len(requests) - 1; i >= 0; i-- {
		id := requests[i]
		next[i] = last[id]
		last[id] = int32(i)
	}
	return next
}

// Belady returns the offline-optimal result for a unit-size trace and a cache of
// capacity chunks (with bypass: a requested chunk whose next use is farther than every
// cached chunk's is not cached).
func Belady(t *Trace, capacity int) (Result, error) {
	if !t.UnitSize() {
		return Result{}, ErrNotUnitSize
	}
	return beladyNext(t.Requests, NextUses(t.Requests), capacity), nil
}

func beladyNext(req []uint32, next []int32, capacity int) Result {
	maxID := uint32(0)
	for _, id := range req {
		maxID = max(maxID, id)
	}
	// cur[id] is the next use of a cached chunk, -1 if id is not cached. The heap
	// holds (next use, id) pairs; stale pairs (cur changed) are skipped lazily.
	cur := make([]int32, int(maxID)+1)
	for i := range cur {
		cur[i] = -1
	}
	h := &farHeap{}
	cached := 0
	var a acc
	for i, id := range req {
		if cur[id] >= 0 {
			a.add(true, 1, 1)
			cur[id] = next[i]
			heap.Push(h, farItem{next[i], id})
			continue
		}
		a.add(false, 1, 1)
		if next[i] == int32(len(req)) || capacity <= 0 {
			continue // never used again: bypass
		}
		if cached >= capacity {
			// Drop stale tops, then compare with the farthest cached next use.
			for h.Len() > 0 && cur[(*h)[0].id] != (*h)[0].next {
				heap.Pop(h)
			}
			top := (*h)[0]
			if next[i] >= top.next {
				continue // bypass
			}
			heap.Pop(h)
			cur[top.id] = -1
			cached--
		}
		cur[id] = next[i]
		heap.Push(h, farItem{next[i], id})
		cached++
		// Compact when stale pairs dominate, keeping the heap O(capacity).
		if h.Len() > 4*capacity+1024 {
			h.compact(cur)
		}
	}
	return a.result()
}

type farItem struct {
	next int32
	id   uint32
}

// farHeap is a max-heap on next use.
type farHeap []farItem

func (h farHeap) Len() int           { return len(h) }
func (h farHeap) Less(i, j int) bool { return h[i].next > h[j].next }
func (h farHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *farHeap) Push(x any)        { *h = append(*h, x.(farItem)) }
func (h *farHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (h *farHeap) compact(cur []int32) {
	live := (*h)[:0]
	for _, it := range *h {
		if cur[it.id] == it.next {
			live = append(live, it)
		}
	}
	*h = live
	heap.Init(h)
}
