package chunkcache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

type holding struct {
	k    Key
	tier string
}

// applyEvents is what a router does with the event stream: a set of (key, tier).
func applyEvents(state map[holding]bool, evs []Event) {
	for _, e := range evs {
		switch e.Type {
		case EventStored, EventPromoted:
			state[holding{e.Key, e.Tier}] = true
		case EventDemoted:
			delete(state, holding{e.Key, e.From})
			state[holding{e.Key, e.Tier}] = true
		case EventEvicted, EventDeleted:
			delete(state, holding{e.Key, e.Tier})
		}
	}
}

// actualState asks the cache where each key is (local tiers).
func actualState(t *testing.T, c *Cache, keys []Key) map[holding]bool {
	t.Helper()
	out := map[holding]bool{}
	for _, ns := range []string{"default", "b"} {
		res, err := c.Lookup(context.Background(), ns, keys)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			for _, tier := range r.Tiers {
				out[holding{r.Key, tier}] = true
			}
		}
	}
	return out
}

func sameState(a, b map[holding]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for h := range a {
		if !b[h] {
			return false
		}
	}
	return true
}

// TestEventsReplayState: puts, reads (promotions), evictions, demotions and deletes
// from several goroutines, while a watcher follows and a second consumer starts from a
// snapshot in the middle: both end with exactly the cache's state, and sequence
// numbers have no gaps.
func TestEventsReplayState(t *testing.T) {
	ctx := context.Background()
	c, _, _ := openCache(t, cacheSetup{dir: t.TempDir(), memCap: 96 << 10, diskCap: 320 << 10, writeThrough: false, namespaces: []string{"b"}})
	defer c.Close()
	start := c.EventPosition()
	var keys []Key
	var specs []PutSpec
	var kss, vss [][][]float32
	for i := 0; i < 40; i++ {
		ns := "default"
		if i%3 == 0 {
			ns = "b"
		}
		spec, ks, vs := testChunk(uint64(i), ns, F32, 2, 64) // 2 × 64 × 16 × 4 × 2 = 16 KiB
		id := spec.ID()
		k, _ := PublicKeyer().ChunkKey(&id)
		keys, specs, kss, vss = append(keys, k), append(specs, spec), append(kss, ks), append(vss, vs)
	}
	var wg sync.WaitGroup
	var snapState map[holding]bool
	var snapPos EventPosition
	for g := 0; g < 3; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(keys); i += 3 {
				if _, err := c.PutFloat32(ctx, specs[i], kss[i], vss[i]); err != nil {
					t.Error(err)
					return
				}
				if j := (i * 7) % len(keys); j < i {
					if r, err := c.Open(ctx, specs[j].Namespace, keys[j]); err == nil {
						for l := 0; l < 2; l++ {
							_, _ = r.Section(ctx, l)
						}
						r.Close()
					}
				}
				if i%5 == 4 {
					_, _ = c.Delete(ctx, specs[i-2].Namespace, keys[i-2])
				}
				if g == 0 && i == 21 {
					st := map[holding]bool{}
					pos, err := c.Snapshot(ctx, func(e Event) error {
						applyEvents(st, []Event{e})
						return nil
					})
					if err != nil {
						t.Error(err)
					}
					snapState, snapPos = st, pos
				}
			}
		}()
	}
	wg.Wait()
	// Deletes of chunks that are surely held (the concurrent ones may find theirs
	// evicted already).
	deleted := 0
	for i, k := range keys {
		if res, _ := c.Lookup(ctx, specs[i].Namespace, []Key{k}); res[0].Present && deleted < 3 {
			if _, err := c.Delete(ctx, specs[i].Namespace, k); err != nil {
				t.Fatal(err)
			}
			deleted++
		}
	}
	end := c.EventPosition()
	w := c.Watch(start)
	state := map[holding]bool{}
	var all []Event
	for w.Position().Seq < end.Seq {
		evs, err := w.Next(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, evs...)
	}
	types := map[EventType]int{}
	for i, e := range all {
		if e.Seq != start.Seq+uint64(i)+1 {
			t.Fatalf("event %d has seq %d after %d", i, e.Seq, start.Seq)
		}
		types[e.Type]++
	}
	for _, typ := range []EventType{EventStored, EventEvicted, EventPromoted, EventDemoted, EventDeleted} {
		if types[typ] == 0 {
			t.Errorf("no %s events in %v", typ, types)
		}
	}
	applyEvents(state, all)
	want := actualState(t, c, keys)
	if !sameState(state, want) {
		t.Fatalf("replayed state (%d) != cache state (%d)", len(state), len(want))
	}
	// From the snapshot taken mid-way plus the events after its position.
	w2 := c.Watch(snapPos)
	for w2.Position().Seq < end.Seq {
		evs, err := w2.Next(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		applyEvents(snapState, evs)
	}
	if !sameState(snapState, want) {
		t.Fatalf("snapshot + events (%d) != cache state (%d)", len(snapState), len(want))
	}

	// Next blocks until an event comes, and honours its context.
	tctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := c.Watch(end).Next(tctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("idle Next: %v", err)
	}
	got := make(chan []Event, 1)
	go func() {
		evs, _ := c.Watch(end).Next(ctx, 10)
		got <- evs
	}()
	time.Sleep(10 * time.Millisecond)
	spec, ks, vs := testChunk(1000, "", F32, 1, 4)
	put(t, c, spec, ks, vs)
	if evs := <-got; len(evs) == 0 || evs[0].Seq != end.Seq+1 {
		t.Fatalf("woken with %+v", evs)
	}
}

