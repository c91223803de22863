package blend

import (
	"context"
	"fmt"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/model"
)

// ComputeAlone returns the KV of tokens prefilled alone after a prefix whose exact KV
// is prefixKV (nil or empty: alone at position 0): rows at positions p … p+n−1, with
// p the prefix length (the position base).
func ComputeAlone(ctx context.Context, m *model.Model, prefixKV *model.KV, tokens []int) (*model.KV, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: empty chunk", ErrInvalid)
	}
	if prefixKV == nil || prefixKV.Len() == 0 {
		kv, _, err := m.Prefill(ctx, tokens, 0, 0, model.ExtendOptions{})
		return kv, err
	}
	p := prefixKV.Len()
	kv, err := model.ConcatKV(len(tokens), prefixKV)
	if err != nil {
		return nil, err
	}
	if _, err := m.Extend(ctx, kv, tokens, rangeRows(p, p+len(tokens)), model.ExtendOptions{}); err != nil {
		return nil, err
	}
	return kv.Slice(p, p+len(tokens)), nil
}

// ContextStats appends tokens to ctxKV (at the positions after its last row) and
// returns their Cache-Craft statistics: each token's attention mass outside the chunk
// at every layer, with ctxPrev the hashes of what ctxKV holds.
func ContextStats(ctx context.Context, m *model.Model, ctxKV *model.KV, tokens []int, ctxPrev []Hash) (*CraftStats, error) {
	start := 0
	for _, p := range ctxKV.Pos {
		start = max(start, p+1)
	}
	res, err := m.Extend(ctx, ctxKV, tokens, rangeRows(start, start+len(tokens)),
		model.ExtendOptions{Outside: &model.Span{Lo: start, Hi: start + len(tokens)}})
	if err != nil {
		return nil, err
	}
	return NewCraftStats(ctxPrev, res.OutsideMass), nil
}

// PrecomputeOptions configures Store.Precompute.
type PrecomputeOptions struct {
	// SystemPrefix is the shared prefix every chunk is computed after (normally the
	// BOS token and the system text); it is stored as a segment of its own. Empty:
	// chunks are computed alone at position 0.
	SystemPrefix []int
	// ContextChunks is how many of the chunks before each one (in input order) form
	// the context of its Cache-Craft statistics pass, after the system prefix
	// (default 1; negative: no statistics).
	ContextChunks int
	// Progress, if set, is called after each chunk with its index, what happened to
	// it ("computed", "skipped" or "rejected") and the counts so far (with the keys of
	// the chunks up to this one); an error stops the job.
	Progress func(i int, status string, totals PrecomputeResult) error
	// Acquire, if set, is called before computing each chunk and the function it
	// returns after (e.g. a concurrency limit shared with other work).
	Acquire func(context.Context) (release func(), err error)
}

// PrecomputeResult counts what Precompute did.
type PrecomputeResult struct {
	Chunks   int `json:"chunks"`
	Computed int `json:"computed"`
	// Skipped chunks were already stored (the job is resumable).
	Skipped int `json:"skipped"`
	// Rejected chunks were computed but not admitted by the cache.
	Rejected int `json:"rejected"`
	// Tokens computed (chunk tokens, not counting the statistics pass).
	Tokens int `json:"tokens"`
	// Keys of the chunks, in input order.
	Keys []chunkcache.Key `json:"-"`
}

// Prefix returns the stored form of a system prefix: its KV (computed, exact at
// position 0), its hash, and stores it if absent.
func (s *Store) Prefix(ctx context.Context, prefix []int) (*model.KV, []Hash, error) {
	if len(prefix) == 0 {
		return nil, nil, nil
	}
	kv, _, err := s.m.Prefill(ctx, prefix, 0, 0, model.ExtendOptions{})
	if err != nil {
		return nil, nil, err
	}
	has, err := s.Has(ctx, prefix, nil)
	if err != nil {
		return nil, nil, err
	}
	if !has {
		if _, err := s.Put(ctx, prefix, kv, nil); err != nil {
			return nil, nil, err
		}
	}
	return kv, []Hash{TokenHash(prefix)}, nil
}

