// Package kernels owns ragkv's numeric kernels: the ggml tensor formats (f32, f16, bf16 and
// the block quantizations q8_0, q4_0, q5_0, q4_K, q5_K, q6_K, laid out, quantized and dequantized
// bit for bit as ggml's reference implementation in ggml-quants.c does; quantk.go holds the
// k-quant quantizers), the weight-matrix product used by the inference engine (MatMul, and
// MatMulMulti for several matrices that share one input, multi-threaded over a Pool of
// workers), a single-goroutine strided float GEMM for callers that parallelize at a coarser
// grain (SerialGemm: the engine's attention), and small vector helpers (Dot, Axpy, Scale,
// and DotRows/AxpyRows over strided rows for decode attention).
//
// Formats follow the GGUF/ggml specification (github.com/ggml-org/ggml, docs/gguf.md and
// ggml-common.h for the block layouts). MatMul interprets shapes as ggml's mul_mat does: the
// weight W is Rows×Cols (Rows output features, Cols inner), the activations X are n×Cols, and
// the result is n×Rows.
//
// Speed: the matrix product is a cache-blocked GEMM in the style of BLIS/GotoBLAS (Goto and
// van de Geijn, "Anatomy of High-Performance Matrix Multiplication", TOMS 2008): panels of
// W and X are packed into contiguous tiles sized for the L1/L2 caches and a register-tiled
// micro-kernel accumulates a block of the output. On amd64 with AVX-512 the micro-kernels
// are hand-written Go assembly (FMA for float weights, VPDPBUSD/AVX512_VNNI for quantized
// weights with activations quantized to 8 bits per 32-element block, as ggml does, the
// quantization itself also in assembly). On arm64 the NEON kernels (kernels_arm64.s, from
// asm_gen_arm64.go) run the same panels: FMLA by element for float weights, SDOT for the
// int8 GEMM and the quantized matrix-vector kernels where the CPU has dotprod (else
// SMULL/SMLAL2/SADALP, or the float GEMM on dequantized weights); instructions Go's arm64
// assembler lacks are WORD-encoded, and a test checks every encoding against GNU as where
// the cross binutils are installed. Everywhere else (and with the purego build tag) the
// pure-Go kernels of generic.go compute the same products, written for Go's compiler (see
// the comment there; about 4-5 GFLOP/s per core, scalar-bound, against 100-270 for AVX-512).
// internal/cpu chooses the path at run time. The assembly is generated (go generate
// ./internal/kernels; a test checks that both .s files are up to date). Libraries were the starting point but are not used:
// viterin/vek (measured at about 50-60 GFLOP/s for an f32 1024³ product on the development
// machine, where the f32 kernel here reaches about 100 GFLOP/s per core) and gonum cover
// only float types, without packing or register tiling, and nothing in pure Go covers
// ggml's quantized formats.
//
// Decode (few tokens) takes matrix-vector kernels that stream each weight row once:
// f32/f16/bf16 rows four at a time with FMA, q8_0 and q4_0 with VPDPBUSD against activations
// quantized per 32-block (with software prefetch: a small model's short rows end before the
// hardware prefetchers ramp up), and the k-quants likewise (values unpacked in registers, 64
// per VPDPBUSD); with float activations (Pool.SetFloatActivations) the k-quants are
// dequantized in registers and multiplied with FMA. On arm64 the k-quant kernels sum each
// sub-block's integer products with SDOT and apply the scales in Go.
//
// On the avx2 path (AVX2+FMA+F16C without AVX-512) the float kernels are AVX2 assembly
// too (asm_gen_avx2f.go): the GEMM micro-kernel covers the same 32×12 packed tile in four
// 16×6 passes (12 ymm accumulators, BLIS's Haswell shape), the panels are packed by 8×8
// register transposes (f16 by VCVTPH2PS, bf16 by VPMOVZXWD and a shift), and decode takes
// four-row f32/f16/bf16 matrix-vector kernels with an 8 KiB software prefetch; Dot, Axpy,
// Scale, DotRows and AxpyRows have AVX2 forms. Measured on Zen 5 (2 cores, shared; 2.6
// GHz as /proc/cpuinfo reports it, the cores boost past it), both paths in one quiet run:
// bench gemm 4096×512×14336 f32 212 GFLOP/s on avx2 (1.27× the FMA peak at 2.6 GHz,
// 2×2×8×2×2.6 = 166) and 371 on avx512; smollm-135m f32 bench engine, interleaved with
// llama.cpp built for AVX2 (llama-bench -p 512 -n 32 -t 2): prefill 820-829 tok/s on avx2,
// 1295-1313 on avx512, 591-597 for llama.cpp; decode 64-68 on avx2 and on avx512, 66-70 for
// llama.cpp (decode is bound by memory bandwidth on every path).
//
// Without AVX-512 VNNI (the avx2 path: Haswell and later, Zen 1-3; and AVX-512 CPUs such as
// Skylake-X) the quantized products run on AVX2 kernels (asm_gen_avx2q.go): VPMADDUBSW pair
// sums, added in int16 for as many steps as the weights' value range allows, widened by
// VPMADDWD; q8_0 with ggml's sign trick (|w| × sign(x, w)). They take the same packed form
// and activation layouts, and for every type but q8_0's GEMM give the VNNI kernels' bits.
//
// Activations (Pool.SetActivations): by default (ActGGML; on the neon path ActInt8 until
// its packers are in assembly, see defaultGGML) they are quantized as ggml's CPU
// backend does, q8_0 blocks with an fp16 scale for q8_0/q4_0/q5_0/q5_1 weights and q8_K
// 256-blocks for the k-quants (ggml_act.go; AVX2 kernels in asm_gen_ggmlact.go, which
// pack straight into the int8 kernels' layouts and cost no measurable time against the
// former default); ActInt8 quantizes per 32-element block (16 for q6_K) with a float32
// scale, ActFloat multiplies dequantized weights by float32 activations.
//
// KV decode (kvdec.go, assembly from asm_gen_kvdec.go): the chunk cache's grouped 2-, 4-
// and 8-bit KV codes (kvblob q4, q2, mixed) dequantized 16 values per step — codes
// unpacked to 32-bit lanes (VPERMD/VPSRLVD, VPMOVZXBD; NEON ZIP1/UXTL), converted and
// multiply-added with per-channel or per-group scales and minima — and f16 rows converted
// (VCVTPH2PS, FCVTL), on the avx512, avx2 and neon paths, bit-exact with the pure-Go
// reference (a code times an f16 scale is exact in float32).
//
// Hand-offs: a worker polls for its next task, and the caller for the workers to finish,
// for up to 200 µs before blocking, because waking a sleeping thread costs tens of
// microseconds (about 50 µs on a 2-vCPU VM), more than many decode-sized kernel calls.
package kernels
