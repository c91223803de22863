package chunkcache

import "github.com/ragkv/ragkv/internal/failpoint"

// Failpoints at every write step of put, commit, demotion, eviction and promotion
// (package internal/failpoint; inert unless armed). The fault suite (faults_test.go)
// crashes a child process at each of them and checks the reopened cache.
var (
	fpPutStaged      = failpoint.New("chunkcache/put/staged", "Writer.Commit: every layer staged and the manifest encoded, nothing written")
	fpCommitReserved = failpoint.New("chunkcache/commit/tier-reserved", "commit: a tier's tracker reserved the chunk, the tier's Put has not run (error: the Put fails)")
	fpCommitStored   = failpoint.New("chunkcache/commit/tier-stored", "commit: a tier stored the object; later tiers and the index not yet")
	fpCommitIndexed  = failpoint.New("chunkcache/commit/indexed", "commit: every tier written and the index updated; victims not yet processed")
	fpCommitDone     = failpoint.New("chunkcache/commit/victims-processed", "commit: victims demoted or deleted; the put is about to be acknowledged")
	fpDemoteRead     = failpoint.New("chunkcache/demote/read", "demotion: before the victim is read from its tier (error: the read fails)")
	fpDemoteReserved = failpoint.New("chunkcache/demote/reserved", "demotion: the lower tier reserved the chunk, its Put has not run (error: the Put fails)")
	fpDemoteStored   = failpoint.New("chunkcache/demote/stored", "demotion: the lower tier holds the copy, the upper tier's is not deleted yet")
	fpEvictDelete    = failpoint.New("chunkcache/evict/delete", "eviction: before the victim's Delete from its tier (error: the Delete fails)")
	fpEvictDeleted   = failpoint.New("chunkcache/evict/deleted", "eviction: the victim is deleted from its tier, the index not yet updated")
	fpPromoteReserve = failpoint.New("chunkcache/promote/reserved", "promotion: the first tier reserved the chunk, its Put has not run (error: the Put fails)")
	fpPromoteStored  = failpoint.New("chunkcache/promote/stored", "promotion: the first tier stored the copy, the event not yet emitted")
)
