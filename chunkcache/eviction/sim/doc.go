// Package sim replays request traces through eviction.Tracker policies, computes
// Belady's offline optimum and the static-popularity oracle, reads real traces, and
// cross-checks the replays against libCacheSim, for the `ragkv bench eviction` command
// and the policy tests.
//
// Synthetic traces are deterministic for a seed: independent Zipf requests (α 0.8 and
// 1.1), Zipf mixed with long one-off sequential scans, a Zipf workload whose popular
// set is replaced halfway, and a variable-size, variable-cost trace whose chunk sizes
// and recompute costs follow per-chunk token counts of two models sharing a cache.
// Replay drives the production Tracker exactly as a tier does (Touch on lookup, Reserve
// on miss, ErrNotAdmitted = bypass); a hit does not change the size the tracker holds.
//
// # Trace files (ReadTrace)
//
// The formats of libCacheSim (Yang et al., https://github.com/1a1a11a/libCacheSim),
// read as its cachesim reads them: "txt" (one object id per line, ids compared as
// strings), "csv" (columns chosen with libCacheSim's trace-type-params, e.g.
// "obj-id-col=5,obj-size-col=4,has-header=true"; a header is detected as libCacheSim
// does when not given), and "oraclegeneral" (little-endian 24-byte records: u32
// timestamp, u64 object id, u32 size, i64 next-access request index, -1 if none).
// Requests of size 0 are skipped and cache sizes are ⌊fraction · working-set bytes⌋,
// both as in cachesim, so that LRU, FIFO, SIEVE, ARC and LIRS give cachesim's numbers
// on its sample trace (TestLibCacheSimCrossCheck; RunCachesim runs cachesim itself).
//
// # Chunk traces (format "chunk")
//
// ragkv's own trace of chunk-cache lookups, for judging the cost-aware policies on RAG
// traffic (`ragkv bench rag --dump-trace` is to write it; ChunkTraceWriter writes it):
// UTF-8 text, first line exactly
//
//	# ragkv chunk trace v1
//
// then a comma-separated header line naming the columns, then one request per line.
// Required columns: key (the chunk's identity, e.g. its 64-hex content key; no commas,
// quotes or line breaks), size_bytes (the stored KV size, an integer ≥ 0; 0 is
// skipped), cost (the recompute cost a hit saves, a finite number ≥ 0: prefill FLOPs or
// tokens). Optional columns (namespace, tokens, anything else) are ignored by the
// replay; columns may come in any order; later lines starting with '#' are comments.
// A chunk whose size or cost changes between requests is replayed with each request's
// values. Example:
//
//	# ragkv chunk trace v1
//	key,size_bytes,cost,namespace,tokens
//	3f6c…e1,4194304,3.4e12,docs,512
//
// Belady computes the offline optimum hit count for unit-size traces (Belady, "A study
// of replacement algorithms for a virtual-storage computer", IBM Systems Journal 5(2),
// 1966): on a miss with a full cache, evict the key whose next use is farthest in the
// future — or bypass the requested key if its own next use is farther still, which is
// the optimum when admission may reject (as TinyLFU does). A lazy max-heap over next-use
// request indices makes it O(log n) per request.
package sim
