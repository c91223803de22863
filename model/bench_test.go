package model

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
)

// BenchmarkPrefill prefills 512 tokens of the model in $RAGKV_BENCH_MODEL (e.g. a
// `ragkv model synth --shape smollm-135m` file), or of stories260K.
func BenchmarkPrefill(b *testing.B) {
	m := openBenchModel(b)
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

// BenchmarkDecode decodes one token after a 256-token prompt ($RAGKV_BENCH_MODEL or
// stories260K).
func BenchmarkDecode(b *testing.B) {
	m := openBenchModel(b)
	n := min(256, m.Config.Ctx/2)
	toks := make([]int, n)
	for i := range toks {
		toks[i] = (i*7919 + 13) % m.Config.Vocab
	}
	ctx := context.Background()
	kv, _, err := m.Prefill(ctx, toks, 0, 0, ExtendOptions{})
	if err != nil {
		b.Fatal(err)
	}
	st := m.NewState(kv, b.N+1)
	tok := 5
	b.ReportAllocs()
	for b.Loop() {
		l, err := st.Feed(ctx, tok)
		if err != nil {
			b.Fatal(err)
		}
		tok = Argmax(l)
	}
}

// BenchmarkPrefillWindow prefills $RAGKV_BENCH_TOKENS (default 4096) tokens of the model in
// $RAGKV_BENCH_MODEL (default: a 2-layer smollm2-135m synth) with full causal attention and
// with a sliding window of 512 on every layer, side by side: the window trims each query
// block's keys to those inside it (attnItem's [tStart, tEnd)).
func BenchmarkPrefillWindow(b *testing.B) {
	var m *Model
	var err error
	if p := os.Getenv("RAGKV_BENCH_MODEL"); p != "" {
		m, err = Open(p, Options{})
	} else {
		p, _ := synthFileOpts(b, SynthOptions{Shape: "smollm2-135m", DType: kernels.Q8_0, Seed: 1, Layers: 2})
		m, err = Open(p, Options{})
	}
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	n := 4096
	if v, err := strconv.Atoi(os.Getenv("RAGKV_BENCH_TOKENS")); err == nil && v > 0 {
		n = v
	}
	toks := make([]int, n)
	for i := range toks {
		toks[i] = (i*7919 + 13) % m.Config.Vocab
	}
	for _, w := range []int{0, 512} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			m.Config.SlidingWindow, m.Config.SWAPattern = w, 0
			for b.Loop() {
				if _, _, err := m.Prefill(context.Background(), toks, 0, 0, ExtendOptions{Logits: []int{n - 1}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// openBenchModel opens the model in $RAGKV_BENCH_MODEL (e.g. a `ragkv model synth --shape
// smollm-135m` file), or stories260K, for a benchmark; it is closed at the end of b.
func openBenchModel(b *testing.B) *Model {
	b.Helper()
	p := os.Getenv("RAGKV_BENCH_MODEL")
	if p == "" {
		return openStories(b, "stories260K-f32.gguf")
	}
	m, err := Open(p, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}