// Precompute computes and stores chunks: each one's KV alone after the system prefix,
// with Cache-Craft statistics from a pass where it follows the system prefix and the
// ContextChunks chunks before it. Chunks already stored are skipped, so an interrupted
// job resumes where it stopped.
func (s *Store) Precompute(ctx context.Context, chunks [][]int, o PrecomputeOptions) (*PrecomputeResult, error) {
	if o.ContextChunks == 0 {
		o.ContextChunks = 1
	}
	res := &PrecomputeResult{Chunks: len(chunks)}
	prefixKV, kvPrev, err := s.Prefix(ctx, o.SystemPrefix)
	if err != nil {
		return res, err
	}
	c := &s.m.Config
	for i, toks := range chunks {
		if len(toks) == 0 {
			return res, fmt.Errorf("%w: chunk %d is empty", ErrInvalid, i)
		}
		if len(o.SystemPrefix)+len(toks) > c.Ctx {
			return res, fmt.Errorf("%w: chunk %d: %d tokens after a %d-token prefix > %d", ErrTooLong, i, len(toks), len(o.SystemPrefix), c.Ctx)
		}
		key, err := s.Key(toks, kvPrev)
		if err != nil {
			return res, err
		}
		res.Keys = append(res.Keys, key)
		has, err := s.Has(ctx, toks, kvPrev)
		if err != nil {
			return res, err
		}
		status := "skipped"
		if has {
			res.Skipped++
		} else {
			admitted, err := s.precomputeOne(ctx, prefixKV, kvPrev, chunks, i, o)
			if err != nil {
				return res, fmt.Errorf("chunk %d: %w", i, err)
			}
			res.Computed++
			res.Tokens += len(toks)
			status = "computed"
			if !admitted {
				res.Rejected++
				status = "rejected"
			}
		}
		if o.Progress != nil {
			if err := o.Progress(i, status, *res); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

func (s *Store) precomputeOne(ctx context.Context, prefixKV *model.KV, kvPrev []Hash, chunks [][]int, i int, o PrecomputeOptions) (bool, error) {
	if o.Acquire != nil {
		release, err := o.Acquire(ctx)
		if err != nil {
			return false, err
		}
		defer release()
	}
	kv, err := ComputeAlone(ctx, s.m, prefixKV, chunks[i])
	if err != nil {
		return false, err
	}
	meta := &Meta{KVPrev: kvPrev}
	if o.ContextChunks > 0 {
		if meta.Stats, err = s.contextStats(ctx, prefixKV, kvPrev, chunks, i, o.ContextChunks); err != nil {
			return false, fmt.Errorf("statistics: %w", err)
		}
	}
	pr, err := s.Put(ctx, chunks[i], kv, meta)
	if err != nil {
		return false, err
	}
	return pr.Admitted, nil
}

// contextStats runs the statistics pass of chunk i: the system prefix, up to n chunks
// before it (as many as fit the context), then the chunk.
func (s *Store) contextStats(ctx context.Context, prefixKV *model.KV, kvPrev []Hash, chunks [][]int, i, n int) (*CraftStats, error) {
	c := &s.m.Config
	used := len(chunks[i])
	if prefixKV != nil {
		used += prefixKV.Len()
	}
	lo := i
	for lo > 0 && i-lo < n && used+len(chunks[lo-1]) <= c.Ctx {
		used += len(chunks[lo-1])
		lo--
	}
	var ctxKV *model.KV
	if prefixKV != nil {
		var err error
		if ctxKV, err = model.ConcatKV(used-prefixKV.Len(), prefixKV); err != nil {
			return nil, err
		}
	} else {
		ctxKV = model.NewKV(c, used)
	}
	prev := append([]Hash(nil), kvPrev...)
	for j := lo; j < i; j++ {
		start := ctxKV.Len()
		if _, err := s.m.Extend(ctx, ctxKV, chunks[j], rangeRows(start, start+len(chunks[j])), model.ExtendOptions{}); err != nil {
			return nil, err
		}
		prev = append(prev, TokenHash(chunks[j]))
	}
	return ContextStats(ctx, s.m, ctxKV, chunks[i], prev)
}
