package blend

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

func testEngine(t *testing.T, o EngineOptions) *Engine {
	t.Helper()
	m := openStories(t)
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
	var hs []string
	for i := 0; i < 3; i++ {
		out, err := e.Prefill(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, out.Handle)
		wantSrc := map[int]string{0: "computed", 1: "memory", 2: "memory"}[i]
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
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"ragkv_blend_prefills_total", "ragkv_blend_prefill_seconds", "ragkv_blend_handles", "ragkv_blend_generated_tokens_total"} {
		if !names[n] {
			t.Fatalf("metric %s missing (have %v)", n, names)
		}
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
