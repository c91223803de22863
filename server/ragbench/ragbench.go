// Package ragbench replays a stream of RAG queries through the whole serving path —
// retrieval → fused prefill over the chunk cache, by the gRPC Prefill call with a
// retrieval source (package server) — per fusion method, and reports what a RAG
// deployment sees: time to first token (p50/p99), the speedup over full prefill per
// window of the stream (first, middle, last), where each passage's KV came from per
// window (chunk-cache tiers, or computed on the fly), the recompute fraction, and the
// fidelity of each method's first-token distribution to full prefill's (KL divergence
// and top-1 agreement).
//
// Two streams over the shared data sets:
//
//   - musique: the MuSiQue file of the CacheBlend evaluation (150 questions × 10
//     passages, many recurring): the collection is the distinct passages of the first
//     Docs questions, the stream those questions in file order, repeated to Queries;
//   - scifact: BEIR SciFact claims over a collection of its abstracts (the documents
//     relevant to the claims used, then others, up to Docs), with popularity skew: a
//     query is drawn by Zipf rank over the claims; a NovelFrac share of the stream is
//     novel text (a claim never sent before, or a variant of one with a word dropped),
//     the rest repeats a text already sent, so that passages recur as in production
//     while most queries are new (LMCache #4663 reports reuse collapsing under such
//     streams).
//
// Before the stream the collection is precomputed (PrecomputeCollection) unless
// NoPrecompute. Each query runs every method in turn, full first (its logits are the
// fidelity reference). Speedups are ratios of p50 TTFTs measured in the same run.
package ragbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/kernels/cputime"
	"github.com/ragkv/ragkv/model"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/store"
)

// ErrInvalid: bad options.
var ErrInvalid = errors.New("ragbench: invalid options")

// Options configures Run.
type Options struct {
	// Stream is "musique" or "scifact"; DataDir the shared folder (holding
	// data/musique/ and data/scifact/).
	Stream  string
	DataDir string
	// Queries in the stream (default 150 for musique, 2000 for scifact).
	Queries int
	// Clients sending queries at once (default 1).
	Clients int
	// Tier holding the chunks: "memory" (default) or "disk" (a 16 MiB memory tier in
	// front of Badger).
	Tier string
	// CacheBytes bounds the memory tier (default 8 GiB) or, with Tier disk, the disk;
	// Policy and Admission are that tier's eviction policy and admission filter
	// (package chunkcache/eviction; default its defaults).
	CacheBytes        int64
	Policy, Admission string
	// NoProbation stores the chunks computed on the fly as plain puts, not on
	// probation (blend.StoreOptions.NoProbation): the comparison for admission.
	NoProbation bool
	// Methods to run (default full, prefix, cacheblend, cachecraft); full is always run
	// unless NoReference.
	Methods []blend.Method
	// NoReference runs the Methods only, without full as the reference: no speedup or
	// fidelity figures (the same-method form of a concurrency run: every client sends
	// the same method).
	NoReference bool
	// K passages per query (default 5), Ratio of cacheblend and cachecraft (default 0.15).
	K     int
	Ratio float64
	// Docs bounds the collection: musique questions whose passages form it (default
	// 30), scifact abstracts (default 300).
	Docs int
	// ChunkWords is the passage length (default 128 words, no overlap).
	ChunkWords int
	// NoPrecompute skips the collection precompute (passages are computed on the fly).
	NoPrecompute bool
	// Warmup runs the first Warmup queries of the stream once, one client, before the
	// measured stream (not reported): with NoPrecompute it puts the passages those
	// queries retrieve into the cache, far cheaper than precomputing a whole collection.
	Warmup int
	// Window is the window of the per-window figures (default 100 queries; a third of
	// the stream when it is shorter than three windows).
	Window int
	// NovelFrac (scifact, default 0.5) and ZipfS (the Zipf exponent over claims,
	// default 1.1).
	NovelFrac float64
	ZipfS     float64
	Seed      uint64
	// DType of the stored KV (default f16).
	DType chunkcache.DType
	// Format, if its DType is set, is the stored KV format with its options
	// (chunkcache.ParseFormat: q4, q2r, mixed:bits=2.5, ...); it overrides DType.
	Format chunkcache.Layout
	// PreRoPE stores K without its rotary embedding (blend.StoreOptions.PreRoPE).
	PreRoPE bool
	// Dir is the working directory (default: a temporary one, removed after).
	Dir string
	// Addr, when set, is a running server (Inference and Retrieval services) to
	// replay the stream against instead of an in-process one (Tier, CacheBytes,
	// Policy, Admission, DType and EngineConcurrent are then the server's own). The
	// collection is "bench-<stream>-w<ChunkWords>": ingesting it again skips the
	// documents it holds, and precomputing it again skips the passages stored.
	Addr string
	// EngineConcurrent is the engine's MaxConcurrent (default 1); EngineSerial its
	// Serial (the scheduling before continuous batching, for comparison).
	EngineConcurrent int
	EngineSerial     bool
	// EngineAging is the engine's Aging (0: blend.DefaultAging); EngineDecodeShare its
	// DecodeShare (0: its default).
	EngineAging       float64
	EngineDecodeShare float64
	// EngineNoPrefillBatch is the engine's NoPrefillBatch: concurrent prefills' layer
	// steps are not batched (for comparison).
	EngineNoPrefillBatch bool
	// DecodeTokens, when > 0, makes every request a Generate of that many greedy tokens
	// (EOS ignored) instead of a Prefill: TTFT is then the time to the stream's prefill
	// message, and the decode rates are reported.
	DecodeTokens int
	Log          *slog.Logger
	// Progress, when set, is called after each query.
	Progress func(done, total int)
}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.Queries == 0 {
		o.Queries = map[string]int{"musique": 150, "scifact": 2000}[o.Stream]
	}
	if o.Clients == 0 {
		o.Clients = 1
	}
	if o.Tier == "" {
		o.Tier = "memory"
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 8 << 30
	}
	if len(o.Methods) == 0 {
		o.Methods = []blend.Method{blend.Full, blend.Prefix, blend.CacheBlend, blend.CacheCraft}
	}
	if o.K == 0 {
		o.K = 5
	}
	if o.Ratio == 0 {
		o.Ratio = 0.15
	}
	if o.Docs == 0 {
		o.Docs = map[string]int{"musique": 30, "scifact": 300}[o.Stream]
	}
	if o.ChunkWords == 0 {
		o.ChunkWords = 128
	}
	if o.Window == 0 {
		o.Window = 100
	}
	if o.NovelFrac == 0 {
		o.NovelFrac = 0.5
	}
	if o.ZipfS == 0 {
		o.ZipfS = 1.1
	}
	if o.DType == 0 {
		o.DType = chunkcache.F16
	}
	if o.EngineConcurrent == 0 {
		o.EngineConcurrent = 1
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if !o.NoReference && !containsMethod(o.Methods, blend.Full) {
		o.Methods = append([]blend.Method{blend.Full}, o.Methods...)
	}
}

