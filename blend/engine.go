package blend

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/model"
)

// More errors.
var (
	// ErrHandleNotFound: a Generate handle is unknown, expired or already consumed.
	ErrHandleNotFound = errors.New("blend: prefill handle not found (expired, evicted or consumed)")
	// ErrChunkNotCached: a chunk given by key is not in the cache (send its text).
	ErrChunkNotCached = errors.New("blend: chunk not in the cache")
	// ErrBusy: the engine's request queue is full (EngineOptions.MaxQueue); retry later.
	ErrBusy = errors.New("blend: engine busy")
)

// EngineOptions configures an Engine.
type EngineOptions struct {
	// Blend configures the fusion methods.
	Blend Options
	// DefaultRatio for requests that give none (default 0.15).
	DefaultRatio float64
	// HandleTTL is how long a prefill's KV is kept for Generate (default 5 minutes);
	// MaxHandles and MaxHandleBytes bound them (least recently used dropped first;
	// defaults 64 and 2 GiB).
	HandleTTL      time.Duration
	MaxHandles     int
	MaxHandleBytes int64
	// MaxConcurrent is the number of engine slots: units of work computing at once
	// (default 1: they share the kernel pool anyway). Work holds a slot for short units
	// — one decode step of every active generation together, one layer of a prefill,
	// one chunk computed on the fly or precomputed — and gives it back between them
	// (see sched.go): decode steps and prefills share the engine by DecodeShare, and
	// among prefills the shortest (with aging) goes first.
	MaxConcurrent int
	// Serial restores the scheduling from before continuous batching, for comparison: a
	// prefill holds a slot from start to end and a generation through its whole decode,
	// one token per step.
	Serial bool
	// NoPrefillBatch turns off the batching of concurrent prefills' layer steps
	// (batch.go: the rows of several prefills at the same layer through each weight
	// matrix together), for comparison; Serial implies it.
	NoPrefillBatch bool
	// MaxBatch bounds the generations stepped together in one decode step (default 64;
	// beyond it they take turns).
	MaxBatch int
	// MaxQueue bounds the prefills and generations inside the engine, waiting or running
	// (default 256): beyond it a request fails at once with ErrBusy.
	MaxQueue int
	// DecodeShare is decode's share of the engine time while decode steps and prefills
	// both wait (default 0.5, in (0, 1)); Quantum the least time work keeps a slot
	// before it yields to work that should go first (default 5ms: each hand-over
	// wakes another goroutine).
	DecodeShare float64
	Quantum     time.Duration
	// Aging weighs a prefill's estimated compute in its place among waiting prefills
	// (key = arrival + Aging × estimate; default DefaultAging): a shorter prefill goes
	// first unless a longer one has waited Aging times their difference in compute
	// longer. Larger favours fused prefills' time to first token over full ones'.
	Aging float64
	// ContextChunks is the default statistics context of Precompute (see
	// PrecomputeOptions).
	ContextChunks int
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

// EnsureDefaults fills in zero fields.
func (o *EngineOptions) EnsureDefaults() {
	o.Blend.EnsureDefaults()
	if o.DefaultRatio == 0 {
		o.DefaultRatio = 0.15
	}
	if o.HandleTTL == 0 {
		o.HandleTTL = 5 * time.Minute
	}
	if o.MaxHandles == 0 {
		o.MaxHandles = 64
	}
	if o.MaxHandleBytes == 0 {
		o.MaxHandleBytes = 2 << 30
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 1
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 64
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = 256
	}
	if o.DecodeShare == 0 {
		o.DecodeShare = 0.5
	}
	if o.Quantum == 0 {
		o.Quantum = 5 * time.Millisecond
	}
	if o.Aging == 0 {
		o.Aging = DefaultAging
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate checks the options.
func (o *EngineOptions) Validate() error {
	if err := o.Blend.Validate(); err != nil {
		return err
	}
	switch {
	case !(o.DefaultRatio >= 0 && o.DefaultRatio <= 1):
		return fmt.Errorf("%w: default ratio %g", ErrInvalid, o.DefaultRatio)
	case o.HandleTTL < 0 || o.MaxHandles < 0 || o.MaxHandleBytes < 0 || o.MaxConcurrent < 0:
		return fmt.Errorf("%w: negative handle TTL, handle bound or concurrency", ErrInvalid)
	case o.MaxBatch < 0 || o.MaxQueue < 0 || o.Quantum < 0:
		return fmt.Errorf("%w: negative decode batch %d, queue bound %d or quantum %v", ErrInvalid, o.MaxBatch, o.MaxQueue, o.Quantum)
	case !(o.Aging >= 0) || math.IsInf(o.Aging, 0):
		return fmt.Errorf("%w: aging %g (want ≥ 0)", ErrInvalid, o.Aging)
	case !(o.DecodeShare > 0 && o.DecodeShare < 1):
		return fmt.Errorf("%w: decode share %g (want 0 < share < 1)", ErrInvalid, o.DecodeShare)
	}
	return nil
}

// Engine serves fused prefills and generation over a Store (model + chunk cache) and
// keeps the fused KVs of recent prefills under handles. It is safe for concurrent use.
type Engine struct {
	st  *Store
	b   *Blender
	o   EngineOptions
	log *slog.Logger
	sem chan struct{}
	met *engineMetrics

	mu      sync.Mutex
	handles map[string]*list.Element // of *handle
	lru     *list.List               // front: most recent
	bytes   int64
	unitNs  float64 // engine time per unit of prefill work (moving average; scheduler keys)

	arb      *arbiter
	inflight atomic.Int64 // prefills and generations inside the engine (MaxQueue)
	// The decode loop (decode.go): one goroutine while any generation is active.
	dmu      sync.Mutex
	joining  []*seq
	decoding bool
	wake     chan struct{}
	batch    *model.Batch // used by the decode loop only
	pb       *prefillBatcher
}

type handle struct {
	id      string
	kv      *model.KV
	logits  []float32 // after the last prompt token
	last    int       // last prompt token
	expires time.Time
	bytes   int64
}

// NewEngine returns an Engine.
func NewEngine(st *Store, o EngineOptions) (*Engine, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	b, err := New(st.m, o.Blend)
	if err != nil {
		return nil, err
	}
	e := &Engine{st: st, b: b, o: o, log: o.Logger, sem: make(chan struct{}, o.MaxConcurrent),
		handles: map[string]*list.Element{}, lru: list.New(),
		arb: newArbiter(o.MaxConcurrent, o.DecodeShare, o.Quantum), wake: make(chan struct{}, 1)}
	if !o.Serial && !o.NoPrefillBatch {
		e.pb = newPrefillBatcher()
	}
	if o.Registerer != nil {
		if e.met, err = newEngineMetrics(o.Registerer, e); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// enter admits a request into the engine (ErrBusy beyond MaxQueue); leave when done.
func (e *Engine) enter() (leave func(), err error) {
	if n := e.inflight.Add(1); n > int64(e.o.MaxQueue) {
		e.inflight.Add(-1)
		return nil, fmt.Errorf("%w: %d requests in the engine (at most %d)", ErrBusy, n-1, e.o.MaxQueue)
	}
	return func() { e.inflight.Add(-1) }, nil
}

// acquire takes a slot for background work (precompute) or, with Serial, a whole
// request.
func (e *Engine) acquire(ctx context.Context) (func(), error) {
	if !e.o.Serial {
		// Background work goes after every waiting request (PrecomputeShare bounds its
		// share of the engine besides).
		t := e.arb.newTicket(false, math.MaxInt64)
		if err := t.acquire(ctx); err != nil {
			return nil, err
		}
		return t.release, nil
	}
	select {
	case e.sem <- struct{}{}:
		return func() { <-e.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ChunkRef names a chunk of a prompt: by key, by text, or by token ids (Tokens, when
// set, replaces Text: for callers that tokenize themselves).
type ChunkRef struct {
	Key    *chunkcache.Key
	Text   string
	Tokens []int
}

// PrefillInput is a prompt and how to prefill it.
type PrefillInput struct {
	Namespace string
	System    string
	Chunks    []ChunkRef
	Query     string
	Method    Method
	// Ratio (nil: the engine's default).
	Ratio   *float64
	Reserve int
	// SystemTokens and QueryTokens, when not nil, replace System and Query with token
	// ids (SystemTokens as is: no BOS is added), for callers that tokenize themselves
	// (chat templates with special tokens).
	SystemTokens []int
	QueryTokens  []int
	// KeepHandle keeps the prefill's KV under a handle (PrefillOutput.Handle) for
	// Generate; without it Prefill keeps nothing. Generate's own prefill ignores it.
	KeepHandle bool
}

// SegmentReport describes one segment of a prefill.
type SegmentReport struct {
	SegmentStats
	Kind string // "system" or "chunk"
	Key  chunkcache.Key
	// Source is the tier the KV came from, "computed" (missing: computed now) or
	// "none" (a chunk given by text to Full, which reads no cache).
	Source string
	Stored bool // computed now and admitted by the cache
}

// PrefillOutput is a served prefill.
type PrefillOutput struct {
	Handle     string
	Expires    time.Time
	FirstToken int
	FirstText  string
	Logits     []float32
	Stats      Stats
	Segments   []SegmentReport
	CacheHits  map[string]int
	// Prepare is the time to open the chunks and compute missing ones.
	Prepare time.Duration

	kv   *model.KV
	last int
}

// Model returns the engine's model (for its tokenizer and configuration).
func (e *Engine) Model() *model.Model { return e.st.m }

// Prefill prefills a prompt and, with in.KeepHandle, keeps its KV under a handle.
func (e *Engine) Prefill(ctx context.Context, in *PrefillInput) (*PrefillOutput, error) {
	leave, err := e.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	out, err := e.prefill(ctx, in)
	if err != nil {
		return nil, err
	}
	if in.KeepHandle {
		e.keep(out)
	}
	return out, nil
}

func (e *Engine) prefill(ctx context.Context, in *PrefillInput) (*PrefillOutput, error) {
	start := time.Now() // time to first token counts the wait for an engine slot
	method := in.Method
	if method == "" {
		method = CacheBlend
	}
	if _, err := ParseMethod(string(method)); err != nil {
		return nil, err
	}
	ratio := e.o.DefaultRatio
	if in.Ratio != nil {
		ratio = *in.Ratio
	}
	if !(ratio >= 0 && ratio <= 1) {
		return nil, fmt.Errorf("%w: ratio %g (want 0..1)", ErrInvalid, ratio)
	}
	if in.Reserve < 0 {
		return nil, fmt.Errorf("%w: reserve %d", ErrInvalid, in.Reserve)
	}
	st, err := e.st.WithNamespace(in.Namespace)
	if err != nil {
		return nil, err
	}
	// Tokenize everything and check the prompt's length before computing any chunk (or
	// waiting for an engine slot): a prompt too long for the context fails at once,
	// however many of its chunks are missing.
	m := e.st.m
	prefix := m.Tok.Encode(in.System, true, false)
	if in.SystemTokens != nil {
		prefix = in.SystemTokens
	}
	query := m.Tok.Encode(in.Query, false, false)
	if in.QueryTokens != nil {
		query = in.QueryTokens
	}
	chunkToks := make([][]int, len(in.Chunks))
	total := len(prefix) + len(query)
	for i, ch := range in.Chunks {
		if ch.Key != nil {
			continue // counted when opened (nothing is computed for it)
		}
		toks := ch.Tokens
		if len(toks) == 0 {
			toks = m.Tok.Encode(ch.Text, false, false)
		}
		chunkToks[i] = toks
		if total += len(toks); total > m.Config.Ctx {
			return nil, fmt.Errorf("%w: at least %d tokens (system, query and chunks 0..%d) > %d; nothing computed", ErrTooLong, total, i, m.Config.Ctx)
		}
	}
	if total > m.Config.Ctx {
		return nil, fmt.Errorf("%w: %d tokens > %d; nothing computed", ErrTooLong, total, m.Config.Ctx)
	}
	// The engine: with Serial a slot for the whole prefill; otherwise a ticket whose key
	// orders it among the waiting prefills (arrival + estimated compute: shortest first,
	// with aging), held only for compute units.
	var gate *ticket
	var units float64
	if e.o.Serial {
		release, err := e.acquire(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	} else {
		units = prefillUnits(&m.Config, method, ratio, e.b.opts.CheckLayer, total, len(query))
		e.mu.Lock()
		est := units * e.unitNs
		e.mu.Unlock()
		gate = e.arb.newTicket(false, start.UnixNano()+int64(e.o.Aging*est))
		// Held from here to the end as the serial engine holds its slot (so that the CPU
		// work of opening chunks is not spread over every waiting request, competing
		// with the kernels' workers), but given up at each layer or chunk computation
		// to work that should go first.
		if err := gate.acquire(ctx); err != nil {
			return nil, err
		}
		defer func() {
			gate.release()
			// The prefill's own compute: its holds, corrected for batched steps (those of
			// others it ran, its own run by others), so that the estimates that order
			// prefills do not follow whoever ran a batch.
			if own := gate.total + gate.credit; own > 0 && units > 0 {
				e.mu.Lock()
				if v := float64(own) / units; e.unitNs == 0 {
					e.unitNs = v
				} else {
					e.unitNs += 0.1 * (v - e.unitNs)
				}
				e.mu.Unlock()
			}
		}()
	}
	t0 := time.Now()
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	out := &PrefillOutput{CacheHits: map[string]int{}}
	var segs []Segment
	// The system prefix: BOS + system text. Its exact KV is needed only to compute a
	// missing chunk; when the prefix itself comes from the cache it is computed then,
	// once.
	var prefixKV *model.KV
	prefixKVFn := func() (*model.KV, error) {
		if prefixKV == nil && len(prefix) > 0 {
			if gate != nil {
				if err := gate.yield(ctx); err != nil {
					return nil, err
				}
			}
			var err error
			if prefixKV, _, err = m.Prefill(ctx, prefix, 0, 0, model.ExtendOptions{}); err != nil {
				return nil, fmt.Errorf("system prefix: %w", err)
			}
		}
		return prefixKV, nil
	}
	var kvPrev []Hash
	if len(prefix) > 0 {
		seg, rep, kv, closer, err := e.segment(ctx, st, prefix, nil, nil, gate)
		if err != nil {
			return nil, fmt.Errorf("system prefix: %w", err)
		}
		if closer != nil {
			closers = append(closers, closer)
		}
		rep.Kind = "system"
		prefixKV = kv // nil when it came from the cache
		kvPrev = []Hash{TokenHash(prefix)}
		segs = append(segs, seg)
		out.Segments = append(out.Segments, rep)
	}
	for i, ch := range in.Chunks {
		var seg Segment
		var rep SegmentReport
		var closer io.Closer
		switch {
		case ch.Key != nil:
			seg, closer, err = st.OpenKey(ctx, *ch.Key)
			if errors.Is(err, chunkcache.ErrNotFound) {
				return nil, fmt.Errorf("chunk %d: %w: key %s (send its text to compute it)", i, ErrChunkNotCached, ch.Key)
			}
			if err != nil {
				return nil, fmt.Errorf("chunk %d: %w", i, err)
			}
			rep = SegmentReport{Key: *ch.Key, Source: seg.Source.Tier()}
		default:
			toks := chunkToks[i]
			if len(toks) == 0 {
				return nil, fmt.Errorf("%w: chunk %d is empty", ErrInvalid, i)
			}
			if method == Full {
				// Nothing cached is used: do not look it up or compute it.
				k, err := st.Key(toks, kvPrev)
				if err != nil {
					return nil, err
				}
				seg, rep = Segment{Tokens: toks}, SegmentReport{Key: k, Source: "none"}
				break
			}
			if seg, rep, _, closer, err = e.segment(ctx, st, toks, kvPrev, prefixKVFn, gate); err != nil {
				return nil, fmt.Errorf("chunk %d: %w", i, err)
			}
		}
		if closer != nil {
			closers = append(closers, closer)
		}
		rep.Kind = "chunk"
		segs = append(segs, seg)
		out.Segments = append(out.Segments, rep)
	}
	for _, r := range out.Segments {
		out.CacheHits[r.Source]++
	}
	out.Prepare = time.Since(t0)
	res, err := e.b.Prefill(ctx, &Request{Method: method, Segments: segs, Query: query, Ratio: ratio, Reserve: in.Reserve, gate: gate, batch: e.pb})
	if err != nil {
		return nil, err
	}
	for i := range out.Segments {
		if i < len(res.Stats.Segments) {
			out.Segments[i].SegmentStats = res.Stats.Segments[i]
		} else {
			// A one-token last segment that became the query (empty query).
			n := len(segs[i].Tokens)
			out.Segments[i].SegmentStats = SegmentStats{Tokens: n, Recomputed: n}
		}
	}
	out.Stats = res.Stats
	out.Logits = res.Logits
	out.FirstToken = model.Argmax(res.Logits)
	out.last = res.Query[len(res.Query)-1]
	out.FirstText = strings.ToValidUTF8(string(m.Tok.Piece(out.last, out.FirstToken)), "\uFFFD")
	out.kv = res.KV
	if e.met != nil {
		e.met.observe(out, time.Since(start))
	}
	return out, nil
}

// segment opens a stored segment computed after kvPrev (its Source reads the cache
// until closer is closed), or computes it after the prefix whose exact KV prefixKV
// returns (called only then; nil: no prefix) and stores it (returning the KV it
// computed), holding gate (if not nil) while it computes.
func (e *Engine) segment(ctx context.Context, st *Store, toks []int, kvPrev []Hash, prefixKV func() (*model.KV, error), gate *ticket) (Segment, SegmentReport, *model.KV, io.Closer, error) {
	key, err := st.Key(toks, kvPrev)
	if err != nil {
		return Segment{}, SegmentReport{}, nil, nil, err
	}
	seg, closer, err := st.OpenKey(ctx, key)
	if err == nil {
		return seg, SegmentReport{Key: key, Source: seg.Source.Tier()}, nil, closer, nil
	}
	if !errors.Is(err, chunkcache.ErrNotFound) && !errors.Is(err, chunkcache.ErrUnknownNamespace) {
		return Segment{}, SegmentReport{}, nil, nil, err
	}
	var pkv *model.KV
	if prefixKV != nil {
		if pkv, err = prefixKV(); err != nil {
			return Segment{}, SegmentReport{}, nil, nil, err
		}
	}
	if gate != nil {
		if err := gate.yield(ctx); err != nil {
			return Segment{}, SegmentReport{}, nil, nil, err
		}
	}
	kv, err := ComputeAlone(ctx, st.m, pkv, toks)
	if err != nil {
		return Segment{}, SegmentReport{}, nil, nil, err
	}
	meta := &Meta{KVPrev: kvPrev}
	pr, err := st.PutOnTheFly(ctx, toks, kv, meta)
	if err != nil {
		return Segment{}, SegmentReport{}, nil, nil, err
	}
	return Segment{Tokens: toks, Source: &KVSource{KV: kv, TierName: "computed"}, Meta: meta},
		SegmentReport{Key: key, Source: "computed", Stored: pr.Admitted}, kv, nil, nil
}

// keep stores out's KV under a new handle (unless it alone exceeds the byte bound).
func (e *Engine) keep(out *PrefillOutput) {
	if out.kv == nil {
		return
	}
	b := int64(out.kv.Cap()) * int64(out.kv.KVDim) * int64(out.kv.Layers) * 8
	if b > e.o.MaxHandleBytes || e.o.MaxHandles == 0 {
		e.log.Warn("blend: prefill KV not kept: larger than the handle budget", "bytes", b, "budget", e.o.MaxHandleBytes)
		return
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	h := &handle{id: hex.EncodeToString(id[:]), kv: out.kv, logits: append([]float32(nil), out.Logits...), last: out.last,
		expires: time.Now().Add(e.o.HandleTTL), bytes: b}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.expireLocked(time.Now())
	for e.lru.Len() > 0 && (e.lru.Len() >= e.o.MaxHandles || e.bytes+b > e.o.MaxHandleBytes) {
		e.dropLocked(e.lru.Back())
	}
	e.handles[h.id] = e.lru.PushFront(h)
	e.bytes += b
	out.Handle, out.Expires = h.id, h.expires
}

func (e *Engine) expireLocked(now time.Time) {
	for el := e.lru.Back(); el != nil; {
		prev := el.Prev()
		if el.Value.(*handle).expires.Before(now) {
			e.dropLocked(el)
		}
		el = prev
	}
}

func (e *Engine) dropLocked(el *list.Element) {
	h := el.Value.(*handle)
	e.lru.Remove(el)
	delete(e.handles, h.id)
	e.bytes -= h.bytes
}

// take returns a handle's state: consumed, or a copy when keep.
func (e *Engine) take(id string, keep bool) (*handle, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.expireLocked(time.Now())
	el, ok := e.handles[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrHandleNotFound, id)
	}
	h := el.Value.(*handle)
	if !keep {
		e.dropLocked(el)
		return h, nil
	}
	e.lru.MoveToFront(el)
	c := *h
	c.kv = h.kv.Clone()
	return &c, nil
}

// Handles reports the number of kept prefills and their bytes.
func (e *Engine) Handles() (int, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lru.Len(), e.bytes
}

// GenerateInput is what Generate continues from: a handle, or a prompt to prefill.
type GenerateInput struct {
	Handle     string
	KeepHandle bool
	Prefill    *PrefillInput
	// MaxTokens to generate (default 128).
	MaxTokens   int
	Temperature float32
	TopP        float32
	Seed        uint64
	// IgnoreEOS keeps going past EOS/BOS.
	IgnoreEOS bool
	// Logits passes each token's distribution (the logits it was sampled from) in its
	// event, for log-probabilities.
	Logits bool
}

// GenerateEvent is one streamed event: the prefill (when Generate prefilled), a token
// (Token and the complete characters of Text so far), or the end (Done, with Text the
// rest of an incomplete UTF-8 sequence).
type GenerateEvent struct {
	Prefill *PrefillOutput
	Token   int
	Text    string
	Done    *GenerateDone
	// Logits the token was sampled from (with GenerateInput.Logits; valid only during
	// the emit call).
	Logits []float32
}

// GenerateDone ends a generation.
type GenerateDone struct {
	Reason string // "eos", "max_tokens" or "context"
	Tokens int
	Decode time.Duration
}

// Generate decodes from a handle or a fresh prefill, calling emit for each event.
//
// Generations are decoded together: the engine's decode loop steps every active one by a
// token per step in one batched forward pass (model.Batch), so concurrent requests share
// each read of the weights; emit runs on the caller's goroutine, and a caller slow to
// take its events only pauses its own generation.
func (e *Engine) Generate(ctx context.Context, in *GenerateInput, emit func(GenerateEvent) error) error {
	if in.MaxTokens < 0 || in.Temperature < 0 || in.TopP < 0 || in.TopP > 1 {
		return fmt.Errorf("%w: max tokens %d, temperature %g, top-p %g", ErrInvalid, in.MaxTokens, in.Temperature, in.TopP)
	}
	if in.Handle != "" && in.Prefill != nil {
		return fmt.Errorf("%w: give a handle or a prompt, not both", ErrInvalid)
	}
	leave, err := e.enter()
	if err != nil {
		return err
	}
	defer leave()
	maxTok := in.MaxTokens
	if maxTok == 0 {
		maxTok = 128
	}
	var h *handle
	switch {
	case in.Handle != "":
		var err error
		if h, err = e.take(in.Handle, in.KeepHandle); err != nil {
			return err
		}
	case in.Prefill != nil:
		p := *in.Prefill
		p.Reserve = max(p.Reserve, maxTok)
		out, err := e.prefill(ctx, &p)
		if err != nil {
			return err
		}
		if err := emit(GenerateEvent{Prefill: out}); err != nil {
			return err
		}
		h = &handle{kv: out.kv, logits: out.Logits, last: out.last}
	default:
		return fmt.Errorf("%w: no handle and no prompt", ErrInvalid)
	}
	if !e.o.Serial {
		return e.decode(ctx, in, h, maxTok, emit)
	}
	release, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	m := e.st.m
	t0 := time.Now()
	stt := m.NewState(h.kv, maxTok)
	smp := model.NewSampler(in.Temperature, in.TopP, in.Seed)
	logits := append([]float32(nil), h.logits...)
	prev := h.last
	var text utf8Buffer
	done := &GenerateDone{}
	for {
		tok := smp.Sample(logits)
		if !in.IgnoreEOS && (tok == m.Tok.EOS() || tok == m.Tok.BOS()) {
			done.Reason = "eos"
			break
		}
		done.Tokens++
		ev := GenerateEvent{Token: tok, Text: text.add(m.Tok.Piece(prev, tok))}
		if in.Logits {
			ev.Logits = logits
		}
		if err := emit(ev); err != nil {
			return err
		}
		prev = tok
		if done.Tokens >= maxTok {
			done.Reason = "max_tokens"
			break
		}
		if stt.NextPos() >= m.Config.Ctx {
			done.Reason = "context"
			break
		}
		l, err := stt.Feed(ctx, tok)
		if err != nil {
			return err
		}
		copy(logits, l)
	}
	done.Decode = time.Since(t0)
	if e.met != nil {
		e.met.generated.Add(float64(done.Tokens))
		e.met.decodeSeconds.Add(done.Decode.Seconds())
	}
	return emit(GenerateEvent{Done: done, Text: text.flush()})
}

// utf8Buffer turns token pieces (which may split a UTF-8 sequence) into valid strings:
// complete characters are returned, an incomplete tail waits for the next piece.
type utf8Buffer struct{ pending []byte }

func (u *utf8Buffer) add(p []byte) string {
	u.pending = append(u.pending, p...)
	n := len(u.pending)
	// Keep back an incomplete sequence at the end (at most 3 bytes).
	for i := max(0, n-3); i < n; i++ {
		if utf8.RuneStart(u.pending[i]) {
			if !utf8.FullRune(u.pending[i:]) {
				n = i
			}
			break
		}
	}
	s := strings.ToValidUTF8(string(u.pending[:n]), "\uFFFD")
	u.pending = append(u.pending[:0], u.pending[n:]...)
	return s
}

func (u *utf8Buffer) flush() string {
	s := strings.ToValidUTF8(string(u.pending), "\uFFFD")
	u.pending = u.pending[:0]
	return s
}

// PrecomputeChunk is one chunk of a precompute job.
type PrecomputeChunk struct {
	ID   string
	Text string
}

// PrecomputeEvent reports one processed chunk.
type PrecomputeEvent struct {
	Index  int
	ID     string
	Key    chunkcache.Key
	Status string
	Tokens int
	Totals PrecomputeResult
}

// Precompute tokenizes chunks (without BOS) and stores them after the system prefix
// (BOS + system text) with Cache-Craft statistics; contextChunks 0 means the engine's
// default.
func (e *Engine) Precompute(ctx context.Context, ns, system string, chunks []PrecomputeChunk, contextChunks int, progress func(PrecomputeEvent) error) (*PrecomputeResult, error) {
	return e.PrecomputeShare(ctx, ns, system, chunks, contextChunks, 1, progress)
}

// PrecomputeShare is Precompute holding an engine slot at most share (in (0, 1]) of
// the time: after computing each chunk it waits, outside the slot, (1−share)/share ×
// the time the chunk held it, so that live prefills and generations keep priority.
func (e *Engine) PrecomputeShare(ctx context.Context, ns, system string, chunks []PrecomputeChunk, contextChunks int, share float64, progress func(PrecomputeEvent) error) (*PrecomputeResult, error) {
	if !(share > 0 && share <= 1) {
		return nil, fmt.Errorf("%w: engine share %g (want (0, 1])", ErrInvalid, share)
	}
	st, err := e.st.WithNamespace(ns)
	if err != nil {
		return nil, err
	}
	m := e.st.m
	toks := make([][]int, len(chunks))
	for i, c := range chunks {
		if toks[i] = m.Tok.Encode(c.Text, false, false); len(toks[i]) == 0 {
			return nil, fmt.Errorf("%w: chunk %d (%q) is empty", ErrInvalid, i, c.ID)
		}
	}
	if contextChunks == 0 {
		contextChunks = e.o.ContextChunks
	}
	return st.Precompute(ctx, toks, PrecomputeOptions{
		SystemPrefix:  m.Tok.Encode(system, true, false),
		ContextChunks: contextChunks,
		Acquire:       e.shareAcquire(share),
		Progress: func(i int, status string, totals PrecomputeResult) error {
			if progress == nil {
				return nil
			}
			return progress(PrecomputeEvent{Index: i, ID: chunks[i].ID, Key: totals.Keys[i], Status: status, Tokens: len(toks[i]), Totals: totals})
		},
	})
}

// shareAcquire is acquire for background work that may hold a slot share of the time.
func (e *Engine) shareAcquire(share float64) func(context.Context) (func(), error) {
	if share >= 1 {
		return e.acquire
	}
	return func(ctx context.Context) (func(), error) {
		release, err := e.acquire(ctx)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		return func() {
			release()
			t := time.NewTimer(time.Duration(float64(time.Since(t0)) * (1 - share) / share))
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
		}, nil
	}
}

type engineMetrics struct {
	prefills      *prometheus.CounterVec
	seconds       *prometheus.HistogramVec
	ttft          *prometheus.HistogramVec
	tokens        *prometheus.CounterVec
	chunks        *prometheus.CounterVec
	generated     prometheus.Counter
	decodeSeconds prometheus.Counter
	decodeSteps   prometheus.Counter
	decodeRows    prometheus.Counter
}

// ttftBuckets span a cached fused prefill of a small model (milliseconds) to a long
// prompt recomputed in full on CPU (a minute).
var ttftBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60, 120}

func newEngineMetrics(reg prometheus.Registerer, e *Engine) (*engineMetrics, error) {
	m := &engineMetrics{
		prefills: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragkv_blend_prefills_total", Help: "Fused prefills served, by method."}, []string{"method"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ragkv_blend_prefill_seconds", Help: "Prefill time (opening chunks to first token), by method.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}, []string{"method"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragkv_blend_prompt_tokens_total",
			Help: "Prompt tokens of fused prefills: segment tokens reused or recomputed, and query tokens."}, []string{"kind"}),
		chunks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragkv_blend_segments_total",
			Help: "Prompt segments by where their KV came from (a tier, or computed on the fly)."}, []string{"source"}),
		generated: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragkv_blend_generated_tokens_total", Help: "Tokens generated."}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ragkv_blend_ttft_seconds",
			Help:    "Time to first token of a prefill: from the request reaching the engine (including the wait for an engine slot) to the first token, by method.",
			Buckets: ttftBuckets}, []string{"method"}),
		decodeSeconds: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragkv_blend_decode_seconds_total",
			Help: "Time spent decoding (after the prefill) in Generate; with ragkv_blend_generated_tokens_total it gives decode tokens per second."}),
		decodeSteps: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragkv_blend_decode_steps_total",
			Help: "Batched decode steps (one forward pass for every generation stepped)."}),
		decodeRows: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragkv_blend_decode_rows_total",
			Help: "Generations stepped, summed over decode steps (÷ ragkv_blend_decode_steps_total: the mean batch)."}),
	}
	inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ragkv_blend_inflight",
		Help: "Prefills and decodes holding an engine slot now."}, func() float64 {
		if e.o.Serial {
			return float64(len(e.sem))
		}
		return float64(e.arb.busy())
	})
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ragkv_blend_requests",
		Help: "Prefills and generations inside the engine (waiting or running; bounded by MaxQueue)."},
		func() float64 { return float64(e.inflight.Load()) })
	maxConcurrent := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ragkv_blend_max_concurrent",
		Help: "Engine slots (prefills and decodes that may run at once)."}, func() float64 { return float64(cap(e.sem)) })
	handles := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ragkv_blend_handles", Help: "Prefilled KVs kept for Generate."},
		func() float64 { n, _ := e.Handles(); return float64(n) })
	handleBytes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ragkv_blend_handle_bytes", Help: "Bytes of the kept prefilled KVs."},
		func() float64 { _, b := e.Handles(); return float64(b) })
	for _, c := range []prometheus.Collector{m.prefills, m.seconds, m.ttft, m.tokens, m.chunks, m.generated, m.decodeSeconds,
		m.decodeSteps, m.decodeRows, handles, handleBytes, inflight, maxConcurrent, queued} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("blend: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *engineMetrics) observe(out *PrefillOutput, ttft time.Duration) {
	meth := string(out.Stats.Method)
	m.prefills.WithLabelValues(meth).Inc()
	m.seconds.WithLabelValues(meth).Observe((out.Prepare + out.Stats.Total).Seconds())
	m.ttft.WithLabelValues(meth).Observe(ttft.Seconds())
	var reused, rec int
	for _, s := range out.Segments {
		reused += s.Reused
		rec += s.Recomputed
		m.chunks.WithLabelValues(s.Source).Inc()
	}
	m.tokens.WithLabelValues("reused").Add(float64(reused))
	m.tokens.WithLabelValues("recomputed").Add(float64(rec))
	m.tokens.WithLabelValues("query").Add(float64(out.Stats.Query))
}

// DefaultAging is EngineOptions.Aging's default: strongly shortest first, which keeps
// the time to first token of fused prefills (a fraction of a full one) near their
// compute under load, while no prefill waits forever.
const DefaultAging = 8

// prefillUnits estimates a prefill's compute in token-layers of the model, for the
// scheduler's order of prefills: full and prefix prefills compute every token;
// CacheBlend every token up to its check layer, then the ratio; the others the ratio
// (and the query).
func prefillUnits(c *model.Config, method Method, ratio float64, checkLayer, tokens, query int) float64 {
	L := float64(c.Layers)
	n := float64(tokens)
	switch method {
	case Full, Prefix:
		return n * L
	case CacheBlend:
		chk := float64(min(checkLayer+1, c.Layers))
		return n*chk + (float64(query)+ratio*n)*(L-chk)
	}
	return (float64(query) + ratio*n) * L
}
