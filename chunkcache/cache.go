package chunkcache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/chunkcache/internal/kvblob"
	"github.com/ragkv/ragkv/store"
)

// Pin protects a chunk from eviction (eviction.SoftPin: evicted last; eviction.HardPin:
// never).
type Pin = eviction.Pin

// Pins.
const (
	Unpinned = eviction.Unpinned
	SoftPin  = eviction.SoftPin
	HardPin  = eviction.HardPin
)

// Cache is the tiered chunk KV cache. It is safe for concurrent use. See the package
// doc for the tiering, atomicity and locking rules.
type Cache struct {
	opts  Options
	log   *slog.Logger
	keyer *Keyer
	tiers []*tierState
	gate  gate

	// locks serialize the operations on one key (put, delete, pin, eviction,
	// promotion). A goroutine holds at most one at a time.
	locks [1024]sync.Mutex

	// rot orders salt rotations (write) against commits (read): see commit.
	rot sync.RWMutex

	mu     sync.RWMutex
	index  map[Key]*entry
	nsRefs map[string]int  // chunks per namespace
	known  map[string]bool // namespaces ever seen (configured, put, or found on disk)

	// shared is the shared (remote) tier below the local ones, or nil (shared.go).
	shared *sharedState
	// events is the event log, or nil when off (events.go).
	events *eventLog

	// orphanRetried is when failed eviction deletes were last retried (unix nanos);
	// orphanRetryEvery spaces the retries (tests set 0).
	orphanRetried    atomic.Int64
	orphanRetryEvery time.Duration
}

// entry is what the cache knows about a stored chunk (or value) without I/O.
type entry struct {
	ns   string
	size int64
	cost float64
	pin  Pin
	// hits counts reads served since the chunk was put or found at startup (shared by
	// the copies lookupEntry returns).
	hits *atomic.Uint64

	value   bool  // an opaque value (value.go), not a chunk
	tokens  int32 // a chunk's token count
	expires int64 // a value's expiry (unix ns; 0: none)
	// prob: put on probation (PutSpec.Probationary) and not read since; not persisted
	// (a restarted cache treats every chunk as proven).
	prob bool
}

// probationary reports whether e is still on probation: put as probationary, unpinned,
// and never read.
func (e *entry) probationary() bool {
	return e.prob && e.pin == Unpinned && (e.hits == nil || e.hits.Load() == 0)
}

// reserve accounts k in tier t for e's put or demotion: on probation if e is.
func (t *tierState) reserve(k Key, size int64, e *entry) ([]eviction.Key, error) {
	if e.probationary() {
		return t.tracker.ReserveGroupProbationary(eviction.Key(k), size, e.cost, e.ns)
	}
	return t.tracker.ReserveGroup(eviction.Key(k), size, e.cost, e.pin, e.ns)
}

func (e *entry) kindName() string {
	if e.value {
		return KindValue
	}
	return KindChunk
}

type tierState struct {
	name         string
	tier         store.Tier
	tracker      *eviction.Tracker
	writeThrough bool
	persistent   bool
	format       Layout            // encoding fields of TierConfig.Format (DType 0: as written)
	nsFormats    map[string]Layout // TierConfig.NamespaceFormats

	hits, misses, promotions, demotions atomic.Uint64
	corrupt                             atomic.Uint64 // reads that failed a checksum or parse
	quarantined                         atomic.Uint64 // corrupt copies taken out of the tier (quarantine.go)

	// orphans are keys whose eviction delete failed: the tier still holds an object
	// its tracker no longer accounts. They are deleted again after later evictions
	// (retryOrphans), so the tier is reclaimed without a restart.
	orphanMu   sync.Mutex
	orphans    map[Key]struct{}
	orphanN    atomic.Int64 // len(orphans), read without the lock
	orphanDone atomic.Uint64
}

// addOrphan records a key whose delete failed.
func (t *tierState) addOrphan(k Key) {
	t.orphanMu.Lock()
	if t.orphans == nil {
		t.orphans = map[Key]struct{}{}
	}
	t.orphans[k] = struct{}{}
	t.orphanN.Store(int64(len(t.orphans)))
	t.orphanMu.Unlock()
}

// PendingDeletes is the number of objects, over the local tiers, whose eviction delete
// failed and is retried after later evictions.
func (c *Cache) PendingDeletes() int {
	n := 0
	for _, t := range c.tiers {
		n += int(t.orphanN.Load())
	}
	return n
}

// orphanRetryEvery spaces the retries of failed eviction deletes (a tier that keeps
// failing is not asked again after every commit).
const orphanRetryEvery = 500 * time.Millisecond

// maybeRetryOrphans runs retryOrphans if there are orphans and the last retry was at
// least c.orphanRetryEvery ago.
func (c *Cache) maybeRetryOrphans(ctx context.Context) {
	if c.PendingDeletes() == 0 {
		return
	}
	now := time.Now().UnixNano()
	last := c.orphanRetried.Load()
	if now-last < int64(c.orphanRetryEvery) || !c.orphanRetried.CompareAndSwap(last, now) {
		return
	}
	c.retryOrphans(ctx)
}