func containsMethod(ms []blend.Method, m blend.Method) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// Validate checks the options (after EnsureDefaults).
func (o *Options) Validate() error {
	switch {
	case o.Stream != "musique" && o.Stream != "scifact":
		return fmt.Errorf("%w: stream %q (want musique or scifact)", ErrInvalid, o.Stream)
	case o.Tier != "memory" && o.Tier != "disk":
		return fmt.Errorf("%w: tier %q (want memory or disk)", ErrInvalid, o.Tier)
	case o.Queries < 1 || o.Clients < 1 || o.Docs < 1 || o.Window < 1 || o.EngineConcurrent < 1:
		return fmt.Errorf("%w: queries, clients, docs, window and engine concurrency must be ≥ 1", ErrInvalid)
	case o.DecodeTokens < 0 || o.Warmup < 0 || !(o.EngineAging >= 0):
		return fmt.Errorf("%w: decode tokens %d, warmup %d, engine aging %g", ErrInvalid, o.DecodeTokens, o.Warmup, o.EngineAging)
	case !(o.EngineDecodeShare >= 0 && o.EngineDecodeShare < 1):
		return fmt.Errorf("%w: engine decode share %g (want 0 < share < 1, or 0 for the default)", ErrInvalid, o.EngineDecodeShare)
	case o.K < 1 || o.K > server.MaxRetrievalK:
		return fmt.Errorf("%w: k = %d (want 1 to %d)", ErrInvalid, o.K, server.MaxRetrievalK)
	case !(o.Ratio > 0 && o.Ratio <= 1):
		return fmt.Errorf("%w: ratio %g (want (0, 1])", ErrInvalid, o.Ratio)
	case !(o.NovelFrac >= 0 && o.NovelFrac <= 1) || !(o.ZipfS > 1):
		return fmt.Errorf("%w: novel fraction %g (want [0, 1]) and Zipf exponent %g (want > 1)", ErrInvalid, o.NovelFrac, o.ZipfS)
	case o.CacheBytes < 0:
		return fmt.Errorf("%w: cache bytes %d", ErrInvalid, o.CacheBytes)
	}
	for _, m := range o.Methods {
		if _, err := blend.ParseMethod(string(m)); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	return nil
}

// Windows holds a figure for the first, middle and last window of the stream.
type Windows[T any] struct {
	First  T `json:"first"`
	Middle T `json:"middle"`
	Last   T `json:"last"`
}

// Fidelity compares a method's first-token distribution with full prefill's.
type Fidelity struct {
	KLMean float64 `json:"kl_mean"`
	KLP99  float64 `json:"kl_p99"`
	Top1   float64 `json:"top1"`
}

// Report is the result; maps are keyed by method.
type Report struct {
	Stream             string   `json:"stream"`
	Model              string   `json:"model"`
	Queries            int      `json:"queries"`
	NovelFrac          float64  `json:"novel_frac"`
	DistinctQueries    int      `json:"distinct_queries"`
	Clients            int      `json:"clients"`
	Tier               string   `json:"tier"`
	CacheBytes         int64    `json:"cache_bytes"`
	Policy             string   `json:"policy,omitempty"`
	Admission          string   `json:"admission,omitempty"`
	Probation          bool     `json:"probation"`
	K                  int      `json:"k"`
	Ratio              float64  `json:"ratio"`
	Methods            []string `json:"methods"`
	CollectionDocs     int      `json:"collection_docs"`
	CollectionPassages int      `json:"collection_passages"`
	PrecomputeSeconds  float64  `json:"precompute_seconds"`
	PromptTokensMean   float64  `json:"prompt_tokens_mean"`
	Window             int      `json:"window"`
	Seconds            float64  `json:"seconds"`
	// NoReference: full did not run as the reference (Options.NoReference); the
	// speedup, window speedup and fidelity figures are then absent.
	NoReference bool `json:"no_reference,omitempty"`

	TTFTMsP50       map[string]float64                     `json:"ttft_ms_p50"`
	TTFTMsP99       map[string]float64                     `json:"ttft_ms_p99"`
	SpeedupP50      map[string]float64                     `json:"speedup_p50,omitempty"`
	SpeedupWindows  map[string]Windows[float64]            `json:"speedup_windows,omitempty"`
	HitRatioWindows map[string]Windows[map[string]float64] `json:"hit_ratio_windows"`
	RecomputeFrac   map[string]float64                     `json:"recompute_frac"`
	Fidelity        map[string]Fidelity                    `json:"fidelity,omitempty"`
	// PromptTokensPerS is per request: its prompt tokens over its time to first token
	// (summed over the method's requests); PromptTokensPerSTotal the throughput: every
	// request's prompt tokens (all methods) over the stream's wall time.
	PromptTokensPerS      map[string]float64 `json:"prompt_tokens_per_s"`
	PromptTokensPerSTotal float64            `json:"prompt_tokens_per_s_total"`
	// CPUSeconds is the process's CPU time over the stream (in-process server: server
	// and clients; 0 with Addr or where unknown) and PromptTokensPerCPUS every request's
	// prompt tokens over it: the throughput per CPU second, which on a shared machine
	// compares runs under different loads better than wall time.
	CPUSeconds          float64 `json:"cpu_seconds,omitempty"`
	PromptTokensPerCPUS float64 `json:"prompt_tokens_per_cpu_s,omitempty"`
	// PrefillBatchSteps and PrefillBatches (in-process server): prefill layer steps run
	// in batches over the stream, and those batches (blend.Engine.PrefillBatches).
	PrefillBatchSteps int `json:"prefill_batch_steps,omitempty"`
	PrefillBatches    int `json:"prefill_batches,omitempty"`
	// LastOverFirst is speedup_windows.last / speedup_windows.first (≥ 0.9: reuse holds).
	LastOverFirst map[string]float64 `json:"last_over_first,omitempty"`

	// With DecodeTokens: tokens decoded per request, the decode rate one request saw
	// (its tokens over the time from its prefill message to its end, summed over the
	// method's requests) and all requests' decoded tokens over the stream's wall time.
	Warmup                int                `json:"warmup"`
	EngineSerial          bool               `json:"engine_serial"`
	EngineNoPrefillBatch  bool               `json:"engine_no_prefill_batch,omitempty"`
	DecodeTokens          int                `json:"decode_tokens"`
	DecodeTokensPerS      map[string]float64 `json:"decode_tokens_per_s,omitempty"`
	DecodeTokensPerSTotal float64            `json:"decode_tokens_per_s_total,omitempty"`
	// KVFormat is the stored chunk KV format (empty with Addr); KVPreRoPE whether K
	// is stored without its rotary embedding.
	KVFormat  string `json:"kv_format,omitempty"`
	KVPreRoPE bool   `json:"kv_prerope,omitempty"`
	// TierStats is the --tier tier's state at the end (in-process server only): bytes,
	// chunk tokens, bytes per token, evictions.
	TierStats *chunkcache.TierStats `json:"tier_stats,omitempty"`
	// WorkingSet is what the fused methods' prompts touched over the stream (to size
	// --cache-bytes against; in-process server only).
	WorkingSet *WorkingSet `json:"working_set,omitempty"`
}

// WorkingSet is the distinct chunks the stream's fused prefills used: their count,
// tokens, and KV payload bytes (layer sections, from the layout: what a tier holds less
// each chunk's manifest) in f16 and in the stored format.
type WorkingSet struct {
	Chunks      int     `json:"chunks"`
	Tokens      int64   `json:"tokens"`
	BytesF16    int64   `json:"bytes_f16"`
	BytesFormat int64   `json:"bytes_format"`
	Format      string  `json:"format"`
	F16PerToken float64 `json:"f16_bytes_per_token"`
}

// workingSet sums the distinct chunks (by key) the fused methods' samples touched, in
// model m's KV shape.
func workingSet(m *model.Model, o *Options, samples []map[blend.Method]*sample) *WorkingSet {
	c := &m.Config
	f16 := chunkcache.Layout{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, DType: chunkcache.F16}
	f16.EnsureDefaults()
	lf := chunkcache.Layout{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, DType: o.DType}
	if o.Format.DType != 0 {
		lf = lf.WithFormat(o.Format)
	}
	lf.EnsureDefaults()
	ws := &WorkingSet{Format: lf.Format(), F16PerToken: f16.BytesPerToken(1)}
	seen := map[string]bool{}
	for _, qs := range samples {
		for meth, s := range qs {
			if meth == blend.Full || s == nil {
				continue
			}
			for i, k := range s.keys {
				if seen[k] {
					continue
				}
				seen[k] = true
				t := s.keyTokens[i]
				ws.Chunks++
				ws.Tokens += int64(t)
				ws.BytesF16 += int64(f16.LayerBytes(t)) * int64(f16.Layers)
				ws.BytesFormat += int64(lf.LayerBytes(t)) * int64(lf.Layers)
			}
		}
	}
	return ws
}

// sample is one method's prefill of one query.
type sample struct {
	ttft    time.Duration
	sources []string
	// keys and keyTokens: the chunk-cache key (as a string) and tokens of each passage.
	keys      []string
	keyTokens []int
	recomp    float64
	tokens    int
	kl        float64
	top1      bool
	logits    []float32
	// With DecodeTokens: tokens decoded and the time from the prefill message to the end.
	decoded int
	decode  time.Duration
}

// Run replays the stream against an in-process server on a loopback port over m (or,
// with Addr, against a running server; m is then not used).
func Run(ctx context.Context, m *model.Model, modelName string, o Options) (*Report, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ragkv-bench-rag-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	docs, queries, err := loadStream(&o)
	if err != nil {
		return nil, err
	}
	var env *env
	if o.Addr != "" {
		env, err = dial(o.Addr)
	} else {
		env, err = startServer(ctx, m, dir, &o)
	}
	if err != nil {
		return nil, err
	}
	defer env.close()
	rep := &Report{Stream: o.Stream, Model: modelName, Queries: len(queries), Clients: o.Clients, Tier: o.Tier, K: o.K, Ratio: o.Ratio,
		CacheBytes: o.CacheBytes, Policy: o.Policy, Admission: o.Admission, Probation: !o.NoProbation && o.Addr == "",
		CollectionDocs: len(docs), Window: o.Window, EngineSerial: o.EngineSerial, EngineNoPrefillBatch: o.EngineNoPrefillBatch, DecodeTokens: o.DecodeTokens,
		NoReference: !containsMethod(o.Methods, blend.Full)}
	if o.Addr == "" {
		rep.KVFormat, rep.KVPreRoPE = o.DType.String(), o.PreRoPE
		if o.Format.DType != 0 {
			rep.KVFormat = o.Format.Format()
		}
	}
	for _, mm := range o.Methods {
		rep.Methods = append(rep.Methods, string(mm))
	}
	distinct := map[string]bool{}
	novel := 0
	for _, q := range queries {
		if !distinct[q] {
			novel++
		}
		distinct[q] = true
	}
	rep.DistinctQueries, rep.NovelFrac = len(distinct), float64(novel)/float64(len(queries))

	// Ingest and precompute.
	ing, err := env.rc.Ingest(ctx)
	if err != nil {
		return nil, err
	}
	first := &ragkvv1.IngestRequest{Collection: o.collection(), Options: &ragkvv1.RetrievalCollectionOptions{ChunkWords: int32(o.ChunkWords), Embedder: "none"}}
	for lo := 0; lo < len(docs); lo += 256 {
		msg := &ragkvv1.IngestRequest{}
		if lo == 0 {
			msg = first
		}
		msg.Documents = docs[lo:min(lo+256, len(docs))]
		if err := ing.Send(msg); err != nil {
			break
		}
	}
	ir, err := ing.CloseAndRecv()
	if err != nil {
		return nil, fmt.Errorf("ragbench: ingest: %w", err)
	}
	rep.CollectionPassages = int(ir.TotalPassages)
	if !o.NoPrecompute {
		t0 := time.Now()
		st, err := env.inf.PrecomputeCollection(ctx, &ragkvv1.PrecomputeCollectionRequest{Collection: o.collection(), EngineShare: 1})
		if err != nil {
			return nil, err
		}
		for {
			p, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("ragbench: precompute: %w", err)
			}
			if p.Done%100 == 0 {
				o.Log.Info("precompute", "done", p.Done, "total", p.Total)
			}
		}
		rep.PrecomputeSeconds = time.Since(t0).Seconds()
		o.Log.Info("collection precomputed", "passages", rep.CollectionPassages, "seconds", rep.PrecomputeSeconds)
	}

	for i := range min(o.Warmup, len(queries)) {
		if _, err := env.query(ctx, &o, queries[i]); err != nil {
			return nil, fmt.Errorf("ragbench: warmup query %d (%q): %w", i, queries[i], err)
		}
	}
	rep.Warmup = o.Warmup

	// The stream.
	t0 := time.Now()
	cpu0, cpuOK := cputime.Process()
	var pb0, ps0 int
	if env.eng != nil {
		pb0, ps0 = env.eng.PrefillBatches()
	}
	samples := make([]map[blend.Method]*sample, len(queries))
	work := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for c := 0; c < o.Clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				s, err := env.query(runCtx, &o, queries[i])
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("ragbench: query %d (%q): %w", i, queries[i], err)
					cancel()
				}
				samples[i] = s
				done++
				n := done
				mu.Unlock()
				if o.Progress != nil {
					o.Progress(n, len(queries))
				}
			}
		}()
	}
