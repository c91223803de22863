// Package blendeval measures how faithfully fused prefills reproduce a full prefill,
// with the protocol of `ragkv eval blend`: each story is tokenized with BOS and cut to
// the model's context; its last ⌊T/4⌋ tokens are the continuation; the prompt (BOS + the
// rest) is split into equal chunks whose caches are computed alone at position base 0
// (chunks after the first without a BOS); the chunks are fused by each method and the
// continuation is scored with full attention over the fused prompt KV (the last prompt
// token is recomputed with the continuation). A ratio r budgets round(r × prompt tokens)
// recomputed tokens.
//
// Cache-Craft needs attention statistics of each chunk "seen in a context": they come
// from a precompute-in-context pass that prefills the story's chunks in order, chunk
// after chunk, recording each token's attention mass outside its own chunk (ContextSame:
// that context is the evaluated prompt itself) — or, with ContextOther, with each chunk
// preceded by the chunks of another story. Cache-Craft sees only those statistics and
// the chunk hashes, never the full prefill of the prompt being scored.
package blendeval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/model"
)

// Context selects where Cache-Craft's statistics come from.
type Context string

// Contexts.
const (
	// ContextSame: each chunk's statistics come from a pass over the story's own chunks
	// in order (the evaluated context).
	ContextSame Context = "same"
	// ContextOther: chunk i's statistics come from a pass where it follows the first i
	// chunks of the next story (a different context of the same shape).
	ContextOther Context = "other"
)

// Variant is a named configuration of one fusion method.
type Variant struct {
	Name    string
	Method  blend.Method
	Options blend.Options
}

// ParseVariant parses "method[:key=value,...]" (keys: dev=k|v|kv|random, gradual=G,
// stale=1, score=sum|first|max, global=1, check=L) into a Variant named after the text.
func ParseVariant(s string) (Variant, error) {
	name, opts, _ := strings.Cut(s, ":")
	m, err := blend.ParseMethod(name)
	if err != nil {
		return Variant{}, err
	}
	v := Variant{Name: s, Method: m}
	if opts == "" {
		return v, nil
	}
	for _, kv := range strings.Split(opts, ",") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return Variant{}, fmt.Errorf("variant %q: %q is not key=value", s, kv)
		}
		switch k {
		case "dev":
			v.Options.Deviation = val
		case "gradual":
			g, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return Variant{}, fmt.Errorf("variant %q: gradual: %w", s, err)
			}
			v.Options.Gradual = g
		case "glayers":
			n, err := strconv.Atoi(val)
			if err != nil {
				return Variant{}, fmt.Errorf("variant %q: glayers: %w", s, err)
			}
			v.Options.GradualLayers = n
		case "stale":
			v.Options.StaleCheckLayer = val == "1" || val == "true"
		case "score":
			v.Options.CraftScore = val
		case "global":
			v.Options.CraftGlobal = val == "1" || val == "true"
		case "check":
			c, err := strconv.Atoi(val)
			if err != nil {
				return Variant{}, fmt.Errorf("variant %q: check: %w", s, err)
			}
			v.Options.CheckLayer = c
		default:
			return Variant{}, fmt.Errorf("variant %q: unknown key %q (dev, gradual, glayers, stale, score, global, check)", s, k)
		}
	}
	o := v.Options
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return Variant{}, fmt.Errorf("variant %q: %w", s, err)
	}
	return v, nil
}

// Options configures Run.
type Options struct {
	// Chunks per prompt (default 3).
	Chunks int
	// Ratios for CacheBlend and Cache-Craft (default 0, .05, .1, .15, .2, .3).
	Ratios []float64
	// Variants are extra rows (each at every ratio).
	Variants []Variant
	// Context of Cache-Craft's statistics (default ContextSame).
	Context Context
	// Blend configures the default cacheblend and cachecraft rows.
	Blend blend.Options
	// KV, if its DType is set, is the storage format of the chunk caches: each chunk's
	// KV goes through the chunk cache's blob encoder and decoder in that format (the
	// shape fields are ignored), so every method fuses what a cache in that format
	// would serve. Zero: the float32 KV as computed.
	KV chunkcache.Layout
	// KVScore is the importance signal of the Mixed format: "knorm" (default: key
	// norm), "craft" (Cache-Craft's outside-attention mass, highest kept), "craft-inv"
	// (lowest outside mass kept), "vnorm" (value norm) or "first" (the earliest tokens).
	KVScore string
	// KVPreRoPE stores K without its rotary embedding (blend.StoreOptions.PreRoPE):
	// K is un-rotated before encoding and the fusion's loader rotates the decoded
	// rows from position 0.
	KVPreRoPE bool
	// Progress, if set, is called after each story.
	Progress func(done int)
}

