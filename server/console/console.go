// Package console serves ragkv's operator console on the admin HTTP listener: one page
// (plain HTML, CSS and JavaScript embedded in the binary with Go's embed, no build
// step and no third-party front-end code) that shows, live, each chunk-cache tier's
// occupancy, capacity, hit ratio and evictions over the last hour, per-namespace usage,
// the hottest, largest and pinned chunks, the retrieval collections with their shard
// counts and query rates, and the inference engine's prefill and decode throughput and
// fused-prefill reuse; and that lets an operator change a tier's eviction policy,
// admission filter and capacity and pin or unpin chunks.
//
// History comes from the console's own sampler: every Options.Interval (default 5 s)
// it records the cache's counters (Cache.Stats), the collections' query counts and the
// engine's counters (read from the Prometheus registry: ragkv_blend_*), keeping
// Options.History (default 1 h) in a ring buffer, so the page works without a
// Prometheus server. The page polls two JSON endpoints (GET api/v1/snapshot, GET
// api/v1/history) every Options.Refresh (default 2 s); all URLs are relative, so the
// page works unchanged behind TLS or a path prefix.
//
// # Controls and their protection
//
// POST api/v1/policy ({"tier","policy","admission","capacity_bytes","high_watermark",
// "low_watermark"}, absent fields unchanged) and POST api/v1/pin ({"namespace","key",
// "pin": "hard"|"soft"|"unpinned"}) are admin actions. Until roles exist (issue 11:
// the trust issue), the only protection is where they are served: the admin listener,
// loopback by default (`ragkv serve --admin-listen`), so only a local user reaches
// them. Against cross-site requests from a browser on that machine (CSRF) they accept
// only POST with Content-Type application/json, the header X-Ragkv-Console: 1 (a
// custom header makes any cross-origin fetch a CORS preflight, which this server never
// answers with an allow), an Origin (when the browser sends one) whose host is the
// request's Host, and a Sec-Fetch-Site of same-origin or none; bodies are at most 64
// KiB of strict JSON. Every response sets a Content-Security-Policy of 'self' (no
// inline script, no framing), nosniff and no-store. Changes are logged.
package console

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/retrieval"
)

// ErrInvalid is returned by New for bad options.
var ErrInvalid = errors.New("console: invalid options")

// Options configure a Console.
type Options struct {
	// Cache is required.
	Cache *chunkcache.Cache
	// Retrieval, if not nil, adds the collections view.
	Retrieval *retrieval.Store
	// Gatherer, if not nil, is read for the engine's counters (ragkv_blend_*).
	Gatherer prometheus.Gatherer
	// Interval between history samples (default 5 s); History is how much is kept
	// (default 1 h; at most 100,000 samples); Refresh is how often the page polls
	// (default 2 s).
	Interval, History, Refresh time.Duration
	// Top is how many chunks the hottest, largest and pinned lists show (default 10).
	Top    int
	Logger *slog.Logger
}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.Interval == 0 {
		o.Interval = 5 * time.Second
	}
	if o.History == 0 {
		o.History = time.Hour
	}
	if o.Refresh == 0 {
		o.Refresh = 2 * time.Second
	}
	if o.Top == 0 {
		o.Top = 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports the first bad option.
func (o *Options) Validate() error {
	switch {
	case o.Cache == nil:
		return fmt.Errorf("%w: no cache", ErrInvalid)
	case o.Interval < 10*time.Millisecond:
		return fmt.Errorf("%w: interval %v (at least 10ms)", ErrInvalid, o.Interval)
	case o.History < o.Interval:
		return fmt.Errorf("%w: history %v shorter than the interval %v", ErrInvalid, o.History, o.Interval)
	case o.History/o.Interval > maxSamples:
		return fmt.Errorf("%w: history %v at interval %v is more than %d samples", ErrInvalid, o.History, o.Interval, maxSamples)
	case o.Refresh < 10*time.Millisecond:
		return fmt.Errorf("%w: refresh %v (at least 10ms)", ErrInvalid, o.Refresh)
	case o.Top < 1 || o.Top > 1000:
		return fmt.Errorf("%w: top %d (1..1000)", ErrInvalid, o.Top)
	}
	return nil
}

const maxSamples = 100_000

// Console is the admin console: a sampler (Start, Close) and an HTTP handler.
type Console struct {
	o   Options
	log *slog.Logger

	mu              sync.Mutex
	ring            []Sample
	head, n         int // oldest sample, number of samples
	started, closed bool

	stop chan struct{}
	done chan struct{}
	web  fs.FS
}

// New returns a console; call Start to begin sampling and Close to stop.
func New(o Options) (*Console, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, fmt.Errorf("console: embedded assets: %w", err)
	}
	n := int(o.History / o.Interval)
	return &Console{o: o, log: o.Logger, ring: make([]Sample, n), stop: make(chan struct{}), done: make(chan struct{}), web: web}, nil
}

