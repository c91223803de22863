package encoder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
)

// benchTexts returns n texts of words synthetic-vocabulary words each (one token per
// word, plus [CLS] and [SEP]).
func benchTexts(n, words int) []string {
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for j := 0; j < words; j++ {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(synthWords[(i*31+j*7)%len(synthWords)])
		}
		out[i] = b.String()
	}
	return out
}

// BenchmarkEncoder: sentence embeddings per second with the bge-small-en-v1.5 shape
// (12 layers, 384 wide; random weights), 16 texts of 126 words (128 tokens) per op, for
// each weight type. RAGKV_BENCH_SHAPE picks another encoder shape; RAGKV_BENCH_TEXTS
// writes the texts (one per line) to that file, for llama-embedding side by side.
func BenchmarkEncoder(b *testing.B) {
	shape := "bge-small-en-v1.5"
	if s := os.Getenv("RAGKV_BENCH_SHAPE"); s != "" {
		shape = s
	}
	texts := benchTexts(16, 126)
	if p := os.Getenv("RAGKV_BENCH_TEXTS"); p != "" {
		if err := os.WriteFile(p, []byte(strings.Join(texts, "\n")), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	for _, dt := range []kernels.DType{kernels.F32, kernels.F16, kernels.Q8_0} {
		b.Run(dt.String(), func(b *testing.B) {
			path := filepath.Join(dir, fmt.Sprintf("%s-%s.gguf", shape, dt))
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := SynthGGUF(context.Background(), f, SynthOptions{Shape: shape, DType: dt, Seed: 1}); err != nil {
				b.Fatal(err)
			}
			f.Close()
			e, err := NewEmbedder(path, EmbedderOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			tokens := 0
			for _, t := range texts {
				tokens += len(e.Tokens(t))
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := e.Embed(context.Background(), texts); err != nil {
					b.Fatal(err)
				}
			}
			s := b.Elapsed().Seconds()
			b.ReportMetric(float64(tokens*b.N)/s, "tokens/s")
			b.ReportMetric(float64(len(texts)*b.N)/s, "texts/s")
		})
	}
}
