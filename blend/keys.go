package blend

import (
	"context"
	"errors"
	"fmt"

	"github.com/ragkv/ragkv/chunkcache"
)

// PromptKey is the chunk-cache key of one segment of a prompt, as Prefill keys it.
type PromptKey struct {
	// Kind is "system" (the BOS token and the system text) or "chunk".
	Kind   string
	Key    chunkcache.Key
	Tokens int
}

// PromptKeys returns the keys Prefill uses for a prompt's system prefix and chunk
// texts in namespace ns, without reading or computing anything (for Locate and cache-
// aware routing): the system prefix first, then one key per chunk.
func (e *Engine) PromptKeys(ctx context.Context, ns, system string, chunks []string) ([]PromptKey, error) {
	st, err := e.st.WithNamespace(ns)
	if err != nil {
		return nil, err
	}
	m := e.st.m
	var out []PromptKey
	var kvPrev []Hash
	if prefix := m.Tok.Encode(system, true, false); len(prefix) > 0 {
		k, err := st.Key(prefix, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, PromptKey{Kind: "system", Key: k, Tokens: len(prefix)})
		kvPrev = []Hash{TokenHash(prefix)}
	}
	for i, text := range chunks {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		toks := m.Tok.Encode(text, false, false)
		if len(toks) == 0 {
			return nil, fmt.Errorf("%w: chunk %d is empty", ErrInvalid, i)
		}
		k, err := st.Key(toks, kvPrev)
		if err != nil {
			return nil, err
		}
		out = append(out, PromptKey{Kind: "chunk", Key: k, Tokens: len(toks)})
	}
	return out, nil
}

// CachedKey is a prompt segment's key and whether the chunk cache holds it.
type CachedKey struct {
	PromptKey
	Cached bool
	// Tier is the fastest tier holding it ("" when not cached).
	Tier string
}

// LookupPromptKeys is PromptKeys with, for each key, whether a tier of the chunk cache
// holds it (without reading it or counting a hit).
func (e *Engine) LookupPromptKeys(ctx context.Context, ns, system string, chunks []string) ([]CachedKey, error) {
	pks, err := e.PromptKeys(ctx, ns, system, chunks)
	if err != nil {
		return nil, err
	}
	keys := make([]chunkcache.Key, len(pks))
	for i, pk := range pks {
		keys[i] = pk.Key
	}
	out := make([]CachedKey, len(pks))
	for i, pk := range pks {
		out[i].PromptKey = pk
	}
	st, err := e.st.WithNamespace(ns)
	if err != nil {
		return nil, err
	}
	res, err := st.cache.Lookup(ctx, st.o.Namespace, keys)
	if errors.Is(err, chunkcache.ErrUnknownNamespace) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for i, r := range res {
		out[i].Cached, out[i].Tier = r.Present, r.Tier
	}
	return out, nil
}