// KVScores are the valid Options.KVScore values.
var KVScores = []string{"knorm", "craft", "craft-inv", "vnorm", "first"}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.Chunks == 0 {
		o.Chunks = 3
	}
	if o.Ratios == nil {
		o.Ratios = []float64{0, 0.05, 0.1, 0.15, 0.2, 0.3}
	}
	if o.Context == "" {
		o.Context = ContextSame
	}
	if o.KVScore == "" {
		o.KVScore = "knorm"
	}
}

// Validate checks the options.
func (o *Options) Validate() error {
	if o.Chunks < 1 {
		return fmt.Errorf("%w: chunks %d", ErrInvalid, o.Chunks)
	}
	for _, r := range o.Ratios {
		if !(r >= 0 && r <= 1) {
			return fmt.Errorf("%w: ratio %g (want 0..1)", ErrInvalid, r)
		}
	}
	if o.Context != ContextSame && o.Context != ContextOther {
		return fmt.Errorf("%w: context %q (want same or other)", ErrInvalid, o.Context)
	}
	if !slices.Contains(KVScores, o.KVScore) {
		return fmt.Errorf("%w: kv score %q (want one of %s)", ErrInvalid, o.KVScore, strings.Join(KVScores, ", "))
	}
	if o.KV.DType != 0 {
		l := o.KV
		l.Layers, l.KVHeads, l.HeadDim = 1, 1, 1
		if l.Rotate {
			l.HeadDim = 2
		}
		if err := l.Validate(); err != nil {
			return fmt.Errorf("%w: kv format: %v", ErrInvalid, err)
		}
	}
	return nil
}

// ErrInvalid reports bad options or input.
var ErrInvalid = errors.New("blendeval: invalid argument")

// Row is one method at one ratio, aggregated over every scored continuation token.
type Row struct {
	Method  string   `json:"method"`
	Variant string   `json:"variant,omitempty"`
	Ratio   *float64 `json:"ratio"`
	// PPL is the continuation perplexity, PPLRatio its ratio to full's.
	PPL      float64 `json:"ppl"`
	PPLRatio float64 `json:"ppl_ratio"`
	// KL is the mean KL(full ‖ method) of next-token distributions, in nats.
	KL float64 `json:"kl"`
	// Top1 is the greedy agreement with full.
	Top1 float64 `json:"top1"`
	// RecomputeFrac is the fraction of prompt tokens recomputed.
	RecomputeFrac float64 `json:"recompute_frac"`
	// ChunkFracs (Cache-Craft) is the mean fraction of each chunk (by index) that it
	// chose to recompute.
	ChunkFracs []float64 `json:"chunk_fracs,omitempty"`
	// KLRemoved is 1 − KL/KL(naive).
	KLRemoved float64 `json:"kl_removed,omitempty"`
	// FLOPsFrac is the mean of FLOPs computed ÷ FLOPs of a full prefill.
	FLOPsFrac float64 `json:"flops_frac"`

	nll, kl, top1, flops float64
	recomputed           float64
	chunkRec, chunkTok   []float64
}

// Report is the result of Run.
type Report struct {
	Methods []*Row `json:"methods"`
	Stories int    `json:"stories"`
	Skipped int    `json:"skipped"`
	// Tokens is the number of scored continuation tokens; PromptTokens the prompt
	// tokens, over all stories.
	Tokens       int    `json:"tokens"`
	PromptTokens int    `json:"prompt_tokens"`
	Chunks       int    `json:"chunks"`
	CraftContext string `json:"craft_context"`
	// Info says what each method used.
	Info map[string]string `json:"info"`
	// KV describes the chunk caches' storage format (absent: float32 in memory).
	KV *KVReport `json:"kv,omitempty"`
}

