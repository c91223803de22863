package blend

import (
	"context"
	"os"
	"testing"

	"github.com/ragkv/ragkv/model"
)

// BenchmarkEnginePrefill is one client's Prefill through the Engine, per method, over 5
// cached chunks of 240 tokens and a 20-token query (1,221 tokens with BOS: the bench rag
// MuSiQue prompt), for CPU profiles of one prefill ($RAGKV_BENCH_MODEL, default
// stories260K with chunks cut to fit its context).
func BenchmarkEnginePrefill(b *testing.B) {
	var m *model.Model
	if p := os.Getenv("RAGKV_BENCH_MODEL"); p != "" {
		var err error
		if m, err = model.Open(p, model.Options{}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close() })
	} else {
		m = openStories(b)
	}
	chunkTok := min(240, (m.Config.Ctx-40)/5)
	var chunks []ChunkRef
	for c := range 5 {
		toks := make([]int, chunkTok)
		for i := range toks {
			toks[i] = 3 + (i*7919+c*104729)%(m.Config.Vocab-3)
		}
		chunks = append(chunks, ChunkRef{Tokens: toks})
	}
	query := make([]int, 20)
	for i := range query {
		query[i] = 3 + (i*31+7)%(m.Config.Vocab-3)
	}
	e := benchEngine(b, m, EngineOptions{})
	ctx := context.Background()
	if _, err := e.Prefill(ctx, &PrefillInput{Chunks: chunks, QueryTokens: query, Method: CacheBlend}); err != nil {
		b.Fatal(err)
	}
	for _, meth := range []Method{Full, CacheBlend} {
		b.Run(string(meth), func(b *testing.B) {
			for b.Loop() {
				if _, err := e.Prefill(ctx, &PrefillInput{Chunks: chunks, QueryTokens: query, Method: meth}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
