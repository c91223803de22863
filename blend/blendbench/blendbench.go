// Package blendbench measures the time to first token of fused prefills against a full
// prefill, side by side in one process (`ragkv bench prefill` and the blend Go
// benchmarks): random chunks are precomputed into a chunk cache with one tier (host
// RAM or Badger on disk), then each method builds the prompt's KV from the cache —
// opening the chunks, loading and re-rotating their layers on the loader goroutine
// while recomputing — up to the first generated token. The analytic bound of a method
// is the full prefill's FLOPs divided by the FLOPs it actually computed (projections,
// feed-forward, causal attention, classifier).
package blendbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/store"
)

// ErrInvalid reports bad options.
var ErrInvalid = errors.New("blendbench: invalid argument")

// Options configures Run.
type Options struct {
	Chunks      int     // default 6
	ChunkTokens int     // default 512
	QueryTokens int     // default 32
	Ratio       float64 // default 0.15
	// Tier is "memory", "disk" or "remote" (default "memory"). For "remote" the chunks
	// are only in the Redis remote tier at Remote (a memory tier too small for any
	// chunk sits above it, as in `ragkv serve --remote`, with promotion off).
	Tier   string
	Remote store.RedisOptions
	// Dir is the Badger directory of the disk tier (default: a temporary directory,
	// removed afterwards).
	Dir string
	// DType of the stored KV (default F16).
	DType chunkcache.DType
	// Format, if its DType is set, is the full storage encoding (group size, rotation,
	// mixed precision); it overrides DType.
	Format chunkcache.Layout
	// PreRoPE stores K without its rotary embedding (blend.StoreOptions.PreRoPE).
	PreRoPE bool
	// Iters is the number of timed rounds; the best time of each method is kept
	// (default 1).
	Iters int
	Seed  uint64
	// Blend configures the fused methods.
	Blend blend.Options
	// Log receives progress lines (nil: none).
	Log *slog.Logger
}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.Chunks == 0 {
		o.Chunks = 6
	}
	if o.ChunkTokens == 0 {
		o.ChunkTokens = 512
	}
	if o.QueryTokens == 0 {
		o.QueryTokens = 32
	}
	if o.Ratio == 0 {
		o.Ratio = 0.15
	}
	if o.Tier == "" {
		o.Tier = "memory"
	}
	if o.Format.DType != 0 {
		o.DType = o.Format.DType
	}
	if o.DType == 0 {
		o.DType = chunkcache.F16
	}
	if o.Iters == 0 {
		o.Iters = 1
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
}

// Validate checks the options against the model.
func (o *Options) Validate(c *model.Config) error {
	switch {
	case o.Chunks < 1 || o.ChunkTokens < 1 || o.QueryTokens < 1:
		return fmt.Errorf("%w: %d chunks of %d tokens, %d query tokens (all must be ≥ 1)", ErrInvalid, o.Chunks, o.ChunkTokens, o.QueryTokens)
	case !(o.Ratio > 0 && o.Ratio <= 1):
		return fmt.Errorf("%w: ratio %g (want 0 < r ≤ 1)", ErrInvalid, o.Ratio)
	case o.Tier != "memory" && o.Tier != "disk" && o.Tier != "remote":
		return fmt.Errorf("%w: tier %q (want memory, disk or remote)", ErrInvalid, o.Tier)
	case o.Tier == "remote" && len(o.Remote.Addrs) == 0:
		return fmt.Errorf("%w: tier remote without a Redis address", ErrInvalid)
	case o.Iters < 1:
		return fmt.Errorf("%w: iters %d", ErrInvalid, o.Iters)
	case o.Chunks*o.ChunkTokens+o.QueryTokens > c.Ctx:
		return fmt.Errorf("%w: %d×%d + %d tokens exceed the model's %d-token context (synthesize it with a longer --ctx)",
			ErrInvalid, o.Chunks, o.ChunkTokens, o.QueryTokens, c.Ctx)
	}
	return nil
}

// MethodResult is one method's best round.
type MethodResult struct {
	TTFT          float64      `json:"ttft_s"`
	Speedup       float64      `json:"speedup"`
	Bound         float64      `json:"bound"`
	FracOfBound   float64      `json:"frac_of_bound"`
	RecomputeFrac float64      `json:"recompute_frac"`
	FirstToken    int          `json:"first_token"`
	Stats         *blend.Stats `json:"stats"`
}

