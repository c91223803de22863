package blend

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// The engine's compute is shared out by an arbiter of MaxConcurrent slots. Work holds a
// slot for short units — one decode step of every active generation together, or one
// layer (or chunk computation) of a prefill — and gives it back between units, so that a
// long prefill does not block decode steps or shorter prefills for its whole duration.
//
// Who gets a free slot: when both a decode step and prefill units wait, the class that
// has had less than its share of the engine time (DecodeShare for decode; a deficit
// counter bounded by maxCredit, so an idle class does not bank unbounded time); among
// prefills, the one with the smallest key, its arrival time plus Aging × its
// estimated compute time (shortest first, with aging: a long prefill's key is
// eventually the smallest).

// maxCredit bounds the time one class may be owed by the other.
const maxCredit = 25 * time.Millisecond

type arbiter struct {
	mu      sync.Mutex
	free    int
	slots   int
	share   float64       // decode's share of the engine time when both classes wait
	quantum time.Duration // a prefill keeps its slot at least this long before yielding
	balance time.Duration // > 0: decode has had more than its share
	seq     uint64
	prefill waitHeap
	decode  []*ticket
}

func newArbiter(slots int, share float64, quantum time.Duration) *arbiter {
	return &arbiter{free: slots, slots: slots, share: share, quantum: quantum}
}

// ticket is one piece of work's claim on the engine: a prefill (key = arrival + estimated
// compute, smaller first) or the decode loop.
type ticket struct {
	a      *arbiter
	decode bool
	key    int64
	seq    uint64
	idx    int           // in a.prefill while waiting, else −1
	ready  chan struct{} // granted while waiting
	held   bool
	since  time.Time
	total  time.Duration // time held so far
	// credit corrects total for batched prefill steps (batch.go): + the share of a batch
	// run by another holder, − the others' shares of a batch this holder ran. Only the
	// ticket's owner, or a holder running its step while the owner waits for it, writes
	// it.
	credit time.Duration
}

func (a *arbiter) newTicket(decode bool, key int64) *ticket {
	a.mu.Lock()
	a.seq++
	t := &ticket{a: a, decode: decode, key: key, seq: a.seq, idx: -1, ready: make(chan struct{}, 1)}
	a.mu.Unlock()
	return t
}

// busy is the number of slots held.
func (a *arbiter) busy() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.slots - a.free
}

// acquire waits for a slot (no-op if t holds one).
func (t *ticket) acquire(ctx context.Context) error {
	_, err := t.acquireOr(ctx, nil)
	return err
}

// acquireOr is acquire that also returns without a slot (granted false) when done is
// closed first (nil: never).
func (t *ticket) acquireOr(ctx context.Context, done <-chan struct{}) (granted bool, err error) {
	if t.held {
		return true, nil
	}
	a := t.a
	a.mu.Lock()
	if a.free > 0 && a.pickLocked() == nil {
		a.free--
		t.grantedLocked()
		a.mu.Unlock()
		return true, nil
	}
	a.enqueueLocked(t)
	a.mu.Unlock()
	return t.waitOr(ctx, done)
}

// wait waits for the queued t to be granted a slot (or leaves the queue when ctx ends).
func (t *ticket) wait(ctx context.Context) error {
	_, err := t.waitOr(ctx, nil)
	return err
}

// waitOr is wait that also leaves the queue, without a slot (granted false), when done
// is closed first (nil: never). If the slot was granted meanwhile, t keeps it.
func (t *ticket) waitOr(ctx context.Context, done <-chan struct{}) (granted bool, err error) {
	a := t.a
	select {
	case <-t.ready:
		t.held, t.since = true, time.Now()
		return true, nil
	case <-done:
		a.mu.Lock()
		if t.idx >= 0 || t.waitingDecodeLocked() {
			a.removeLocked(t)
			a.mu.Unlock()
			return false, nil
		}
		a.mu.Unlock()
		<-t.ready // granted meanwhile: keep it
		t.held, t.since = true, time.Now()
		return true, nil
	case <-ctx.Done():
		a.mu.Lock()
		if t.idx >= 0 || t.waitingDecodeLocked() {
			a.removeLocked(t)
			a.mu.Unlock()
			return false, ctx.Err()
		}
		a.mu.Unlock()
		// Granted meanwhile: give it back.
		<-t.ready
		t.held, t.since = true, time.Now()
		t.release()
		return false, ctx.Err()
	}
}