// Start takes a first sample and starts the sampler goroutine (owned by the console
// until Close). Calling it again, or after Close, does nothing.
func (c *Console) Start() {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return
	}
	c.started = true
	c.mu.Unlock()
	c.Sample()
	go c.run()
}

func (c *Console) run() {
	defer close(c.done)
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.Sample()
		}
	}
}

// Close stops the sampler and waits for it to return.
func (c *Console) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	started := c.started
	c.mu.Unlock()
	close(c.stop)
	if started {
		<-c.done
	}
	return nil
}

// TierSample is one tier's counters at a sample.
type TierSample struct {
	Name         string `json:"name"`
	Bytes        int64  `json:"bytes"`
	Capacity     int64  `json:"capacity_bytes"`
	Entries      int64  `json:"entries"`
	PinnedBytes  int64  `json:"pinned_bytes"`
	Hits         uint64 `json:"hits"`
	Misses       uint64 `json:"misses"`
	Evictions    uint64 `json:"evictions"`
	Admissions   uint64 `json:"admissions"`
	Rejections   uint64 `json:"rejections"`
	Promotions   uint64 `json:"promotions"`
	Demotions    uint64 `json:"demotions"`
	CorruptReads uint64 `json:"corrupt_reads"`
}

// EngineCounters are the inference engine's cumulative counters (zero without an
// engine).
type EngineCounters struct {
	Available        bool    `json:"available"`
	Prefills         float64 `json:"prefills"`
	PrefillSeconds   float64 `json:"prefill_seconds"`
	TTFTSeconds      float64 `json:"ttft_seconds"` // sum over prefills
	ReusedTokens     float64 `json:"reused_tokens"`
	RecomputedTokens float64 `json:"recomputed_tokens"`
	QueryTokens      float64 `json:"query_tokens"`
	GeneratedTokens  float64 `json:"generated_tokens"`
	DecodeSeconds    float64 `json:"decode_seconds"`
	Inflight         float64 `json:"inflight"`
	MaxConcurrent    float64 `json:"max_concurrent"`
}

// Sample is one point of the history: cumulative counters (the page takes
// differences between samples for rates).
type Sample struct {
	UnixMilli   int64             `json:"t"`
	Tiers       []TierSample      `json:"tiers"`
	Collections map[string]uint64 `json:"collections,omitempty"` // queries so far
	Engine      EngineCounters    `json:"engine"`
}

// Sample takes one sample now and adds it to the history (the sampler calls it every
// interval; tests call it directly).
func (c *Console) Sample() Sample {
	s := c.take(time.Now())
	c.mu.Lock()
	if c.n < len(c.ring) {
		c.ring[(c.head+c.n)%len(c.ring)] = s
		c.n++
	} else {
		c.ring[c.head] = s
		c.head = (c.head + 1) % len(c.ring)
	}
	c.mu.Unlock()
	return s
}

func (c *Console) take(now time.Time) Sample {
	s := Sample{UnixMilli: now.UnixMilli()}
	for _, t := range c.o.Cache.Stats().Tiers {
		s.Tiers = append(s.Tiers, tierSample(t))
	}
	if c.o.Retrieval != nil {
		s.Collections = map[string]uint64{}
		for _, ci := range c.o.Retrieval.Collections() {
			s.Collections[ci.Name] = ci.Queries
		}
	}
	if c.o.Gatherer != nil {
		s.Engine = readEngine(c.o.Gatherer, c.log)
	}
	return s
}

func tierSample(t chunkcache.TierStats) TierSample {
	return TierSample{Name: t.Name, Bytes: t.Bytes, Capacity: t.Capacity, Entries: t.Entries, PinnedBytes: t.PinnedBytes,
		Hits: t.Hits, Misses: t.Misses, Evictions: t.Evictions, Admissions: t.Admissions, Rejections: t.Rejections,
		Promotions: t.Promotions, Demotions: t.Demotions, CorruptReads: t.CorruptReads}
}