// Report is the result of Run; the flat keys are the headline numbers.
type Report struct {
	Model       string  `json:"model"`
	Threads     int     `json:"threads"`
	Tier        string  `json:"tier"`
	DType       string  `json:"dtype"`
	Chunks      int     `json:"chunks"`
	ChunkTokens int     `json:"chunk_tokens"`
	QueryTokens int     `json:"query_tokens"`
	Ratio       float64 `json:"ratio"`
	Iters       int     `json:"iters"`
	// PreRoPE: K stored without its rotary embedding (Options.PreRoPE).
	PreRoPE bool `json:"prerope,omitempty"`

	TTFTFull          float64 `json:"ttft_full_s"`
	TTFTCacheBlend    float64 `json:"ttft_cacheblend_s"`
	TTFTCacheCraft    float64 `json:"ttft_cachecraft_s"`
	SpeedupCacheBlend float64 `json:"speedup_cacheblend"`
	BoundCacheBlend   float64 `json:"bound_cacheblend"`
	SpeedupCacheCraft float64 `json:"speedup_cachecraft"`
	BoundCacheCraft   float64 `json:"bound_cachecraft"`
	// LoadHiddenFrac is the share of chunk loading (read, decode, re-rotate) that
	// overlapped computation, over both fused methods.
	LoadHiddenFrac float64 `json:"load_hidden_frac"`
	// SameFirstToken: the fused methods chose full's first token.
	SameFirstToken bool `json:"same_first_token"`
	// PrecomputeSeconds is the time to compute and store the chunks (not timed above).
	PrecomputeSeconds float64 `json:"precompute_s"`
	StoredBytes       int64   `json:"stored_bytes"`

	Methods map[string]*MethodResult `json:"methods"`
}

// Bench is a prepared benchmark: chunks stored in a one-tier chunk cache.
type Bench struct {
	o       Options
	m       *model.Model
	cache   *chunkcache.Cache
	st      *blend.Store
	b       *blend.Blender
	chunks  [][]int
	query   []int
	cleanup func()
	// PrecomputeTime is how long storing the chunks took.
	PrecomputeTime time.Duration
}

// Setup generates the chunks and query and precomputes the chunks into the tier.
func Setup(ctx context.Context, m *model.Model, o Options) (_ *Bench, err error) {
	o.EnsureDefaults()
	c := &m.Config
	if err := o.Validate(c); err != nil {
		return nil, err
	}
	bn := &Bench{o: o, m: m, cleanup: func() {}}
	defer func() {
		if err != nil {
			bn.Close()
		}
	}()
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	tok := func(n int) []int {
		t := make([]int, n)
		for i := range t {
			t[i] = 3 + rng.IntN(c.Vocab-3)
		}
		return t
	}
	bn.chunks = make([][]int, o.Chunks)
	for i := range bn.chunks {
		bn.chunks[i] = tok(o.ChunkTokens)
	}
	bn.query = tok(o.QueryTokens)

	chunkBytes := int64(bn.layout().BytesPerToken(o.ChunkTokens) * float64(o.ChunkTokens))
	capacity := 2*int64(o.Chunks)*chunkBytes + 64<<20
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var tier store.Tier
	tiers := func() []chunkcache.TierConfig {
		return []chunkcache.TierConfig{{Tier: tier, Eviction: eviction.Config{Capacity: capacity}}}
	}
	switch o.Tier {
	case "remote":
		ro := o.Remote
		ro.Logger, ro.UsageInterval = quiet, -1
		r, err := store.OpenRedis(ctx, ro)
		if err != nil {
			return nil, err
		}
		tier = r
		tiers = func() []chunkcache.TierConfig {
			return []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 1}}, {Tier: r}}
		}
	case "memory":
		tier = store.NewMemory()
	case "disk":
		dir := o.Dir
		if dir == "" {
			d, err := os.MkdirTemp("", "ragkv-bench-prefill-")
			if err != nil {
				return nil, err
			}
			bn.cleanup = func() { os.RemoveAll(d) }
			dir = d
		}
		b, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, Logger: quiet, GCInterval: -1})
		if err != nil {
			return nil, err
		}
		tier = b
	}
	bn.cache, err = chunkcache.New(ctx, chunkcache.Options{
		Tiers:            tiers(),
		MaxChunkBytes:    chunkBytes + 64<<20,
		DisablePromotion: true,
		Logger:           quiet,
	})
	if err != nil {
		tier.Close()
		return nil, err
	}
	if bn.st, err = blend.NewStore(m, bn.cache, blend.StoreOptions{DType: o.DType, Format: o.Format, PreRoPE: o.PreRoPE}); err != nil {
		return nil, err
	}
	if bn.b, err = blend.New(m, o.Blend); err != nil {
		return nil, err
	}
	t0 := time.Now()
	if _, err := bn.st.Precompute(ctx, bn.chunks, blend.PrecomputeOptions{}); err != nil {
		return nil, err
	}
	bn.PrecomputeTime = time.Since(t0)
	return bn, nil
}

// StoredBytes is what the tier holds (the remote tier: what the puts wrote).
func (bn *Bench) StoredBytes() int64 {
	st := bn.cache.Stats()
	if bn.o.Tier == "remote" {
		var n int64
		for _, c := range bn.chunks {
			k, err := bn.st.Key(c, nil)
			if err != nil {
				continue
			}
			if res, err := bn.cache.Lookup(context.Background(), "", []chunkcache.Key{k}); err == nil && res[0].Present {
				n += int64(bn.layout().BytesPerToken(len(c)) * float64(len(c)))
			}
		}
		return n
	}
	return st.Tiers[0].Bytes
}

