package model

import (
	"context"
	"os"
	"testing"
)

// BenchmarkPrefill prefills 512 tokens of the model in $RAGKV_BENCH_MODEL (e.g. a
// `ragkv model synth --shape smollm-135m` file), or of stories260K.
func BenchmarkPrefill(b *testing.B) {
	var m *Model
	if p := os.Getenv("RAGKV_BENCH_MODEL"); p != "" {
		var err error
		if m, err = Open(p, Options{}); err != nil {
			b.Fatal(err)
		}
		defer m.Close()
	} else {
		m = openStories(b, "stories260K-f32.gguf")
	}
	n := min(512, m.Config.Ctx)
	toks := make([]int, n)
	for i := range toks {
		toks[i] = (i*7919 + 13) % m.Config.Vocab
	}
	b.SetBytes(int64(n))
	for b.Loop() {
		if _, _, err := m.Prefill(context.Background(), toks, 0, 0, ExtendOptions{Logits: []int{n - 1}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(m.Config.PrefillFLOPs(0, n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
