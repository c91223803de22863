// Package ann owns ragkv's approximate nearest-neighbour index for dense retrieval over
// large collections: maximum-inner-product search over float32 vectors whose ids are
// their row indices.
//
// Two kinds of index are built:
//
//   - flat: an exact scan, for small collections.
//   - ivfpq: an inverted file (a k-means coarse quantizer; Jégou, Douze and Schmid,
//     "Product quantization for nearest neighbor search", TPAMI 2011) whose lists hold
//     residuals encoded by a product quantizer of M 4-bit slots, scanned with the
//     "fast-scan" technique (André, Kermarrec and Le Scouarnec, "Cache locality is not
//     enough: high-performance nearest neighbor search with product quantization fast
//     scan", VLDB 2015; "Quicker ADC", TPAMI 2019): per query, the lookup tables are
//     quantized to uint8 and looked up 32 codes at a time with a byte shuffle (AVX2 on
//     amd64, a portable Go loop elsewhere), and a threshold on the 16-bit sums skips
//     codes that cannot enter the candidate set.
//
// Bits are not spread evenly: a slot encodes a group of low-importance dimensions or one
// more residual stage of an important one, allocated by reverse water-filling on the
// expected inner-product error E[q_d²]·E[r_d²] (pq.go). PCA-projected embeddings, whose
// variance decays across dimensions, get 8-12 bits on their leading dimensions; at the
// same code size this cuts the inner-product error by about a quarter against 4 bits
// everywhere (TestBitAllocationHelps) — the job OPQ's rotation does for FAISS.
//
// A search scans NProbe lists, keeps the best Rescore candidates and, when a Rescorer
// is attached, re-ranks them with the exact inner product over full vectors that may
// live outside the index (the PCA-RAG pattern: search compressed vectors, rescore with
// the originals); without one, the candidates are re-ranked with float lookup tables.
// Kind "auto" picks flat below Options.AutoThreshold vectors and ivfpq above.
//
// The serialized format (Index.WriteTo, Read) is versioned and ends with a CRC-32C of
// everything before it; Read validates every length and index before allocating or
// using it and never panics on corrupt input (FuzzRead, which also fuzzes behind the
// checksum).
//
// Hand-written code instead of a library: the Go HNSW and IVF libraries keep full float
// vectors (hundreds of bytes per vector) and have no SIMD fast-scan; the memory target
// (≤ 40 bytes per vector) and the throughput target need both. Assembly (amd64) is
// limited to six leaf kernels (dot product, centroid scores, argmax, maxima of groups
// of 32, fast-scan, prefetch) with portable Go twins that the tests check them against.
package ann
