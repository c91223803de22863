package retrieval

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Passage is one stored passage of a collection.
type Passage struct {
	ID    string
	DocID string
	Title string
	Text  string
}

// Passages returns every passage of the collection's current generation in passage-id
// order (the order Badger keeps them: document id, then passage index), from one
// consistent read (passages a concurrent ingest adds are not included).
func (s *Store) Passages(ctx context.Context, name string) ([]Passage, error) {
	sn, err := s.pin(name)
	if err != nil {
		return nil, err
	}
	gen := sn.m.Generation
	sn.release()
	var out []Passage
	err = s.db.View(func(txn *badger.Txn) error {
		prefix := collKey(kPassage, name)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			pid := string(it.Item().Key()[len(prefix):])
			var p *passageRecord
			var g uint64
			err := it.Item().Value(func(v []byte) error {
				var err error
				g, p, err = decodePassage(v)
				return err
			})
			if err != nil {
				return fmt.Errorf("%w: passage %q of %q: %v", ErrCorrupt, pid, name, err)
			}
			if g <= gen {
				out = append(out, Passage{ID: pid, DocID: p.Doc, Title: p.Title, Text: p.Text})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retrieval: passages of %q: %w", name, err)
	}
	return out, nil
}
