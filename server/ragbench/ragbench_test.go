package ragbench

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model"
)

func storiesModel(t *testing.T) *model.Model {
	d := shared.Path(t)
	m, err := model.Open(filepath.Join(d, "models/stories260K/stories260K.bin"),
		model.Options{Tokenizer: filepath.Join(d, "models/stories260K/tok512.bin"), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestRunMusique: a short MuSiQue stream on stories260K after a collection precompute:
// every method but full reads every passage from the memory tier, full reads none,
// cacheblend recomputes about its ratio, the reference agrees with itself exactly,
// and the windows cover the stream.
func TestRunMusique(t *testing.T) {
	m := storiesModel(t)
	rep, err := Run(context.Background(), m, "stories260K", Options{Stream: "musique", DataDir: shared.Path(t), Queries: 12, Docs: 4,
		K: 2, ChunkWords: 30, Window: 4, Methods: []blend.Method{blend.CacheBlend}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Queries != 12 || rep.DistinctQueries != 4 || rep.CollectionPassages < 20 || strings.Join(rep.Methods, ",") != "full,cacheblend" {
		t.Fatalf("report %+v", rep)
	}
	if h := rep.HitRatioWindows["cacheblend"]; h.First["memory"] != 1 || h.Last["memory"] != 1 {
		t.Fatalf("cacheblend hit ratios %+v", h)
	}
	if h := rep.HitRatioWindows["full"]; h.Middle["none"] != 1 {
		t.Fatalf("full hit ratios %+v", h)
	}
	if f := rep.RecomputeFrac["cacheblend"]; math.Abs(f-0.15) > 0.03 {
		t.Fatalf("cacheblend recompute fraction %g", f)
	}
	if f := rep.Fidelity["full"]; f.KLMean != 0 || f.Top1 != 1 || rep.SpeedupP50["full"] != 1 {
		t.Fatalf("full against itself: %+v, speedup %g", f, rep.SpeedupP50["full"])
	}
	if f := rep.Fidelity["cacheblend"]; !(f.KLMean > 0) || f.Top1 < 0.5 {
		t.Fatalf("cacheblend fidelity %+v", f)
	}
	for _, k := range []string{"full", "cacheblend"} {
		if !(rep.TTFTMsP50[k] > 0) || rep.TTFTMsP99[k] < rep.TTFTMsP50[k] || !(rep.SpeedupWindows[k].Last > 0) {
			t.Fatalf("%s: p50 %g p99 %g windows %+v", k, rep.TTFTMsP50[k], rep.TTFTMsP99[k], rep.SpeedupWindows[k])
		}
	}
}

// TestRunQ4Format: --kv-dtype q4 --kv-prerope stores the collection in q4 (about a
// third of f16's 640 bytes per token on stories260K) and still serves every passage
// from memory.
func TestRunQ4Format(t *testing.T) {
	if testing.Short() {
		t.Skip("a second in-process bench run (~35 s on a loaded 2-core machine)")
	}
	m := storiesModel(t)
	f, err := chunkcache.ParseFormat("q4")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), m, "stories260K", Options{Stream: "musique", DataDir: shared.Path(t), Queries: 4, Docs: 2,
		K: 2, ChunkWords: 30, Window: 2, Methods: []blend.Method{blend.CacheBlend}, Format: f, PreRoPE: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.KVFormat != "q4:group=32" || !rep.KVPreRoPE || rep.TierStats == nil {
		t.Fatalf("format %q pre-RoPE %v, tier stats %+v", rep.KVFormat, rep.KVPreRoPE, rep.TierStats)
	}
	if bpt := rep.TierStats.BytesPerToken; !(bpt > 150 && bpt < 400) || rep.TierStats.ChunkTokens == 0 {
		t.Fatalf("tier holds %d tokens at %.1f bytes/token (q4 ≈ 203 + manifest)", rep.TierStats.ChunkTokens, bpt)
	}
	if h := rep.HitRatioWindows["cacheblend"]; h.Last["memory"] != 1 {
		t.Fatalf("cacheblend hit ratios %+v", h)
	}
	// The working set: the distinct passages of 4 queries × k=2, in f16 (640 B/token on
	// stories260K) and in q4 (203 B/token: the layout's, without manifests).
	ws := rep.WorkingSet
	if ws == nil || ws.Chunks < 2 || ws.Chunks > 8 || ws.Tokens < int64(ws.Chunks) || ws.Format != "q4:group=32" ||
		ws.BytesF16 != ws.Tokens*640 || !(ws.BytesFormat > ws.Tokens*150 && ws.BytesFormat < ws.Tokens*260) {
		t.Fatalf("working set %+v", ws)
	}
	if f := rep.Fidelity["cacheblend"]; !(f.KLMean > 0) || f.Top1 < 0.5 {
		t.Fatalf("cacheblend fidelity %+v", f)
	}
}

// TestSciFactStream: the stream has the novel share asked for, repeats recur, and
// popularity is skewed (the most frequent text is sent far more than the median one).
func TestSciFactStream(t *testing.T) {
	o := Options{Stream: "scifact", DataDir: shared.Path(t), Queries: 2000, Docs: 300, Seed: 3}
	o.EnsureDefaults()
	docs, qs, err := loadSciFact(&o)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 300 || len(qs) != 2000 {
		t.Fatalf("%d docs, %d queries", len(docs), len(qs))
	}
	count := map[string]int{}
	for _, q := range qs {
		count[q]++
	}
	novel := float64(len(count)) / float64(len(qs))
	if novel < 0.45 || novel > 0.55 {
		t.Fatalf("novel share %.3f, want about 0.5", novel)
	}
	top := 0
	for _, c := range count {
		top = max(top, c)
	}
	if top < 20 {
		t.Fatalf("most frequent query sent %d times: no popularity skew", top)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{{Stream: "nope"}, {Stream: "musique", Tier: "tape"}, {Stream: "musique", K: 65}, {Stream: "musique", Ratio: 2},
		{Stream: "scifact", ZipfS: 0.5}, {Stream: "musique", Methods: []blend.Method{"psychic"}}} {
		o.EnsureDefaults()
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// TestRunAgainstServer: with Addr the stream runs against a running server; a second
// run finds the collection ingested and precomputed (nothing recomputed: every passage
// from the memory tier from the first query on).
func TestRunAgainstServer(t *testing.T) {
	m := storiesModel(t)
	o := Options{Stream: "musique", Tier: "memory"}
	o.EnsureDefaults()
	srv, err := startServer(context.Background(), m, t.TempDir(), &o)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	for run := 0; run < 2; run++ {
		rep, err := Run(context.Background(), nil, srv.addr, Options{Stream: "musique", DataDir: shared.Path(t), Addr: srv.addr, Queries: 6, Docs: 3,
			K: 2, ChunkWords: 30, Window: 2, Methods: []blend.Method{blend.CacheBlend}})
		if err != nil {
			t.Fatal(err)
		}
		if h := rep.HitRatioWindows["cacheblend"].First; h["memory"] != 1 || rep.CollectionPassages < 10 {
			t.Fatalf("run %d: first window hits %v, %d passages", run, h, rep.CollectionPassages)
		}
	}
	if _, err := Run(context.Background(), nil, "", Options{Stream: "musique", DataDir: shared.Path(t), Addr: "127.0.0.1:1", Queries: 1, Docs: 1, K: 1}); err == nil {
		t.Fatal("no server: no error")
	}
}

// TestRunMusiqueDecode: with DecodeTokens every request is a Generate whose tokens are
// counted; concurrent clients on the batched engine and on the serial one both report
// decode rates, and the same first-token fidelity (greedy, same prompts).
func TestRunMusiqueDecode(t *testing.T) {
	m := storiesModel(t)
	for _, serial := range []bool{false, true} {
		rep, err := Run(context.Background(), m, "stories260K", Options{Stream: "musique", DataDir: shared.Path(t), Queries: 6, Docs: 2,
			K: 2, ChunkWords: 30, Window: 2, Clients: 3, DecodeTokens: 5, NoPrecompute: true, Warmup: 2, EngineSerial: serial, Methods: []blend.Method{blend.CacheBlend}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.DecodeTokens != 5 || rep.EngineSerial != serial || rep.Warmup != 2 || !(rep.DecodeTokensPerSTotal > 0) {
			t.Fatalf("serial %v: report %+v", serial, rep)
		}
		for _, k := range []string{"full", "cacheblend"} {
			if !(rep.DecodeTokensPerS[k] > 0) || !(rep.TTFTMsP50[k] > 0) {
				t.Fatalf("serial %v, %s: decode %g tokens/s, ttft p50 %g", serial, k, rep.DecodeTokensPerS[k], rep.TTFTMsP50[k])
			}
		}
		if f := rep.Fidelity["full"]; f.KLMean != 0 || f.Top1 != 1 {
			t.Fatalf("serial %v: full against itself %+v", serial, f)
		}
		// Both distinct queries ran in the warmup: every cacheblend passage is cached.
		if h := rep.HitRatioWindows["cacheblend"]; h.First["memory"] != 1 {
			t.Fatalf("serial %v: cacheblend hit ratios after the warmup %+v", serial, h)
		}
	}
}

// TestRunNoReference: with NoReference only the given method runs (the same-method form
// of a concurrency run): no full samples, no speedup or fidelity figures, but TTFTs, hit
// ratios and the stream's throughput.
func TestRunNoReference(t *testing.T) {
	m := storiesModel(t)
	rep, err := Run(context.Background(), m, "stories260K", Options{Stream: "musique", DataDir: shared.Path(t), Queries: 6, Docs: 2,
		K: 2, ChunkWords: 30, Window: 2, Clients: 3, NoPrecompute: true, Warmup: 2, NoReference: true, EngineDecodeShare: 0.25,
		Methods: []blend.Method{blend.CacheBlend}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rep.Methods, ",") != "cacheblend" || !rep.NoReference || rep.SpeedupP50 != nil || rep.Fidelity != nil || rep.SpeedupWindows != nil {
		t.Fatalf("report %+v", rep)
	}
	if _, ok := rep.TTFTMsP50["full"]; ok || !(rep.TTFTMsP50["cacheblend"] > 0) || !(rep.PromptTokensPerSTotal > 0) || !(rep.PromptTokensMean > 0) ||
		!(rep.CPUSeconds > 0) || !(rep.PromptTokensPerCPUS > 0) {
		t.Fatalf("ttft %v, throughput %g, prompt %g, cpu %gs, %g tokens/cpu s", rep.TTFTMsP50, rep.PromptTokensPerSTotal, rep.PromptTokensMean, rep.CPUSeconds, rep.PromptTokensPerCPUS)
	}
	// Both distinct queries ran in the warmup: every passage is cached.
	if h := rep.HitRatioWindows["cacheblend"]; h.First["memory"] != 1 {
		t.Fatalf("hit ratios %+v", h)
	}
	o := Options{Stream: "musique", EngineDecodeShare: 1}
	o.EnsureDefaults()
	if err := o.Validate(); err == nil {
		t.Fatal("decode share 1: no error")
	}
}