// retryOrphans deletes again, each under its key lock, the objects whose eviction
// delete failed; one stored again meanwhile (tracked by its tier) is left alone, its
// put replaced the stale object. The caller holds no key lock.
func (c *Cache) retryOrphans(ctx context.Context) {
	for _, t := range c.tiers {
		if t.orphanN.Load() == 0 {
			continue
		}
		t.orphanMu.Lock()
		keys := make([]Key, 0, len(t.orphans))
		for k := range t.orphans {
			keys = append(keys, k)
		}
		t.orphanMu.Unlock()
		for _, k := range keys {
			mu := c.lock(k)
			mu.Lock()
			done := t.tracker.Contains(eviction.Key(k))
			if !done {
				err := fpEvictDelete.Inject()
				if err == nil {
					err = t.tier.Delete(ctx, k)
				}
				done = err == nil || errors.Is(err, store.ErrNotFound)
			}
			if done {
				t.orphanMu.Lock()
				delete(t.orphans, k)
				t.orphanN.Store(int64(len(t.orphans)))
				t.orphanMu.Unlock()
				t.orphanDone.Add(1)
			}
			mu.Unlock()
		}
	}
}

// New builds a cache over opts.Tiers and rebuilds its accounting from what the tiers
// already hold (the persistent ones, after a restart). It takes ownership of the tiers:
// on error they are closed too.
func New(ctx context.Context, opts Options) (*Cache, error) {
	opts.EnsureDefaults()
	closeTiers := func() {
		for _, t := range opts.Tiers {
			if t.Tier != nil {
				_ = t.Tier.Close()
			}
		}
	}
	if err := opts.Validate(); err != nil {
		closeTiers()
		return nil, err
	}
	c := &Cache{
		opts:   opts,
		log:    opts.Logger,
		keyer:  opts.Keyer,
		index:  make(map[Key]*entry),
		nsRefs: make(map[string]int),
		known:  make(map[string]bool),

		orphanRetryEvery: orphanRetryEvery,
	}
	c.gate.init()
	c.events = newEventLog(opts.EventLogSize)
	for _, ns := range opts.Namespaces {
		n, _ := NormalizeNamespace(ns)
		c.known[n] = true
	}
	for _, tc := range opts.Tiers {
		if st, ok := tc.Tier.(store.SharedTier); ok && st.Shared() {
			nsFormats, err := tierFormats(tc)
			if err != nil {
				closeTiers()
				return nil, err
			}
			c.shared = &sharedState{name: st.Name(), tier: st, format: tc.Format, nsFormats: nsFormats}
			continue // Validate checked that it is the last tier
		}
		tr, err := eviction.NewTracker(tc.Eviction)
		if err != nil {
			closeTiers()
			return nil, fmt.Errorf("tier %s: %w", tc.Tier.Name(), err)
		}
		if len(tc.Quotas) > 0 {
			qs := make(map[string]int64, len(tc.Quotas))
			for ns, q := range tc.Quotas {
				n, err := NormalizeNamespace(ns)
				if err != nil {
					closeTiers()
					return nil, fmt.Errorf("tier %s: quota: %w", tc.Tier.Name(), err)
				}
				qs[n] = q
			}
			if err := tr.SetGroupQuotas(qs); err != nil {
				closeTiers()
				return nil, fmt.Errorf("%w: tier %s: %w", ErrInvalid, tc.Tier.Name(), err)
			}
		}
		nsFormats, err := tierFormats(tc)
		if err != nil {
			closeTiers()
			return nil, err
		}
		c.tiers = append(c.tiers, &tierState{
			name: tc.Tier.Name(), tier: tc.Tier, tracker: tr,
			writeThrough: tc.WriteThrough, persistent: tc.Tier.Persistent(), format: tc.Format,
			nsFormats: nsFormats,
		})
	}
	if err := c.recover(ctx); err != nil {
		closeTiers()
		return nil, err
	}
	// Every chunk under a retired secret is gone now.
	if err := c.keyer.pruneRetired(); err != nil {
		c.log.Warn("chunkcache: prune retired salt secrets", "err", err)
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newCollector(c)); err != nil {
			closeTiers()
			return nil, fmt.Errorf("chunkcache: register metrics: %w", err)
		}
	}
	return c, nil
}

// recover accounts every object the tiers already hold, oldest first, so that recency
// policies start from the order chunks were written. Objects whose manifest is corrupt
// or does not hash to their key are deleted.
func (c *Cache) recover(ctx context.Context) error {
	type found struct {
		key     Key
		e       entry
		created int64
	}
	now := nowNanos()
	for ti, t := range c.tiers {
		var objs []found
		var bad []Key
		stale, foreign := 0, 0
		err := t.tier.Scan(ctx, func(in store.Info) error {
			e, created, err := checkStored(c.keyer, Key(in.Key), in.Manifest, in.Parts)
			if err != nil {
				var km *keyMismatchError
				switch {
				case errors.As(err, &km) && c.staleKey(km):
					stale++ // stored under a salt a rotation replaced (or the public one)
				case km != nil && !c.opts.DropForeignChunks:
					foreign++
					return nil
				default:
					c.log.Warn("chunkcache: dropping unreadable chunk", "tier", t.name, "key", Key(in.Key).String(), "err", err)
				}
				bad = append(bad, Key(in.Key))
				return nil
			}
			if e.expires != 0 && e.expires <= now {
				bad = append(bad, Key(in.Key)) // an expired value
				return nil
			}
			e.size = in.Size
			objs = append(objs, found{Key(in.Key), e, created})
			return nil
		})
		if err != nil {
			return fmt.Errorf("chunkcache: recover tier %s: %w", t.name, err)
		}
		if foreign > 0 {
			return fmt.Errorf("%w: tier %s holds %d chunks keyed under another salt secret (neither this keyer's, a retired one, nor public salts): open it with the secret that wrote them, or drop them (Options.DropForeignChunks; ragkv serve --drop-foreign-chunks)",
				ErrForeignChunks, t.name, foreign)
		}
		if stale > 0 {
			c.log.Info("chunkcache: deleting chunks stored under replaced salts", "tier", t.name, "chunks", stale)
		}
		for _, k := range bad {
			if err := t.tier.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("chunkcache: recover tier %s: %w", t.name, err)
			}
		}
		sort.Slice(objs, func(i, j int) bool { return objs[i].created < objs[j].created })
		var victims []victim
		for _, o := range objs {
			vs, err := t.tracker.ReserveGroup(o.key, o.e.size, o.e.cost, o.e.pin, o.e.ns)
			if err != nil {
				c.log.Warn("chunkcache: chunk does not fit on restart; deleting", "tier", t.name, "key", o.key.String(), "err", err)
				if err := t.tier.Delete(ctx, o.key); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				continue
			}
			for _, v := range vs {
				victims = append(victims, victim{tier: ti, key: v})
			}
			c.mu.Lock()
			if _, ok := c.index[o.key]; !ok {
				e := o.e
				e.hits = new(atomic.Uint64)
				c.index[o.key] = &e
				c.nsRefs[e.ns]++
				c.known[e.ns] = true
			}
			c.mu.Unlock()
		}
		c.processVictims(victims)
		if len(objs) > 0 {
			c.log.Info("chunkcache: recovered tier", "tier", t.name, "chunks", len(objs), "bytes", t.tracker.Stats().UsedBytes)
		}
	}
	return nil
}

