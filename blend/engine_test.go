package blend

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/store"
)

func testEngine(t *testing.T, o EngineOptions) *Engine {
	t.Helper()
	return engineOver(t, openStories(t), o)
}

// engineOver is an engine over m with a 256 MiB memory tier, closed at the end of t.
func engineOver(t *testing.T, m *model.Model, o EngineOptions) *Engine {
	t.Helper()
	cache, err := chunkcache.New(context.Background(), chunkcache.Options{
		Tiers:  []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 256 << 20}}},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	st, err := NewStore(m, cache, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.Logger = slog.New(slog.DiscardHandler)
	e, err := NewEngine(st, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestEngineHandles: the kept prefills are bounded by count (LRU) and TTL; Generate
// consumes a handle unless asked to keep it.
func TestEngineHandles(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := testEngine(t, EngineOptions{MaxHandles: 2, HandleTTL: time.Hour, Registerer: reg})
	ctx := context.Background()
	in := &PrefillInput{System: "A story.", Chunks: []ChunkRef{{Text: "Tom had a dog."}, {Text: "The dog was big."}}, Query: "The dog"}
	if out, err := e.Prefill(ctx, in); err != nil || out.Handle != "" {
		t.Fatalf("prefill without KeepHandle: handle %q, %v", out.Handle, err)
	}
	if n, _ := e.Handles(); n != 0 {
		t.Fatalf("%d handles kept without KeepHandle", n)
	}
	in.KeepHandle = true
	var hs []string
	for i := 0; i < 3; i++ {
		out, err := e.Prefill(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, out.Handle)
		wantSrc := "memory"
		if out.Segments[2].Source != wantSrc || out.CacheHits[wantSrc] == 0 {
			t.Fatalf("prefill %d: chunk source %q, want %q", i, out.Segments[2].Source, wantSrc)
		}
	}
	if n, b := e.Handles(); n != 2 || b <= 0 {
		t.Fatalf("%d handles (%d bytes), want 2", n, b)
	}
	emit := func(GenerateEvent) error { return nil }
	if err := e.Generate(ctx, &GenerateInput{Handle: hs[0], MaxTokens: 2}, emit); !errors.Is(err, ErrHandleNotFound) {
		t.Fatalf("LRU-evicted handle: %v", err)
	}
	var toks []int
	collect := func(ev GenerateEvent) error {
		if ev.Done == nil && ev.Prefill == nil {
			toks = append(toks, ev.Token)
		}
		return nil
	}
	if err := e.Generate(ctx, &GenerateInput{Handle: hs[1], KeepHandle: true, MaxTokens: 5, IgnoreEOS: true}, collect); err != nil {
		t.Fatal(err)
	}
	first := append([]int(nil), toks...)
	toks = nil
	if err := e.Generate(ctx, &GenerateInput{Handle: hs[1], MaxTokens: 5, IgnoreEOS: true}, collect); err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if toks[i] != first[i] {
			t.Fatalf("kept handle decoded differently: %v vs %v", toks, first)
		}
	}
	if err := e.Generate(ctx, &GenerateInput{Handle: hs[1]}, emit); !errors.Is(err, ErrHandleNotFound) {
		t.Fatalf("consumed handle: %v", err)
	}
	if err := e.Generate(ctx, &GenerateInput{}, emit); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no source: %v", err)
	}
	// TTL.
	e2 := testEngine(t, EngineOptions{HandleTTL: time.Millisecond})
	out, err := e2.Prefill(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := e2.Generate(ctx, &GenerateInput{Handle: out.Handle}, emit); !errors.Is(err, ErrHandleNotFound) {
		t.Fatalf("expired handle: %v", err)
	}
	// Metrics were recorded.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	sum := map[string]float64{} // counter values and histogram counts, summed over labels
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum[mf.GetName()] += m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				sum[mf.GetName()] += float64(m.GetHistogram().GetSampleCount())
			case m.GetGauge() != nil:
				sum[mf.GetName()] += m.GetGauge().GetValue()
			}
		}
	}
	for _, n := range []string{"ragkv_blend_prefills_total", "ragkv_blend_prefill_seconds", "ragkv_blend_handles", "ragkv_blend_generated_tokens_total",
		"ragkv_blend_ttft_seconds", "ragkv_blend_decode_seconds_total", "ragkv_blend_inflight", "ragkv_blend_max_concurrent"} {
		if !names[n] {
			t.Fatalf("metric %s missing (have %v)", n, names)
		}
	}
	if sum["ragkv_blend_ttft_seconds"] != sum["ragkv_blend_prefills_total"] || sum["ragkv_blend_ttft_seconds"] == 0 {
		t.Errorf("%v TTFT observations for %v prefills", sum["ragkv_blend_ttft_seconds"], sum["ragkv_blend_prefills_total"])
	}
	if sum["ragkv_blend_decode_seconds_total"] <= 0 || sum["ragkv_blend_inflight"] != 0 || sum["ragkv_blend_max_concurrent"] < 1 {
		t.Errorf("decode seconds %v, in flight %v, slots %v", sum["ragkv_blend_decode_seconds_total"], sum["ragkv_blend_inflight"], sum["ragkv_blend_max_concurrent"])
	}
}

