package blend

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/store"
)

// BenchmarkEngineConcurrent runs C clients against one Engine in process (no gRPC, no
// retrieval: the engine's scheduling alone), each sending requests in turn — a full
// prefill, then a CacheBlend one, over the same cached chunks — each a Generate of
// $RAGKV_BENCH_DECODE (default 16) greedy tokens, on the old serial scheduling and on
// the batched one, side by side. It reports the time to first token (to the prefill
// event) p50/p99 per method, the decode tokens/s of all clients together and the
// process's CPU seconds per run (on a loaded machine the honest measure of cost).
// $RAGKV_BENCH_MODEL picks the model (default stories260K; 4 chunks of 96 tokens, or of
// 128 with a longer context); $RAGKV_BENCH_ROUNDS the requests per client and method
// (default 4); $RAGKV_BENCH_DECODE_SHARE the engine's DecodeShare (default its own).
func BenchmarkEngineConcurrent(b *testing.B) {
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
	decode := envInt(b, "RAGKV_BENCH_DECODE", 16)
	share := 0.0 // the engine's default
	if v := os.Getenv("RAGKV_BENCH_DECODE_SHARE"); v != "" {
		var err error
		if share, err = strconv.ParseFloat(v, 64); err != nil || !(share > 0 && share < 1) {
			b.Fatalf("RAGKV_BENCH_DECODE_SHARE=%q: want 0 < share < 1", v)
		}
	}
	rounds := envInt(b, "RAGKV_BENCH_ROUNDS", 4)
	chunkTok := 96
	if m.Config.Ctx >= 2048 {
		chunkTok = 128
	}
	var chunks []ChunkRef
	for c := range 4 {
		toks := make([]int, chunkTok)
		for i := range toks {
			toks[i] = 3 + (i*7919+c*104729)%(m.Config.Vocab-3)
		}
		chunks = append(chunks, ChunkRef{Tokens: toks})
	}
	for _, clients := range []int{1, 4, 16} {
		for _, serial := range []bool{true, false} {
			name := fmt.Sprintf("clients=%d/serial=%v", clients, serial)
			b.Run(name, func(b *testing.B) {
				e := benchEngine(b, m, EngineOptions{Serial: serial, DecodeShare: share})
				ctx := context.Background()
				req := func(c, r int, meth Method) *GenerateInput {
					q := fmt.Sprintf("Question %d of client %d?", r, c)
					return &GenerateInput{Prefill: &PrefillInput{Chunks: chunks, Query: q, Method: meth}, MaxTokens: decode, IgnoreEOS: true}
				}
				if _, err := e.Prefill(ctx, &PrefillInput{Chunks: chunks, Query: "warm", Method: CacheBlend}); err != nil {
					b.Fatal(err)
				}
				var mu sync.Mutex
				ttft := map[Method][]float64{}
				tokens := 0
				var wall time.Duration
				cpu0 := cpuTime()
				for b.Loop() {
					t0 := time.Now()
					var wg sync.WaitGroup
					for c := range clients {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for r := range rounds {
								for _, meth := range []Method{Full, CacheBlend} {
									t1 := time.Now()
									n := 0
									var first time.Duration
									err := e.Generate(ctx, req(c, r, meth), func(ev GenerateEvent) error {
										if ev.Prefill != nil {
											first = time.Since(t1)
										} else if ev.Done == nil {
											n++
										}
										return nil
									})
									if err != nil {
										b.Error(err)
										return
									}
									mu.Lock()
									ttft[meth] = append(ttft[meth], first.Seconds()*1000)
									tokens += n
									mu.Unlock()
								}
							}
						}()
					}
					wg.Wait()
					wall += time.Since(t0)
				}
				for _, meth := range []Method{Full, CacheBlend} {
					l := ttft[meth]
					sort.Float64s(l)
					b.ReportMetric(l[len(l)/2], string(meth)+"_ttft_p50_ms")
					b.ReportMetric(l[min(len(l)-1, (len(l)*99+99)/100-1)], string(meth)+"_ttft_p99_ms")
				}
				b.ReportMetric(float64(tokens)/wall.Seconds(), "decode_tok/s")
				// The process's CPU time: on a shared machine, wall times follow how much of
				// the CPU the process was given; CPU time is what the work cost.
				b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu_s/op")
			})
		}
	}
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

func benchEngine(b *testing.B, m *model.Model, o EngineOptions) *Engine {
	cache, err := chunkcache.New(context.Background(), chunkcache.Options{
		Tiers:  []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 1 << 30}}},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cache.Close() })
	st, err := NewStore(m, cache, StoreOptions{})
	if err != nil {
		b.Fatal(err)
	}
	o.Logger = slog.New(slog.DiscardHandler)
	e, err := NewEngine(st, o)
	if err != nil {
		b.Fatal(err)
	}
	return e
}
