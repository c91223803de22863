package retrieval

import "github.com/ragkv/ragkv/internal/failpoint"

// failpoints are the named steps of an ingest, compaction, rebuild and delete
// (package internal/failpoint, "retrieval/<step>"; inert unless armed). Store.hook
// evaluates them after Options.testHook.
var failpoints = map[string]*failpoint.Point{}

func init() {
	for _, p := range []struct{ name, doc string }{
		{"shards-built", "ingest: new shards built on disk, passages and manifest not written"},
		{"passages-written", "ingest: passages written, manifest not switched"},
		{"redo-written", "ingest (upsert/delete): redo log written, manifest not switched"},
		{"committed", "ingest: manifest switched (the commit point), redo log not applied"},
		{"compact-built", "compaction: merged shard built, manifest not switched"},
		{"compact-committed", "compaction: manifest switched, old shards not removed"},
		{"rebuild-built", "rebuild: new shards built, manifest not switched"},
		{"rebuild-committed", "rebuild: manifest switched, old shards not removed"},
		{"manifest-deleted", "collection delete: manifest gone, keys not dropped"},
	} {
		failpoints[p.name] = failpoint.New("retrieval/"+p.name, p.doc)
	}
}