func (c *Cache) lock(k Key) *sync.Mutex {
	return &c.locks[binary.LittleEndian.Uint16(k[:2])%uint16(len(c.locks))]
}

// namespace normalizes ns and checks that it is known.
func (c *Cache) namespace(ns string) (string, error) {
	ns, err := NormalizeNamespace(ns)
	if err != nil {
		return "", err
	}
	c.mu.RLock()
	ok := c.known[ns]
	c.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("%w %q", ErrUnknownNamespace, ns)
	}
	return ns, nil
}

// lookupEntry returns the index entry of k if it belongs to ns.
func (c *Cache) lookupEntry(ns string, k Key) (entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.index[k]
	if !ok || e.ns != ns {
		return entry{}, false
	}
	return *e, true
}

func notFound(ns string, k Key) error {
	return fmt.Errorf("%w: key %s in namespace %q", ErrNotFound, k, ns)
}

// victim is a key a tier's tracker evicted and that the tier must still demote or
// delete.
type victim struct {
	tier int
	key  Key
}

// PutResult reports where a put landed.
type PutResult struct {
	Key Key
	// Tiers holding the chunk now, fastest first.
	Tiers []string
	// Admitted is false when every tier's admission filter rejected the chunk; then
	// nothing was stored and Tiers is empty. A pinned chunk bypasses admission.
	Admitted    bool
	StoredBytes int64
}

