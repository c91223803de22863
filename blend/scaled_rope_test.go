package blend

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model"
)

// openTinyLlama3 opens the llama.cpp oracle model with Llama 3.1 RoPE frequency scaling
// (θ 500000, rope_freqs.weight; $RAGKV_SHARED/models/oracle).
func openTinyLlama3(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.Open(filepath.Join(shared.Path(t, "models", "oracle"), "tiny-llama3-f32.gguf"), model.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.Config.RopeScaling == nil {
		t.Fatal("tiny-llama3 loaded without RoPE scaling")
	}
	return m
}

// TestScaledRoPEFusion: on a model with Llama 3.1 scaled RoPE, chunks prefilled alone at
// position 0 and placed at shifted positions (re-rotated by the loader with RotateK):
// CacheBlend and Cache-Craft at ratio 1 give the full prefill's KV and logits bit for bit,
// and naive fusion's layer-0 K of the chunks (re-rotated, never recomputed) equals the full
// prefill's within float rounding; without the scaled frequencies in the re-rotation it
// would not (model's TestRotateKScaledRoPE).
func TestScaledRoPEFusion(t *testing.T) {
	m := openTinyLlama3(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 1))
	toks := []int{1}
	for len(toks) < 220 {
		toks = append(toks, 3+rng.IntN(m.Config.Vocab-3))
	}
	prompt, query := toks[:180], toks[180:]
	segs := chunked(t, m, prompt, 3)
	b, err := New(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	full, err := b.Prefill(ctx, &Request{Method: Full, Segments: segs, Query: query, AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, meth := range []Method{CacheBlend, CacheCraft} {
		got, err := b.Prefill(ctx, &Request{Method: meth, Ratio: 1, Segments: segs, Query: query, AllLogits: true})
		if err != nil {
			t.Fatal(err)
		}
		kvEqual(t, string(meth)+" (scaled RoPE)", got.KV, full.KV)
		if d := maxAbsDiff(got.Logits, full.Logits); d != 0 {
			t.Fatalf("%s at r=1 (scaled RoPE): logits differ by %g", meth, d)
		}
	}
	naive, err := b.Prefill(ctx, &Request{Method: Naive, Segments: segs, Query: query, AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	kd := full.KV.KVDim
	n := len(prompt) * kd
	scale := maxAbsDiff(full.KV.K[0][:n], make([]float32, n))
	d := maxAbsDiff(naive.KV.K[0][:n], full.KV.K[0][:n])
	t.Logf("re-rotated layer-0 K vs full prefill: max diff %.2g (max |K| %.2g)", d, scale)
	if d > 1e-5*scale {
		t.Fatalf("re-rotated layer-0 K differs from the full prefill's by %g", d)
	}
	// The later chunks did move: their stored K (position 0) differs from their place here.
	start := len(segs[0].Tokens) * kd
	stored := segs[1].Source.(*KVSource).KV
	if maxAbsDiff(stored.K[0][:len(segs[1].Tokens)*kd], full.KV.K[0][start:start+len(segs[1].Tokens)*kd]) < 1e-2*scale {
		t.Fatal("the second chunk's stored K equals its shifted K: no re-rotation exercised")
	}
}
