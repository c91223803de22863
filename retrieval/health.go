package retrieval

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Check reports whether the store serves: it is open and its Badger database answers
// a read.
func (s *Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed || s.db.IsClosed() {
		return ErrClosed
	}
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get([]byte(kManifest + "\x00health"))
		return err
	})
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("retrieval: store does not read: %w", err)
	}
	return nil
}
