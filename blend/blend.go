package blend

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/ragkv/ragkv/model"
)

// Method is a fusion method.
type Method string

// Methods.
const (
	// Full prefills the whole prompt (the quality reference).
	Full Method = "full"
	// Prefix reuses the longest run of leading segments whose KV is exact in this
	// prompt and recomputes the rest (prefix caching, as vLLM/SGLang do).
	Prefix Method = "prefix"
	// Naive concatenates the stored KVs with RoPE correction and computes only the
	// query.
	Naive Method = "naive"
	// CacheBlend is Yao et al., EuroSys'25: full layer 0, KV deviation at the check
	// layer, then only the selected tokens recomputed.
	CacheBlend Method = "cacheblend"
	// CacheCraft is Agarwal et al., SIGMOD'25: per-chunk fix-up budgets from stored
	// attention statistics, tokens chosen before loading, recomputed in every layer.
	CacheCraft Method = "cachecraft"
)

// Methods lists every method, reference first.
var Methods = []Method{Full, Prefix, Naive, CacheBlend, CacheCraft}

// ParseMethod parses a method name ("" is CacheBlend, the default).
func ParseMethod(s string) (Method, error) {
	if s == "" {
		return CacheBlend, nil
	}
	for _, m := range Methods {
		if string(m) == strings.ToLower(s) {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w: unknown method %q (want full, prefix, naive, cacheblend or cachecraft)", ErrInvalid, s)
}

// Errors.
var (
	// ErrInvalid: a malformed request (method, ratio, empty prompt, token ids).
	ErrInvalid = errors.New("blend: invalid request")
	// ErrTooLong: the prompt does not fit the model's context.
	ErrTooLong = errors.New("blend: prompt longer than the model context")
	// ErrCorrupt: stored blend metadata is malformed.
	ErrCorrupt = errors.New("blend: corrupt metadata")
)

// Hash identifies a segment's content for context matching: SHA-256 of its token ids
// (u32 little-endian). Cache-Craft compares the hashes of the segments that preceded a
// chunk when it was cached with those that precede it now.
type Hash [32]byte

// TokenHash returns the content hash of a token sequence.
func TokenHash(tokens []int) Hash {
	h := sha256.New()
	h.Write([]byte("ragkv.blend.tokens\x00"))
	var b [4]byte
	for _, t := range tokens {
		binary.LittleEndian.PutUint32(b[:], uint32(t))
		h.Write(b[:])
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// Source provides a segment's cached KV layer by layer. Sources are read by one
// goroutine at a time (the loader of a Prefill call); the caller owns and closes them.
type Source interface {
	// Base is the absolute position of the first row when its K was rotated.
	Base() int
	// Rows is the number of rows it holds (≥ the segment's tokens; trailing extra
	// rows are ignored).
	Rows() int
	// ReadLayer writes layer l: Rows()×KVDim values of K (rotated at Base, or not
	// rotated at all if the Source has a KPreRoPE method that reports true) and of V.
	ReadLayer(ctx context.Context, l int, k, v []float32) error
	// Tier says where the KV is read from (e.g. "memory", "disk").
	Tier() string
}

// Segment is one piece of the prompt before the query: the system prefix or a chunk.
type Segment struct {
	Tokens []int
	// Source is the cached KV (nil: none; then every method recomputes the segment).
	Source Source
	// Meta says in which context the KV was computed and carries Cache-Craft's
	// statistics (nil: computed alone at Source.Base(), no statistics).
	Meta *Meta
}

// Request is one fused prefill: [segments...] + query at positions 0, 1, ...
type Request struct {
	Method   Method
	Segments []Segment
	// Query is always computed. If it is empty, the last token of the last segment
	// becomes the query (its cached row is recomputed).
	Query []int
	// Ratio is the recompute budget of CacheBlend and Cache-Craft as a fraction of the
	// segment tokens: round(Ratio × tokens) tokens. Budget > 0 overrides it with a token
	// count.
	Ratio  float64
	Budget int
	// AllLogits returns the logits after every query token (otherwise only the last).
	AllLogits bool
	// Reserve is extra KV capacity for decoding after the prefill (capped at the model
	// context, where decoding ends).
	Reserve int

	// gate, if set (the Engine's scheduler), is the prefill's claim on the engine: it
	// is held for each layer step and given back between them when other work should
	// run first, and while the prefill waits for a cached layer.
	gate *ticket
	// batch, if set (with gate), batches the prefill's layer steps with those of
	// concurrent prefills (batch.go).
	batch *prefillBatcher
}

// Result is a fused prefill.
type Result struct {
	// KV holds every token of the prompt, rows in position order (row i at position i).
	KV *model.KV
	// Logits: Vocab values after the last query token, or len(Query)×Vocab with
	// AllLogits.
	Logits []float32
	// Query is the query actually computed (with the popped token for an empty query).
	Query []int
	Stats Stats
}

// SegmentStats reports one segment.
type SegmentStats struct {
	Tokens int `json:"tokens"`
	// Reused and Recomputed count its tokens whose cached rows were kept (beyond layer
	// 0 for CacheBlend) or recomputed.
	Reused     int  `json:"reused"`
	Recomputed int  `json:"recomputed"`
	Exact      bool `json:"exact"`
	// Tier the KV came from ("" when not loaded).
	Tier string `json:"tier,omitempty"`
	// Impact is Cache-Craft's CCI×(1−β) for the segment (0 when exact).
	Impact float64 `json:"impact,omitempty"`
}

// Stats is the breakdown of a fused prefill.
type Stats struct {
	Method   Method         `json:"method"`
	Ratio    float64        `json:"ratio"`
	Tokens   int            `json:"tokens"`
	Query    int            `json:"query_tokens"`
	Segments []SegmentStats `json:"segments"`
	// Recomputed segment tokens (the mean over recomputed layers for gradual
	// filtering) and their fraction of the segment tokens.
	Recomputed    float64 `json:"recomputed"`
	RecomputeFrac float64 `json:"recompute_frac"`
	// Load is the loader's time reading and decoding stored layers, Rotate its time
	// re-rotating K, Wait the compute side's time waiting for a layer, Compute the time
	// in layer steps (projections, attention, feed-forward), Select the deviation checks
	// and token selection.
	Load    time.Duration `json:"load_ns"`
	Rotate  time.Duration `json:"rotate_ns"`
	Wait    time.Duration `json:"wait_ns"`
	Compute time.Duration `json:"compute_ns"`
	Select  time.Duration `json:"select_ns"`
	Total   time.Duration `json:"total_ns"`
	// Attention is the part of Compute estimated to be attention (by its FLOP share).
	Attention time.Duration `json:"attention_ns"`
	// LoadHiddenFrac is 1 − Wait/(Load+Rotate): how much of the loading overlapped
	// computation.
	LoadHiddenFrac float64 `json:"load_hidden_frac"`
	// FLOPs actually computed (AttnFLOPs of them in attention) and those of a full
	// prefill of the same prompt with the same logits.
	FLOPs     float64 `json:"flops"`
	AttnFLOPs float64 `json:"attn_flops"`
	FullFLOPs float64 `json:"full_flops"`
}

// Options configures a Blender. The zero value is the default configuration.
type Options struct {
	// CheckLayer is CacheBlend's check layer (default 1).
	CheckLayer int
	// Deviation is CacheBlend's token score at the check layer: "k", "v", "kv" or
	// "random" (a baseline) (default DefaultDeviation).
	Deviation string
	// StaleCheckLayer keeps the cached K/V of unselected tokens at the check layer
	// (by default they are replaced by the fresh K/V, which the check computes anyway).
	StaleCheckLayer bool
	// Gradual > 1 enables gradual filtering (CacheBlend's paper, §4.3; default
	// DefaultGradual, 1 disables it): Gradual×B' tokens are selected at the check
	// layer and the set narrows linearly, by fresh
	// deviation among the survivors, to B' over GradualLayers layers (default 1), with
	// B' such that the mean per layer is the budget (the same compute, spent earlier).
	Gradual       float64
	GradualLayers int
	// CraftScore is Cache-Craft's per-token score from the stored outside-attention
	// masses: "first" (layer 1, default), "sum" (over layers) or "max".
	CraftScore string
	// CraftGlobal ranks all candidate tokens together by score×(1−β) instead of giving
	// each chunk a budget from its CCI.
	CraftGlobal bool
	// NoPipeline loads every layer before computing (for measuring the overlap).
	NoPipeline bool

	// scoreHook, if set (tests only), replaces the check-layer deviation.
	scoreHook func(rows []int) []float64
}

// Defaults, chosen on stories260K with `ragkv eval blend` (see the package doc).
const (
	// DefaultDeviation is CacheBlend's token score: K and V deviation, each normalized
	// by its mean.
	DefaultDeviation = "kv"
	// DefaultGradual is CacheBlend's gradual-filtering factor (2×B' tokens at the check
	// layer, B' from the next layer on, the same mean compute as plain selection).
	DefaultGradual = 2.0
	// DefaultCraftScore ranks a chunk's tokens by their stored outside-attention mass
	// at layer 1.
	DefaultCraftScore = "first"
)

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.CheckLayer == 0 {
		o.CheckLayer = 1
	}
	if o.Deviation == "" {
		o.Deviation = DefaultDeviation
	}
	if o.CraftScore == "" {
		o.CraftScore = DefaultCraftScore
	}
	if o.Gradual == 0 {
		o.Gradual = DefaultGradual
	}
}

// Validate checks the options.
func (o *Options) Validate() error {
	switch o.Deviation {
	case "k", "v", "kv", "random":
	default:
		return fmt.Errorf("%w: deviation %q (want k, v, kv or random)", ErrInvalid, o.Deviation)
	}
	switch o.CraftScore {
	case "sum", "first", "max":
	default:
		return fmt.Errorf("%w: craft score %q (want sum, first or max)", ErrInvalid, o.CraftScore)
	}
	if o.CheckLayer < 1 {
		return fmt.Errorf("%w: check layer %d (want ≥ 1)", ErrInvalid, o.CheckLayer)
	}
	if o.Gradual != 0 && (o.Gradual < 1 || o.Gradual > 4 || math.IsNaN(o.Gradual)) {
		return fmt.Errorf("%w: gradual factor %g (want 0 or 1..4)", ErrInvalid, o.Gradual)
	}
	return nil
}

// Blender runs fused prefills on a model. It is safe for concurrent use.
type Blender struct {
	m    *model.Model
	opts Options
	pool sync.Pool // *model.Stepper
}

// New returns a Blender.
func New(m *model.Model, o Options) (*Blender, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.CheckLayer >= m.Config.Layers {
		o.CheckLayer = max(m.Config.Layers-1, 0)
	}
	return &Blender{m: m, opts: o}, nil
}

// layout is a request placed at positions: segment i covers [start[i], start[i]+n[i]).
type layout struct {
	segs   []Segment
	start  []int
	hashes []Hash
	exact  []bool
	query  []int
	qStart int
	n      int // total tokens
	segTok int // segment tokens
}

func (b *Blender) place(req *Request) (*layout, error) {
	c := &b.m.Config
	if req.Ratio < 0 || req.Ratio > 1 || math.IsNaN(req.Ratio) {
		return nil, fmt.Errorf("%w: ratio %g (want 0..1)", ErrInvalid, req.Ratio)
	}
	if req.Budget < 0 {
		return nil, fmt.Errorf("%w: budget %d", ErrInvalid, req.Budget)
	}
	L := &layout{segs: append([]Segment(nil), req.Segments...), query: append([]int(nil), req.Query...)}
	for i := range L.segs {
		if len(L.segs[i].Tokens) == 0 {
			return nil, fmt.Errorf("%w: segment %d is empty", ErrInvalid, i)
		}
		L.hashes = append(L.hashes, TokenHash(L.segs[i].Tokens))
	}
	if len(L.query) == 0 {
		if len(L.segs) == 0 {
			return nil, fmt.Errorf("%w: empty prompt", ErrInvalid)
		}
		last := &L.segs[len(L.segs)-1]
		L.query = []int{last.Tokens[len(last.Tokens)-1]}
		last.Tokens = last.Tokens[:len(last.Tokens)-1]
		if len(last.Tokens) == 0 {
			L.segs = L.segs[:len(L.segs)-1]
		}
	}
	pos := 0
	for i := range L.segs {
		s := &L.segs[i]
		L.start = append(L.start, pos)
		if s.Source != nil && s.Source.Rows() < len(s.Tokens) {
			return nil, fmt.Errorf("%w: segment %d has %d tokens but its cached KV %d rows", ErrInvalid, i, len(s.Tokens), s.Source.Rows())
		}
		pos += len(s.Tokens)
	}
	L.segTok = pos
	L.qStart = pos
	L.n = pos + len(L.query)
	if L.n > c.Ctx {
		return nil, fmt.Errorf("%w: %d tokens > %d", ErrTooLong, L.n, c.Ctx)
	}
	for _, t := range L.allTokens() {
		if t < 0 || t >= c.Vocab {
			return nil, fmt.Errorf("%w: token id %d outside the vocabulary of %d", ErrInvalid, t, c.Vocab)
		}
	}
	// A segment's KV is exact here if it was computed after exactly the segments that
	// precede it now, at the same position.
	for i := range L.segs {
		s := &L.segs[i]
		ex := s.Source != nil && s.Source.Base() == L.start[i]
		var prev []Hash
		if s.Meta != nil {
			prev = s.Meta.KVPrev
		}
		if ex && len(prev) == i {
			for j := range prev {
				if prev[j] != L.hashes[j] {
					ex = false
				}
			}
		} else {
			ex = false
		}
		L.exact = append(L.exact, ex)
	}
	return L, nil
}

func (L *layout) allTokens() []int {
	t := make([]int, 0, L.n)
	for _, s := range L.segs {
		t = append(t, s.Tokens...)
	}
	return append(t, L.query...)
}

// budget is the number of segment tokens CacheBlend / Cache-Craft recompute.
func (L *layout) budget(req *Request) int {
	b := req.Budget
	if b == 0 {
		b = int(math.Round(req.Ratio * float64(L.segTok)))
	}
	return min(b, L.segTok)
}

func (b *Blender) stepper(n int) *model.Stepper {
	if st, ok := b.pool.Get().(*model.Stepper); ok {
		return st
	}
	return b.m.NewStepper(n)
}

// Prefill computes the KV of the request's prompt with its method and the logits after
// the query.
func (b *Blender) Prefill(ctx context.Context, req *Request) (*Result, error) {
	t0 := time.Now()
	method := req.Method
	if method == "" {
		method = CacheBlend
	}
	if _, err := ParseMethod(string(method)); err != nil {
		return nil, err
	}
	L, err := b.place(req)
	if err != nil {
		return nil, err
	}
	c := &b.m.Config
	r := &run{b: b, L: L, req: req, method: method, ctx: ctx}
	r.kv = model.NewKV(c, min(L.n+max(req.Reserve, 0), c.Ctx))
	for i := 0; i < L.n; i++ {
		r.kv.Pos = append(r.kv.Pos, i)
	}
	r.st = b.stepper(L.n)
	defer b.pool.Put(r.st)
	r.stats = Stats{Method: method, Ratio: req.Ratio, Tokens: L.n, Query: len(L.query)}
	for i, s := range L.segs {
		r.stats.Segments = append(r.stats.Segments, SegmentStats{Tokens: len(s.Tokens), Exact: L.exact[i]})
	}
	if req.gate != nil {
		// Hold the engine (yield) before starting the loader: prefills waiting their
		// turn do not spend the CPU converting and re-rotating their cached layers
		// ahead of the one computing.
		if err := req.gate.yield(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.do(); err != nil {
		return nil, err
	}
	r.stats.Total = time.Since(t0)
	// A full prefill of the same request computes the same logits (PrefillFLOPs counts
	// one row of them).
	r.stats.FullFLOPs = c.PrefillFLOPs(0, L.n) + float64(len(r.logits)/c.Vocab-1)*2*float64(c.Dim*c.Vocab)
	if lt := r.stats.Load + r.stats.Rotate; lt > 0 {
		r.stats.LoadHiddenFrac = math.Max(0, 1-float64(r.stats.Wait)/float64(lt))
	}
	if r.stats.FLOPs > 0 {
		r.stats.Attention = time.Duration(float64(r.stats.Compute) * r.stats.AttnFLOPs / r.stats.FLOPs)
	}
	if L.segTok > 0 {
		r.stats.RecomputeFrac = r.stats.Recomputed / float64(L.segTok)
	}
	return &Result{KV: r.kv, Logits: r.logits, Query: L.query, Stats: r.stats}, nil
}
