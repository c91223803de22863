package main

// cacheConfig configures the chunk cache (tiers, eviction). Filled in by the chunk-cache
// feature.
type cacheConfig struct{}

func defaultCacheConfig() cacheConfig { return cacheConfig{} }