feed:
	for i := range queries {
		select {
		case work <- i:
		case <-runCtx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep.Seconds = time.Since(t0).Seconds()
	if cpu1, ok := cputime.Process(); ok && cpuOK && o.Addr == "" {
		rep.CPUSeconds = (cpu1 - cpu0).Seconds()
	}
	if env.eng != nil {
		pb, ps := env.eng.PrefillBatches()
		rep.PrefillBatches, rep.PrefillBatchSteps = pb-pb0, ps-ps0
	}
	if env.cache != nil {
		if ts := env.cache.Stats().Tiers; len(ts) > 0 {
			rep.TierStats = &ts[len(ts)-1]
		}
	}
	if m != nil && o.Addr == "" {
		rep.WorkingSet = workingSet(m, &o, samples)
	}
	summarize(rep, &o, samples)
	return rep, nil
}

// env is the in-process server and its clients.
type env struct {
	addr  string
	srv   *server.Server
	eng   *blend.Engine
	cache *chunkcache.Cache
	ret   *retrieval.Store
	conn  *grpc.ClientConn
	inf   ragkvv1.InferenceClient
	rc    ragkvv1.RetrievalClient
	done  chan error
}

func startServer(ctx context.Context, m *model.Model, dir string, o *Options) (_ *env, err error) {
	quiet := slog.New(slog.DiscardHandler)
	var tiers []chunkcache.TierConfig
	if o.Tier == "memory" {
		tiers = []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: o.CacheBytes, Policy: o.Policy, Admission: o.Admission}}}
	} else {
		disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: filepath.Join(dir, "cache"), Logger: quiet})
		if err != nil {
			return nil, err
		}
		tiers = []chunkcache.TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 16 << 20}},
			{Tier: disk, Eviction: eviction.Config{Capacity: o.CacheBytes, Policy: o.Policy, Admission: o.Admission}, WriteThrough: true},
		}
	}
	cache, err := chunkcache.New(ctx, chunkcache.Options{Tiers: tiers, DisablePromotion: o.Tier == "disk", Logger: quiet})
	if err != nil {
		return nil, err
	}
	e := &env{cache: cache, done: make(chan error, 1)}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.ret, err = retrieval.Open(ctx, retrieval.Options{Dir: filepath.Join(dir, "retrieval"), Logger: quiet}); err != nil {
		return nil, err
	}
	st, err := blend.NewStore(m, cache, blend.StoreOptions{DType: o.DType, Format: o.Format, PreRoPE: o.PreRoPE, NoProbation: o.NoProbation})
	if err != nil {
		return nil, err
	}
	eng, err := blend.NewEngine(st, blend.EngineOptions{MaxConcurrent: o.EngineConcurrent, Serial: o.EngineSerial, Aging: o.EngineAging,
		DecodeShare: o.EngineDecodeShare, NoPrefillBatch: o.EngineNoPrefillBatch, MaxHandles: 1, Logger: quiet})
	if err != nil {
		return nil, err
	}
	e.eng = eng
	if e.srv, err = server.New(server.WithChunkCache(cache), server.WithInference(eng), server.WithRetrieval(e.ret), server.WithLogger(quiet)); err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.addr = lis.Addr().String()
	go func() { e.done <- e.srv.Serve(lis) }()
	if e.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(server.DefaultMaxRecvMsgBytes))); err != nil {
		return nil, err
	}
	e.inf, e.rc = ragkvv1.NewInferenceClient(e.conn), ragkvv1.NewRetrievalClient(e.conn)
	return e, nil
}