// KVReport is the storage cost of the chunk caches in the evaluated format.
type KVReport struct {
	Format  string `json:"format"`
	Score   string `json:"score,omitempty"`
	PreRoPE bool   `json:"pre_rope,omitempty"`
	// AvgBits is the mean precision of the stored values (scales and minima
	// excluded); BitsPerValue includes them (section bytes·8 ÷ K and V values).
	AvgBits      float64 `json:"avg_bits"`
	BitsPerValue float64 `json:"bits_per_value"`
	// BytesPerToken is the stored layer-section bytes per chunk token (all layers);
	// F16BytesPerToken the same in f16.
	BytesPerToken    float64 `json:"bytes_per_token"`
	F16BytesPerToken float64 `json:"f16_bytes_per_token"`

	bytes, tokens, bits float64
}

type config struct {
	v     Variant
	ratio *float64
	b     *blend.Blender
	row   *Row
}

// Run evaluates stories (token ids with BOS, cut to the context) on m.
func Run(ctx context.Context, m *model.Model, stories [][]int, o Options) (*Report, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	rep := &Report{Chunks: o.Chunks, CraftContext: string(o.Context), Info: map[string]string{
		"full":       "prefill of the whole prompt and continuation (reference)",
		"prefix":     "reuses the first chunk's cache (exact: computed alone at position 0 with the BOS) and recomputes the rest",
		"naive":      "concatenates the chunk caches (computed alone at position 0, RoPE-corrected) and recomputes nothing of the prompt",
		"cacheblend": "full layer 0, fresh K/V of every token at the check layer compared with the cached K/V (deviation), top-budget tokens recomputed in the later layers; uses only the chunk caches",
		"cachecraft": "chunk caches plus stored statistics from a precompute-in-context pass (per-layer inter/intra-chunk attention, per-token outside-attention mass, hashes of the preceding chunks there); budget split by CCI×(1−β), tokens chosen before loading, recomputed in every layer; never sees the full prefill of the scored prompt",
	}}
	if o.Context == ContextSame {
		rep.Info["craft_context"] = "same: the statistics' context is the evaluated prompt (each story's own chunks in order)"
	} else {
		rep.Info["craft_context"] = "other: each chunk's statistics come from a pass where it follows the chunks of the next story"
	}
	var cfgs []config
	add := func(v Variant, ratio *float64) error {
		opts := o.Blend
		if v.Name != "" {
			opts = v.Options
		}
		b, err := blend.New(m, opts)
		if err != nil {
			return err
		}
		row := &Row{Method: string(v.Method), Variant: v.Name, Ratio: ratio, chunkRec: make([]float64, o.Chunks), chunkTok: make([]float64, o.Chunks)}
		cfgs = append(cfgs, config{v: v, ratio: ratio, b: b, row: row})
		rep.Methods = append(rep.Methods, row)
		return nil
	}
	for _, meth := range []blend.Method{blend.Full, blend.Prefix, blend.Naive} {
		if err := add(Variant{Method: meth}, nil); err != nil {
			return nil, err
		}
	}
	for _, v := range append([]Variant{{Method: blend.CacheBlend}, {Method: blend.CacheCraft}}, o.Variants...) {
		for _, r := range o.Ratios {
			r := r
			if err := add(v, &r); err != nil {
				return nil, err
			}
		}
	}
	V := m.Config.Vocab
	for si, toks := range stories {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		T := len(toks)
		C := T / 4
		P := T - C
		if C < 1 || P < o.Chunks+1 {
			rep.Skipped++
			continue
		}
		var other []int
		if o.Context == ContextOther {
			other = stories[(si+1)%len(stories)]
		}
		segs, err := prepare(ctx, m, toks[:P], o.Chunks, o.Context, other)
		if err != nil {
			return nil, err
		}
		if o.KV.DType != 0 {
			if rep.KV == nil {
				rep.KV = &KVReport{Format: o.KV.Format(), PreRoPE: o.KVPreRoPE}
				if o.KV.DType == chunkcache.Mixed {
					rep.KV.Score = o.KVScore
				}
			}
			for i := range segs {
				if err := storeKV(m, &segs[i], o.KV, o.KVScore, o.KVPreRoPE, rep.KV); err != nil {
					return nil, fmt.Errorf("story %d, chunk %d: store as %s: %w", si, i, o.KV.Format(), err)
				}
			}
		}
		query := append([]int{toks[P-1]}, toks[P:T-1]...)
		rep.Stories++
		rep.Tokens += C
		rep.PromptTokens += P
		var ref []float32
		for _, cf := range cfgs {
			req := &blend.Request{Method: cf.v.Method, Segments: segs, Query: query, AllLogits: true}
			if cf.ratio != nil {
				req.Budget = int(math.Round(*cf.ratio * float64(P)))
				req.Ratio = *cf.ratio
			}
			res, err := cf.b.Prefill(ctx, req)
			if err != nil {
				return nil, fmt.Errorf("story %d, %s: %w", si, cf.v.Method, err)
			}
			if ref == nil {
				ref = res.Logits // full comes first
			}
			score(cf.row, res.Logits, ref, toks[P:], V)
			if cf.v.Method == blend.Full {
				cf.row.recomputed += float64(P)
			} else {
				// The last prompt token, which every method recomputes with the
				// continuation, is not counted.
				cf.row.recomputed += res.Stats.Recomputed
			}
			cf.row.flops += res.Stats.FLOPs / res.Stats.FullFLOPs
			for i, s := range res.Stats.Segments {
				if i < o.Chunks {
					cf.row.chunkRec[i] += float64(s.Recomputed)
					cf.row.chunkTok[i] += float64(s.Tokens)
				}
			}
		}
		if o.Progress != nil {
			o.Progress(si + 1)
		}
	}
	if rep.Tokens == 0 {
		return nil, fmt.Errorf("%w: no story long enough for %d chunks", ErrInvalid, o.Chunks)
	}
	var fullPPL, naiveKL float64
	for _, row := range rep.Methods {
		n := float64(rep.Tokens)
		row.PPL = math.Exp(row.nll / n)
		row.KL = row.kl / n
		row.Top1 = row.top1 / n
		row.RecomputeFrac = row.recomputed / float64(rep.PromptTokens)
		row.FLOPsFrac = row.flops / float64(rep.Stories)
		switch blend.Method(row.Method) {
		case blend.Full:
			fullPPL = row.PPL
		case blend.Naive:
			naiveKL = row.KL
		case blend.CacheCraft:
			for i := range row.chunkRec {
				if row.chunkTok[i] > 0 {
					row.ChunkFracs = append(row.ChunkFracs, row.chunkRec[i]/row.chunkTok[i])
				}
			}
		}
	}
	if k := rep.KV; k != nil && k.tokens > 0 {
		c := m.Config
		k.AvgBits = k.bits / k.tokens
		k.BytesPerToken = k.bytes / k.tokens
		k.BitsPerValue = 8 * k.BytesPerToken / float64(2*c.Layers*c.KVDim())
		k.F16BytesPerToken = float64(2 * 2 * c.Layers * c.KVDim())
	}
	for _, row := range rep.Methods {
		row.PPLRatio = row.PPL / fullPPL
		if naiveKL > 0 && row.Method != string(blend.Full) {
			row.KLRemoved = 1 - row.KL/naiveKL
		}
	}
	return rep, nil
}

