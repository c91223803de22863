package retrieval

import "fmt"

// checkFreeSpace fails with ErrNoSpace when writing need more bytes would leave less
// than Options.MinFreeBytes free on the store's filesystem.
func (s *Store) checkFreeSpace(need int64) error {
	if s.opts.MinFreeBytes < 0 {
		return nil
	}
	free, ok, err := freeBytes(s.opts.Dir)
	if err != nil {
		return fmt.Errorf("retrieval: free space of %s: %w", s.opts.Dir, err)
	}
	if !ok {
		return nil
	}
	if free-need < s.opts.MinFreeBytes {
		return fmt.Errorf("%w: %d bytes free on the retrieval store's filesystem, an ingest of about %d bytes must leave %d",
			ErrNoSpace, free, need, s.opts.MinFreeBytes)
	}
	return nil
}

// estimatedBytes is what committing the pending passages may write: their text and
// vectors twice (the passage records and the lexical and dense indexes).
func (in *Ingest) estimatedBytes() int64 {
	var n int64
	for _, p := range in.pending {
		n += int64(len(p.text)+len(p.title)+8*len(p.vec)) * 2
	}
	return n
}
