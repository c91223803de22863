// Package model is ragkv's pure-Go inference engine for Llama-family transformers
// (Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3, SmolLM/SmolLM2, Gemma 2/3, llama2.c's
// tinyllamas): loaders, the forward pass, KV capture and the partial-layer recompute that
// CacheBlend and Cache-Craft build on.
//
// Architecture (Touvron et al., "LLaMA", 2023): RMSNorm, rotary position embeddings
// (Su et al., RoFormer, 2021) in either the interleaved-pair layout (llama2.c, GGUF
// "llama") or the rotate-half layout (HuggingFace checkpoints, GGUF "qwen2", "qwen3",
// "gemma2", "gemma3"), grouped-query attention (Ainslie et al., 2023), a gated
// feed-forward (SwiGLU; GeGLU with tanh-approximated GELU for Gemma); optional Q/K/V
// biases (Qwen2) and tied embeddings; Llama 3.1 RoPE frequency scaling (per-pair
// divisors: GGUF rope_freqs.weight, HF rope_scaling rope_type "llama3"; Meta's Llama 3.1
// apply_scaling) and linear position interpolation (GGUF rope.scaling.type linear, HF
// rope_type "linear"; Gemma 3 4B+ scale their global layers so); other RoPE scalings
// (dynamic, YaRN, LongRoPE) are rejected at load. Per family, as llama.cpp's graph
// builders and HF transformers compute them:
//
//   - Qwen3: per-head RMSNorm of Q and K (weights of the head size) before RoPE; heads
//     need not be embedding/heads wide (GGUF attention.key_length, HF head_dim).
//   - Mistral: a sliding window (GGUF llama.attention.sliding_window, HF sliding_window)
//     as an attention mask — a query at p sees keys at p−W < q ≤ p — not a context cap.
//     Recompute (LayerStep) applies the same mask, so fused prefills respect it.
//   - Gemma 2 (Team Gemma, 2024): token embeddings ×√d, norms before and after attention
//     and feed-forward (Gemma's (1+w) folded into the weights, as llama.cpp's converter
//     stores them), GeGLU, attention scores soft-capped c·tanh(s/c) after the 1/√d scale
//     and logits soft-capped, the window on even layers.
//   - Gemma 3 (2025): Gemma 2 with per-head Q/K norms and no soft-caps, five windowed
//     layers per global one, the windowed layers rotating with RoPE base 10000 (their own
//     frequency table, never scaled; Model.RotateKLayer re-rotates each layer with its own).
//
// Files: llama2.c checkpoints (run.c format) with their tokenizer files, GGUF v3
// (package model/gguf; architectures llama, mistral, qwen2, qwen3, gemma2, gemma3) and
// safetensors with HF config.json/tokenizer.json (model_type llama, mistral, qwen2,
// qwen3, gemma2, gemma3_text). Numbers follow llama2.c's run.c (float32 activations);
// weight products go through internal/kernels (f32, f16, bf16, q8_0, q4_K, q6_K ...
// weights).
//
// Checked against llama.cpp (oracle_test.go): small random-weight GGUFs of llama (plain
// RoPE), llama with Llama 3.1 scaling and qwen2, in f32 and four quantizations, against
// llama.cpp's logits at every position; f32 agrees within 4e-5 × the logits' standard
// deviation. Quantized weights multiply activations quantized to int8 per 32-element
// block by default; kernels.Pool.SetGGMLActivations reproduces llama.cpp's activation
// quantization (q8_0 with fp16 scales, q8_K) for comparisons. Every family
// (families_test.go): `ragkv model synth` tiny-* files (tiny-llama3, tiny-qwen2,
// tiny-smollm2, tiny-qwen3, tiny-mistral, tiny-gemma2, tiny-gemma3, tiny-gemma3-linear)
// against llama.cpp's
// logits in testdata/families, within 2e-3 × std (measured 2e-6–4e-6; Gemma 5e-4–9e-4,
// from llama.cpp's fp16 GELU table), and the same models written as HF checkpoints.
//
// # Computation API
//
// Everything is expressed with one primitive, a layer step over a set of token rows:
//
//   - Model.Embed writes token embeddings (the residual stream entering layer 0).
//   - Model.LayerStep runs layer l for n tokens given their residual-stream inputs x
//     (overwritten in place with the layer's output) and absolute positions, against a
//     caller-supplied KV whose layer l holds every token to attend to. The n tokens' fresh
//     K (post-RoPE) and V are written into the KV at the given rows first, then each
//     query attends to every KV row whose position is ≤ its own (the causal mask by
//     absolute position, whatever the row order; in a windowed layer only the rows within
//     its sliding window). Options return the fresh K/V separately,
//     skip the write, stop after K/V (for deviation checks), or record the attention mass
//     each query pays to positions outside a span (Cache-Craft).
//   - Model.Logits applies the final norm and the classifier to chosen hidden states.
//   - Model.Extend runs all layers for new tokens appended to a KV (prefill of a chunk,
//     a continuation after a fused cache, decode); Model.Prefill is Extend on a new KV.
//   - Model.RotateKLayer re-rotates a layer's cached K rows from old to new positions
//     (RoPE delta, rotation by the angle difference with that layer's scaled frequencies,
//     computed in float64); RotateK is the same for models with one RoPE base.
//   - State is a decode session with preallocated buffers: no allocation per token.
//   - Stepper reuses LayerStep buffers across calls (one per goroutine).
//
// CacheBlend over this API (Yao et al., EuroSys'25): concatenate the chunks' KVs
// (ConcatKV), move each chunk's rows to its place in the prompt (RotateKLayer per layer as the
// layers load, or ShiftKV), then x = Embed(all tokens); LayerStep(0, x, all rows) (full
// layer 0); at layer 1 LayerStep with KVOnly+SkipWrite+FreshK/FreshV for all tokens gives
// the deviation against the cached K/V, pick S (always the query tokens), keep x only
// for S; from layer 1 on LayerStep(l, x_S, pos_S, rows_S, kv). Logits(x of the last
// token) gives the first token; Extend(kv, continuation) scores a continuation with full
// attention over the fused cache. Cache-Craft's per-token outside-span attention comes
// from ExtendOptions.Outside (precompute) or StepOptions.Outside.
//
// # Speed
//
// Prefill is matrix-matrix throughout: every projection of a chunk is one kernels MatMul
// with n = chunk tokens, the Q/K/V projections and the gate/up pair each one
// kernels.MatMulMulti (the activations are packed or quantized once, and the workers share
// out the rows of all the matrices). Attention is cut into (query block of up to 128,
// KV head) items that the workers take whole, largest first: each stacks the block's
// queries of the query heads sharing the KV head and runs Q·Kᵀ, the softmax and P·V itself
// (kernels.SerialGemm, K and V read in place with their row stride), in chunks of about 96
// score rows; when the KV positions are in order, a chunk multiplies only by the keys its
// last query can see and the softmax works on the visible prefix. Softmax, its row maximum
// and the SwiGLU gate use AVX2 (model/internal/vmath). Per-token work (norms with the
// residual add, RoPE with the KV-cache write) is spread over the Pool; the RoPE cos/sin
// table is computed once per set of positions and shared by the layers; 1/√d is folded into
// Q. Decode (and calls with fewer than 8 tokens) scores each query against all keys with
// kernels.DotRows and sums the values with kernels.AxpyRows, and allocates nothing per
// token.
//
// # Buffer ownership
//
// A KV owns its slices; methods that take a KV read and write it in place and never keep
// a reference after returning. Slices passed in (x, positions, rows, output buffers) are
// caller-owned: the model reads or writes them only during the call. Slices returned by
// State (logits) alias the State and are valid until its next call. Weights may alias a
// memory-mapped file: they are valid until Model.Close. A Model is safe for concurrent use
// (each call has its own scratch; kernel calls on the shared Pool are serialized); a KV or
// a State is not.
package model
