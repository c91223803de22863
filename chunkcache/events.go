package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/ragkv/ragkv/chunkcache/eviction"
)

// EventType is what happened to a chunk in a tier.
type EventType uint8

// Event types. Each says where the chunk is afterwards, absolutely, so a consumer that
// applies events in order (a set of (key, tier) pairs: Stored, Promoted and Demoted add
// Tier; Evicted and Deleted remove Tier; Demoted also removes From) ends with the
// cache's state, whatever state it started from.
const (
	// EventStored: a put stored the chunk in Tier.
	EventStored EventType = iota + 1
	// EventEvicted: Tier's eviction policy dropped the chunk (no tier below took it).
	EventEvicted
	// EventPromoted: a hit in From copied the chunk into Tier (From keeps it).
	EventPromoted
	// EventDemoted: From evicted the chunk into Tier, the next tier.
	EventDemoted
	// EventDeleted: the chunk left Tier by a delete, an expiry, or a put that could not
	// replace it there.
	EventDeleted
)

var eventNames = [...]string{"", "stored", "evicted", "promoted", "demoted", "deleted"}

func (t EventType) String() string {
	if int(t) < len(eventNames) && t != 0 {
		return eventNames[t]
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// Entry kinds.
const (
	KindChunk = "chunk"
	KindValue = "value"
)

// Event is one change of where a chunk is held. Seq numbers the events of one cache
// run (Epoch) from 1 without gaps.
type Event struct {
	Seq       uint64
	UnixNanos int64
	Type      EventType
	Tier      string
	From      string // Promoted and Demoted: the tier it came from
	Key       Key
	Namespace string
	Kind      string // KindChunk or KindValue
	Bytes     int64
	Tokens    int
}

// EventPosition is a resume point: the last event a consumer applied.
type EventPosition struct {
	Epoch uint64
	Seq   uint64
}

// ErrEventsLost means a Watcher cannot continue from its position: the position is of
// another run of the cache (a restart) or older than the retained events. The consumer
// resynchronizes with Snapshot and watches from the position it returns.
var ErrEventsLost = errors.New("chunkcache: events lost; resynchronize with a snapshot")

// eventLog keeps the last events in a ring and wakes watchers.
type eventLog struct {
	mu    sync.Mutex
	epoch uint64
	ring  []Event
	next  uint64 // seq of the next event
	wake  chan struct{}
}

func newEventLog(size int) *eventLog {
	if size <= 0 {
		return nil
	}
	epoch := rand.Uint64() | 1 // never 0, which means "no position"
	return &eventLog{epoch: epoch, ring: make([]Event, size), next: 1, wake: make(chan struct{})}
}

func (l *eventLog) append(e Event) {
	if l == nil {
		return
	}
	e.UnixNanos = nowNanos()
	l.mu.Lock()
	e.Seq = l.next
	l.ring[l.next%uint64(len(l.ring))] = e
	l.next++
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// position is the last seq appended.
func (l *eventLog) position() EventPosition {
	l.mu.Lock()
	defer l.mu.Unlock()
	return EventPosition{Epoch: l.epoch, Seq: l.next - 1}
}

// after returns up to max events after seq, or ErrEventsLost, and a channel closed at
// the next append.
func (l *eventLog) after(pos EventPosition, max int) ([]Event, <-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	oldest := uint64(1)
	if l.next > uint64(len(l.ring)) {
		oldest = l.next - uint64(len(l.ring))
	}
	if pos.Epoch != l.epoch || pos.Seq >= l.next || pos.Seq+1 < oldest {
		return nil, nil, fmt.Errorf("%w: position %d/%d, this run is %d with events %d..%d",
			ErrEventsLost, pos.Epoch, pos.Seq, l.epoch, oldest, l.next-1)
	}
	n := int(l.next - 1 - pos.Seq)
	if n > max {
		n = max
	}
	out := make([]Event, n)
	for i := range out {
		out[i] = l.ring[(pos.Seq+1+uint64(i))%uint64(len(l.ring))]
	}
	return out, l.wake, nil
}

// emit records an event about k (entry e) in tier ti (an index into c.tiers, or
// len(c.tiers) for the shared tier). Callers hold k's lock, so the events of one key
// are in the order of its changes.
func (c *Cache) emit(typ EventType, k Key, e *entry, ti, from int) {
	if c.events == nil {
		return
	}
	ev := Event{Type: typ, Tier: c.tierName(ti), Key: k}
	if from >= 0 {
		ev.From = c.tierName(from)
	}
	if e != nil {
		ev.Namespace, ev.Bytes, ev.Tokens, ev.Kind = e.ns, e.size, int(e.tokens), e.kindName()
	}
	c.events.append(ev)
}

func (c *Cache) tierName(i int) string {
	if i < len(c.tiers) {
		return c.tiers[i].name
	}
	if c.shared != nil {
		return c.shared.name
	}
	return ""
}

// EventPosition returns the position of the last event (Epoch identifies this run of
// the cache; it changes at every start). Zero when the event log is off.
func (c *Cache) EventPosition() EventPosition {
	if c.events == nil {
		return EventPosition{}
	}
	return c.events.position()
}

// Watcher follows the event log from a position.
type Watcher struct {
	c   *Cache
	pos EventPosition
}

// Watch returns a watcher that yields the events after pos. It holds no resources.
func (c *Cache) Watch(pos EventPosition) *Watcher { return &Watcher{c: c, pos: pos} }

// Position is the last event Next returned (or the start position).
func (w *Watcher) Position() EventPosition { return w.pos }

// Next blocks until there are events after the watcher's position and returns them
// (at most max, in order), or ErrEventsLost, or ctx's error.
func (w *Watcher) Next(ctx context.Context, max int) ([]Event, error) {
	if w.c.events == nil {
		return nil, fmt.Errorf("%w: the event log is off", ErrInvalid)
	}
	if max <= 0 {
		max = 1024
	}
	for {
		evs, wake, err := w.c.events.after(w.pos, max)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			w.pos.Seq = evs[len(evs)-1].Seq
			return evs, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Snapshot calls fn with one EventStored (Seq 0) for every chunk and local tier holding
// it, and returns the position to watch from: the event log position taken before the
// enumeration, so that applying the snapshot and then every event after that position
// yields the cache's state (events that the snapshot already reflects re-apply
// harmlessly, since each event sets where a chunk is absolutely). The shared tier is
// not enumerated (its contents are every replica's; ask it with Lookup).
func (c *Cache) Snapshot(ctx context.Context, fn func(Event) error) (EventPosition, error) {
	if c.events == nil {
		return EventPosition{}, fmt.Errorf("%w: the event log is off", ErrInvalid)
	}
	pos := c.events.position()
	type item struct {
		k Key
		e entry
	}
	c.mu.RLock()
	items := make([]item, 0, len(c.index))
	for k, e := range c.index {
		items = append(items, item{k, *e})
	}
	c.mu.RUnlock()
	now := nowNanos()
	for i, it := range items {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return pos, err
			}
		}
		for ti, t := range c.tiers {
			if !t.tracker.Contains(eviction.Key(it.k)) {
				continue
			}
			ev := Event{Type: EventStored, UnixNanos: now, Tier: t.name, Key: it.k, Namespace: it.e.ns,
				Kind: it.e.kindName(), Bytes: it.e.size, Tokens: int(it.e.tokens)}
			_ = ti
			if err := fn(ev); err != nil {
				return pos, err
			}
		}
	}
	return pos, nil
}
