package store

import "github.com/ragkv/ragkv/internal/failpoint"

// Failpoints of the Badger tier's write path (package internal/failpoint; inert unless
// armed).
var (
	fpBadgerPut             = failpoint.New("store/badger/put", "Badger.Put: before the blob file is written (error: the put fails)")
	fpBadgerBlobWritten     = failpoint.New("store/badger/blob-written", "Badger.Put: the blob file written (and synced), no record references it yet")
	fpBadgerPutStaged       = failpoint.New("store/badger/put-staged", "Badger.Put: the record (and, in the earlier layout, the segments) set in the transaction, not committed")
	fpBadgerPutCommitted    = failpoint.New("store/badger/put-committed", "Badger.Put: the transaction committed, Put has not returned")
	fpBadgerDelete          = failpoint.New("store/badger/delete", "Badger.Delete: before the transaction commits (error: the delete fails)")
	fpBadgerDeleteCommitted = failpoint.New("store/badger/delete-committed", "Badger.Delete: the record deleted, its blob file not unlinked yet")
	fpBadgerBlobUnlink      = failpoint.New("store/badger/blob-unlink", "Badger: unlinking a blob file no record references (error: the unlink fails and is retried on the next GC tick)")
)
