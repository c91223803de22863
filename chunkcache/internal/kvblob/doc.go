// Package kvblob owns ragkv's KV blob format: the byte layout of one chunk's
// transformer key/value cache, as stored by the chunk cache's tiers and exported by
// `ragkv cache get --out`.
//
// # Format (version 1, all integers little-endian)
//
// A blob is a header followed by one section per layer (layer-major), so that layer i
// starts at HeaderSize(layers) + i·LayerBytes and can be read, checked and decoded
// without touching the other layers:
//
//	offset  size  field
//	0       4     magic "RKVB"
//	4       2     format version (1)
//	6       2     header size in bytes (52 + 4·layers)
//	8       1     dtype: 1 f32, 2 f16 (IEEE 754 binary16), 3 bf16, 4 int8
//	9       1     K scale mode (int8 only): 1 per-token, 2 per-channel; else 0
//	10      1     V scale mode (int8 only), as above
//	11      1     reserved, 0
//	12      4     layers
//	16      4     KV heads
//	20      4     head dim
//	24      4     tokens
//	28      4     reserved, 0
//	32      8     position base (int64): the absolute position of the chunk's first token
//	              when its K was rotated (RoPE), so a consumer can re-rotate it
//	40      8     layer section size in bytes (must equal Layout.LayerBytes(tokens))
//	48      4·L   CRC-32C (Castagnoli) of each layer section
//	48+4L   4     CRC-32C of the header bytes before it
//
// A layer section holds K then V, each [tokens][kv heads][head dim] row-major in the
// blob's dtype, then, for int8 only, the K scales and the V scales as float32: one per
// token (per-token mode) or one per channel = kv head·head dim (per-channel mode).
// Int8 is symmetric: x ≈ q·scale with q in [-127, 127] and scale = max|x|/127 over the
// token's (or channel's) values. The default for int8 is per-channel K and per-token V,
// as in KIVI (Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV
// Cache", ICML 2024): keys have outlier channels, values do not.
//
// f16 and bf16 conversions are internal/kernels' (the same ones the model loaders use):
// round to nearest even, overflow to ±Inf, NaN stays a quiet NaN.
//
// The decoder never trusts the input: it bounds every count before allocating,
// recomputes the section size from the layout, and checks both CRCs; truncated or
// corrupt input returns an error wrapping ErrCorrupt (see FuzzDecode).
//
// CRC-32C is hardware-accelerated by Go's hash/crc32 on amd64 and arm64, so checking a
// layer costs far less than copying it; no third-party hash is needed.
package kvblob
