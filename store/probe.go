package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Prober is a tier that can tell whether it takes writes now (health checks).
type Prober interface {
	// Probe writes a small record outside the object key space and returns an error
	// if the write fails (disk full, read-only, closed).
	Probe(ctx context.Context) error
}

// prefixProbe keys the disk tier's probe record; repair and Scan ignore it (they read
// only the record and segment prefixes).
const prefixProbe = 'h'

var _ Prober = (*Badger)(nil)

// Probe writes the probe record (the current time) through Badger's write path.
func (b *Badger) Probe(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.db.IsClosed() {
		return ErrClosed
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(time.Now().UnixNano()))
	if err := b.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte{prefixProbe, 'p'}, v[:]) }); err != nil {
		return fmt.Errorf("store: disk tier does not take writes: %w", err)
	}
	return nil
}
