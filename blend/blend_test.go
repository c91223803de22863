package blend

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/ragkv/ragkv/model"
)

// TestRatioOneEqualsFull: CacheBlend and Cache-Craft at r = 1 recompute everything and
// give the full prefill bit for bit (KV and logits); full equals model.Prefill.
func TestRatioOneEqualsFull(t *testing.T) {
	m := openStories(t)
	ctx := context.Background()
	for _, toks := range stories(t, m, 3) {
		c := len(toks) / 4
		prompt, query := toks[:len(toks)-c], toks[len(toks)-c:]
		segs := chunked(t, m, prompt, 3)
		b, err := New(m, Options{})
		if err != nil {
			t.Fatal(err)
		}
		full, err := b.Prefill(ctx, &Request{Method: Full, Segments: segs, Query: query, AllLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		for i := len(toks) - c; i < len(toks); i++ {
			want = append(want, i)
		}
		ref, res, err := m.Prefill(ctx, toks, 0, 0, model.ExtendOptions{Logits: want})
		if err != nil {
			t.Fatal(err)
		}
		kvEqual(t, "full vs model.Prefill", full.KV, ref)
		if st := full.Stats; math.Abs(st.FLOPs/st.FullFLOPs-1) > 1e-12 {
			t.Fatalf("full computed %g FLOPs, a full prefill %g", st.FLOPs, st.FullFLOPs)
		}
		if d := maxAbsDiff(full.Logits, res.Logits); d != 0 {
			t.Fatalf("full vs model.Prefill: logits differ by %g", d)
		}
		for _, meth := range []Method{CacheBlend, CacheCraft} {
			got, err := b.Prefill(ctx, &Request{Method: meth, Ratio: 1, Segments: segs, Query: query, AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			kvEqual(t, string(meth), got.KV, full.KV)
			if d := maxAbsDiff(got.Logits, full.Logits); d != 0 {
				t.Fatalf("%s at r=1: logits differ by %g", meth, d)
			}
			if got.Stats.RecomputeFrac != 1 {
				t.Fatalf("%s at r=1: recompute fraction %g", meth, got.Stats.RecomputeFrac)
			}
		}
	}
}

func storyRequest(t *testing.T, m *model.Model, toks []int) ([]Segment, []int) {
	t.Helper()
	c := len(toks) / 4
	return chunked(t, m, toks[:len(toks)-c], 3), toks[len(toks)-c:]
}

// TestCacheBlendZeroIsNaive: with nothing selected and the check layer left stale,
// CacheBlend differs from naive only by layer 0 (fresh K vs re-rotated cached K, equal
// up to rounding).
func TestCacheBlendZeroIsNaive(t *testing.T) {
	m := openStories(t)
	ctx := context.Background()
	b, err := New(m, Options{StaleCheckLayer: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, toks := range stories(t, m, 3) {
		segs, query := storyRequest(t, m, toks)
		naive, err := b.Prefill(ctx, &Request{Method: Naive, Segments: segs, Query: query, AllLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		cb, err := b.Prefill(ctx, &Request{Method: CacheBlend, Segments: segs, Query: query, AllLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		if cb.Stats.Recomputed != 0 || naive.Stats.Recomputed != 0 {
			t.Fatalf("recomputed %g / %g tokens at ratio 0", cb.Stats.Recomputed, naive.Stats.Recomputed)
		}
		d := maxAbsDiff(cb.Logits, naive.Logits)
		t.Logf("logits max diff %.2g", d)
		if d > 1e-4 {
			t.Fatalf("cacheblend r=0 vs naive: logits differ by %g", d)
		}
		// Layers ≥ 1 of the segment rows are the cached rows in both.
		n := len(toks) - len(query)
		for l := 1; l < m.Config.Layers; l++ {
			if d := maxAbsDiff(cb.KV.K[l][:n*cb.KV.KVDim], naive.KV.K[l][:n*cb.KV.KVDim]); d != 0 {
				t.Fatalf("layer %d cached K differs by %g", l, d)
			}
		}
		// Without the stale option the check layer is refreshed, which must change it.
		b2, _ := New(m, Options{})
		cb2, err := b2.Prefill(ctx, &Request{Method: CacheBlend, Segments: segs, Query: query, AllLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		if maxAbsDiff(cb2.KV.K[1][:n*cb.KV.KVDim], naive.KV.K[1][:n*cb.KV.KVDim]) == 0 {
			t.Fatal("refreshed check layer equals the cached one")
		}
	}
}

// TestPrefixAndNaive: prefix reuses the exact first chunk (computed alone at position 0
// with the BOS) and equals full up to GEMM blocking; naive recomputes only the query.
func TestPrefixAndNaive(t *testing.T) {
	m := openStories(t)
	ctx := context.Background()
	b, _ := New(m, Options{})
	toks := stories(t, m, 1)[0]
	segs, query := storyRequest(t, m, toks)
	full, err := b.Prefill(ctx, &Request{Method: Full, Segments: segs, Query: query, AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	pre, err := b.Prefill(ctx, &Request{Method: Prefix, Segments: segs, Query: query, AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	if !pre.Stats.Segments[0].Exact || pre.Stats.Segments[1].Exact || pre.Stats.Segments[0].Recomputed != 0 ||
		pre.Stats.Segments[1].Recomputed != len(segs[1].Tokens) {
		t.Fatalf("prefix stats %+v", pre.Stats.Segments)
	}
	d := maxAbsDiff(pre.Logits, full.Logits)
	t.Logf("prefix vs full: logits max diff %.2g", d)
	if d > 1e-4 {
		t.Fatalf("prefix vs full: logits differ by %g", d)
	}
	naive, err := b.Prefill(ctx, &Request{Method: Naive, Segments: segs, Query: query, AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	if naive.Stats.Recomputed != 0 || naive.Stats.FLOPs >= pre.Stats.FLOPs {
		t.Fatalf("naive recomputed %g tokens, %g FLOPs (prefix %g)", naive.Stats.Recomputed, naive.Stats.FLOPs, pre.Stats.FLOPs)
	}
	if d := maxAbsDiff(naive.Logits, full.Logits); d < 1e-3 {
		t.Fatalf("naive equals full (%g): the chunks' missing context has no effect?", d)
	}
}

// TestPipelineSameResult: loading every layer first gives the same bits as pipelining.
func TestPipelineSameResult(t *testing.T) {
	m := openStories(t)
	ctx := context.Background()
	toks := stories(t, m, 1)[0]
	segs, query := storyRequest(t, m, toks)
	a, _ := New(m, Options{})
	b, _ := New(m, Options{NoPipeline: true})
	for _, meth := range []Method{Naive, CacheBlend, CacheCraft} {
		ra, err := a.Prefill(ctx, &Request{Method: meth, Ratio: 0.2, Segments: segs, Query: query})
		if err != nil {
			t.Fatal(err)
		}
		rb, err := b.Prefill(ctx, &Request{Method: meth, Ratio: 0.2, Segments: segs, Query: query})
		if err != nil {
			t.Fatal(err)
		}
		kvEqual(t, string(meth), ra.KV, rb.KV)
		if maxAbsDiff(ra.Logits, rb.Logits) != 0 || len(ra.Logits) != m.Config.Vocab {
			t.Fatalf("%s: pipelined logits differ", meth)
		}
		if ra.Stats.Load <= 0 || rb.Stats.LoadHiddenFrac > 0.5 {
			t.Fatalf("%s: load %v, hidden without pipeline %.2f", meth, ra.Stats.Load, rb.Stats.LoadHiddenFrac)
		}
	}
}

type failingSource struct {
	Source
	at int
}

func (f *failingSource) ReadLayer(ctx context.Context, l int, k, v []float32) error {
	if l == f.at {
		return errBroken
	}
	return f.Source.ReadLayer(ctx, l, k, v)
}

var errBroken = errors.New("disk on fire")

// TestRequestErrors: bad requests fail with ErrInvalid/ErrTooLong, a failing source
// with its error (the loader stops), an empty query recomputes the last token.
func TestRequestErrors(t *testing.T) {
	m := openStories(t)
	ctx := context.Background()
	b, _ := New(m, Options{})
	toks := stories(t, m, 1)[0]
	segs, query := storyRequest(t, m, toks)
	cases := []struct {
		req  Request
		want error
	}{
		{Request{Method: "bogus", Segments: segs, Query: query}, ErrInvalid},
		{Request{Method: CacheBlend, Ratio: 1.5, Segments: segs, Query: query}, ErrInvalid},
		{Request{Method: Naive}, ErrInvalid},
		{Request{Method: Naive, Segments: []Segment{{}}, Query: query}, ErrInvalid},
		{Request{Method: Naive, Segments: segs, Query: []int{m.Config.Vocab}}, ErrInvalid},
		{Request{Method: Naive, Segments: segs, Query: make([]int, m.Config.Ctx)}, ErrTooLong},
	}
	for i, c := range cases {
		if _, err := b.Prefill(ctx, &c.req); !errors.Is(err, c.want) {
			t.Errorf("case %d: %v, want %v", i, err, c.want)
		}
	}
	bad := append([]Segment(nil), segs...)
	bad[1].Source = &failingSource{Source: bad[1].Source, at: 2}
	for _, meth := range []Method{Naive, CacheBlend, CacheCraft} {
		if _, err := b.Prefill(ctx, &Request{Method: meth, Ratio: 0.1, Segments: bad, Query: query}); !errors.Is(err, errBroken) {
			t.Errorf("%s with a failing source: %v", meth, err)
		}
	}
	// Empty query: the last prompt token becomes the query; the logits match the full
	// prefill's after that token.
	full, err := b.Prefill(ctx, &Request{Method: Full, Segments: segs})
	if err != nil {
		t.Fatal(err)
	}
	if len(full.Query) != 1 || full.Query[0] != segs[2].Tokens[len(segs[2].Tokens)-1] {
		t.Fatalf("query %v", full.Query)
	}
	prompt := toks[:len(toks)-len(query)]
	_, ref, err := m.Prefill(ctx, prompt, 0, 0, model.ExtendOptions{Logits: []int{len(prompt) - 1}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(full.Logits, ref.Logits); d != 0 {
		t.Fatalf("empty query: logits differ from the prefill by %g", d)
	}
	for _, meth := range []Method{Naive, CacheBlend, CacheCraft, Prefix} {
		if _, err := b.Prefill(ctx, &Request{Method: meth, Ratio: 0.15, Segments: segs}); err != nil {
			t.Errorf("%s with an empty query: %v", meth, err)
		}
	}
}
