package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/blend/blendbench"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/model"
)

// bench prefill: time to first token of full prefill, CacheBlend and Cache-Craft from
// chunks stored in one chunk-cache tier (package blendbench).
func init() {
	var (
		modelPath, tokPath, tier, dir, dtype, deviation string
		kvDType                                         string
		o                                               blendbench.Options
		threads                                         int
		gradual                                         float64
		noPipeline, asJSON, noFull                      bool
		compare                                         []string
	)
	cmd := &cobra.Command{
		Use:   "prefill",
		Short: "Time to first token of full prefill vs CacheBlend and Cache-Craft over chunks stored in the memory or disk tier",
		Long: `Precomputes --chunks random chunks of --chunk-tokens tokens into a chunk cache with a
single tier (memory: host RAM; disk: Badger in --dir or a temporary directory), then
times, in the same process and round, the full prefill of chunks + --query-tokens query
tokens and the fused prefills (chunks opened and loaded from the tier on the loader
goroutine while recomputing) up to the first token. bound_* is the full prefill's FLOPs
over the FLOPs the method computed. Use a model whose context holds the prompt, e.g.
ragkv model synth --shape smollm-135m --dtype f32 --ctx 4096 --out smol.gguf.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" {
				return flagErr("model", "a model file is required")
			}
			if _, err := os.Stat(modelPath); err != nil {
				return flagErr("model", "%v", err)
			}
			if tokPath != "" {
				if _, err := os.Stat(tokPath); err != nil {
					return flagErr("tokenizer", "%v", err)
				}
			}
			dt, err := chunkcache.ParseDType(dtype)
			if err != nil {
				return flagErr("dtype", "%v", err)
			}
			if kvDType != "" {
				if cmd.Flags().Changed("dtype") {
					return flagErr("kv-dtype", "give --kv-dtype or --dtype, not both")
				}
				if o.Format, err = chunkcache.ParseFormat(kvDType); err != nil {
					return flagErr("kv-dtype", "%v", err)
				}
				dt = o.Format.DType
			}
			if tier != "memory" && tier != "disk" {
				return flagErr("tier", "want memory or disk, got %q", tier)
			}
			if o.Ratio <= 0 || o.Ratio > 1 {
				return flagErr("ratio", "want 0 < r ≤ 1, got %g", o.Ratio)
			}
			for name, v := range map[string]int{"chunks": o.Chunks, "chunk-tokens": o.ChunkTokens, "query-tokens": o.QueryTokens, "iters": o.Iters} {
				if v < 1 {
					return flagErr(name, "must be ≥ 1, got %d", v)
				}
			}
			if threads < 0 {
				return flagErr("threads", "must be ≥ 0, got %d", threads)
			}
			o.Tier, o.Dir, o.DType = tier, dir, dt
			if o.Blend, err = blendFlags(deviation, gradual); err != nil {
				return err
			}
			o.Blend.NoPipeline = noPipeline
			m, err := model.Open(modelPath, model.Options{Tokenizer: tokPath, Threads: threads})
			if err != nil {
				return err
			}
			defer m.Close()
			if err := o.Validate(&m.Config); err != nil {
				return flagErr("chunks", "%v", err)
			}
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
			if len(compare) > 0 {
				if cmd.Flags().Changed("kv-dtype") || cmd.Flags().Changed("dtype") {
					return flagErr("compare", "give the formats to --compare, not --dtype or --kv-dtype")
				}
				if dir != "" {
					return flagErr("dir", "--compare uses one temporary directory per format")
				}
				for _, f := range compare {
					if _, err := chunkcache.ParseFormat(f); err != nil {
						return flagErr("compare", "%v", err)
					}
				}
				crep, err := blendbench.Compare(cmd.Context(), m, o, compare, noFull)
				if err != nil {
					return err
				}
				crep.Print(cmd.OutOrStdout())
				if asJSON {
					return cliutil.PrintJSON(cmd.OutOrStdout(), crep)
				}
				return nil
			}
			if noFull {
				return flagErr("no-full", "only with --compare")
			}
			rep, err := blendbench.Run(cmd.Context(), m, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s (%d threads), %d×%d chunk tokens + %d query tokens, tier %s (%s), ratio %g, best of %d\n",
				rep.Model, rep.Threads, rep.Chunks, rep.ChunkTokens, rep.QueryTokens, rep.Tier, rep.DType, rep.Ratio, rep.Iters)
			for _, name := range []string{"full", "cacheblend", "cachecraft"} {
				r := rep.Methods[name]
				s := r.Stats
				fmt.Fprintf(out, "%-10s ttft %8.3fs  speedup %5.2fx  bound %5.2fx (%3.0f%%)  recompute %.3f  load %.3fs rotate %.3fs wait %.3fs compute %.3fs select %.3fs hidden %.2f\n",
					name, r.TTFT, r.Speedup, r.Bound, 100*r.FracOfBound, r.RecomputeFrac, s.Load.Seconds(), s.Rotate.Seconds(),
					s.Wait.Seconds(), s.Compute.Seconds(), s.Select.Seconds(), s.LoadHiddenFrac)
			}
			if asJSON {
				return cliutil.PrintJSON(out, rep)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "model file")
	f.StringVar(&tokPath, "tokenizer", "", "tokenizer file (default: the model's own)")
	f.IntVar(&o.Chunks, "chunks", 6, "chunks in the prompt")
	f.IntVar(&o.ChunkTokens, "chunk-tokens", 512, "tokens per chunk")
	f.IntVar(&o.QueryTokens, "query-tokens", 32, "query tokens")
	f.Float64Var(&o.Ratio, "ratio", 0.15, "recompute ratio of CacheBlend and Cache-Craft")
	f.StringVar(&tier, "tier", "memory", "chunk-cache tier holding the chunks: memory or disk")
	f.StringVar(&dir, "dir", "", "Badger directory of the disk tier (default: a temporary directory)")
	f.StringVar(&dtype, "dtype", "f16", "stored KV dtype: f32, f16, bf16, int8, q4, q2 or mixed")
	f.StringVar(&kvDType, "kv-dtype", "", "stored KV format with options (overrides --dtype): q4, q2r, q4:group=64, mixed:bits=2.5, ...")
	f.BoolVar(&o.PreRoPE, "kv-prerope", false, "store K without its rotary embedding (the loader rotates it to its position)")
	f.IntVar(&o.Iters, "iters", 1, "timed rounds (the best of each method is reported)")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the random tokens")
	f.IntVar(&threads, "threads", 0, "kernel threads (0: all cores)")
	f.StringVar(&deviation, "deviation", blend.DefaultDeviation, "CacheBlend token score: k, v, kv or random")
	f.Float64Var(&gradual, "gradual", 0, "CacheBlend gradual filtering factor (0: default; 1: off)")
	f.BoolVar(&noPipeline, "no-pipeline", false, "load every layer before computing (to measure the overlap)")
	f.StringArrayVar(&compare, "compare", nil, "store the chunks in each of these formats (repeat the flag: --compare f16 --compare q4) and time them side by side in alternating rounds (--iters rounds)")
	f.BoolVar(&noFull, "no-full", false, "with --compare: time only the fused prefills (no full prefill per round)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last line")
	benchCmd.AddCommand(cmd)
}