// score adds one story's continuation metrics: logits and ref are C rows of V values
// predicting cont.
func score(row *Row, logits, ref []float32, cont []int, V int) {
	p := make([]float64, V)
	q := make([]float64, V)
	for j, tok := range cont {
		lp := logSoftmax(q, logits[j*V:(j+1)*V])
		lr := logSoftmax(p, ref[j*V:(j+1)*V])
		row.nll -= lp[tok]
		var kl float64
		for i := range lr {
			if pr := math.Exp(lr[i]); pr > 0 {
				kl += pr * (lr[i] - lp[i])
			}
		}
		row.kl += math.Max(kl, 0)
		if model.Argmax(logits[j*V:(j+1)*V]) == model.Argmax(ref[j*V:(j+1)*V]) {
			row.top1++
		}
	}
}

func logSoftmax(dst []float64, x []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - mx)
	}
	ls := mx + math.Log(s)
	for i, v := range x {
		dst[i] = float64(v) - ls
	}
	return dst
}

// prepare splits a prompt into k chunks, computes each chunk's cache alone at position
// base 0 and its Cache-Craft statistics in context, and returns the segments (the last
// one without its last token, which the query recomputes).
func prepare(ctx context.Context, m *model.Model, prompt []int, k int, cc Context, other []int) ([]blend.Segment, error) {
	n := len(prompt)
	bounds := func(toks []int, i int) []int { return toks[i*len(toks)/k : (i+1)*len(toks)/k] }
	segs := make([]blend.Segment, k)
	var hashes []blend.Hash
	for i := range segs {
		toks := bounds(prompt, i)
		kv, _, err := m.Prefill(ctx, toks, 0, 0, model.ExtendOptions{})
		if err != nil {
			return nil, err
		}
		segs[i] = blend.Segment{Tokens: toks, Source: &blend.KVSource{KV: kv}}
		hashes = append(hashes, blend.TokenHash(toks))
	}
	// The precompute-in-context pass.
	switch cc {
	case ContextSame:
		ctxKV := model.NewKV(&m.Config, n)
		for i := range segs {
			st, err := blend.ContextStats(ctx, m, ctxKV, segs[i].Tokens, hashes[:i])
			if err != nil {
				return nil, err
			}
			segs[i].Meta = &blend.Meta{Stats: st}
		}
	case ContextOther:
		var ohash []blend.Hash
		for i := 0; i < k; i++ {
			ohash = append(ohash, blend.TokenHash(bounds(other, i)))
		}
		for i := range segs {
			ctxKV := model.NewKV(&m.Config, n+len(other))
			for j := 0; j < i; j++ {
				if _, err := blend.ContextStats(ctx, m, ctxKV, bounds(other, j), nil); err != nil {
					return nil, err
				}
			}
			st, err := blend.ContextStats(ctx, m, ctxKV, segs[i].Tokens, ohash[:i])
			if err != nil {
				return nil, err
			}
			segs[i].Meta = &blend.Meta{Stats: st}
		}
	}
	last := &segs[k-1]
	last.Tokens = last.Tokens[:len(last.Tokens)-1]
	return segs, nil
}

