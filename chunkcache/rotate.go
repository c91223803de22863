package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// Key is the content key of id under the cache's keyer: the one way to compute keys
// for this cache (the server's chunk references by spec, blend's segment keys).
func (c *Cache) Key(id ChunkID) (Key, error) { return c.keyer.ChunkKey(&id) }

// Keyer is the cache's keyer.
func (c *Cache) Keyer() *Keyer { return c.keyer }

// RotateResult reports a salt rotation.
type RotateResult struct {
	// Namespace rotated ("" : the base secret, every namespace) and the new generation.
	Namespace  string
	Generation uint32
	// Chunks (and values) deleted from the local tiers (and the shared tier), and the
	// bytes that freed (summed over tiers).
	Deleted    int
	FreedBytes int64
}

// RotateSalt gives namespace ns (or, with ns "", every namespace) a new salt secret and
// deletes every chunk and value stored under the old keys from every tier, the shared
// one included (as far as this cache knows them: objects that only other replicas put
// into the shared tier are unreachable under the new keys and left to its eviction and
// TTLs). The secret file is rewritten first, so after a crash in the middle the
// remaining old chunks no longer hash to their keys and the next start deletes them.
// A put that started before the rotation and commits after it is stored under its new
// key (commits re-derive their key under a lock the rotation takes).
// Errors: ErrNoSecret (public salts), ErrInvalid (namespace name).
func (c *Cache) RotateSalt(ctx context.Context, ns string) (RotateResult, error) {
	if !c.gate.enter() {
		return RotateResult{}, ErrClosed
	}
	defer c.gate.exit()
	if ns != "" {
		n, err := NormalizeNamespace(ns)
		if err != nil {
			return RotateResult{}, err
		}
		ns = n
	}
	type item struct {
		ns string
		k  Key
	}
	var stale []item
	// No commit is in flight while the secret changes and the old keys are listed:
	// every chunk stored under an old key is in the list, and every later commit
	// derives its key with the new secret.
	c.rot.Lock()
	gen, err := c.keyer.Rotate(ns)
	if err == nil {
		c.mu.RLock()
		for k, e := range c.index {
			if ns == "" || e.ns == ns {
				stale = append(stale, item{e.ns, k})
			}
		}
		c.mu.RUnlock()
	}
	c.rot.Unlock()
	if err != nil {
		return RotateResult{}, err
	}
	res := RotateResult{Namespace: ns, Generation: gen}
	sort.Slice(stale, func(i, j int) bool { return string(stale[i].k[:]) < string(stale[j].k[:]) })
	var firstErr error
	for _, it := range stale {
		if err := ctx.Err(); err != nil {
			// The rest are unreachable already; a restart deletes them.
			return res, fmt.Errorf("chunkcache: rotate salt: %d of %d stale chunks deleted: %w", res.Deleted, len(stale), err)
		}
		freed, err := c.deleteStale(ctx, it.ns, it.k)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if err == nil {
			res.Deleted++
			res.FreedBytes += freed
		}
	}
	c.log.Info("chunkcache: salt rotated", "namespace", ns, "generation", gen, "deleted", res.Deleted, "freed_bytes", res.FreedBytes)
	if firstErr != nil {
		return res, fmt.Errorf("chunkcache: rotate salt: %w", firstErr)
	}
	return res, nil
}

// staleKey reports whether a stored object that does not hash to its key under the
// current salts does under a salt its namespace had before (a retired secret's, or the
// public salt of a data directory written before salt secrets).
func (c *Cache) staleKey(km *keyMismatchError) bool {
	for _, s := range c.keyer.staleSalts(km.ns) {
		if km.check(s) {
			return true
		}
	}
	return false
}

// deleteStale deletes one chunk of a rotated namespace (pinned or not); one deleted
// meanwhile is not an error.
func (c *Cache) deleteStale(ctx context.Context, ns string, k Key) (int64, error) {
	freed, err := c.Delete(ctx, ns, k)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return freed, err
}
