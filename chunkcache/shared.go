package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// sharedState is the shared tier (store.SharedTier, e.g. the Redis remote tier): the
// last tier, below the local ones, read and written by other processes too. The cache
// keeps no tracker for it — the store evicts and expires by its own policy — and asks
// it: an Open or Lookup that the local tiers cannot answer goes to it, every put
// (except local-only value puts) writes it, the last local tier demotes into it, and
// a Delete removes the chunk from it. Its failures are served as misses (a shared
// store that is down or restarted empty is a cache that misses), logged and counted.
type sharedState struct {
	name string
	tier store.SharedTier
	// format and nsFormats are the shared tier's own KV format (TierConfig.Format,
	// NamespaceFormats): puts and demotions into it are re-encoded (e.g. q4 on the
	// remote tier, f16 in RAM); promotions out of it re-encode into the first tier's.
	format    Layout
	nsFormats map[string]Layout
	// storedTokens and storedBytes sum the chunks (values excluded) this cache wrote
	// to the tier: its bytes per token in Stats.
	storedTokens, storedBytes atomic.Int64

	hits, misses, errors, stores, deletes atomic.Uint64
	lastWarn                              atomic.Int64
	// downUntil (unix ns) skips the tier after a failure, for backoff (doubling from
	// minBackoff to maxBackoff, reset by a success): a store that is down must not
	// cost every request a dial timeout.
	downUntil, backoff atomic.Int64
}

const (
	minBackoff = int64(250 * time.Millisecond)
	maxBackoff = int64(5 * time.Second)
)

// up reports whether the tier may be asked now (not within a failure's backoff).
func (s *sharedState) up() bool { return time.Now().UnixNano() >= s.downUntil.Load() }

func (s *sharedState) ok() {
	if s.backoff.Load() != 0 {
		s.backoff.Store(0)
	}
}

// usageReporter is implemented by shared tiers that know their usage (store.Redis).
type usageReporter interface {
	Usage() store.RemoteUsage
}

func (s *sharedState) fail(c *Cache, op string, k Key, err error) {
	s.errors.Add(1)
	if !errors.Is(err, store.ErrNoSpace) && !errors.Is(err, store.ErrCorrupt) {
		b := min(max(2*s.backoff.Load(), minBackoff), maxBackoff)
		s.backoff.Store(b)
		s.downUntil.Store(time.Now().UnixNano() + b)
	}
	// One warning per second at most: a down store would otherwise flood the log.
	now := time.Now().UnixNano()
	if last := s.lastWarn.Load(); now-last > int64(time.Second) && s.lastWarn.CompareAndSwap(last, now) {
		c.log.Warn("chunkcache: shared tier failed; serving as a miss", "tier", s.name, "op", op, "key", k.String(), "err", err)
	}
}

// readNamespace normalizes ns for a read. An unknown namespace is ErrUnknownNamespace,
// unless a shared tier exists: other replicas may have put chunks in it.
func (c *Cache) readNamespace(ns string) (string, error) {
	n, err := NormalizeNamespace(ns)
	if err != nil {
		return "", err
	}
	c.mu.RLock()
	ok := c.known[n]
	c.mu.RUnlock()
	if !ok && c.shared == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownNamespace, n)
	}
	return n, nil
}

// store re-encodes obj (of entry e) in the tier's format and writes it.
func (s *sharedState) store(ctx context.Context, k Key, obj store.Object, e *entry) error {
	obj, err := reencode(s.format, s.nsFormats, obj, e.value, e.ns)
	if err != nil {
		return fmt.Errorf("%w: re-encode for the shared tier: %w", store.ErrCorrupt, err)
	}
	if err := s.tier.Put(ctx, k, obj); err != nil {
		return err
	}
	if !e.value && e.tokens > 0 {
		s.storedTokens.Add(int64(e.tokens))
		s.storedBytes.Add(obj.Size())
	}
	return nil
}

// putShared writes obj to the shared tier (in its format). Caller holds k's lock.
func (c *Cache) putShared(ctx context.Context, k Key, obj store.Object, e *entry) bool {
	s := c.shared
	if !s.up() {
		return false
	}
	if err := s.store(ctx, k, obj, e); err != nil {
		s.fail(c, "put", k, err)
		return false
	}
	s.ok()
	s.stores.Add(1)
	c.emit(EventStored, k, e, len(c.tiers), -1)
	return true
}

// demoteShared copies k, evicted from the last local tier `from`, into the shared tier
// unless it already holds it. Caller holds k's lock.
func (c *Cache) demoteShared(ctx context.Context, from int, k Key, e *entry) bool {
	s := c.shared
	if !s.up() {
		return false
	}
	has, err := s.tier.Has(ctx, k)
	if err != nil {
		s.fail(c, "has", k, err)
		return false
	}
	if has {
		return true
	}
	obj, err := readObject(ctx, c.tiers[from].tier, k)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.log.Warn("chunkcache: demote read", "tier", c.tiers[from].name, "key", k.String(), "err", err)
		}
		return false
	}
	if err := s.store(ctx, k, obj, e); err != nil {
		s.fail(c, "demote", k, err)
		return false
	}
	c.tiers[from].demotions.Add(1)
	return true
}