// History returns the samples, oldest first.
func (c *Console) History() []Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Sample, c.n)
	for i := 0; i < c.n; i++ {
		out[i] = c.ring[(c.head+i)%len(c.ring)]
	}
	return out
}

// sampleAgo returns the newest sample at least d older than now, or the oldest one.
func (c *Console) sampleAgo(now time.Time, d time.Duration) (Sample, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		return Sample{}, false
	}
	cut := now.Add(-d).UnixMilli()
	best := c.ring[c.head]
	for i := 0; i < c.n; i++ {
		s := c.ring[(c.head+i)%len(c.ring)]
		if s.UnixMilli > cut {
			break
		}
		best = s
	}
	return best, true
}

// readEngine sums the blend engine's metrics over their labels.
func readEngine(g prometheus.Gatherer, log *slog.Logger) EngineCounters {
	mfs, err := g.Gather()
	if err != nil {
		log.Warn("console: gather metrics", "err", err)
	}
	var e EngineCounters
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			switch name {
			case "ragkv_blend_prefills_total":
				e.Available = true
				e.Prefills += m.GetCounter().GetValue()
			case "ragkv_blend_prefill_seconds":
				e.PrefillSeconds += m.GetHistogram().GetSampleSum()
			case "ragkv_blend_ttft_seconds":
				e.TTFTSeconds += m.GetHistogram().GetSampleSum()
			case "ragkv_blend_prompt_tokens_total":
				switch label(m, "kind") {
				case "reused":
					e.ReusedTokens += m.GetCounter().GetValue()
				case "recomputed":
					e.RecomputedTokens += m.GetCounter().GetValue()
				case "query":
					e.QueryTokens += m.GetCounter().GetValue()
				}
			case "ragkv_blend_generated_tokens_total":
				e.GeneratedTokens += m.GetCounter().GetValue()
			case "ragkv_blend_decode_seconds_total":
				e.DecodeSeconds += m.GetCounter().GetValue()
			case "ragkv_blend_inflight":
				e.Available = true
				e.Inflight += m.GetGauge().GetValue()
			case "ragkv_blend_max_concurrent":
				e.MaxConcurrent += m.GetGauge().GetValue()
			}
		}
	}
	return e
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TierView is one tier in a snapshot: its Stats, its eviction settings and ratios.
type TierView struct {
	chunkcache.TierStats
	Policy        string  `json:"policy"`
	Admission     string  `json:"admission"`
	HighWatermark float64 `json:"high_watermark"`
	LowWatermark  float64 `json:"low_watermark"`
	// HitRatio is hits/(hits+misses) since start; Occupancy bytes/capacity.
	HitRatio  float64 `json:"hit_ratio"`
	Occupancy float64 `json:"occupancy"`
}

// CollectionView is one retrieval collection in a snapshot.
type CollectionView struct {
	Name     string `json:"name"`
	Shards   int    `json:"shards"`
	Docs     int64  `json:"docs"`
	Passages int64  `json:"passages"`
	Embedder string `json:"embedder,omitempty"`
	Queries  uint64 `json:"queries"`
	// QPS is the query rate over the last minute of samples.
	QPS float64 `json:"qps"`
}

// EngineView is the engine in a snapshot: cumulative counters and rates over the last
// minute of samples.
type EngineView struct {
	EngineCounters
	// PrefillTokensPerSecond: prompt tokens per second of prefill time (reused,
	// recomputed and query tokens, over ragkv_blend_prefill_seconds);
	// DecodeTokensPerSecond: generated tokens per second of decode time; ReuseFraction:
	// reused ÷ (reused + recomputed) chunk tokens; Prefills/s and mean TTFT over the
	// window. Zero where nothing happened in the window.
	PrefillTokensPerSecond float64 `json:"prefill_tokens_per_second"`
	DecodeTokensPerSecond  float64 `json:"decode_tokens_per_second"`
	ReuseFraction          float64 `json:"reuse_fraction"`
	PrefillsPerSecond      float64 `json:"prefills_per_second"`
	MeanTTFTSeconds        float64 `json:"mean_ttft_seconds"`
	WindowSeconds          float64 `json:"window_seconds"`
}

