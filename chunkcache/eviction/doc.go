// Package eviction decides what a chunk-cache tier keeps. One Tracker per tier accounts
// the tier's entries (size in bytes, recompute cost, pin) against a byte capacity and,
// when an insert does not fit, names the victims; it does no I/O itself — the tier
// demotes or deletes what Reserve returns.
//
// Policies (switchable at run time on a live Tracker; entries are kept and the new
// policy is seeded in recency order with their hit counts):
//
//   - "lru": least recently used.
//   - "lfu": least frequently used with dynamic aging (LFU-DA: priority = L + freq, L
//     the inflation clock set to the last evicted priority; Arlitt et al., "Evaluating
//     content management techniques for Web proxy caches", 2000). O(log n) heap.
//   - "s3fifo": S3-FIFO (Yang, Zhang, Qiu, Yue, Rashmi, "FIFO queues are all you need
//     for cache eviction", SOSP 2023): a small FIFO holding 10% of the bytes filters
//     one-hit wonders, a main FIFO with lazy reinsertion (2-bit frequency), and a ghost
//     FIFO of recently evicted small-queue keys that sends a returning key straight to
//     main. O(1) amortized.
//   - "gdsf": Greedy-Dual-Size-Frequency (Cherkasova, "Improving WWW proxies
//     performance with Greedy-Dual-Size-Frequency caching policy", HP Labs 1998):
//     priority = L + freq·cost/size, where cost is the recompute cost a hit saves (e.g.
//     prefill FLOPs or tokens) and L, the inflation clock, is raised to each evicted
//     priority, so entries not touched for a while decay relative to new ones. O(log n).
//   - "wtinylfu": W-TinyLFU (Einziger et al. 2017, §4; Caffeine's policy): a window
//     LRU of 1% of the bytes, then a segmented LRU (80% protected) that a window
//     overflow enters only if its TinyLFU estimate beats main's victim. O(1).
//   - "fifo": first in, first out; hits change nothing (the baseline of the FIFO
//     family and of libCacheSim comparisons).
//   - "sieve": SIEVE (Zhang, Yang, Yue, Vigfusson, Rashmi, "SIEVE is Simpler than LRU",
//     NSDI 2024): a FIFO queue with a visited bit and a hand that sweeps from the old
//     end, clearing bits, to the first unvisited entry; survivors keep their place. O(1)
//     amortized.
//   - "arc": ARC (Megiddo, Modha, FAST 2003): recency list T1 and frequency list T2
//     with ghost lists B1/B2 steering the target size p of T1, in bytes (a ghost hit
//     moves p by max(|B2|/|B1|, 1) times the request's size). O(1).
//   - "lirs": LIRS (Jiang, Zhang, SIGMETRICS 2002): entries with a short
//     inter-reference recency (LIR, 99% of the bytes) are kept; the others (HIR) pass
//     through a 1% FIFO queue and are remembered as ghosts on the recency stack, so a
//     quick return promotes them. O(1) amortized.
//
// SIEVE, ARC and LIRS are checked request by request against independent page-based
// implementations written from the papers (reference_test.go), and with unit sizes
// they reproduce libCacheSim's hit ratios (see package sim's cross-check). Policies that
// need to know about a miss before choosing victims (ARC's and LIRS's ghosts) get it
// through the policy's miss hook; ghosts are kept by hash and size in a second slab
// (ghost.go) and bounded by the capacity.
//
// The default is "lru" (predictable); "s3fifo", "wtinylfu" or TinyLFU admission do
// better on skewed and scan-polluted traces, and "gdsf" (with TinyLFU) saves the most
// recompute cost when sizes and cost per byte vary (see `ragkv bench eviction`).
//
// Admission: an optional TinyLFU filter (Einziger, Friedman, Manes, "TinyLFU: A Highly
// Efficient Cache Admission Policy", ACM Transactions on Storage 2017): a count-min
// sketch of 4-bit counters behind a doorkeeper Bloom filter, halved every 10·width
// accesses; a new key that needs an eviction is admitted only if its estimated
// frequency exceeds that of the victim the policy would pick. The sketch is hand-written
// (a few dozen lines, no allocation per access) rather than taken from a cache library,
// because the policies here must share the tracker's slab and pin handling.
//
// Pins: hard-pinned entries are never evicted (Reserve fails with ErrNoSpace instead);
// soft-pinned entries are evicted only when no unpinned entry is left, least recently
// used first. Pinned entries leave the policy's structures and return on unpin.
// Watermarks: when usage after an insert would exceed High·Capacity, entries are
// evicted until usage ≤ Low·Capacity.
//
// Entries live in a slab addressed by int32 indices with intrusive links and heap
// positions, so Touch, Reserve and Remove allocate nothing in steady state (pass a
// reused slice to AppendReserve). The subpackage sim replays synthetic traces through
// the policies and computes Belady's offline optimum (Belady, "A study of replacement
// algorithms for a virtual-storage computer", IBM Systems Journal 1966).
package eviction