// collection is the benchmark's collection name.
func (o *Options) collection() string {
	if o.Addr == "" {
		return "bench"
	}
	return fmt.Sprintf("bench-%s-w%d", o.Stream, o.ChunkWords)
}

// dial connects to a running server.
func dial(addr string) (*env, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(server.DefaultMaxRecvMsgBytes)))
	if err != nil {
		return nil, fmt.Errorf("%w: address %q: %v", ErrInvalid, addr, err)
	}
	return &env{conn: conn, inf: ragkvv1.NewInferenceClient(conn), rc: ragkvv1.NewRetrievalClient(conn)}, nil
}

func (e *env) close() {
	if e.conn != nil {
		e.conn.Close()
	}
	if e.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		e.srv.Stop(ctx)
		cancel()
		<-e.done
	}
	if e.ret != nil {
		e.ret.Close()
	}
	if e.cache != nil {
		e.cache.Close()
	}
}

// query runs every method on one query (full first).
func (e *env) query(ctx context.Context, o *Options, q string) (map[blend.Method]*sample, error) {
	out := map[blend.Method]*sample{}
	var ref []float32
	for _, meth := range o.Methods {
		ratio := o.Ratio
		req := &ragkvv1.PrefillRequest{Query: q, Method: string(meth), Ratio: &ratio, ReturnLogits: true,
			Retrieval: &ragkvv1.RetrievalSource{Collection: o.collection(), K: int32(o.K), Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25}}
		t0 := time.Now()
		var resp *ragkvv1.PrefillResponse
		var ttft time.Duration
		var decoded int
		var decode time.Duration
		var err error
		if o.DecodeTokens > 0 {
			resp, ttft, decoded, decode, err = e.generate(ctx, req, o.DecodeTokens)
		} else {
			resp, err = e.inf.Prefill(ctx, req)
			ttft = time.Since(t0)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", meth, err)
		}
		s := &sample{ttft: ttft, recomp: resp.Breakdown.GetRecomputeFrac(), tokens: int(resp.Breakdown.GetTotalTokens()), decoded: decoded, decode: decode}
		for _, p := range resp.Passages {
			s.sources = append(s.sources, p.Source)
			if len(p.Key) > 0 {
				s.keys, s.keyTokens = append(s.keys, string(p.Key)), append(s.keyTokens, int(p.Tokens))
			}
		}
		if meth == blend.Full {
			ref = resp.Logits
			s.top1 = true
		} else if ref != nil {
			s.kl, s.top1 = klTop1(ref, resp.Logits)
		}
		out[meth] = s
	}
	return out, nil
}

