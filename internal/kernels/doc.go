// Package kernels owns ragkv's numeric kernels: the ggml tensor formats (f32, f16, bf16 and
// the block quantizations q8_0, q4_0, q4_K, q5_K, q6_K, laid out and dequantized bit for bit
// as ggml's reference implementation in ggml-quants.c does), the weight-matrix product used by
// the inference engine (MatMul, multi-threaded over a Pool of workers), and small vector
// helpers (Dot, Axpy, Scale).
//
// Formats follow the GGUF/ggml specification (github.com/ggml-org/ggml, docs/gguf.md and
// ggml-common.h for the block layouts). MatMul interprets shapes as ggml's mul_mat does: the
// weight W is Rows×Cols (Rows output features, Cols inner), the activations X are n×Cols, and
// the result is n×Rows.
//
// Speed: the matrix product is a cache-blocked GEMM in the style of BLIS/GotoBLAS (Goto and
// van de Geijn, "Anatomy of High-Performance Matrix Multiplication", TOMS 2008): panels of W
// and X are packed into contiguous tiles sized for the L1/L2 caches and a register-tiled
// micro-kernel accumulates a block of the output. On amd64 with AVX-512 the micro-kernels are
// hand-written Go assembly (FMA for float weights, VPDPBUSD/AVX512_VNNI for quantized weights
// with activations quantized to 8 bits per 32-element block, as ggml does); everywhere else a
// pure-Go fallback computes the same products. Libraries such as gonum or viterin/vek were
// measured as a starting point but are not used: they do not cover the quantized formats,
// and their float kernels are the bottleneck (no packing, no register tiling).
package kernels
