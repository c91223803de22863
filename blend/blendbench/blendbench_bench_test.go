package blendbench

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/model"
)

// benchModel opens $RAGKV_BENCH_MODEL (e.g. `ragkv model synth --shape smollm-135m
// --dtype f32 --ctx 4096`, with chunks 6×512) or stories260K (chunks 3×128).
func benchModel(b *testing.B) (*model.Model, Options) {
	if p := os.Getenv("RAGKV_BENCH_MODEL"); p != "" {
		m, err := model.Open(p, model.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return m, Options{}
	}
	d := shared.Path(b)
	m, err := model.Open(filepath.Join(d, "models/stories260K/stories260K.bin"),
		model.Options{Tokenizer: filepath.Join(d, "models/stories260K/tok512.bin")})
	if err != nil {
		b.Skip("shared data: RAGKV_SHARED not found")
	}
	return m, Options{Chunks: 3, ChunkTokens: 128}
}

// BenchmarkPrefill times the first token of each method from chunks in the memory
// and the disk tier, and reports the analytic bound (full FLOPs ÷ FLOPs computed).
// Compare the ns/op of full with the fused methods' (speedup) against their bound.
func BenchmarkPrefill(b *testing.B) {
	m, o := benchModel(b)
	defer m.Close()
	ctx := context.Background()
	for _, tier := range []string{"memory", "disk"} {
		o := o
		o.Tier = tier
		bn, err := Setup(ctx, m, o)
		if err != nil {
			b.Fatal(err)
		}
		for _, meth := range []blend.Method{blend.Full, blend.CacheBlend, blend.CacheCraft} {
			b.Run(tier+"/"+string(meth), func(b *testing.B) {
				var st blend.Stats
				for b.Loop() {
					res, _, err := bn.Prefill(ctx, meth)
					if err != nil {
						b.Fatal(err)
					}
					st = res.Stats
				}
				b.ReportMetric(st.FullFLOPs/st.FLOPs, "bound")
				b.ReportMetric(st.LoadHiddenFrac, "load-hidden")
			})
		}
		bn.Close()
	}
}