// generate runs req as a Generate of n greedy tokens: the prefill message (and the time
// to it), the tokens decoded and the time from the prefill message to the end.
func (e *env) generate(ctx context.Context, req *ragkvv1.PrefillRequest, n int) (*ragkvv1.PrefillResponse, time.Duration, int, time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 := time.Now()
	st, err := e.inf.Generate(ctx, &ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Prefill{Prefill: req}, MaxTokens: uint32(n), IgnoreEos: true})
	if err != nil {
		return nil, 0, 0, 0, err
	}
	var resp *ragkvv1.PrefillResponse
	var ttft time.Duration
	var t1 time.Time
	tokens := 0
	for {
		msg, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil, 0, 0, 0, fmt.Errorf("generate: the stream ended without its done message")
		}
		if err != nil {
			return nil, 0, 0, 0, err
		}
		switch {
		case msg.GetPrefill() != nil:
			resp, ttft, t1 = msg.GetPrefill(), time.Since(t0), time.Now()
		case msg.GetToken() != nil:
			tokens++
		case msg.GetDone() != nil:
			if resp == nil {
				return nil, 0, 0, 0, fmt.Errorf("generate: no prefill message")
			}
			return resp, ttft, tokens, time.Since(t1), nil
		}
	}
}

// klTop1 is KL(softmax(p) ‖ softmax(q)) and whether both have the same argmax.
func klTop1(p, q []float32) (float64, bool) {
	if len(p) != len(q) || len(p) == 0 {
		return math.NaN(), false
	}
	lp, lq := logSoftmax(p), logSoftmax(q)
	var kl float64
	for i := range lp {
		kl += math.Exp(lp[i]) * (lp[i] - lq[i])
	}
	return math.Max(kl, 0), model.Argmax(p) == model.Argmax(q)
}

