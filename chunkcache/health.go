package chunkcache

import (
	"context"
	"fmt"

	"github.com/ragkv/ragkv/store"
)

// Check reports whether the cache serves: it is open and every local tier that can
// probe itself (store.Prober: the disk tier) takes writes. The shared tier is not
// probed: when it fails, reads fall back to misses and the service still works.
func (c *Cache) Check(ctx context.Context) error {
	if !c.gate.enter() {
		return ErrClosed
	}
	defer c.gate.exit()
	for _, t := range c.tiers {
		if p, ok := t.tier.(store.Prober); ok {
			if err := p.Probe(ctx); err != nil {
				return fmt.Errorf("chunkcache: tier %s: %w", t.name, err)
			}
		}
	}
	return nil
}