// commit stores a complete object in the first tier and every write-through tier (and
// the shared tier), unless localOnly: then in the first tier only, the others getting
// it by demotion. It is the single place where puts enter the cache. ne describes the
// object (its size is set here). rekey derives k again: a salt rotation between the
// put's start and its commit stores the object under the new key, and a rotation
// waits for the commits in flight (c.rot), so none lands under an old key after the
// rotation's sweep.
func (c *Cache) commit(ctx context.Context, k Key, rekey func() (Key, error), obj store.Object, ne entry, localOnly bool) (PutResult, error) {
	c.rot.RLock()
	defer c.rot.RUnlock()
	k, err := rekey()
	if err != nil {
		return PutResult{}, err
	}
	size := obj.Size()
	ns, pin := ne.ns, ne.pin
	res := PutResult{Key: k, StoredBytes: size}
	var victims []victim
	var errNoSpace, errOther error
	// errDurable is a persistent tier's failure to store the object: the put is then
	// not acknowledged (and no other tier keeps it), since it would not survive a
	// restart.
	var errDurable error
	rejected := 0

	mu := c.lock(k)
	mu.Lock()
	c.mu.RLock()
	if old, ok := c.index[k]; ok {
		if old.pin > pin {
			pin = old.pin // a re-put keeps an existing pin
		}
		ne.prob = ne.prob && old.probationary() // and a chunk that has proven itself stays proven
	}
	c.mu.RUnlock()
	ne.size, ne.pin = size, pin
	stored := make([]bool, len(c.tiers))
	removed := make([]bool, len(c.tiers)) // copies this put deleted
	had := make([]bool, len(c.tiers))
	kept := make([]bool, len(c.tiers)) // a refused overwrite left the older copy intact
	for i, t := range c.tiers {
		had[i] = t.tracker.Contains(eviction.Key(k))
		if i != 0 && (!t.writeThrough || localOnly) {
			continue
		}
		tobj, err := t.inFormat(obj, ne.value, ns)
		if err != nil {
			errOther = fmt.Errorf("tier %s: %w", t.name, err)
			continue
		}
		// Reserving and pinning in one tracker call: a concurrent put cannot evict
		// the chunk before its pin takes.
		vs, err := t.reserve(k, tobj.Size(), &ne)
		switch {
		case errors.Is(err, eviction.ErrNotAdmitted):
			rejected++
			continue
		case errors.Is(err, eviction.ErrNoSpace):
			errNoSpace = fmt.Errorf("tier %s: %w", t.name, err)
			continue
		case err != nil:
			errOther = fmt.Errorf("tier %s: %w", t.name, err)
			continue
		}
		for _, v := range vs {
			victims = append(victims, victim{tier: i, key: v})
		}
		err = fpCommitReserved.Inject()
		if err == nil {
			err = t.tier.Put(ctx, k, tobj)
		}
		if err != nil {
			if had[i] {
				// A failed Put leaves the previous object or the new one, whole (the
				// store.Tier contract; the disk tier refuses before writing when it is
				// short of space): the tier keeps that copy, so an acknowledged chunk
				// is not lost to a failed re-put.
				kept[i] = true
			} else {
				removed[i] = t.tracker.Remove(eviction.Key(k))
				_ = t.tier.Delete(context.WithoutCancel(ctx), k) // a failed overwrite may leave the old object
			}
			errOther = fmt.Errorf("tier %s: %w", t.name, err)
			if t.persistent {
				errDurable = errOther
			}
			continue
		}
		stored[i] = true
		res.Tiers = append(res.Tiers, t.name)
		fpCommitStored.Hit()
	}
	wrote := slices.Clone(stored)
	if errDurable != nil {
		// Undone below: the tiers that took the object forget and delete it.
		clear(stored)
		res.Tiers = nil
		errOther = errDurable
	}
	if len(res.Tiers) > 0 {
		// The put succeeded elsewhere: an older copy left by a failed Put would be
		// stale next to the new one, so it goes (below).
		clear(kept)
	}
	// A tier that was not written must not keep an older version of the chunk — unless
	// the put failed everywhere: then nothing changes but the copies it wrote (and a
	// chunk's copy there is the same content, so a tier that held one keeps it).
	for i, t := range c.tiers {
		if stored[i] || kept[i] {
			continue
		}
		if len(res.Tiers) == 0 && (!wrote[i] || (had[i] && !ne.value)) {
			kept[i] = had[i]
			continue
		}
		if t.tracker.Remove(eviction.Key(k)) {
			removed[i] = true
			if err := t.tier.Delete(context.WithoutCancel(ctx), k); err != nil && !errors.Is(err, store.ErrNotFound) {
				c.log.Warn("chunkcache: delete stale copy", "tier", t.name, "key", k.String(), "err", err)
			}
		}
	}
	c.mu.Lock()
	if len(res.Tiers) > 0 {
		if old, ok := c.index[k]; ok {
			*old = ne
		} else {
			e := ne
			e.hits = new(atomic.Uint64)
			c.index[k] = &e
			c.nsRefs[ns]++
		}
		c.known[ns] = true
	} else {
		c.dropIndexLocked(k)
	}
	c.mu.Unlock()
	fpCommitIndexed.Hit()
	for i := range c.tiers {
		switch {
		case stored[i]:
			c.emit(EventStored, k, &ne, i, -1)
		case had[i] && removed[i]:
			c.emit(EventDeleted, k, &ne, i, -1)
		}
	}
	if c.shared != nil {
		switch {
		case !localOnly:
			if c.putShared(ctx, k, obj, &ne) {
				res.Tiers = append(res.Tiers, c.shared.name)
			}
		case ne.value && len(res.Tiers) > 0:
			// A value's name can be re-put with new bytes: an older copy in the shared
			// tier must go, as it would in a lower local tier.
			if _, err := c.deleteShared(ctx, ns, k, &ne, true); err != nil {
				c.log.Warn("chunkcache: delete stale copy", "tier", c.shared.name, "key", k.String(), "err", err)
			}
		}
	}
	mu.Unlock()

	c.processVictims(victims)
	fpCommitDone.Hit()
	switch {
	case len(res.Tiers) > 0:
		res.Admitted = true
		if errOther != nil {
			c.log.Warn("chunkcache: put stored in fewer tiers", "key", k.String(), "tiers", res.Tiers, "err", errOther)
		}
		return res, nil
	case errOther != nil:
		return res, fmt.Errorf("chunkcache: put %s: %w", k.Short(), errOther)
	case errNoSpace != nil:
		return res, fmt.Errorf("chunkcache: put %s (%d bytes): %w", k.Short(), size, errNoSpace)
	}
	return res, nil // rejected by every admission filter
}

// dropIndexLocked removes k from the index if no tier tracks it any more. c.mu held.
func (c *Cache) dropIndexLocked(k Key) {
	e, ok := c.index[k]
	if !ok {
		return
	}
	for _, t := range c.tiers {
		if t.tracker.Contains(eviction.Key(k)) {
			return
		}
	}
	delete(c.index, k)
	if c.nsRefs[e.ns]--; c.nsRefs[e.ns] <= 0 {
		delete(c.nsRefs, e.ns)
	}
}

// processVictims demotes or deletes evicted chunks, one key lock at a time. Victims of
// the demotions themselves are processed in turn. It runs without the caller's
// context: once a tracker has evicted a key, the tier must follow, or the budget would
// be exceeded.
func (c *Cache) processVictims(queue []victim) {
	ctx := context.Background()
	if len(queue) > 0 {
		c.maybeRetryOrphans(ctx) // the deletes earlier evictions failed
	}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		mu := c.lock(v.key)
		mu.Lock()
		more := c.evictOne(ctx, v)
		mu.Unlock()
		queue = append(queue, more...)
	}
}

// evictOne moves v.key out of tier v.tier: into the next tier if that one does not
// hold it yet (demotion), else just deletes it. Caller holds the key lock.
func (c *Cache) evictOne(ctx context.Context, v victim) []victim {
	t := c.tiers[v.tier]
	k := v.key
	if t.tracker.Contains(eviction.Key(k)) {
		return nil // stored again since it was chosen
	}
	var more []victim
	c.mu.RLock()
	e, indexed := c.index[k]
	var ent entry
	if indexed {
		ent = *e
	}
	c.mu.RUnlock()
	live := indexed && (ent.expires == 0 || ent.expires > nowNanos())
	demotedTo := -1
	if next := v.tier + 1; live && next < len(c.tiers) && !c.tiers[next].tracker.Contains(eviction.Key(k)) {
		var ok bool
		if more, ok = c.demote(ctx, v.tier, next, k, ent); ok {
			demotedTo = next
		}
	} else if live && next == len(c.tiers) && c.shared != nil && c.demoteShared(ctx, v.tier, k, &ent) {
		demotedTo = next
	}
	err := fpEvictDelete.Inject()
	if err == nil {
		err = t.tier.Delete(ctx, k)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.Warn("chunkcache: evict (the delete is retried after later evictions)", "tier", t.name, "key", k.String(), "err", err)
		t.addOrphan(k)
	}
	fpEvictDeleted.Hit()
	c.mu.Lock()
	c.dropIndexLocked(k)
	c.mu.Unlock()
	if demotedTo >= 0 {
		c.emit(EventDemoted, k, &ent, demotedTo, v.tier)
	} else {
		c.emit(EventEvicted, k, &ent, v.tier, -1)
	}
	return more
}