func logSoftmax(x []float32) []float64 {
	mx := float64(x[0])
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	lse := mx + math.Log(sum)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - lse
	}
	return out
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// windows returns the index ranges of the first, middle and last windows.
func windows(n, w int) [3][2]int {
	if n < 3*w {
		w = max(1, n/3)
	}
	mid := (n - w) / 2
	return [3][2]int{{0, min(w, n)}, {mid, min(mid+w, n)}, {max(0, n-w), n}}
}

func summarize(rep *Report, o *Options, samples []map[blend.Method]*sample) {
	rep.TTFTMsP50, rep.TTFTMsP99, rep.SpeedupP50 = map[string]float64{}, map[string]float64{}, map[string]float64{}
	rep.SpeedupWindows, rep.HitRatioWindows = map[string]Windows[float64]{}, map[string]Windows[map[string]float64]{}
	rep.RecomputeFrac, rep.Fidelity, rep.PromptTokensPerS, rep.LastOverFirst = map[string]float64{}, map[string]Fidelity{}, map[string]float64{}, map[string]float64{}
	if o.DecodeTokens > 0 {
		rep.DecodeTokensPerS = map[string]float64{}
		var all float64
		for _, meth := range o.Methods {
			var toks, secs float64
			for _, s := range samples {
				toks += float64(s[meth].decoded)
				secs += s[meth].decode.Seconds()
			}
			all += toks
			rep.DecodeTokensPerS[string(meth)] = toks / secs
		}
		rep.DecodeTokensPerSTotal = all / rep.Seconds
	}
	ttfts := func(meth blend.Method, lo, hi int) []float64 {
		var out []float64
		for _, s := range samples[lo:hi] {
			out = append(out, s[meth].ttft.Seconds()*1000)
		}
		return out
	}
	n := len(samples)
	ws := windows(n, o.Window)
	var toks, allToks float64
	for _, s := range samples {
		toks += float64(s[o.Methods[0]].tokens)
		for _, x := range s {
			allToks += float64(x.tokens)
		}
	}
	rep.PromptTokensMean = toks / float64(n)
	rep.PromptTokensPerSTotal = allToks / rep.Seconds
	if rep.CPUSeconds > 0 {
		rep.PromptTokensPerCPUS = allToks / rep.CPUSeconds
	}
	ref := containsMethod(o.Methods, blend.Full)
	if !ref {
		rep.SpeedupP50, rep.SpeedupWindows, rep.Fidelity, rep.LastOverFirst = nil, nil, nil, nil
	}
	fullP50 := percentile(ttfts(o.Methods[0], 0, n), 0.5)
	if ref {
		fullP50 = percentile(ttfts(blend.Full, 0, n), 0.5)
	}
	for _, meth := range o.Methods {
		name := string(meth)
		all := ttfts(meth, 0, n)
		rep.TTFTMsP50[name], rep.TTFTMsP99[name] = percentile(all, 0.5), percentile(all, 0.99)
		if ref {
			rep.SpeedupP50[name] = fullP50 / rep.TTFTMsP50[name]
		}
		var sw [3]float64
		var hw [3]map[string]float64
		for i, w := range ws {
			if ref {
				sw[i] = percentile(ttfts(blend.Full, w[0], w[1]), 0.5) / percentile(ttfts(meth, w[0], w[1]), 0.5)
			}
			hits, tot := map[string]float64{}, 0.0
			for _, s := range samples[w[0]:w[1]] {
				for _, src := range s[meth].sources {
					hits[src]++
					tot++
				}
			}
			for k := range hits {
				hits[k] /= tot
			}
			hw[i] = hits
		}
		rep.HitRatioWindows[name] = Windows[map[string]float64]{hw[0], hw[1], hw[2]}
		if ref {
			rep.SpeedupWindows[name] = Windows[float64]{sw[0], sw[1], sw[2]}
			rep.LastOverFirst[name] = sw[2] / sw[0]
		}
		var rf, secs, ptoks float64
		var kls []float64
		top1 := 0
		for _, s := range samples {
			x := s[meth]
			rf += x.recomp
			secs += x.ttft.Seconds()
			ptoks += float64(x.tokens)
			kls = append(kls, x.kl)
			if x.top1 {
				top1++
			}
		}
		rep.RecomputeFrac[name] = rf / float64(n)
		rep.PromptTokensPerS[name] = ptoks / secs
		var klSum float64
		for _, k := range kls {
			klSum += k
		}
		if !ref {
			continue
		}
		rep.Fidelity[name] = Fidelity{KLMean: klSum / float64(n), KLP99: percentile(kls, 0.99), Top1: float64(top1) / float64(n)}
	}
}

