// Package quantize converts a model to a quantized GGUF v3 file: the job of llama.cpp's
// llama-quantize, reproduced so that the output is the same file.
//
// It owns the driver (read a GGUF file with f32/f16/bf16 weights, or a HuggingFace
// safetensors directory, choose every tensor's type, quantize rows in parallel, stream
// the result to a temporary file and rename it into place, so that a failure never
// leaves a partial output) and the per-tensor type rules of the llama.cpp quantization
// mixes. The block quantizers themselves are kernels.Quantize (ports of ggml's
// quantize_row_*_ref).
//
// The rules are a port of llama_tensor_get_type and llama_model_quantize_impl in
// llama.cpp's src/llama-quant.cpp (commit c392e5094), restricted to the file types
// offered here (q8_0, q4_0, q4_K_S, q4_K_M, q5_K_S, q5_K_M, q6_K), without an importance
// matrix:
//
//   - Only tensors whose name ends in "weight" with at least two dimensions (ggml_n_dims:
//     trailing sizes of 1 do not count) are quantized; norms (*_norm.weight), MoE router
//     weights (ffn_gate_inp.weight), position embeddings and a few other small tensors
//     keep their type (see quantizable). Everything else is copied as it is.
//   - output.weight, and token_embd.weight when the model has no output.weight (tied
//     embeddings), become q6_K unless the base type is q8_0 (which stays), or q8_0 when
//     the row length is not a multiple of the base type's block size (or the
//     architecture is falcon).
//   - attn_v.weight and ffn_down get q6_K in the _M mixes on the layers use_more_bits
//     picks (the first and last eighth of the layers and every third one between);
//     q4_K_S gives q5_K to the first four attn_v and the first eighth of ffn_down;
//     attn_qkv.weight (fused) gets q5_K / q6_K in q4_K_M / q5_K_M; 70B-class models
//     (80 layers) get q5_K attn_v instead of q4_K; 8-expert models q8_0 attn_v and
//     attn_k and q5_K attn_output. Layers are counted in llama.cpp's tensor order (by
//     layer number, then name), which is also the order of the output file.
//   - A row length that is not a multiple of 256 makes llama.cpp fall back from q4_K to
//     q5_0, from q5_K to q5_1 and from q6_K to q8_0 (and to f16 when even 32 does not
//     divide it), as here; Result reports each fallback. A q8_0/q4_0 row length that is
//     not a multiple of 32 is an error, as in llama.cpp.
//   - Metadata is copied from the input (tokenizer included) with general.file_type
//     set to the llama_ftype of the mix and general.quantization_version to 2, both
//     moved to the end as gguf_set_val does; split keys are dropped. Tensors already in
//     a quantized type are copied when that is their target and otherwise refused (no
//     requantization, as llama-quantize without --allow-requantize).
//
// With an f32 GGUF input the output is byte for byte the file llama-quantize writes for
// the same type (tested against llama.cpp's own output for three architectures; the
// q5_0/q5_1 fallbacks are ports of ggml's quantize_row_q5_0_ref/q5_1_ref, compared with
// ggml's algorithm but not with llama-quantize's bytes: no oracle file has such rows).
//
// A HuggingFace directory (config.json, *.safetensors or model.safetensors.index.json,
// optionally tokenizer.json) is converted on the fly as llama.cpp's convert_hf_to_gguf.py
// does for the Llama (Mistral) and Qwen2 families: GGUF tensor names, Q/K rows of Llama
// permuted from the rotate-half to the interleaved RoPE layout, 1-D tensors stored as
// f32, the llama.* / qwen2.* hyperparameters, Llama 3.1 RoPE scaling as a
// rope_freqs.weight tensor, and the tokenizer.ggml.* metadata of tokenizer.json. Weights
// go from their stored type (f32, f16 or bf16) straight to the quantized type.
package quantize
