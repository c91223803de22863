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
// Badger.Put writes every segment (consecutive parts packed into one Badger value of
// at most SegmentBytes, 64 MiB by default) and then the object's record in ONE Badger
// transaction, and readers require the record: a put that is interrupted (error,
// context, crash, SIGKILL) leaves nothing readable, because Badger replays only
// committed transactions from its write-ahead log. OpenBadger additionally removes
// segments without a record and records whose segments are missing, so a restart always
// sees whole objects. Segment values live in Badger's value log (ValueThreshold is
// small); a reader looks a segment up once and copies each part straight out of the
// value log's memory map at its offset into the caller's buffer, so one layer is read
// without copying the others and without an LSM lookup per layer. A reader holds a
// read-only transaction, i.e. a consistent snapshot: a concurrent Delete or overwrite
// never tears an object that is being read.
//
// Why Badger and not plain files: atomic multi-value commits, crash recovery, prefix
// scans for restart accounting and value-log space reclamation come with it; `ragkv
// bench store --tier disk` compares its read throughput with plain files in the same
// directory (target ≥ 0.7 of plain-file speed).
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
