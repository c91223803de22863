package blend

import (
	"context"
	"log/slog"
	"testing"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// TestStorePreRoPE: chunks stored with StoreOptions.PreRoPE hold K without its
// rotary embedding (row 0 as computed, later rows different) and fuse to the same
// logits as chunks stored rotated, once the loader rotates them from position 0.
func TestStorePreRoPE(t *testing.T) {
	m := openStories(t)
	ctx := context.Background()
	b, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	stores := map[bool]*Store{}
	for _, pre := range []bool{false, true} {
		cache, err := chunkcache.New(ctx, chunkcache.Options{
			Tiers:  []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}}},
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cache.Close() })
		if stores[pre], err = NewStore(m, cache, StoreOptions{DType: chunkcache.F32, PreRoPE: pre}); err != nil {
			t.Fatal(err)
		}
	}
	kd := m.Config.KVDim()
	for _, toks := range stories(t, m, 2) {
		mem, query := storyRequest(t, m, toks)
		ref, err := b.Prefill(ctx, &Request{Method: Naive, Segments: mem, Query: query, AllLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		logits := map[bool][]float32{}
		for pre, st := range stores {
			segs := make([]Segment, len(mem))
			for i, s := range mem {
				kv := s.Source.(*KVSource).KV
				if _, err := st.Put(ctx, s.Tokens, kv, nil); err != nil {
					t.Fatal(err)
				}
				seg, closer, err := st.Open(ctx, s.Tokens, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer closer.Close()
				segs[i] = seg
				if got := seg.Source.(*cacheSource).KPreRoPE(); got != pre {
					t.Fatalf("stored with PreRoPE %v, source says %v", pre, got)
				}
				if i == 1 {
					key, _ := st.Key(s.Tokens, nil)
					info, k, _, err := st.cache.GetFloat32(ctx, "", key)
					if err != nil {
						t.Fatal(err)
					}
					d0 := maxAbsDiff(k[1][:kd], kv.K[1][:kd])
					d5 := maxAbsDiff(k[1][5*kd:6*kd], kv.K[1][5*kd:6*kd])
					if info.PreRoPE != pre || d0 != 0 || (d5 == 0) != !pre {
						t.Fatalf("PreRoPE %v (info %v): stored K row 0 differs by %g, row 5 by %g", pre, info.PreRoPE, d0, d5)
					}
				}
			}
			res, err := b.Prefill(ctx, &Request{Method: Naive, Segments: segs, Query: query, AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			logits[pre] = res.Logits
		}
		if d := maxAbsDiff(logits[false], ref.Logits); d > 1e-5 {
			t.Fatalf("rotated store vs in memory: logits differ by %g", d)
		}
		if d := maxAbsDiff(logits[true], ref.Logits); d > 1e-4 {
			t.Fatalf("pre-RoPE store vs in memory: logits differ by %g", d)
		}
	}
}