// demote copies k from tier `from` into tier `to`; ok reports whether it landed.
func (c *Cache) demote(ctx context.Context, from, to int, k Key, ent entry) (_ []victim, ok bool) {
	src, dst := c.tiers[from], c.tiers[to]
	err := fpDemoteRead.Inject()
	var obj store.Object
	if err == nil {
		obj, err = readObject(ctx, src.tier, k)
	}
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.log.Warn("chunkcache: demote read", "tier", src.name, "key", k.String(), "err", err)
		}
		return nil, false
	}
	if obj, err = dst.inFormat(obj, ent.value, ent.ns); err != nil {
		c.log.Warn("chunkcache: demote re-encode", "tier", dst.name, "key", k.String(), "err", err)
		return nil, false
	}
	vs, err := dst.reserve(k, obj.Size(), &ent)
	if err != nil {
		return nil, false // not admitted or no space below: the chunk leaves this tier only
	}
	err = fpDemoteReserved.Inject()
	if err == nil {
		err = dst.tier.Put(ctx, k, obj)
	}
	if err != nil {
		dst.tracker.Remove(eviction.Key(k))
		c.log.Warn("chunkcache: demote write", "tier", dst.name, "key", k.String(), "err", err)
		return toVictims(to, vs), false
	}
	fpDemoteStored.Hit()
	src.demotions.Add(1)
	return toVictims(to, vs), true
}

func toVictims(tier int, keys []eviction.Key) []victim {
	out := make([]victim, len(keys))
	for i, k := range keys {
		out[i] = victim{tier: tier, key: Key(k)}
	}
	return out
}

// readObject reads a whole object out of a tier (viewing memory parts without copy).
func readObject(ctx context.Context, t store.Tier, k Key) (store.Object, error) {
	r, err := t.Open(ctx, k)
	if err != nil {
		return store.Object{}, err
	}
	defer r.Close()
	obj := store.Object{Manifest: append([]byte(nil), r.Manifest()...), Parts: make([][]byte, r.NumParts())}
	pv, _ := r.(store.PartViewer)
	for i := range obj.Parts {
		if pv != nil {
			obj.Parts[i], err = pv.ViewPart(i)
		} else {
			obj.Parts[i], err = r.ReadPart(ctx, i, nil)
		}
		if err != nil {
			return store.Object{}, err
		}
	}
	return obj, nil
}

// Delete removes a chunk from every tier and returns the bytes freed (summed over
// tiers).
func (c *Cache) Delete(ctx context.Context, ns string, k Key) (int64, error) {
	if !c.gate.enter() {
		return 0, ErrClosed
	}
	defer c.gate.exit()
	ns, err := c.readNamespace(ns)
	if err != nil {
		return 0, err
	}
	mu := c.lock(k)
	mu.Lock()
	defer mu.Unlock()
	e, ok := c.lookupEntry(ns, k)
	if !ok && c.shared == nil {
		return 0, notFound(ns, k)
	}
	var freed int64
	var firstErr error
	for i, t := range c.tiers {
		if !ok || !t.tracker.Remove(eviction.Key(k)) {
			continue
		}
		c.emit(EventDeleted, k, &e, i, -1)
		if err := t.tier.Delete(ctx, k); err != nil && !errors.Is(err, store.ErrNotFound) {
			if firstErr == nil {
				firstErr = fmt.Errorf("chunkcache: delete %s from %s: %w", k.Short(), t.name, err)
			}
			continue
		}
		freed += e.size
	}
	if ok {
		c.mu.Lock()
		c.dropIndexLocked(k)
		c.mu.Unlock()
	}
	if c.shared != nil {
		found, err := c.deleteShared(ctx, ns, k, &e, ok)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if !ok && !found && firstErr == nil {
			return 0, notFound(ns, k)
		}
	}
	return freed, firstErr
}

// LookupResult says whether and where a chunk is stored.
type LookupResult struct {
	Key     Key
	Present bool
	// Tier is the fastest tier holding the chunk; Tiers lists all of them.
	Tier        string
	Tiers       []string
	StoredBytes int64
	Pin         Pin
	// Tokens is a chunk's token count and Kind KindChunk or KindValue, when a local
	// tier holds it (the shared tier is asked only whether it holds it).
	Tokens int
	Kind   string
}

