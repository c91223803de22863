// Package ann owns ragkv's approximate nearest-neighbour index for dense retrieval over
// large collections: maximum-inner-product search over float32 vectors whose ids are
// their row indices.
//
// Two kinds of index are built:
//
//   - flat: an exact scan, for small collections.
//   - ivfpq: an inverted file (a k-means coarse quantizer, Jégou et al., "Product
//     quantization for nearest neighbor search", TPAMI 2011) whose lists hold residuals
//     encoded by a product quantizer with 16 centroids per sub-quantizer, scanned with
//     the 4-bit "fast-scan" technique (André, Kermarrec and Le Scouarnec, "Cache
//     locality is not enough: high-performance nearest neighbor search with product
//     quantization fast scan", VLDB 2015; "Quicker ADC", TPAMI 2019): the per-query
//     lookup tables are quantized to uint8 and looked up 32 codes at a time with a byte
//     shuffle (AVX2 on amd64, a portable Go loop elsewhere). The best candidates are
//     re-ranked with float lookup tables and then, when a Rescorer is given, with the
//     exact inner product over full vectors that may live outside the index (the
//     PCA-RAG pattern: search compressed vectors, rescore with the originals).
//
// Kind "auto" picks flat below Options.AutoThreshold vectors and ivfpq above.
//
// The serialized format (Index.WriteTo, Read) is versioned and ends with a CRC-32C of
// everything before it; Read validates every length before allocating and never panics
// on corrupt input (see FuzzRead).
//
// Hand-written code instead of a library: the Go HNSW and IVF libraries store full
// float vectors (hundreds of bytes per vector) and have no SIMD fast-scan; the memory
// target (≤ 40 bytes per vector) and the throughput target need both.
package ann
