// Package chunkcache owns ragkv's chunk KV cache: content keys, the KV blob format
// (internal/kvblob) and the tiered Cache that stores chunks in host RAM and on local
// disk (package store) with pluggable eviction (package chunkcache/eviction).
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
package chunkcache
