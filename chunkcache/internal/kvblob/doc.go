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
//	8       1     dtype: 1 f32, 2 f16 (IEEE 754 binary16), 3 bf16, 4 int8 (5 q4, 6 q2,
//	              7 mixed: version 2, below)
//	9       1     K scale mode (int8 only): 1 per-token, 2 per-channel; else 0
//	10      1     V scale mode (int8 only), as above
//	11      1     flags: bit 0 K stored pre-RoPE (unrotated: row t is rotated to its
//	              position by the consumer, not re-rotated from position base + t);
//	              others 0
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
// # Version 2: grouped low-bit dtypes
//
// Blobs in the dtypes 5 q4, 6 q2 and 7 mixed are written as version 2 (the others stay
// version 1, byte for byte; a reader accepts both). The version-2 header inserts 8
// bytes after the layer section size, so the CRCs start at 56 and the header is
// 60 + 4·layers bytes:
//
//	48      2     group size G (1..32768)
//	50      1     flags: bit 0 Walsh–Hadamard rotation of the head dim, bit 1 K grouped
//	              per token (like V) instead of per channel; others 0
//	51      1     mixed: high precision in bits (4 or 8); else 0
//	52      2     mixed: target average bits per K/V element ×100 (e.g. 250); else 0
//	54      2     reserved, 0
//
// Values are asymmetric b-bit codes q in groups, each with an f16 scale s and minimum
// m: x ≈ m + q·s (m = the group's minimum, s = range/(2^b−1) rounded up). As in KIVI,
// K is grouped per channel (G consecutive tokens of one channel; pairs stored [token
// group][channel]) and V per token (G consecutive channels of one token; pairs stored
// [token][channel group]); the last group may be shorter. With flag bit 1, K is
// grouped per token like V (the RotateKV recipe, with rotation). Codes are packed LSB first,
// [token][channel] order, one bit stream per tensor padded to a byte. A layer section
// is K codes, V codes, K (s, m) pairs, V (s, m) pairs (each pair 4 bytes).
//
// With the rotation flag, each head's head-dim vector of K and V is multiplied by the
// orthonormal Hadamard matrix H/√d before quantization (d a power of two) and by it
// again after decoding (H/√d is its own inverse), so consumers — RoPE re-rotation of a
// fused chunk included — see unrotated values: the rotation only spreads outlier
// channels across the head before the groups are formed (RotateKV, QuaRot).
//
// Mixed keeps h = ⌊T·(avg−2)/(hi−2)⌋ tokens per layer at the high precision and the
// rest at 2 bits ("No Token Left Behind", Yang et al. 2024). K holds a token bitmap
// (⌈T/8⌉ bytes, bit t%8 of byte t/8 set for a high-precision token, exactly h set, the
// padding clear), then the high-precision tokens' codes, then the others' (each set
// quantized on its own as above, in token order); V holds the two code streams, and
// the pair parts the two sets' pairs, high first. The writer chooses the tokens (by
// key norm unless given scores, e.g. Cache-Craft attention statistics).
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