func (t *ticket) grantedLocked() { t.held, t.since = true, time.Now() }

// release gives the slot back (no-op if t is nil or holds none).
func (t *ticket) release() {
	if t == nil || !t.held {
		return
	}
	a := t.a
	a.mu.Lock()
	t.accountLocked()
	a.free++
	a.dispatchLocked()
	a.mu.Unlock()
}

// yield lets a waiter that should run first have t's slot (t then waits for the next
// one); it acquires a slot if t holds none. t keeps its slot for at least the quantum;
// then a decode step goes first if decode is owed time, a prefill if decode (holding)
// has had more than its share or, against a prefill, if it orders first.
func (t *ticket) yield(ctx context.Context) error {
	_, err := t.yieldOr(ctx, nil)
	return err
}

// yieldOr is yield that also returns without a slot (granted false) when done is closed
// while t waits (nil: never): for a prefill whose layer step another prefill holding a
// slot may run (batch.go).
func (t *ticket) yieldOr(ctx context.Context, done <-chan struct{}) (granted bool, err error) {
	if !t.held {
		return t.acquireOr(ctx, done)
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	a := t.a
	held := time.Since(t.since)
	if held < a.quantum {
		return true, nil
	}
	a.mu.Lock()
	// The balance as it will be once this hold is counted (pickLocked's is as of the
	// last hold's end: a prefill that found decode ahead when it took the slot would
	// otherwise never see decode owed while other prefills wait).
	var give bool
	if t.decode {
		give = len(a.prefill) > 0 && a.balance+time.Duration(float64(held)*(1-a.share)) > 0
	} else if len(a.decode) > 0 && a.balance-time.Duration(float64(held)*a.share) <= 0 {
		give = true
	} else if len(a.prefill) > 0 {
		give = prefillBefore(a.prefill[0], t)
	}
	if !give {
		a.mu.Unlock()
		return true, nil
	}
	// Queue t before handing its slot over, in one step: it then goes next by its own
	// order, not after whatever arrives before it would queue.
	t.accountLocked()
	a.enqueueLocked(t)
	a.free++
	a.dispatchLocked()
	a.mu.Unlock()
	return t.waitOr(ctx, done)
}

// accountLocked ends t's hold: the time counts against its class.
func (t *ticket) accountLocked() {
	a := t.a
	d := time.Since(t.since)
	t.total += d
	t.held = false
	if t.decode {
		a.balance += time.Duration(float64(d) * (1 - a.share))
	} else {
		a.balance -= time.Duration(float64(d) * a.share)
	}
	a.balance = min(max(a.balance, -maxCredit), maxCredit)
}

// pickLocked returns the waiter that should get the next free slot (nil: none waits).
func (a *arbiter) pickLocked() *ticket {
	var p *ticket
	if len(a.prefill) > 0 {
		p = a.prefill[0]
	}
	if len(a.decode) > 0 && (p == nil || a.balance <= 0) {
		return a.decode[0]
	}
	return p
}

// dispatchLocked grants free slots to waiters.
func (a *arbiter) dispatchLocked() {
	for a.free > 0 {
		w := a.pickLocked()
		if w == nil {
			return
		}
		a.removeLocked(w)
		a.free--
		w.ready <- struct{}{}
	}
}

func (a *arbiter) enqueueLocked(t *ticket) {
	if t.decode {
		a.decode = append(a.decode, t)
		return
	}
	heap.Push(&a.prefill, t)
}

func (t *ticket) waitingDecodeLocked() bool {
	for _, w := range t.a.decode {
		if w == t {
			return true
		}
	}
	return false
}

func (a *arbiter) removeLocked(t *ticket) {
	if t.decode {
		for i, w := range a.decode {
			if w == t {
				a.decode = append(a.decode[:i], a.decode[i+1:]...)
				return
			}
		}
		return
	}
	if t.idx >= 0 {
		heap.Remove(&a.prefill, t.idx)
	}
}

// prefillBefore orders prefills: smaller key, then earlier ticket.
func prefillBefore(x, y *ticket) bool {
	if x.key != y.key {
		return x.key < y.key
	}
	return x.seq < y.seq
}

type waitHeap []*ticket

func (h waitHeap) Len() int           { return len(h) }
func (h waitHeap) Less(i, j int) bool { return prefillBefore(h[i], h[j]) }
func (h waitHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *waitHeap) Push(x any) {
	t := x.(*ticket)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *waitHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}