// loadStream reads the documents of the collection and the query stream.
func loadStream(o *Options) ([]*ragkvv1.RetrievalDocument, []string, error) {
	if o.Stream == "musique" {
		return loadMusique(o)
	}
	return loadSciFact(o)
}

func loadMusique(o *Options) ([]*ragkvv1.RetrievalDocument, []string, error) {
	path := filepath.Join(o.DataDir, "data", "musique", "musique_s.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var qs []struct {
		Ctxs []struct {
			Title string `json:"title"`
			Text  string `json:"text"`
		} `json:"ctxs"`
		Question string `json:"question"`
	}
	if err := json.Unmarshal(b, &qs); err != nil {
		return nil, nil, fmt.Errorf("ragbench: %s: %w", path, err)
	}
	nq := min(o.Docs, len(qs))
	seen := map[string]bool{}
	var docs []*ragkvv1.RetrievalDocument
	var questions []string
	for _, q := range qs[:nq] {
		questions = append(questions, q.Question)
		for _, c := range q.Ctxs {
			key := c.Title + "\x00" + c.Text
			if seen[key] || strings.TrimSpace(c.Text) == "" {
				continue
			}
			seen[key] = true
			docs = append(docs, &ragkvv1.RetrievalDocument{Id: fmt.Sprintf("m%05d", len(docs)), Title: c.Title, Text: c.Text})
		}
	}
	stream := make([]string, o.Queries)
	for i := range stream {
		stream[i] = questions[i%len(questions)]
	}
	return docs, stream, nil
}

func readJSONL(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		if err := fn(sc.Bytes()); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return sc.Err()
}

