package chunkcache

import (
	"context"
	"errors"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// quarantine takes the copy of k held by local tier ti out of service after it failed a
// checksum or did not parse (ErrCorrupt): the tier's accounting forgets it and its
// record is deleted, so the corrupt bytes are never served again and a later put can
// store a good copy. Copies in other tiers stay (they are checked on their own reads).
// It takes the key lock; callers must not hold it.
func (c *Cache) quarantine(ti int, k Key, cause error) {
	if ti < 0 || ti >= len(c.tiers) {
		return
	}
	t := c.tiers[ti]
	mu := c.lock(k)
	mu.Lock()
	defer mu.Unlock()
	e, ok := c.index[k]
	if !t.tracker.Remove(eviction.Key(k)) {
		return // already gone (deleted, evicted or quarantined meanwhile)
	}
	t.quarantined.Add(1)
	if ok {
		c.emit(EventDeleted, k, e, ti, -1)
	}
	if err := t.tier.Delete(context.Background(), k); err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.Error("chunkcache: quarantine: delete corrupt record", "key", k.String(), "tier", t.name, "err", err)
	}
	c.mu.Lock()
	c.dropIndexLocked(k)
	c.mu.Unlock()
	c.log.Warn("chunkcache: corrupt chunk quarantined", "key", k.String(), "tier", t.name, "err", cause)
}

// corruptRead counts a read of k from tier ti (len(c.tiers): the shared tier) that
// failed a checksum or did not parse, and quarantines a local tier's copy. The shared
// tier's copy is left to its owner (another replica may hold a good one under the
// same key; the next put replaces it).
func (c *Cache) corruptRead(ti int, k Key, cause error) {
	if ti < 0 || ti >= len(c.tiers) {
		return
	}
	c.tiers[ti].corrupt.Add(1)
	c.quarantine(ti, k, cause)
}