// Lookup reports, for each key, whether the namespace holds it and in which tiers,
// without loading anything or counting hits.
func (c *Cache) Lookup(ctx context.Context, ns string, keys []Key) ([]LookupResult, error) {
	if !c.gate.enter() {
		return nil, ErrClosed
	}
	defer c.gate.exit()
	ns, err := c.readNamespace(ns)
	if err != nil {
		return nil, err
	}
	out := make([]LookupResult, len(keys))
	now := nowNanos()
	for i, k := range keys {
		out[i].Key = k
		e, ok := c.lookupEntry(ns, k)
		if !ok || (e.expires != 0 && e.expires <= now) {
			continue
		}
		for _, t := range c.tiers {
			if t.tracker.Contains(eviction.Key(k)) {
				out[i].Tiers = append(out[i].Tiers, t.name)
			}
		}
		if len(out[i].Tiers) > 0 {
			out[i].Present, out[i].Tier = true, out[i].Tiers[0]
			out[i].StoredBytes, out[i].Pin = e.size, e.pin
			out[i].Tokens, out[i].Kind = int(e.tokens), e.kindName()
		}
	}
	if c.shared != nil {
		c.lookupShared(ctx, out)
	}
	return out, nil
}

// SetPin pins (SoftPin, HardPin) or unpins (Unpinned) a chunk in every tier holding
// it. Pins are stored with the chunk only when it is written; a pin set later lasts
// until the process stops (after a restart the chunk has the pin it was put with).
func (c *Cache) SetPin(ctx context.Context, ns string, k Key, p Pin) error {
	if !c.gate.enter() {
		return ErrClosed
	}
	defer c.gate.exit()
	if p > HardPin {
		return fmt.Errorf("%w: pin %d", ErrInvalid, p)
	}
	ns, err := c.namespace(ns)
	if err != nil {
		return err
	}
	mu := c.lock(k)
	mu.Lock()
	defer mu.Unlock()
	if _, ok := c.lookupEntry(ns, k); !ok {
		return notFound(ns, k)
	}
	for _, t := range c.tiers {
		t.tracker.SetPin(eviction.Key(k), p)
	}
	c.mu.Lock()
	if e, ok := c.index[k]; ok {
		e.pin = p
	}
	c.mu.Unlock()
	return nil
}

// TierStats is a snapshot of one tier.
type TierStats struct {
	Name        string `json:"name"`
	Persistent  bool   `json:"persistent"`
	Bytes       int64  `json:"bytes"`
	Capacity    int64  `json:"capacity_bytes"`
	Entries     int64  `json:"entries"`
	PinnedBytes int64  `json:"pinned_bytes"`
	Hits        uint64 `json:"hits"`
	Misses      uint64 `json:"misses"`
	Evictions   uint64 `json:"evictions"`
	Admissions  uint64 `json:"admissions"`
	Rejections  uint64 `json:"rejections"`
	Promotions  uint64 `json:"promotions"`
	Demotions   uint64 `json:"demotions"`
	// CorruptReads counts reads from the tier that failed a checksum or did not parse.
	CorruptReads uint64 `json:"corrupt_reads"`
	// Quarantined counts corrupt copies taken out of the tier (never served again).
	Quarantined uint64 `json:"quarantined,omitempty"`
	// PendingDeletes: objects whose eviction delete failed, stored but no longer
	// accounted, retried after later evictions; RetriedDeletes: such objects deleted
	// (or replaced) since.
	PendingDeletes int64  `json:"pending_deletes,omitempty"`
	RetriedDeletes uint64 `json:"retried_deletes,omitempty"`
	// Shared marks the shared (remote) tier: its bytes, capacity and entries are what
	// the store reports for everyone who shares it, its evictions are the store's own,
	// and Errors counts the operations on it that failed (served as misses).
	Shared bool   `json:"shared,omitempty"`
	Errors uint64 `json:"errors,omitempty"`
	// ChunkTokens is the number of chunk tokens the tier holds (values excluded) and
	// BytesPerToken its chunks' stored bytes per token: the cost of the tier's storage
	// format (f16, q4, ...). For the shared tier (whose contents other replicas change
	// too) they count the chunks this cache stored in it since it started: tokens
	// written and their stored bytes per token (in the shared tier's own format).
	ChunkTokens   int64   `json:"chunk_tokens,omitempty"`
	BytesPerToken float64 `json:"bytes_per_token,omitempty"`
	// QuotaViolationBytes sums the bytes a namespace held beyond its quota in the
	// tier after an operation (0 unless quota enforcement is broken; the metric
	// ragkv_chunkcache_quota_violations_total).
	QuotaViolationBytes uint64 `json:"quota_violation_bytes,omitempty"`
}

// Stats is a snapshot of the cache.
type Stats struct {
	Tiers      []TierStats `json:"tiers"`
	Chunks     int         `json:"chunks"`
	Namespaces []string    `json:"namespaces"`
	// NamespaceStats has one entry per namespace in Namespaces, in the same order.
	NamespaceStats []NamespaceStats `json:"namespace_stats"`
}

// NamespaceStats is one namespace's share of the local tiers.
type NamespaceStats struct {
	Name string `json:"name"`
	// SaltGeneration is the generation of the secret its keys are salted with (0:
	// public salts).
	SaltGeneration uint32 `json:"salt_generation"`
	// Tiers: bytes held (chunks and values) and quota (0: none) per local tier,
	// fastest first.
	Tiers []NamespaceTierUsage `json:"tiers"`
}

// NamespaceTierUsage is a namespace's bytes in one tier against its quota there.
type NamespaceTierUsage struct {
	Tier  string `json:"tier"`
	Bytes int64  `json:"bytes"`
	Quota int64  `json:"quota_bytes,omitempty"`
}