// Close releases the cache (and removes a temporary disk directory).
func (bn *Bench) Close() error {
	var err error
	if bn.cache != nil {
		err = bn.cache.Close()
	}
	bn.cleanup()
	return err
}

// Prefill runs one prefill with a method from the stored chunks (full: their tokens
// only) and returns it with the greedy first token.
func (bn *Bench) Prefill(ctx context.Context, meth blend.Method) (*blend.Result, int, error) {
	return prefillOnce(ctx, bn.b, bn.st, bn.chunks, bn.query, meth, bn.o.Ratio)
}

// Run precomputes the chunks and times full, CacheBlend and Cache-Craft.
func Run(ctx context.Context, m *model.Model, o Options) (*Report, error) {
	o.EnsureDefaults()
	logf := func(msg string, args ...any) {
		if o.Log != nil {
			o.Log.Info(msg, args...)
		}
	}
	logf("precomputing chunks", "chunks", o.Chunks, "tokens", o.ChunkTokens, "tier", o.Tier)
	bn, err := Setup(ctx, m, o)
	if err != nil {
		return nil, err
	}
	defer bn.Close()
	rep := &Report{Model: m.Path, Threads: m.Pool().Threads(), Tier: o.Tier, DType: bn.layout().Format(), PreRoPE: o.PreRoPE, Chunks: o.Chunks,
		ChunkTokens: o.ChunkTokens, QueryTokens: o.QueryTokens, Ratio: o.Ratio, Iters: o.Iters,
		PrecomputeSeconds: bn.PrecomputeTime.Seconds(), StoredBytes: bn.StoredBytes(),
		Methods: map[string]*MethodResult{}}
	// Warm up the weights (page faults of a memory-mapped file) and the pools.
	if _, _, err := m.Prefill(ctx, bn.query, 0, 0, model.ExtendOptions{Logits: []int{len(bn.query) - 1}}); err != nil {
		return nil, err
	}
	methods := []blend.Method{blend.Full, blend.CacheBlend, blend.CacheCraft}
	for it := 0; it < o.Iters; it++ {
		for _, meth := range methods {
			t := time.Now()
			res, first, err := bn.Prefill(ctx, meth)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", meth, err)
			}
			ttft := time.Since(t).Seconds()
			logf("prefill", "method", meth, "iter", it, "ttft_s", ttft)
			r := rep.Methods[string(meth)]
			if r == nil || ttft < r.TTFT {
				rep.Methods[string(meth)] = &MethodResult{TTFT: ttft, FirstToken: first, Stats: &res.Stats,
					Bound: res.Stats.FullFLOPs / res.Stats.FLOPs, RecomputeFrac: res.Stats.RecomputeFrac}
			}
		}
	}
	full := rep.Methods[string(blend.Full)]
	var load, wait float64
	rep.SameFirstToken = true
	for _, r := range rep.Methods {
		r.Speedup = full.TTFT / r.TTFT
		r.FracOfBound = r.Speedup / r.Bound
		load += (r.Stats.Load + r.Stats.Rotate).Seconds()
		wait += r.Stats.Wait.Seconds()
		rep.SameFirstToken = rep.SameFirstToken && r.FirstToken == full.FirstToken
	}
	if load > 0 {
		rep.LoadHiddenFrac = max(0, 1-wait/load)
	}
	cb, cc := rep.Methods[string(blend.CacheBlend)], rep.Methods[string(blend.CacheCraft)]
	rep.TTFTFull, rep.TTFTCacheBlend, rep.TTFTCacheCraft = full.TTFT, cb.TTFT, cc.TTFT
	rep.SpeedupCacheBlend, rep.BoundCacheBlend = cb.Speedup, cb.Bound
	rep.SpeedupCacheCraft, rep.BoundCacheCraft = cc.Speedup, cc.Bound
	return rep, nil
}

// prefillOnce opens the chunks from the cache (full: uses only their tokens), runs one
// fused prefill and returns it with the greedy first token.
func prefillOnce(ctx context.Context, b *blend.Blender, st *blend.Store, chunks [][]int, query []int, meth blend.Method, ratio float64) (*blend.Result, int, error) {
	segs := make([]blend.Segment, len(chunks))
	if meth == blend.Full {
		for i, c := range chunks {
			segs[i] = blend.Segment{Tokens: c}
		}
	} else {
		for i, c := range chunks {
			seg, closer, err := st.Open(ctx, c, nil)
			if err != nil {
				return nil, 0, err
			}
			defer closer.Close()
			segs[i] = seg
		}
	}
	res, err := b.Prefill(ctx, &blend.Request{Method: meth, Ratio: ratio, Segments: segs, Query: query})
	if err != nil {
		return nil, 0, err
	}
	return res, model.Argmax(res.Logits), nil
}

// layout is the stored chunk layout.
func (bn *Bench) layout() chunkcache.Layout {
	c := &bn.m.Config
	l := chunkcache.Layout{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, DType: bn.o.DType}
	if bn.o.Format.DType != 0 {
		l = l.WithFormat(bn.o.Format)
	}
	l.EnsureDefaults()
	return l
}
