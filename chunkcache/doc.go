// Package chunkcache owns ragkv's chunk KV cache: content keys, the KV blob format
// (internal/kvblob, documented there) and the tiered Cache that stores chunks in host
// RAM and on local disk (package store) with pluggable eviction per tier (package
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
//	namespace salt: SHA-256("ragkv.chunkcache.namespace.v1" 0x00 namespace), 32 bytes
//	str architecture, str weights digest, str tokenizer digest
//	f64 rope theta, u32 rope dims, str rope style, str rope scaling, f64 rope factor,
//	u32 rope original context
//	u8 KV dtype (1 f32, 2 f16, 3 bf16, 4 int8)
//	u32 token count, then each token id as u32
//
// The same identity gives the same key in every process and after restarts (tested
// across two processes and against an independent implementation). The position base
// is not part of the key: a chunk's KV is reusable at any position after re-rotation,
// which is what CacheBlend-style fusion does; it is recorded in the blob header.
//
// # Namespaces
//
// Every operation names a namespace ("" means "default"). A chunk is visible only in
// the namespace it was put in: its key is salted with the namespace and the cache
// records the namespace with the chunk and checks it on every access. A namespace
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
// tier in `ragkv serve`, so an acknowledged chunk survives a crash). A chunk a tier
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
// # Metrics
//
// Per tier, on the injected prometheus.Registerer: ragkv_chunkcache_bytes,
// _capacity_bytes, _entries, _pinned_bytes, _hits_total, _misses_total,
// _evictions_total, _admissions_total, _rejections_total, _promotions_total,
// _demotions_total, _corrupt_reads_total (label tier), and ragkv_chunkcache_chunks.
// Usage reports per-namespace bytes and the hottest, largest and pinned chunks (for the
// admin console).
package chunkcache
