// Package pca compresses dense retrieval vectors as in PCA-RAG (Khaledian et al.,
// "PCA-RAG: Principal Component Analysis for Efficient Retrieval-Augmented Generation",
// 2025): a projection onto the leading principal components, fitted with gonum on a
// sample of the collection's vectors and persisted with it, applied to documents and
// queries alike and followed by re-normalization so that inner product stays cosine
// similarity; optionally followed by per-dimension int8 scalar quantization (the
// "SQ8" of FAISS). Search scans the compressed codes and the caller rescores the best
// candidates with the full vectors.
package pca
