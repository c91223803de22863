// Package store owns ragkv's storage tiers: the Tier interface that the chunk cache
// stacks (fastest first), and its implementations, Memory (host RAM), Badger (local
// disk, github.com/dgraph-io/badger/v4) and Redis (a remote tier shared by replicas,
// one Redis or a Redis Cluster, github.com/redis/go-redis/v9).
//
// A tier stores opaque objects under 32-byte content keys. An object is a small
// manifest plus a list of parts (for the chunk cache: the KV blob header and metadata,
// then one part per transformer layer), and every part can be read on its own, so a
// consumer can start on layer 0 while later layers are still being read.
//
// A tier does no eviction and enforces no budget: the chunk cache decides what each
// tier holds (package chunkcache/eviction) and asks the tier to store, read and delete.
// A future GPU tier (device memory) or object store (S3) implements the same
// interface; nothing in it assumes host memory or a local file. A tier that other
// processes share implements SharedTier: the chunk cache asks it instead of budgeting
// it.
//
// # Atomicity and recovery (Badger)
//
// Badger.Put writes the object's parts, concatenated, to a new blob file
// (blobs/<key[0]>/<key>-<generation>, write(2), fsynced with its directory under
// SyncWrites) and then commits the object's record (part sizes, manifest, generation)
// in ONE Badger transaction; readers require the record: a put that is interrupted
// (error, context, crash, SIGKILL) leaves nothing readable, because Badger replays
// only committed transactions from its write-ahead log and the record names the blob
// generation it was committed with. An overwrite or Delete commits first and unlinks
// the replaced blob afterwards (a failed unlink is retried on the next GC tick).
// OpenBadger additionally removes records whose blob file is missing or of the wrong
// size and blob files that no record names, so a restart always sees whole objects
// and leaves no stray files. A reader opens the blob file when it opens the object and
// reads each part with pread(2) at its offset, so one layer is read without the others;
// the open file is its snapshot: a concurrent Delete or overwrite unlinks the name,
// never the data being read.
//
// Blob files instead of Badger's value log: Badger reads and writes its value log
// through memory maps, so the pages of every chunk put or read stay in the process's
// resident set while the value-log file exists, and value-log GC rewrites a file only
// once half of it is garbage: under steady put/evict traffic the RSS grew with the
// value log (issue 11's rss_growth_frac). Blob pages live in the kernel's page cache,
// outside the process, and an evicted chunk's file is gone at once. Objects written by
// earlier versions (parts as Badger values, "segments") are still read, repaired and
// deleted; an overwrite moves them to a blob file.
//
// Why Badger for the records: atomic commits, crash recovery and prefix scans for
// restart accounting come with it; `ragkv bench store --tier disk` compares the tier's
// read throughput with plain files in the same directory (target ≥ 0.7 of plain-file
// speed).
//
// # Remote tier (Redis)
//
// Redis stores an object as a record key and segment keys that share one hash tag (so
// a Redis Cluster keeps them on one node): the record (generation, part sizes and
// CRC-32C, manifest, its own CRC) under <prefix>{<key hex>}, and the parts packed into
// segments of at most 8 MiB under <prefix>{<key hex>}:<generation>:<segment> (see the
// key layout in redis.go). Commit protocol: a put writes its segments under a fresh
// random generation with a staging TTL, then one Lua script checks that every segment
// is there, sets the record and gives the segments the object's TTL — atomically, so
// a crash, a SIGKILL or a concurrent writer never exposes a partial object, and what a
// dead put wrote expires. An overwrite leaves the replaced generation readable for a
// grace period, so a reader that opened it keeps a consistent object. Reads: one
// script checks the record's segments and returns the record with the first segment
// when it is small (one round trip for a small chunk); further layers come in
// pipelined GETRANGE batches that double in size, each part's CRC checked. TTLs slide
// (an open refreshes them). Redis's own eviction (maxmemory-policy) is reconciled: a
// record whose segments were evicted reads as absent (and is deleted), never as an
// error; a part that disappears while a reader streams it is ErrNotFound.
package store