// Stats returns per-tier usage and counters.
func (c *Cache) Stats() Stats {
	var s Stats
	for _, t := range c.tiers {
		ts := t.tracker.Stats()
		s.Tiers = append(s.Tiers, TierStats{
			Name: t.name, Persistent: t.persistent,
			Bytes: ts.UsedBytes, Capacity: ts.CapacityBytes, Entries: int64(ts.Entries), PinnedBytes: ts.PinnedBytes,
			Hits: t.hits.Load(), Misses: t.misses.Load(),
			Evictions: ts.Evictions, Admissions: ts.Admissions, Rejections: ts.Rejections,
			Promotions: t.promotions.Load(), Demotions: t.demotions.Load(), CorruptReads: t.corrupt.Load(),
			Quarantined: t.quarantined.Load(), QuotaViolationBytes: ts.QuotaViolationBytes,
			PendingDeletes: t.orphanN.Load(), RetriedDeletes: t.orphanDone.Load(),
		})
	}
	if c.shared != nil {
		s.Tiers = append(s.Tiers, c.sharedStats())
	}
	type chunk struct {
		k      Key
		ns     string
		tokens int32
		value  bool
	}
	var chunks []chunk
	c.mu.RLock()
	s.Chunks = len(c.index)
	for ns := range c.known {
		s.Namespaces = append(s.Namespaces, ns)
	}
	for k, e := range c.index {
		chunks = append(chunks, chunk{k, e.ns, e.tokens, e.value})
	}
	c.mu.RUnlock()
	sort.Strings(s.Namespaces)
	nsIndex := make(map[string]int, len(s.Namespaces))
	for i, ns := range s.Namespaces {
		nsIndex[ns] = i
		st := NamespaceStats{Name: ns, SaltGeneration: c.keyer.Generation(ns), Tiers: make([]NamespaceTierUsage, len(c.tiers))}
		for ti, t := range c.tiers {
			st.Tiers[ti] = NamespaceTierUsage{Tier: t.name, Quota: t.tracker.GroupQuota(ns)}
		}
		s.NamespaceStats = append(s.NamespaceStats, st)
	}
	// Per-tier token counts and namespace bytes, outside c.mu (the trackers lock on
	// their own); sizes are the tier's own (a tier with a Format stores its own
	// encoding).
	for i, t := range c.tiers {
		var bytes int64
		for _, ch := range chunks {
			ei, ok := t.tracker.Lookup(eviction.Key(ch.k))
			if !ok {
				continue
			}
			if j, ok := nsIndex[ch.ns]; ok {
				s.NamespaceStats[j].Tiers[i].Bytes += ei.Size
			}
			if !ch.value {
				s.Tiers[i].ChunkTokens += int64(ch.tokens)
				bytes += ei.Size
			}
		}
		if s.Tiers[i].ChunkTokens > 0 {
			s.Tiers[i].BytesPerToken = float64(bytes) / float64(s.Tiers[i].ChunkTokens)
		}
	}
	return s
}

// TierPolicy is one tier's eviction configuration.
type TierPolicy struct {
	Tier string `json:"tier"`
	eviction.Config
}

// Policy returns every tier's eviction configuration, fastest tier first.
func (c *Cache) Policy() []TierPolicy {
	out := make([]TierPolicy, len(c.tiers))
	for i, t := range c.tiers {
		out[i] = TierPolicy{Tier: t.name, Config: t.tracker.Config()}
	}
	return out
}

// TierPolicyUpdate changes one tier; nil fields keep their value.
type TierPolicyUpdate struct {
	Tier          string
	Policy        *string
	Admission     *string
	Capacity      *int64
	HighWatermark *float64
	LowWatermark  *float64
}

// SetPolicy applies updates at run time. Every update is validated before any is
// applied; a capacity shrink evicts (demoting where a lower tier exists) and fails
// with ErrNoSpace, changing nothing for that tier, if hard-pinned chunks do not fit.
func (c *Cache) SetPolicy(ctx context.Context, updates []TierPolicyUpdate) ([]TierPolicy, error) {
	if !c.gate.enter() {
		return nil, ErrClosed
	}
	defer c.gate.exit()
	idx := make([]int, len(updates))
	for ui, u := range updates {
		idx[ui] = -1
		for i, t := range c.tiers {
			if t.name == u.Tier {
				idx[ui] = i
			}
		}
		if idx[ui] < 0 && c.shared != nil && u.Tier == c.shared.name {
			return nil, fmt.Errorf("%w: tier %s is shared: its store evicts by its own policy (e.g. Redis maxmemory-policy)", ErrInvalid, u.Tier)
		}
		if idx[ui] < 0 {
			names := make([]string, len(c.tiers))
			for i, t := range c.tiers {
				names[i] = t.name
			}
			return nil, fmt.Errorf("%w %q (have %v)", ErrUnknownTier, u.Tier, names)
		}
		cfg := c.tiers[idx[ui]].tracker.Config()
		if u.Policy != nil {
			cfg.Policy = *u.Policy
		}
		if u.Admission != nil {
			cfg.Admission = *u.Admission
		}
		if u.Capacity != nil {
			cfg.Capacity = *u.Capacity
		}
		if u.HighWatermark != nil {
			cfg.HighWatermark = *u.HighWatermark
		}
		if u.LowWatermark != nil {
			cfg.LowWatermark = *u.LowWatermark
		}
		cfg.EnsureDefaults()
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("tier %s: %w", u.Tier, err)
		}
	}
	for ui, u := range updates {
		t := c.tiers[idx[ui]]
		if u.Capacity != nil {
			vs, err := t.tracker.SetCapacity(*u.Capacity)
			if err != nil {
				return c.Policy(), fmt.Errorf("tier %s: %w", t.name, err)
			}
			c.processVictims(toVictims(idx[ui], vs))
		}
		if u.HighWatermark != nil || u.LowWatermark != nil {
			cfg := t.tracker.Config()
			if u.HighWatermark != nil {
				cfg.HighWatermark = *u.HighWatermark
			}
			if u.LowWatermark != nil {
				cfg.LowWatermark = *u.LowWatermark
			}
			if err := t.tracker.SetWatermarks(cfg.HighWatermark, cfg.LowWatermark); err != nil {
				return c.Policy(), fmt.Errorf("tier %s: %w", t.name, err)
			}
		}
		if u.Policy != nil {
			if err := t.tracker.SetPolicy(*u.Policy); err != nil {
				return c.Policy(), fmt.Errorf("tier %s: %w", t.name, err)
			}
		}
		if u.Admission != nil {
			if err := t.tracker.SetAdmission(*u.Admission); err != nil {
				return c.Policy(), fmt.Errorf("tier %s: %w", t.name, err)
			}
		}
		c.log.Info("chunkcache: policy changed", "tier", t.name, "config", t.tracker.Config())
	}
	return c.Policy(), nil
}

