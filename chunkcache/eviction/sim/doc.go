// Package sim replays request traces through eviction.Tracker policies and computes
// Belady's offline optimum, for the `ragkv bench eviction` command and the policy tests.
//
// Traces are synthetic and deterministic for a seed: independent Zipf requests (α 0.8
// and 1.1), Zipf mixed with long one-off sequential scans, a Zipf workload whose
// popular set is replaced halfway, and a variable-size, variable-cost trace whose chunk
// sizes and recompute costs follow per-chunk token counts of two models sharing a
// cache. Replay drives the production Tracker exactly as a tier does (Touch on lookup,
// Reserve on miss, ErrNotAdmitted = bypass).
//
// Belady computes the offline optimum hit count for unit-size traces (Belady, "A study
// of replacement algorithms for a virtual-storage computer", IBM Systems Journal 5(2),
// 1966): on a miss with a full cache, evict the key whose next use is farthest in the
// future — or bypass the requested key if its own next use is farther still, which is
// the optimum when admission may reject (as TinyLFU does). A lazy max-heap over next-use
// request indices makes it O(log n) per request.
package sim