// Snapshot is the console's current view (GET api/v1/snapshot).
type Snapshot struct {
	UnixMilli       int64            `json:"t"`
	RefreshMillis   int64            `json:"refresh_ms"`
	IntervalSeconds float64          `json:"interval_seconds"`
	HistorySeconds  float64          `json:"history_seconds"`
	Tiers           []TierView       `json:"tiers"`
	Chunks          int              `json:"chunks"`
	Policies        []string         `json:"policies"`
	Admissions      []string         `json:"admissions"`
	Usage           chunkcache.Usage `json:"usage"`
	// NamespaceStats: each namespace's bytes per tier against its quota.
	NamespaceStats []chunkcache.NamespaceStats `json:"namespace_stats"`
	Collections    []CollectionView            `json:"collections"`
	Retrieval      bool                        `json:"retrieval"`
	Engine         EngineView                  `json:"engine"`
	// ControlsNote says what protects the controls.
	ControlsNote string `json:"controls_note"`
}

// rateWindow is how far back snapshot rates look.
const rateWindow = time.Minute

// Snapshot reads the cache (Stats, Policy, Usage), the collections and the engine now.
func (c *Console) Snapshot(ctx context.Context) Snapshot {
	now := time.Now()
	st := c.o.Cache.Stats()
	pol := map[string]chunkcache.TierPolicy{}
	for _, p := range c.o.Cache.Policy() {
		pol[p.Tier] = p
	}
	s := Snapshot{UnixMilli: now.UnixMilli(), RefreshMillis: c.o.Refresh.Milliseconds(),
		IntervalSeconds: c.o.Interval.Seconds(), HistorySeconds: c.o.History.Seconds(),
		Chunks: st.Chunks, Policies: chunkcache.Policies(), Admissions: chunkcache.Admissions(),
		Usage: c.o.Cache.Usage(c.o.Top), NamespaceStats: st.NamespaceStats, Collections: []CollectionView{}, Retrieval: c.o.Retrieval != nil,
		ControlsNote: "Admin actions, served only on the admin listener (loopback by default); roles come with the trust issue (#11)."}
	for _, t := range st.Tiers {
		p := pol[t.Name]
		v := TierView{TierStats: t, Policy: p.Policy, Admission: p.Admission, HighWatermark: p.HighWatermark, LowWatermark: p.LowWatermark}
		if n := t.Hits + t.Misses; n > 0 {
			v.HitRatio = float64(t.Hits) / float64(n)
		}
		if t.Capacity > 0 {
			v.Occupancy = float64(t.Bytes) / float64(t.Capacity)
		}
		s.Tiers = append(s.Tiers, v)
	}
	old, haveOld := c.sampleAgo(now, rateWindow)
	dt := float64(now.UnixMilli()-old.UnixMilli) / 1000
	if c.o.Retrieval != nil {
		for _, ci := range c.o.Retrieval.Collections() {
			v := CollectionView{Name: ci.Name, Shards: ci.Shards, Docs: ci.Docs, Passages: ci.Passages, Embedder: ci.Embedder, Queries: ci.Queries}
			if q0, ok := old.Collections[ci.Name]; haveOld && ok && dt > 0 && ci.Queries >= q0 {
				v.QPS = float64(ci.Queries-q0) / dt
			}
			s.Collections = append(s.Collections, v)
		}
		sort.Slice(s.Collections, func(i, j int) bool { return s.Collections[i].Name < s.Collections[j].Name })
	}
	if c.o.Gatherer != nil {
		e := readEngine(c.o.Gatherer, c.log)
		s.Engine = engineView(e, old.Engine, dt, haveOld)
	}
	return s
}

func engineView(e, old EngineCounters, dt float64, haveOld bool) EngineView {
	v := EngineView{EngineCounters: e}
	if !haveOld || dt <= 0 {
		return v
	}
	v.WindowSeconds = dt
	tok := (e.ReusedTokens + e.RecomputedTokens + e.QueryTokens) - (old.ReusedTokens + old.RecomputedTokens + old.QueryTokens)
	if ps := e.PrefillSeconds - old.PrefillSeconds; ps > 0 {
		v.PrefillTokensPerSecond = tok / ps
	}
	if ds := e.DecodeSeconds - old.DecodeSeconds; ds > 0 {
		v.DecodeTokensPerSecond = (e.GeneratedTokens - old.GeneratedTokens) / ds
	}
	reused, rec := e.ReusedTokens-old.ReusedTokens, e.RecomputedTokens-old.RecomputedTokens
	if reused+rec > 0 {
		v.ReuseFraction = reused / (reused + rec)
	}
	if n := e.Prefills - old.Prefills; n > 0 {
		v.PrefillsPerSecond = n / dt
		v.MeanTTFTSeconds = (e.TTFTSeconds - old.TTFTSeconds) / n
	}
	return v
}