// Tiers returns the tier names, fastest first.
func (c *Cache) Tiers() []string {
	out := make([]string, len(c.tiers))
	for i, t := range c.tiers {
		out[i] = t.name
	}
	if c.shared != nil {
		out = append(out, c.shared.name)
	}
	return out
}

// Close waits for in-flight operations and open Readers, then closes the tiers.
func (c *Cache) Close() error {
	if !c.gate.close() {
		return nil
	}
	var errs []error
	for _, t := range c.tiers {
		if err := t.tier.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close tier %s: %w", t.name, err))
		}
	}
	if c.shared != nil {
		if err := c.shared.tier.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close tier %s: %w", c.shared.name, err))
		}
	}
	return errors.Join(errs...)
}

// gate lets operations run until Close, which then waits for them. Unlike an RWMutex
// it never blocks enter, so a goroutine holding a Reader can start other operations
// while Close waits.
type gate struct {
	mu     sync.Mutex
	zero   *sync.Cond
	n      int
	closed bool
}

func (g *gate) init() { g.zero = sync.NewCond(&g.mu) }

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) exit() {
	g.mu.Lock()
	g.n--
	if g.n == 0 {
		g.zero.Broadcast()
	}
	g.mu.Unlock()
}

// close returns false if already closed.
func (g *gate) close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.closed = true
	for g.n > 0 {
		g.zero.Wait()
	}
	return true
}

func nowNanos() int64 { return time.Now().UnixNano() }

// tierFormats validates tc's Format and NamespaceFormats and returns the latter under
// normalized namespace names.
func tierFormats(tc TierConfig) (map[string]Layout, error) {
	fs := map[string]Layout{"": tc.Format}
	nsFormats := map[string]Layout{}
	for ns, f := range tc.NamespaceFormats {
		n, err := NormalizeNamespace(ns)
		if err != nil {
			return nil, fmt.Errorf("tier %s: namespace formats: %w", tc.Tier.Name(), err)
		}
		nsFormats[n] = f
		fs[fmt.Sprintf(" of namespace %q", n)] = f
	}
	for what, f := range fs {
		if f.DType == 0 {
			continue
		}
		probe := Layout{Layers: 1, KVHeads: 1, HeadDim: 1}.WithFormat(f)
		if probe.Rotate {
			probe.HeadDim = 2
		}
		probe.EnsureDefaults()
		if err := probe.Validate(); err != nil {
			return nil, fmt.Errorf("tier %s: format%s: %w", tc.Tier.Name(), what, asInvalid(err))
		}
	}
	return nsFormats, nil
}

// inFormat returns obj, a chunk of namespace ns, re-encoded in the tier's format for
// ns (obj itself when the tier has none, obj is an opaque value, or the chunk is
// already in that format). Every layer's CRC is checked before it is decoded.
func (t *tierState) inFormat(obj store.Object, value bool, ns string) (store.Object, error) {
	return reencode(t.format, t.nsFormats, obj, value, ns)
}

// reencode is inFormat for a tier of this format and these namespace formats.
func reencode(format Layout, nsFormats map[string]Layout, obj store.Object, value bool, ns string) (store.Object, error) {
	if f, ok := nsFormats[ns]; ok {
		format = f
	}
	if value || format.DType == 0 {
		return obj, nil
	}
	m, err := decodeManifest(obj.Manifest)
	if err != nil {
		return obj, err
	}
	h := m.header
	target := h.Layout.WithFormat(format)
	target.EnsureDefaults()
	if target == h.Layout {
		return obj, nil
	}
	if len(obj.Parts) != h.Layers {
		return obj, fmt.Errorf("%w: %d parts for %d layers", ErrCorrupt, len(obj.Parts), h.Layers)
	}
	n := h.Elems(h.Tokens)
	k, v := make([]float32, n), make([]float32, n)
	out := store.Object{Parts: make([][]byte, h.Layers)}
	nh := kvblob.Header{Layout: target, Tokens: h.Tokens, PositionBase: h.PositionBase, PreRoPE: h.PreRoPE, LayerCRC: make([]uint32, h.Layers)}
	for i, p := range obj.Parts {
		if err := h.CheckLayer(i, p); err != nil {
			return obj, asInvalid(err)
		}
		if err := h.DecodeLayer(p, h.Tokens, k, v); err != nil {
			return obj, asInvalid(err)
		}
		s, err := target.AppendLayer(make([]byte, 0, target.LayerBytes(h.Tokens)), h.Tokens, k, v)
		if err != nil {
			return obj, fmt.Errorf("re-encode layer %d as %s: %w", i, target.Format(), asInvalid(err))
		}
		out.Parts[i], nh.LayerCRC[i] = s, kvblob.Checksum(s)
	}
	m.header = nh
	if out.Manifest, err = m.encode(); err != nil {
		return obj, err
	}
	return out, nil
}