// storeKV passes a segment's KV through the blob encoder and decoder in format f, in
// place (with pre: K un-rotated first and left so, the source marked PreRoPE for the
// loader), and adds its cost to rep.
func storeKV(m *model.Model, seg *blend.Segment, f chunkcache.Layout, score string, pre bool, rep *KVReport) error {
	src, ok := seg.Source.(*blend.KVSource)
	if !ok {
		return fmt.Errorf("%w: segment source %T", ErrInvalid, seg.Source)
	}
	kv := src.KV
	c := m.Config
	l := chunkcache.Layout{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim}.WithFormat(f)
	T := kv.Len()
	n := T * kv.KVDim
	if pre {
		k := make([][]float32, c.Layers)
		for l := range k {
			k[l] = kv.K[l][:n]
		}
		uk, err := blend.UnrotateK(m, k, kv.Pos[:T])
		if err != nil {
			return err
		}
		for l := range uk {
			copy(kv.K[l], uk[l])
		}
		src.PreRoPE = true
	}
	var sec []byte
	for layer := range c.Layers {
		k, v := kv.K[layer][:n], kv.V[layer][:n]
		var sc []float32
		if l.DType == chunkcache.Mixed {
			sc = make([]float32, T)
			switch score {
			case "knorm":
				sc = nil
			case "vnorm":
				sc = l.KeyNorms(T, v)
			case "first":
				for t := range sc {
					sc[t] = float32(T - t)
				}
			case "craft", "craft-inv":
				if seg.Meta == nil || seg.Meta.Stats == nil || len(seg.Meta.Stats.Outside) <= layer || len(seg.Meta.Stats.Outside[layer]) != T {
					return fmt.Errorf("%w: no Cache-Craft statistics of %d tokens for layer %d", ErrInvalid, T, layer)
				}
				copy(sc, seg.Meta.Stats.Outside[layer])
				if score == "craft-inv" {
					for t := range sc {
						sc[t] = -sc[t]
					}
				}
			}
		}
		var err error
		sec, err = l.AppendLayerScored(sec[:0], T, k, v, sc)
		if err != nil {
			return err
		}
		if err := l.DecodeLayer(sec, T, k, v); err != nil {
			return err
		}
		rep.bytes += float64(len(sec))
	}
	rep.tokens += float64(T)
	rep.bits += l.AvgBits(T) * float64(T)
	return nil
}
