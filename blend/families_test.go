package blend

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
)

// openSynth writes a tiny synth model (model.Shapes) to a temporary file and opens it.
func openSynth(t testing.TB, shape string) *model.Model {
	t.Helper()
	p := filepath.Join(t.TempDir(), shape+".gguf")
	fd, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.SynthGGUF(context.Background(), fd, model.SynthOptions{Shape: shape, DType: kernels.F32, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	if err := fd.Close(); err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(p, model.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestFamiliesRatioOne: on every tiny model family (SmolLM2, Qwen3 with Q/K norms,
// Mistral with a 16-token window on every layer, Gemma 2 with soft-caps and a window on
// even layers, Gemma 3 with windowed layers at RoPE base 10000 and global ones at 1e6),
// chunks prefilled alone at position 0 and fused at shifted positions: CacheBlend and
// Cache-Craft at ratio 1 give the full prefill's KV and logits bit for bit (the
// recompute attends through the same window mask and per-layer RoPE as the prefill),
// naive fusion's re-rotated layer-0 K equals the full prefill's within float rounding
// (the loader rotates each layer with its own frequencies), and a windowed model's
// fused prefill counts fewer attention FLOPs than a full-attention one would.
func TestFamiliesRatioOne(t *testing.T) {
	ctx := context.Background()
	for _, shape := range []string{"tiny-llama3", "tiny-qwen2", "tiny-smollm2", "tiny-qwen3", "tiny-mistral", "tiny-gemma2", "tiny-gemma3", "tiny-gemma3-linear"} {
		t.Run(shape, func(t *testing.T) {
			m := openSynth(t, shape)
			rng := rand.New(rand.NewPCG(5, 9))
			toks := make([]int, 100)
			for i := range toks {
				toks[i] = rng.IntN(m.Config.Vocab)
			}
			prompt, query := toks[:80], toks[80:]
			segs := chunked(t, m, prompt, 3)
			b, err := New(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			full, err := b.Prefill(ctx, &Request{Method: Full, Segments: segs, Query: query, AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			// The reference itself: Full equals model.Prefill.
			_, ref, err := m.Prefill(ctx, toks, 0, 0, model.ExtendOptions{Logits: rangeRows(80, 100)})
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(full.Logits, ref.Logits); d != 0 {
				t.Fatalf("full differs from model.Prefill by %g", d)
			}
			for _, meth := range []Method{CacheBlend, CacheCraft} {
				got, err := b.Prefill(ctx, &Request{Method: meth, Ratio: 1, Segments: segs, Query: query, AllLogits: true})
				if err != nil {
					t.Fatal(err)
				}
				kvEqual(t, shape+" "+string(meth), got.KV, full.KV)
				if d := maxAbsDiff(got.Logits, full.Logits); d != 0 {
					t.Fatalf("%s %s at r=1: logits differ by %g", shape, meth, d)
				}
			}
			naive, err := b.Prefill(ctx, &Request{Method: Naive, Segments: segs, Query: query, AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			kd := full.KV.KVDim
			n := len(prompt) * kd
			scale := maxAbsDiff(full.KV.K[0][:n], make([]float32, n))
			if d := maxAbsDiff(naive.KV.K[0][:n], full.KV.K[0][:n]); d > 1e-5*scale {
				t.Fatalf("%s: re-rotated layer-0 K differs from the full prefill's by %g (max |K| %g)", shape, d, scale)
			}
			if m.Config.SlidingWindow > 0 {
				c := m.Config
				c.SlidingWindow = 0
				_, attnFull := layerFLOPs(&c, rangeRows(0, 100))
				var attnWin float64
				for l := 0; l < m.Config.Layers; l++ {
					_, a := layerFLOPsWindow(&m.Config, rangeRows(0, 100), m.Config.Window(l))
					attnWin += a
				}
				if !(attnWin < float64(m.Config.Layers)*attnFull) {
					t.Fatalf("%s: windowed attention FLOPs %g not below full attention's %g", shape, attnWin, float64(m.Config.Layers)*attnFull)
				}
			}
		})
	}
}
