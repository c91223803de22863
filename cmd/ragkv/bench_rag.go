package main

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/server/ragbench"
)

// bench rag: a RAG query stream through retrieval → fused prefill, per method
// (package server/ragbench).
func init() {
	var (
		modelPath, tokPath, dataDir, methods, dtype string
		o                                           ragbench.Options
		cacheBytes                                  cacheBytes
		threads                                     int
		asJSON                                      bool
	)
	var kvDType string // --kv-dtype: a full storage format
	var kvPreRoPE bool
	cmd := &cobra.Command{
		Use:   "rag --stream musique|scifact (--model F [--tokenizer F] | --addr HOST:PORT) [--queries N] [--clients N] [--tier memory|disk] [--json]",
		Short: "Replay a RAG query stream (retrieve → fused prefill) per method: TTFT p50/p99, speedup per window, hit ratios, fidelity",
		Long: `Starts a server in process on a loopback port (chunk cache in --tier, a retrieval
collection, the inference engine), ingests the stream's collection, precomputes it
(PrecomputeCollection; --no-precompute: passages are computed on the fly), then sends
each query of the stream as a Prefill with a retrieval source (k passages, BM25) once per
method, full first. Reports TTFT p50/p99 per method, the speedup over full (p50 over the
run and per window of --window queries: first, middle, last), where the passages' KV
came from per window, the recompute fraction, and the first-token KL divergence and
top-1 agreement with full.

Streams: musique (the questions of the first --docs MuSiQue items over their distinct
passages, in order, repeated to --queries) and scifact (claims drawn by Zipf popularity
over an abstract collection of --docs documents, --novel of them novel texts).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Addr != "" {
				for _, name := range []string{"model", "tokenizer", "threads", "tier", "cache-bytes", "policy", "admission", "dtype", "engine-concurrent", "engine-serial", "engine-aging", "engine-decode-share", "engine-no-prefill-batch", "no-probation", "kv-dtype", "kv-prerope"} {
					if cmd.Flags().Changed(name) {
						return flagErr(name, "does not apply with --addr (the server's own settings apply)")
					}
				}
			} else if modelPath == "" {
				return flagErr("model", "a model file is required (or --addr of a running server)")
			} else if _, err := os.Stat(modelPath); err != nil {
				return flagErr("model", "%v", err)
			}
			if tokPath != "" {
				if _, err := os.Stat(tokPath); err != nil {
					return flagErr("tokenizer", "%v", err)
				}
			}
			if o.Stream != "musique" && o.Stream != "scifact" {
				return flagErr("stream", "want musique or scifact, got %q", o.Stream)
			}
			if o.Tier != "memory" && o.Tier != "disk" {
				return flagErr("tier", "want memory or disk, got %q", o.Tier)
			}
			for name, v := range map[string]int{"queries": o.Queries, "clients": o.Clients, "k": o.K, "docs": o.Docs, "window": o.Window} {
				if v < 0 || (v == 0 && (name == "clients" || name == "k" || name == "window")) {
					return flagErr(name, "must be ≥ 1, got %d", v)
				}
			}
			if !(o.Ratio > 0 && o.Ratio <= 1) {
				return flagErr("ratio", "want 0 < r ≤ 1, got %g", o.Ratio)
			}
			if !(o.NovelFrac >= 0 && o.NovelFrac <= 1) {
				return flagErr("novel", "want a fraction in [0, 1], got %g", o.NovelFrac)
			}
			if cmd.Flags().Changed("novel") && o.Stream != "scifact" {
				return flagErr("novel", "applies to --stream scifact only")
			}
			if !(o.EngineAging >= 0) {
				return flagErr("engine-aging", "must be ≥ 0, got %g", o.EngineAging)
			}
			if cmd.Flags().Changed("engine-decode-share") && !(o.EngineDecodeShare > 0 && o.EngineDecodeShare < 1) {
				return flagErr("engine-decode-share", "want 0 < share < 1, got %g", o.EngineDecodeShare)
			}
			if o.Warmup < 0 {
				return flagErr("warmup", "must be ≥ 0, got %d", o.Warmup)
			}
			if o.DecodeTokens < 0 {
				return flagErr("decode-tokens", "must be ≥ 0, got %d", o.DecodeTokens)
			}
			if threads < 0 {
				return flagErr("threads", "must be ≥ 0, got %d", threads)
			}
			dt, err := chunkcache.ParseDType(dtype)
			if err != nil {
				return flagErr("dtype", "%v", err)
			}
			o.DType = dt
			if kvDType != "" {
				if cmd.Flags().Changed("dtype") {
					return flagErr("kv-dtype", "give --kv-dtype or --dtype, not both")
				}
				if o.Format, err = chunkcache.ParseFormat(kvDType); err != nil {
					return flagErr("kv-dtype", "%v", err)
				}
				o.DType = o.Format.DType
			}
			o.PreRoPE = kvPreRoPE
			o.Methods = nil
			for _, s := range strings.Split(methods, ",") {
				m, err := blend.ParseMethod(strings.TrimSpace(s))
				if err != nil {
					return flagErr("methods", "%v", err)
				}
				o.Methods = append(o.Methods, m)
			}
			o.CacheBytes = int64(cacheBytes)
			if dataDir == "" {
				if dataDir, err = shared.Dir(); err != nil {
					return flagErr("data", "%v (give the shared data folder)", err)
				}
			}
			if _, err := os.Stat(dataDir); err != nil {
				return flagErr("data", "%v", err)
			}
			o.DataDir = dataDir
			if o.NovelFrac == 0 && o.Stream == "scifact" && !cmd.Flags().Changed("novel") {
				o.NovelFrac = 0.5
			}
			var m *model.Model
			name, threadsUsed := o.Addr, 0
			if o.Addr == "" {
				if m, err = model.Open(modelPath, model.Options{Tokenizer: tokPath, Threads: threads}); err != nil {
					return err
				}
				defer m.Close()
				name, threadsUsed = modelPath, m.Pool().Threads()
			}
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
			prog := cliutil.NewProgress(os.Stderr, "bench rag "+o.Stream, 0)
			o.Progress = func(done, total int) { prog.Add(1) }
			rep, err := ragbench.Run(cmd.Context(), m, name, o)
			prog.Finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %d queries (%.0f%% novel, %d distinct), %d clients, k %d, %d passages (%d docs, precomputed in %.1fs), tier %s, prompt %.0f tokens, kernel path %s\n",
				rep.Stream, rep.Queries, 100*rep.NovelFrac, rep.DistinctQueries, rep.Clients, rep.K, rep.CollectionPassages, rep.CollectionDocs,
				rep.PrecomputeSeconds, rep.Tier, rep.PromptTokensMean, cpu.Active())
			for _, name := range rep.Methods {
				sw := rep.SpeedupWindows[name]
				fd := rep.Fidelity[name]
				if rep.NoReference {
					fmt.Fprintf(out, "%-10s ttft p50 %8.1fms p99 %8.1fms  (no full reference: no speedup, no fidelity)  recompute %.3f  hits last %s\n",
						name, rep.TTFTMsP50[name], rep.TTFTMsP99[name], rep.RecomputeFrac[name], fmtHits(rep.HitRatioWindows[name].Last))
					continue
				}
				fmt.Fprintf(out, "%-10s ttft p50 %8.1fms p99 %8.1fms  speedup %5.2fx (windows %5.2f %5.2f %5.2f)  recompute %.3f  KL %.4f top-1 %.3f  hits last %s\n",
					name, rep.TTFTMsP50[name], rep.TTFTMsP99[name], rep.SpeedupP50[name], sw.First, sw.Middle, sw.Last,
					rep.RecomputeFrac[name], fd.KLMean, fd.Top1, fmtHits(rep.HitRatioWindows[name].Last))
			}
			if ws := rep.WorkingSet; ws != nil {
				fmt.Fprintf(out, "working set: %d chunks, %d tokens, %.1f MiB in f16, %.1f MiB in %s (payload; a tier adds each chunk's manifest)\n",
					ws.Chunks, ws.Tokens, float64(ws.BytesF16)/(1<<20), float64(ws.BytesFormat)/(1<<20), ws.Format)
			}
			fmt.Fprintf(out, "throughput: %.0f prompt tokens/s over the stream (all methods, %d clients); %.0f per CPU second (%.1f CPU s)\n",
				rep.PromptTokensPerSTotal, rep.Clients, rep.PromptTokensPerCPUS, rep.CPUSeconds)
			if rep.PrefillBatches > 0 {
				fmt.Fprintf(out, "prefill batching: %d layer steps in %d batches (mean %.2f)\n", rep.PrefillBatchSteps, rep.PrefillBatches,
					float64(rep.PrefillBatchSteps)/float64(rep.PrefillBatches))
			}
			if rep.DecodeTokens > 0 {
				fmt.Fprintf(out, "decode %d tokens/request: %.1f tokens/s over the stream;", rep.DecodeTokens, rep.DecodeTokensPerSTotal)
				for _, name := range rep.Methods {
					fmt.Fprintf(out, " %s %.1f/s per request", name, rep.DecodeTokensPerS[name])
				}
				fmt.Fprintln(out)
			}
			if asJSON {
				return cliutil.PrintJSON(out, struct {
					*ragbench.Report
					CPUPath string `json:"cpu_path"`
					Threads int    `json:"threads"`
				}{rep, cpu.Active().String(), threadsUsed})
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Stream, "stream", "", "query stream: musique or scifact")
	f.StringVar(&modelPath, "model", "", "model file (in-process server)")
	f.StringVar(&o.Addr, "addr", "", "replay against the ragkv server at this address instead of an in-process one")
	f.StringVar(&tokPath, "tokenizer", "", "tokenizer file (default: the model's own)")
	f.StringVar(&dataDir, "data", "", "shared data folder (default $RAGKV_SHARED or ../shared)")
	f.IntVar(&o.Queries, "queries", 0, "queries in the stream (0: 150 musique, 2000 scifact)")
	f.IntVar(&o.Clients, "clients", 1, "clients sending queries at once")
	f.StringVar(&o.Tier, "tier", "memory", "chunk-cache tier: memory or disk")
	f.Var(&cacheBytes, "cache-bytes", "capacity of the tier (default 8GiB)")
	f.StringVar(&o.Policy, "policy", "", "eviction policy of the tier (default: the chunk cache's)")
	f.StringVar(&o.Admission, "admission", "", "admission filter of the tier: none or tinylfu (default: the chunk cache's)")
	f.BoolVar(&o.NoProbation, "no-probation", false, "store chunks computed on the fly as plain puts, not on probation (the comparison for admission)")
	f.StringVar(&methods, "methods", "full,prefix,cacheblend,cachecraft", "methods (full always runs: it is the reference, unless --no-reference)")
	f.BoolVar(&o.NoReference, "no-reference", false, "run --methods only, without full as the reference (no speedup or fidelity figures): the same-method form of a --clients run")
	f.IntVar(&o.K, "k", 5, "passages retrieved per query")
	f.Float64Var(&o.Ratio, "ratio", 0.15, "recompute ratio of cacheblend and cachecraft")
	f.IntVar(&o.Docs, "docs", 0, "collection size: musique questions whose passages form it (0: 30), scifact abstracts (0: 300)")
	f.IntVar(&o.ChunkWords, "chunk-words", 128, "passage length in words")
	f.BoolVar(&o.NoPrecompute, "no-precompute", false, "do not precompute the collection (passages computed on the fly)")
	f.IntVar(&o.Warmup, "warmup", 0, "run the first N queries once before the measured stream (with --no-precompute: caches just their passages)")
	f.IntVar(&o.Window, "window", 100, "queries per window of the per-window figures")
	f.Float64Var(&o.NovelFrac, "novel", 0.5, "scifact: share of novel query texts")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the scifact stream")
	f.IntVar(&o.EngineConcurrent, "engine-concurrent", 1, "engine slots (units of work computing at once)")
	f.BoolVar(&o.EngineSerial, "engine-serial", false, "the engine's scheduling before continuous batching (a request holds a slot through its prefill and its whole decode), for comparison")
	f.Float64Var(&o.EngineAging, "engine-aging", 0, "the engine's aging weight of prefill order (0: its default, 8; larger favours short prefills)")
	f.BoolVar(&o.EngineNoPrefillBatch, "engine-no-prefill-batch", false, "do not batch concurrent prefills' layer steps (for comparison)")
	f.Float64Var(&o.EngineDecodeShare, "engine-decode-share", 0, "the engine's share of time for decode steps while prefills wait (0: its default, 0.5)")
	f.IntVar(&o.DecodeTokens, "decode-tokens", 0, "decode this many greedy tokens per request (Generate instead of Prefill; JSON decode_tokens_per_s)")
	f.StringVar(&dtype, "dtype", "f16", "stored KV dtype: f32, f16, bf16 or int8")
	f.StringVar(&kvDType, "kv-dtype", "", "stored KV format with options (overrides --dtype): q4, q2r, q4:group=64, mixed:bits=2.5, ...")
	f.BoolVar(&kvPreRoPE, "kv-prerope", false, "store K without its rotary embedding (the loader rotates it to its position)")
	f.IntVar(&threads, "threads", 0, "kernel threads (0: all cores)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last line")
	benchCmd.AddCommand(cmd)
}

func fmtHits(h map[string]float64) string {
	var ks []string
	for k := range h {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	for i, k := range ks {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%s=%.2f", k, h[k])
	}
	return b.String()
}