func TestEventsLost(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMemory()
	c, err := New(ctx, Options{Tiers: []TierConfig{{Tier: mem, Eviction: eviction.Config{Capacity: 1 << 20}}},
		EventLogSize: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := c.EventPosition()
	for i := 0; i < 6; i++ {
		spec, ks, vs := testChunk(uint64(i), "", F32, 1, 4)
		put(t, c, spec, ks, vs)
	}
	if _, err := c.Watch(start).Next(ctx, 10); !errors.Is(err, ErrEventsLost) {
		t.Fatalf("overwritten position: %v", err)
	}
	pos := c.EventPosition()
	evs, err := c.Watch(EventPosition{Epoch: pos.Epoch, Seq: pos.Seq - 4}).Next(ctx, 10)
	if err != nil || len(evs) != 4 || evs[3].Seq != pos.Seq {
		t.Fatalf("oldest retained: %d events, %v", len(evs), err)
	}
	if _, err := c.Watch(EventPosition{Epoch: pos.Epoch + 2, Seq: 1}).Next(ctx, 10); !errors.Is(err, ErrEventsLost) {
		t.Fatalf("another epoch: %v", err)
	}
	if _, err := c.Watch(EventPosition{Epoch: pos.Epoch, Seq: pos.Seq + 5}).Next(ctx, 10); !errors.Is(err, ErrEventsLost) {
		t.Fatalf("future position: %v", err)
	}
}

// TestEventsAcrossRestart: a restart starts a new epoch; the old position is lost and
// the snapshot shows what the disk tier kept.
func TestEventsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, _, _ := openCache(t, cacheSetup{dir: dir, memCap: 1 << 20, diskCap: 1 << 30, writeThrough: true})
	var keys []Key
	for i := 0; i < 3; i++ {
		spec, ks, vs := testChunk(uint64(i), "", F32, 1, 4)
		keys = append(keys, put(t, c, spec, ks, vs).Key)
	}
	old := c.EventPosition()
	c.Close()
	c, _, _ = openCache(t, cacheSetup{dir: dir, memCap: 1 << 20, diskCap: 1 << 30, writeThrough: true})
	defer c.Close()
	if c.EventPosition().Epoch == old.Epoch {
		t.Fatal("same epoch after a restart")
	}
	if _, err := c.Watch(old).Next(ctx, 10); !errors.Is(err, ErrEventsLost) {
		t.Fatalf("old position after restart: %v", err)
	}
	st := map[holding]bool{}
	if _, err := c.Snapshot(ctx, func(e Event) error { applyEvents(st, []Event{e}); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !st[holding{k, "disk"}] || st[holding{k, "memory"}] {
			t.Fatalf("snapshot after restart: %v", st)
		}
	}
}
