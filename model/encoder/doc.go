// Package encoder computes sentence embeddings inside the engine: BERT-family
// bidirectional encoders (BERT, BGE, E5, MiniLM, GTE and other sentence-transformers
// checkpoints) and decoder-style embedding models over the Llama-family models that
// package model runs (e5-mistral, gte-Qwen, SFR-Embedding: last-token or mean pooling of
// the final normalized hidden states). Both are exposed as retrieval embedders (Embedder:
// Name, Dim, Embed), so `ragkv eval retrieval --embeddings gguf:FILE` and the server's
// dense retrieval need no external embedding server.
//
// The BERT encoder (Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers
// for Language Understanding", NAACL 2019; sentence embeddings as in Reimers & Gurevych,
// "Sentence-BERT", EMNLP 2019) is the post-LayerNorm transformer of the original paper:
//
//	x = LayerNorm(E_tok[t] + E_pos[i] + E_type[0])                     (token type 0: one segment)
//	per layer: a = x + Wo·MHA(Wq·x+bq, Wk·x+bk, Wv·x+bv) + bo          (bidirectional attention)
//	           x = LayerNorm(a);  x = LayerNorm(x + W2·GELU(W1·x+b1) + b2)
//
// GELU is the exact erf form of HF's "gelu" (the tanh approximation with hidden_act
// gelu_new / gelu_pytorch_tanh); LayerNorm has weight and bias; attention scores are
// scaled by 1/√(head size). The sentence vector is the mean of the final states over the
// sequence ([CLS] and [SEP] included, as sentence-transformers' mean pooling over the
// attention mask does), the [CLS] state, or the last state, then L2-normalized — the
// output of llama.cpp's llama-embedding (embd_normalize 2).
//
// Files. GGUF with general.architecture "bert" as llama.cpp's convert_hf_to_gguf.py
// writes it: token_embd, token_types, position_embd, token_embd_norm (weight, bias), per
// block blk.N.attn_q/attn_k/attn_v/attn_output (weight, bias), attn_output_norm,
// ffn_up/ffn_down (weight, bias), layer_output_norm; keys bert.embedding_length,
// feed_forward_length, block_count, attention.head_count, attention.layer_norm_epsilon,
// context_length (= positions), pooling_type (1 mean, 2 cls; llama.cpp's enum), and the
// tokenizer as tokenizer.ggml.model "bert" (see tokenizer.WordPiece). Weight matrices
// may be any type package kernels multiplies (f32, f16, bf16, q8_0, q4_0, k-quants);
// vectors are dequantized. HF safetensors directories (config.json with model_type
// "bert", model.safetensors, tokenizer.json or vocab.txt, and the sentence-transformers
// 1_Pooling/config.json for the pooling mode) use HF's names: embeddings.word_embeddings,
// embeddings.position_embeddings, embeddings.token_type_embeddings, embeddings.LayerNorm,
// encoder.layer.N.attention.self.query/key/value, attention.output.dense,
// attention.output.LayerNorm, intermediate.dense, output.dense, output.LayerNorm (with or
// without a "bert." prefix; .gamma/.beta accepted for .weight/.bias).
//
// Matrix products run on package kernels (Pool.MatMul / MatMulMulti for the
// projections, SerialGemm for the per-head attention products, one (sequence, head) per
// worker). Several texts are encoded in one batch: their tokens are concatenated for the
// projections and attend only within their own sequence.
package encoder
