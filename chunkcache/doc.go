// Package chunkcache owns ragkv's chunk KV cache: content keys, the KV blob format
// (internal/kvblob, documented there) and the tiered Cache that stores chunks in host
// RAM, on local disk and in a remote tier shared by replicas (package store) with pluggable eviction per tier (package
// chunkcache/eviction). It implements the storage side of chunk-level KV reuse for RAG
// as in CacheBlend (Yao et al., EuroSys 2025) and Cache-Craft (Agarwal et al., SIGMOD
// 2025), with LMCache-style tiering (host RAM over local disk).
//
// # Content keys (version 1)
//
// A chunk's key is SHA-256 over, in order (integers little-endian, strings as a u32
// byte length then the bytes, floats as IEEE 754 binary64 bits with -0 written as +0):
//
//	"ragkv.chunkcache.key" 0x00
//	u32 KeyVersion (1)
//	namespace salt, 32 bytes (Keyer): with a secret (`ragkv serve`: OpenKeyer on
//	   <data-dir>/keys/salt.secret) HMAC-SHA256(secret, "ragkv.chunkcache.namespace.v2"
//	   0x00 namespace); with public salts (PublicKeyer, the library default)
//	   SHA-256("ragkv.chunkcache.namespace.v1" 0x00 namespace)
//	str architecture, str weights digest, str tokenizer digest
//	f64 rope theta, u32 rope dims, str rope style, str rope scaling, f64 rope factor,
//	u32 rope original context
//	u8 KV dtype (1 f32, 2 f16, 3 bf16, 4 int8, 5 q4, 6 q2, 7 mixed): the dtype the chunk
//	   was put as; a tier with its own Format (TierConfig.Format) keeps a re-encoded
//	   copy under the same key
//	u32 token count, then each token id as u32
//
// The same identity gives the same key in every process and after restarts under the
// same keyer (tested across two processes and against an independent implementation).
//
// # Salt secrets
//
// Options.Keyer derives every key of a cache (Cache.Key, Cache.ValueKey; nothing
// else computes keys). With a secret, a client that knows a namespace and a text
// cannot compute the chunk's key, so keys are obtained from the server only (PutChunk,
// lookups by spec, Prefill, Retrieve with_keys) and a key says nothing to whoever does
// not hold it. The secret file (format version 1: "ragkv-salt-secret 1", a base
// secret and per-namespace secrets, each with a generation) is created 0600 on first
// start; a file readable by others is refused. Cache.RotateSalt replaces a
// namespace's secret (or the base secret: every namespace) by a new random one of the
// next generation — the file is rewritten first — and deletes every chunk and value
// stored under the old keys from every tier (as far as this cache's index knows them;
// in the shared tier, objects only other replicas put become unreachable and are left
// to Redis's eviction and TTLs). The replaced secret stays in the file as "retired"
// until the next start: chunks still stored under it after a crash in the middle hash
// to their keys under a retired salt, and that start deletes them and prunes the
// retired secrets. Chunks that hash to their keys under no salt the keyer knows
// (current, retired, or public — a data directory written before salt secrets, which
// the first start with a secret takes over by deleting its chunks) are foreign: most
// likely the wrong secret file. New then fails with ErrForeignChunks and deletes
// nothing, unless Options.DropForeignChunks. Replicas sharing a remote tier must share
// the secret file (a rotation on one replica needs the file copied and the others
// restarted). `ragkv serve` and `ragkv precompute` never create a secret for a disk
// tier that already holds chunks (a data directory written with public salts, which a
// new secret would take over by deleting them): they refuse to start, and
// `--salt-secret-file public` keeps public salts for such a directory.
//
// # Quotas
//
// TierConfig.Quotas bounds namespaces' bytes per local tier (eviction.Tracker groups):
// a namespace at its quota evicts its own least recently used chunks (unpinned first,
// then soft-pinned) to make room for its own put, demotion or promotion; no operation
// of another namespace evicts a quota namespace's chunks (the tier's policy chooses
// victims among namespaces without a quota, then the putting namespace's own), so a
// namespace within its quota keeps its chunks; a chunk that cannot fit its quota is
// not stored in that tier (a put fails with ErrNoSpace when no tier takes it). A tier's quotas sum to at most its capacity. Stats reports each
// namespace's bytes per tier against its quota, and
// ragkv_chunkcache_quota_violations_total the bytes held beyond a quota after an
// operation (0 unless enforcement is broken). The position base
// is not part of the key: a chunk's KV is reusable at any position after re-rotation,
// which is what CacheBlend-style fusion does; it is recorded in the blob header.
//
// # Namespaces
//
// Every operation names a namespace ("" means "default"). A chunk is visible only in
// the namespace it was put in: its key is salted with the namespace and the cache
// records the namespace with the chunk and checks it on every access (with a salt
// secret a client also cannot compute another namespace's keys). A namespace
// exists if it is configured (Options.Namespaces), has received a put since start, or
// holds chunks on disk at startup; other names give ErrUnknownNamespace.
//
// # Stored form
//
// A chunk is one store.Object: the manifest (namespace, model fingerprint, token ids,
// cost, pin, created time, metadata, and the KV blob header with the per-layer CRCs)
// plus one part per layer, each part a kvblob layer section. Concatenating the blob
// header and the parts gives a standard KV blob. Layers are read independently, and
// every read from a persistent tier checks the layer's CRC-32C.
//
// # Tiers
//
// Options.Tiers are ordered fastest first; each has an eviction.Tracker that decides
// what it keeps within its byte budget. A put stages all layers in memory (Writer) and
// on Commit writes the first tier and every WriteThrough tier (the persistent disk
// tier in `ragkv serve`, so an acknowledged chunk survives a crash: a put that a
// persistent tier fails to store — disk full, I/O error — fails and leaves no copy in
// the other tiers). A chunk a tier
// evicts is demoted to the next tier if that tier does not hold it yet, and deleted
// from the last tier. A chunk read in full from a lower tier is promoted into the
// first tier when the Reader closes (subject to that tier's admission filter; a pinned
// chunk bypasses admission filters, in puts, demotions and promotions alike). After a
// restart the trackers are rebuilt from the persistent tiers, oldest chunk first.
//
// # Atomicity and concurrency
//
// A chunk becomes visible only when Commit stores its last byte: the store tiers write
// a whole object atomically (see package store), and nothing in the cache points at a
// chunk before that. Operations that change a key (put, delete, pin, eviction,
// demotion, promotion) hold that key's lock (striped); a goroutine holds at most one
// key lock at a time, so there is no lock ordering to get wrong. A put reserves space
// in a tier's tracker first and lets go of its key lock before it deletes or demotes
// the victims, each under the victim's own key lock; when Commit returns, the victims
// it caused have left their tiers, so the byte budget of each tier holds (checked by a
// rapid property test together with "a hard-pinned chunk is never evicted"). Readers
// take no key lock: a Reader reads a snapshot (immutable objects in RAM, a read-only
// transaction on disk).
//
// # Shared tier
//
// A last tier implementing store.SharedTier (the Redis remote tier of `ragkv serve
// --remote`) is shared by the replicas. The cache keeps no tracker for it: Redis evicts
// by its own policy. Every put writes it (after the local tiers, under the key's lock;
// values put without WriteThrough reach it by demotion), the last local tier demotes
// into it, Delete removes the chunk from it, and an Open or Lookup the local tiers
// cannot answer goes to it — for any namespace, since other replicas create
// namespaces. An object read from it is checked (manifest hash, namespace, kind, every
// layer's CRC) and promoted into the first tier when read in full, unpinned (pins are
// per replica). Its failures never fail a request: they are misses, logged and counted
// (TierStats.Errors), and after one the tier is skipped for a backoff (250 ms doubling
// to 5 s) so that a Redis that is down costs little. Content keys make the sharing
// safe: the same chunk has the same key in every process. Its TierConfig.Format and
// NamespaceFormats are honoured like a local tier's (`serve --remote-kv-format`): puts
// and demotions into it are re-encoded (e.g. q4 in Redis under f16 in RAM), promotions
// out of it re-encode into the first tier's format, and its TierStats.BytesPerToken is
// that of the chunks this cache stored in it.
//
// # Values
//
// Besides chunks the cache stores opaque values under a caller's name (value.go; the
// RESP endpoint, package resp): their own key domain, manifest kind and optional TTL,
// in the same tiers under the same eviction, pins, events and metrics.
//
// # Events
//
// Every change of where a chunk is — stored, evicted, promoted, demoted, deleted, per
// tier — is an Event with a sequence number in a ring of the last EventLogSize events
// (events.go), emitted under the key's lock so a key's events are in the order of its
// changes. A Watcher resumes after any retained position of the same run (Epoch); a
// restart or a position that fell out of the ring is ErrEventsLost, and the consumer
// resynchronizes with Snapshot, whose position makes snapshot + later events exact.
// WatchChunks (package server) streams them, so a router knows what each replica holds.
//
// # Metrics
//
// Per tier, on the injected prometheus.Registerer: ragkv_chunkcache_bytes,
// _capacity_bytes, _entries, _pinned_bytes, _hits_total, _misses_total,
// _evictions_total, _admissions_total, _rejections_total, _promotions_total,
// _demotions_total, _corrupt_reads_total, _errors_total (label tier; the shared tier's
// bytes, capacity and entries are what its store reports), and ragkv_chunkcache_chunks.
// Usage reports per-namespace bytes and the hottest, largest and pinned chunks (for the
// admin console).
package chunkcache
