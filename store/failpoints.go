package store

import "github.com/ragkv/ragkv/internal/failpoint"

// Failpoints of the Badger tier's write path (package internal/failpoint; inert unless
// armed).
var (
	fpBadgerPut          = failpoint.New("store/badger/put", "Badger.Put: before the transaction starts (error: the put fails)")
	fpBadgerPutStaged    = failpoint.New("store/badger/put-staged", "Badger.Put: every segment and the record set in the transaction, not committed")
	fpBadgerPutCommitted = failpoint.New("store/badger/put-committed", "Badger.Put: the transaction committed, Put has not returned")
	fpBadgerDelete       = failpoint.New("store/badger/delete", "Badger.Delete: before the transaction commits (error: the delete fails)")
)
