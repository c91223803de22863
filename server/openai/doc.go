// Package openai serves ragkv's engine through the OpenAI HTTP API, so that RAG
// frameworks and the official clients reach chunk-cache fusion with nothing but a base
// URL: GET /v1/models, POST /v1/chat/completions, POST /v1/completions and POST
// /v1/embeddings, with bodies, errors and streaming as in the OpenAI API reference
// (platform.openai.com/docs/api-reference: chat, completions, embeddings, models,
// error codes) and as vLLM's OpenAI-compatible server extends it (extra fields at the
// top level of the body, `usage.prompt_tokens_details.cached_tokens`, errors
// {"error": {"message", "type", "param", "code"}} with 400 / 404 / 413 / 500 statuses,
// server-sent events ending in `data: [DONE]`, a last usage chunk with
// `stream_options.include_usage`).
//
// # RAG fields
//
// Requests may carry, at the top level of the body (the Python client's extra_body, plain
// fields in the JS client):
//
//   - documents: texts, {"text": ...} or {"key": "<64 hex>"} (a chunk-cache key, e.g. one
//     a previous response reported), fused in order before the last user message (see
//     model/chat for the exact place and the stable prefix); each text is fused as the
//     chunk text + "\n\n" and stored in the chunk cache after the prompt's prefix, so
//     the next request with the same prefix and document reuses its KV;
//   - retrieval: {"collection", "k", "mode"}: retrieve k passages (bm25, dense or hybrid)
//     for the last user message (the prompt, for completions) from a collection and fuse
//     them after the given documents;
//   - blend: {"method", "ratio"}: full, prefix, naive, cacheblend or cachecraft, and the
//     recompute ratio (default cacheblend at the server's ratio, 0.15);
//   - namespace: the chunk-cache namespace.
//
// The response carries the usual usage, with usage.prompt_tokens_details.cached_tokens
// = the prompt tokens whose KV was found in the chunk cache (segments read from a tier;
// how many of them CacheBlend or Cache-Craft then recomputed is in the breakdown), and a
// "ragkv" object: the fusion breakdown (method, ratio, recomputed share, timings, per
// segment: kind, key, tokens, cached, reused, recomputed, source), the retrieved
// passages' ids, the first token of the prefill and the prompt's parts as rendered
// (prefix, documents, query). For completions the prompt is the query; with documents
// they are fused after the BOS token and before it.
//
// # Limits
//
// n = 1 only; no tools, logit_bias, penalties, echo, suffix or best_of (refused with
// a 400 naming the field); logprobs / top_logprobs (up to 20) on /v1/completions. Requests
// share one blend.Engine (its MaxConcurrent bounds computations); a client that goes
// away cancels its prefill and generation (the request context). Bodies are limited to
// MaxBodyBytes (413). There is no authentication: the listener is loopback by default.
//
// errors.go is the one place where errors become HTTP statuses and OpenAI error bodies.
package openai