func TestUTF8Buffer(t *testing.T) {
	var u utf8Buffer
	s := "naïve 😀!"
	var out string
	for i := 0; i < len(s); i++ { // one byte per piece: sequences split everywhere
		got := u.add([]byte{s[i]})
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 %q", got)
		}
		out += got
	}
	out += u.flush()
	if out != s {
		t.Fatalf("%q, want %q", out, s)
	}
	if got := u.add([]byte{0xff, 'a'}); !utf8.ValidString(got) {
		t.Fatalf("invalid byte passed through: %q", got)
	}
}

// TestEngineMissingChunkAfterCachedPrefix: a chunk computed on the fly after a system
// prefix that came from the cache is stored with the same KV as one computed in the
// call that also computed the prefix (the prefix KV it is computed after is exact).
func TestEngineMissingChunkAfterCachedPrefix(t *testing.T) {
	ctx := context.Background()
	const system, c1, c2 = "A story.", "Tom had a dog.", "The dog was big."
	warm := testEngine(t, EngineOptions{})
	if _, err := warm.Prefill(ctx, &PrefillInput{System: system, Chunks: []ChunkRef{{Text: c1}}, Query: "The"}); err != nil {
		t.Fatal(err)
	}
	out, err := warm.Prefill(ctx, &PrefillInput{System: system, Chunks: []ChunkRef{{Text: c2}}, Query: "The"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Segments[0].Source != "memory" || out.Segments[1].Source != "computed" {
		t.Fatalf("sources %q, %q: want the prefix from memory, the chunk computed", out.Segments[0].Source, out.Segments[1].Source)
	}
	cold := testEngine(t, EngineOptions{})
	if _, err := cold.Prefill(ctx, &PrefillInput{System: system, Chunks: []ChunkRef{{Text: c2}}, Query: "The"}); err != nil {
		t.Fatal(err)
	}
	m := warm.st.m
	toks := m.Tok.Encode(c2, false, false)
	kvPrev := []Hash{TokenHash(m.Tok.Encode(system, true, false))}
	var got [2][][]float32
	for i, e := range []*Engine{warm, cold} {
		seg, closer, err := e.st.Open(ctx, toks, kvPrev)
		if err != nil {
			t.Fatal(err)
		}
		defer closer.Close()
		n := seg.Source.Rows() * m.Config.KVDim()
		for l := 0; l < m.Config.Layers; l++ {
			k, v := make([]float32, n), make([]float32, n)
			if err := seg.Source.ReadLayer(ctx, l, k, v); err != nil {
				t.Fatal(err)
			}
			got[i] = append(got[i], k, v)
		}
	}
	for j := range got[0] {
		if d := maxAbsDiff(got[0][j], got[1][j]); d != 0 || len(got[0][j]) != len(got[1][j]) {
			t.Fatalf("layer %d (%s): stored KVs differ by %g", j/2, []string{"K", "V"}[j%2], d)
		}
	}
}

// TestEngineKeyOfAnotherModel: a chunk given by key whose KV another model computed
// (same shape, other weights) is refused, not fused into this model's prompt.
func TestEngineKeyOfAnotherModel(t *testing.T) {
	ctx := context.Background()
	e := testEngine(t, EngineOptions{})
	m := e.st.m
	o := e.st.o
	o.Fingerprint.WeightsDigest = "sha256:another-model"
	other, err := NewStore(m, e.st.cache, o)
	if err != nil {
		t.Fatal(err)
	}
	toks := m.Tok.Encode("Tom had a dog.", false, false)
	kv, err := ComputeAlone(ctx, m, nil, toks)
	if err != nil {
		t.Fatal(err)
	}
	if pr, err := other.Put(ctx, toks, kv, nil); err != nil || !pr.Admitted {
		t.Fatalf("put: %+v %v", pr, err)
	}
	key, err := other.Key(toks, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, closer, err := other.OpenKey(ctx, key)
	if err != nil {
		t.Fatalf("the model that stored it: %v", err)
	}
	closer.Close()
	_, err = e.Prefill(ctx, &PrefillInput{Chunks: []ChunkRef{{Key: &key}}, Query: "The dog"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "another model") {
		t.Fatalf("prefill with another model's chunk: %v", err)
	}
}

// TestGenerateToContextEnd: Generate from a prompt that leaves less room than
// MaxTokens stops at the context's end (reason "context") instead of refusing the
// prompt.
func TestGenerateToContextEnd(t *testing.T) {
	ctx := context.Background()
	e := testEngine(t, EngineOptions{})
	c := &e.st.m.Config
	chunk := strings.Repeat("Tom had a big dog. ", 30)
	var n int
	var done *GenerateDone
	err := e.Generate(ctx, &GenerateInput{Prefill: &PrefillInput{Chunks: []ChunkRef{{Text: chunk}}, Query: "The dog", Method: Naive},
		MaxTokens: c.Ctx, IgnoreEOS: true}, func(ev GenerateEvent) error {
		if ev.Prefill != nil {
			n = ev.Prefill.Stats.Tokens
		}
		if ev.Done != nil {
			done = ev.Done
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || done == nil || done.Reason != "context" || done.Tokens != c.Ctx-n+1 {
		t.Fatalf("%d prompt tokens of %d: done %+v", n, c.Ctx, done)
	}
}