// deleteShared removes k from the shared tier. local says whether a local tier held
// it (e describes it then); found reports whether the shared tier held it.
func (c *Cache) deleteShared(ctx context.Context, ns string, k Key, e *entry, local bool) (found bool, err error) {
	s := c.shared
	if !local {
		// Make sure it is ns's before deleting what another namespace may own.
		r, err := s.tier.Open(ctx, k)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			s.fail(c, "delete", k, err)
			return false, fmt.Errorf("chunkcache: delete %s from %s: %w", k.Short(), s.name, err)
		}
		ne, _, cerr := checkStored(c.keyer, k, r.Manifest(), r.NumParts())
		r.Close()
		if cerr != nil || ne.ns != ns {
			return false, nil
		}
		ne.size = r.Size()
		*e = ne
	}
	err = s.tier.Delete(ctx, k)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		s.fail(c, "delete", k, err)
		return false, fmt.Errorf("chunkcache: delete %s from %s: %w", k.Short(), s.name, err)
	}
	s.deletes.Add(1)
	c.emit(EventDeleted, k, e, len(c.tiers), -1)
	return true, nil
}

// lookupShared marks the results the shared tier holds (one round trip).
func (c *Cache) lookupShared(ctx context.Context, out []LookupResult) {
	s := c.shared
	if !s.up() {
		return
	}
	keys := make([]store.Key, len(out))
	for i := range out {
		keys[i] = out[i].Key
	}
	has, err := s.tier.HasMany(ctx, keys)
	if err != nil {
		s.fail(c, "lookup", Key(keys[0]), err)
		return
	}
	s.ok()
	for i, h := range has {
		if !h {
			continue
		}
		out[i].Tiers = append(out[i].Tiers, s.name)
		if !out[i].Present {
			out[i].Present, out[i].Tier = true, s.name
		}
	}
}

// openShared opens k in the shared tier; check validates the manifest (kind, key hash,
// namespace) and describes the object. A miss or a failure of the store is ErrNotFound.
func (c *Cache) openShared(ctx context.Context, ns string, k Key, check func([]byte, int) (entry, error)) (store.Reader, entry, error) {
	s := c.shared
	if !s.up() {
		return nil, entry{}, notFound(ns, k)
	}
	sr, err := s.tier.Open(ctx, k)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			if cerr := ctx.Err(); cerr != nil {
				return nil, entry{}, cerr
			}
			s.fail(c, "open", k, err)
		} else {
			s.ok()
		}
		return nil, entry{}, notFound(ns, k)
	}
	s.ok()
	e, err := check(sr.Manifest(), sr.NumParts())
	if err == nil && e.ns != ns {
		err = notFound(ns, k) // another namespace's: never visible here
	}
	if err != nil {
		sr.Close()
		if !errors.Is(err, ErrNotFound) {
			s.fail(c, "open", k, err)
			c.log.Warn("chunkcache: unusable object in the shared tier", "tier", s.name, "key", k.String(), "err", err)
		}
		return nil, entry{}, notFound(ns, k)
	}
	e.size = sr.Size()
	return sr, e, nil
}

// promoteShared copies an object read in full from the shared tier into the first
// tier (subject to its admission filter; unpinned: pins are per replica).
func (c *Cache) promoteShared(k Key, obj store.Object, e entry) {
	ctx := context.Background()
	first := c.tiers[0]
	mu := c.lock(k)
	mu.Lock()
	if first.tracker.Contains(eviction.Key(k)) {
		mu.Unlock()
		return
	}
	obj, err := first.inFormat(obj, e.value, e.ns) // the first tier's own format
	if err != nil {
		mu.Unlock()
		c.log.Warn("chunkcache: promote: re-encode", "key", k.String(), "err", err)
		return
	}
	e.size, e.pin = obj.Size(), Unpinned
	vs, err := first.tracker.ReserveGroup(eviction.Key(k), e.size, e.cost, e.pin, e.ns)
	if err != nil {
		mu.Unlock()
		return
	}
	if err := first.tier.Put(ctx, k, obj); err != nil {
		first.tracker.Remove(eviction.Key(k))
		c.log.Warn("chunkcache: promote", "key", k.String(), "err", err)
	} else {
		c.mu.Lock()
		if old, ok := c.index[k]; ok {
			old.size = e.size
		} else {
			ne := e
			c.index[k] = &ne
			c.nsRefs[e.ns]++
		}
		c.known[e.ns] = true
		c.mu.Unlock()
		first.promotions.Add(1)
		c.emit(EventPromoted, k, &e, 0, len(c.tiers))
	}
	mu.Unlock()
	c.processVictims(toVictims(0, vs))
}

func (c *Cache) sharedStats() TierStats {
	s := c.shared
	ts := TierStats{Name: s.name, Persistent: s.tier.Persistent(), Shared: true,
		Hits: s.hits.Load(), Misses: s.misses.Load(), Errors: s.errors.Load()}
	if u, ok := s.tier.(usageReporter); ok {
		us := u.Usage()
		ts.Bytes, ts.Capacity, ts.Entries, ts.Evictions = us.UsedBytes, us.MaxBytes, us.Objects, us.Evicted
	}
	ts.Admissions = s.stores.Load()
	if tok := s.storedTokens.Load(); tok > 0 {
		ts.ChunkTokens = tok
		ts.BytesPerToken = float64(s.storedBytes.Load()) / float64(tok)
	}
	return ts
}
