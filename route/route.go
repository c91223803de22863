// Package route owns cache-aware routing across ragkv replicas: given where a
// request's chunks are cached (what Locate answers), it picks the replica that holds
// the most of the request's chunk tokens, in the spirit of llm-d's precise prefix-cache
// scorer, which routes each request to the pod holding its KV (fed there by vLLM's KV
// events; here by ragkv's WatchChunks or Locate).
//
// # Algorithm
//
// For every candidate replica r and the request's chunks c (the system prefix
// included), with t(c) the chunk's token count:
//
//	cached(r) = Σ t(c) over the chunks r holds in any local tier
//	fast(r)   = Σ t(c) over the chunks r holds in its fastest tier
//
// The replica with the largest cached(r) wins; ties go to the larger fast(r), then to
// the replica listed first (the caller's order: e.g. least loaded first). A chunk in a
// shared tier (the Redis remote tier) counts for no replica, since every replica reads
// it at the same cost; a chunk that no replica holds does not count either. With no
// cached tokens anywhere the first replica wins.
package route

import "sort"

// Chunk is one chunk of a request: its tokens and, per replica, the local tiers that
// hold it (fastest first).
type Chunk struct {
	Tokens   int
	Replicas map[string][]string
}

// Score is one replica's standing.
type Score struct {
	Replica      string `json:"replica"`
	CachedTokens int    `json:"cached_tokens"`
	FastTokens   int    `json:"fast_tokens"`
	CachedChunks int    `json:"cached_chunks"`
}

// FastestTier is the tier name that counts as fastest (the memory tier); a chunk
// whose first listed tier is FastestTier counts toward FastTokens.
const FastestTier = "memory"

// Rank scores every replica of replicas (in that order of preference) for chunks and
// returns them best first (see the package doc).
func Rank(replicas []string, chunks []Chunk) []Score {
	out := make([]Score, len(replicas))
	for i, r := range replicas {
		out[i].Replica = r
		for _, c := range chunks {
			tiers, ok := c.Replicas[r]
			if !ok || len(tiers) == 0 {
				continue
			}
			out[i].CachedTokens += c.Tokens
			out[i].CachedChunks++
			if tiers[0] == FastestTier {
				out[i].FastTokens += c.Tokens
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].CachedTokens != out[j].CachedTokens {
			return out[i].CachedTokens > out[j].CachedTokens
		}
		return out[i].FastTokens > out[j].FastTokens
	})
	return out
}

// Choose returns the best replica ("" when there is none).
func Choose(replicas []string, chunks []Chunk) string {
	if len(replicas) == 0 {
		return ""
	}
	return Rank(replicas, chunks)[0].Replica
}