func loadSciFact(o *Options) ([]*ragkvv1.RetrievalDocument, []string, error) {
	dir := filepath.Join(o.DataDir, "data", "scifact")
	type doc struct {
		ID    string `json:"_id"`
		Title string `json:"title"`
		Text  string `json:"text"`
	}
	var corpus []doc
	if err := readJSONL(filepath.Join(dir, "corpus.jsonl"), func(b []byte) error {
		var d doc
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		corpus = append(corpus, d)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	claims := map[string]string{}
	var order []string
	if err := readJSONL(filepath.Join(dir, "queries.train.jsonl"), func(b []byte) error {
		var q struct {
			ID   string `json:"_id"`
			Text string `json:"text"`
		}
		if err := json.Unmarshal(b, &q); err != nil {
			return err
		}
		claims[q.ID] = q.Text
		order = append(order, q.ID)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	qrels, err := os.ReadFile(filepath.Join(dir, "qrels.train.tsv"))
	if err != nil {
		return nil, nil, err
	}
	rel := map[string][]string{}
	for i, l := range strings.Split(string(qrels), "\n") {
		f := strings.Fields(l)
		if i == 0 || len(f) < 2 {
			continue
		}
		rel[f[0]] = append(rel[f[0]], f[1])
	}
	// The collection: documents relevant to the claims (in claim order) until Docs,
	// then other abstracts; the claims used are those with a relevant document in it.
	byID := map[string]doc{}
	for _, d := range corpus {
		byID[d.ID] = d
	}
	in := map[string]bool{}
	var docs []*ragkvv1.RetrievalDocument
	add := func(d doc) {
		if !in[d.ID] && len(docs) < o.Docs {
			in[d.ID] = true
			docs = append(docs, &ragkvv1.RetrievalDocument{Id: d.ID, Title: d.Title, Text: d.Text})
		}
	}
	var used []string
	for _, qid := range order {
		for _, did := range rel[qid] {
			if d, ok := byID[did]; ok {
				add(d)
			}
		}
		for _, did := range rel[qid] {
			if in[did] {
				used = append(used, claims[qid])
				break
			}
		}
	}
	for _, d := range corpus {
		add(d)
	}
	if len(used) == 0 {
		return nil, nil, fmt.Errorf("%w: no SciFact claim has a relevant document among the first %d", ErrInvalid, o.Docs)
	}
	// The stream: Zipf popularity over the claims (shuffled ranks); a NovelFrac share
	// of novel texts (a claim not sent yet, else a variant with one word dropped), the
	// rest repeats of texts sent before (drawn by the same popularity).
	rng := rand.New(rand.NewPCG(o.Seed, 0x5c1fac7))
	rng.Shuffle(len(used), func(i, j int) { used[i], used[j] = used[j], used[i] })
	zipf := newZipf(rng, len(used), o.ZipfS)
	sent := map[string]bool{}
	var sentList []string
	var popOfSent []int // popularity rank of each sent text
	stream := make([]string, 0, o.Queries)
	for len(stream) < o.Queries {
		r := zipf.draw()
		var q string
		if len(sentList) > 0 && rng.Float64() >= o.NovelFrac {
			// A repeat: the most popular sent text at or after rank r's claim.
			best := -1
			for i, p := range popOfSent {
				if best < 0 || abs(p-r) < abs(popOfSent[best]-r) {
					best = i
				}
			}
			q = sentList[best]
		} else {
			// The drawn claim, else a variant of it, else (all tried) the next claim
			// in popularity order.
			for ; ; r = (r + 1) % len(used) {
				q = used[r]
				for try := 0; sent[q] && try < 64; try++ {
					q = dropWord(rng, used[r])
				}
				if !sent[q] {
					break
				}
			}
			sent[q] = true
			sentList = append(sentList, q)
			popOfSent = append(popOfSent, r)
		}
		stream = append(stream, q)
	}
	return docs, stream, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// dropWord returns s without one of its words (chosen at random).
func dropWord(rng *rand.Rand, s string) string {
	w := strings.Fields(s)
	if len(w) < 3 {
		return s + " " + fmt.Sprint(rng.IntN(1000))
	}
	i := rng.IntN(len(w))
	return strings.Join(append(append([]string(nil), w[:i]...), w[i+1:]...), " ")
}

// zipf draws ranks 0..n-1 with P(r) ∝ 1/(r+1)^s.
type zipf struct {
	rng *rand.Rand
	cdf []float64
}

func newZipf(rng *rand.Rand, n int, s float64) *zipf {
	z := &zipf{rng: rng, cdf: make([]float64, n)}
	var sum float64
	for i := range z.cdf {
		sum += 1 / math.Pow(float64(i+1), s)
		z.cdf[i] = sum
	}
	for i := range z.cdf {
		z.cdf[i] /= sum
	}
	return z
}

func (z *zipf) draw() int {
	return min(sort.SearchFloat64s(z.cdf, z.rng.Float64()), len(z.cdf)-1)
}
