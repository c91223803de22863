// Package blend owns ragkv's fused prefill: the KV cache of a RAG prompt
// [system prefix] + chunk_1 + … + chunk_k + query built from chunk KV caches computed
// ahead of time, with a small recompute that restores the cross-chunk attention the
// cached chunks never saw. It implements
//
//   - CacheBlend (Yao et al., "CacheBlend: Fast Large Language Model Serving for RAG
//     with Cached Knowledge Fusion", EuroSys 2025): layer 0 recomputed for every token;
//     at the check layer (1) fresh K/V for every token, the per-token deviation from the
//     cached K/V, and the top-r tokens selected (the query always); from then on only
//     the selected tokens are recomputed, their fresh K/V written over the cached rows,
//     each attending to every row with the causal mask by absolute position. With the
//     paper's gradual filtering (§4.3, which no public implementation has) the check
//     layer keeps twice as many tokens and the next layer narrows them by their fresh
//     deviation there, at the same mean compute per layer.
//   - Cache-Craft (Agarwal et al., "Cache-Craft: Managing Chunk-Caches for Efficient
//     Retrieval-Augmented Generation", SIGMOD 2025): a cache-context impact per chunk,
//     CCI × (1 − β) — CCI the stored share of the chunk's attention paid to other
//     chunks (inter- vs intra-chunk attention when the chunk was seen in a context), β
//     the order-aware overlap (longest common subsequence) of the context its KV was
//     computed in with the chunks now before it — splits the budget over the chunks
//     (0 = reuse as is: a chunk whose KV context is exactly its current one); in each
//     chunk the tokens with the highest stored outside-attention are recomputed, in
//     every layer. The plan needs no deviation pass, so it is known before any layer
//     is loaded.
//   - the baselines full (prefill of the whole prompt), prefix (reuse the longest run
//     of leading segments whose KV is exact here — prefix caching as in vLLM and
//     SGLang — and recompute the rest) and naive (concatenate the cached chunks with RoPE
//     correction and compute only the query).
//
// # Invariants
//
// The fused KV has one row per prompt token, row i at position i. A chunk's cached K
// was rotated at its stored position base; the loader re-rotates it to the chunk's
// position here with the exact RoPE delta (model.RotateK). At ratio 1 CacheBlend and
// Cache-Craft recompute every token through the same computation as the full prefill
// and give its KV and logits bit for bit (tested). CacheBlend at ratio 0 with the
// check layer left stale equals naive up to the RoPE re-rotation's rounding (tested).
//
// # Pipelining
//
// A Prefill owns one loader goroutine that reads the cached segments layer by layer
// (Source.ReadLayer: from the chunk cache's memory or disk tier) straight into the
// fused KV and re-rotates K, while the caller computes: layer l+1 loads while layer l
// is recomputed. Stats.LoadHiddenFrac reports the share of the loading that overlapped
// computation. Selective recompute gathers the selected rows into one contiguous batch
// per layer (one GEMM per projection), and attention runs through the engine's GEMM
// attention with causal block trimming.
//
// # Stored form
//
// Precompute (precompute.go) prefills each chunk alone after the system prefix and
// stores its KV through the chunk cache with Meta (meta.go) under the metadata key
// MetaKey: the hashes of the segments its KV saw (the system prefix), and Cache-Craft's
// statistics from a pass over the chunks in a context (by default the chunks before it
// in the input), with the hashes of the chunks that preceded it there. The chunk's
// cache key folds the system prefix into the model fingerprint (its KV depends on it).
//
// # Defaults
//
// The defaults (K+V deviation, gradual filtering ×2 over one layer, Cache-Craft tokens
// ranked by their layer-1 outside mass) are the best of the variants measured with
// `ragkv eval blend` on stories260K (200 dev stories, 3 chunks; share of naive's KL
// removed at r = 0.15 / 0.3): K deviation 72% / 88%, V 74% / 89%, K+V 73% / 90%,
// random 17% / 31%, K+V with gradual filtering 76% / 90%, check layer 2 (one more
// full layer) 82% / 92%; Cache-Craft with layer-1 scores 79% / 90% (summed over layers
// 72% / 90%, max 59% / 81%). Reproduce with `ragkv eval blend --variant ...`.
package blend
