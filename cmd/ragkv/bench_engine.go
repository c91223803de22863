package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/internal/kernels/cputime"
	"github.com/ragkv/ragkv/model"
)

type benchEngineResult struct {
	Model              string  `json:"model"`
	CPUPath            string  `json:"cpu_path"`
	Activations        string  `json:"activations"`
	WeightType         string  `json:"weight_type"`
	Threads            int     `json:"threads"`
	Tokens             int     `json:"tokens"`
	DecodeTokens       int     `json:"decode_tokens"`
	PrefillSeconds     float64 `json:"prefill_s"`
	PrefillTokensPerS  float64 `json:"prefill_tokens_per_s"`
	PrefillGFLOPs      float64 `json:"prefill_gflops"`
	DecodeTokensPerS   float64 `json:"decode_tokens_per_s"`
	GemmGFLOPs         float64 `json:"gemm_gflops"`
	PrefillVsGemm      float64 `json:"prefill_vs_gemm"`
	MatmulShareOfFLOPs float64 `json:"matmul_share_of_flops"`
	// Per CPU-second of the process (best repetition), where the platform reports CPU
	// time: on a shared machine wall time also counts other processes' turns on the cores.
	PrefillTokensPerCPUS float64 `json:"prefill_tokens_per_cpu_s,omitempty"`
	DecodeTokensPerCPUS  float64 `json:"decode_tokens_per_cpu_s,omitempty"`
}

// bench engine: prefill and decode speed of the in-process engine, with the kernels'
// matrix-product rate for the same weight shapes measured in the same run.
func init() {
	var (
		modelPath               string
		tokens, decode, threads int
		iters                   int
		seed                    uint64
		asJSON                  bool
		activations             string
	)
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Measure prefill and decode speed of a model file (compare: the kernels' GEMM rate at its shapes)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if modelPath == "" {
				return flagErr("model", "a model file is required")
			}
			if _, err := os.Stat(modelPath); err != nil {
				return flagErr("model", "%v", err)
			}
			if tokens <= 0 {
				return flagErr("tokens", "must be positive, got %d", tokens)
			}
			if decode < 0 {
				return flagErr("decode", "must be ≥ 0, got %d", decode)
			}
			if iters <= 0 {
				return flagErr("iters", "must be positive, got %d", iters)
			}
			if threads < 0 {
				return flagErr("threads", "must be ≥ 0, got %d", threads)
			}
			act := kernels.Activations(-1)
			if activations != "" {
				a, err := kernels.ParseActivations(activations)
				if err != nil {
					return flagErr("activations", "%v", err)
				}
				act = a
			}
			m, err := model.Open(modelPath, model.Options{Threads: threads})
			if err != nil {
				return err
			}
			defer m.Close()
			if act >= 0 {
				m.Pool().SetActivations(act)
			}
			c := &m.Config
			if tokens+decode > c.Ctx {
				return flagErr("tokens", "%d prompt + %d decode tokens exceed the model's context of %d", tokens, decode, c.Ctx)
			}
			ctx := cmd.Context()
			rng := rand.New(rand.NewPCG(seed, 2))
			toks := make([]int, tokens)
			for i := range toks {
				toks[i] = rng.IntN(m.Tok.VocabSize())
			}
			prog := cliutil.NewProgress(os.Stderr, "bench engine", int64(2*iters+1))
			// Warm-up (grows the pool's scratch and faults in the weights).
			if _, _, err := m.Prefill(ctx, toks[:min(tokens, 32)], 0, 0, model.ExtendOptions{Logits: []int{min(tokens, 32) - 1}}); err != nil {
				return err
			}
			prog.Add(1)
			// The kernels' GEMM rate for this model's weight matrices (every layer, as the
			// prefill multiplies them) at n = tokens, measured in every repetition right
			// after the prefill and for about as long, so that both see the same load.
			names := make([]string, 0, 7)
			for k := range m.LayerMatrices(0) {
				names = append(names, k)
			}
			sort.Strings(names)
			pool := m.Pool()
			type gemmCase struct {
				w      kernels.Mat
				x, out []float32
			}
			var cases []gemmCase
			var gemmFlops float64
			bufs := map[string][2][]float32{}
			for l := 0; l < c.Layers; l++ {
				mats := m.LayerMatrices(l)
				for _, name := range names {
					w := mats[name]
					b, ok := bufs[name]
					if !ok {
						x := make([]float32, tokens*w.Cols)
						for i := range x {
							x[i] = float32(rng.NormFloat64())
						}
						b = [2][]float32{x, make([]float32, tokens*w.Rows)}
						bufs[name] = b
					}
					cases = append(cases, gemmCase{w, b[0], b[1]})
					gemmFlops += 2 * float64(w.Rows) * float64(w.Cols) * float64(tokens)
				}
			}
			var prefill, dec, gemm, prefillCPU, decCPU []float64
			cpuSince := func(c0 time.Duration) float64 {
				c1, _ := cputime.Process()
				return (c1 - c0).Seconds()
			}
			for it := 0; it < iters; it++ {
				c0, _ := cputime.Process()
				t0 := time.Now()
				kv, res, err := m.Prefill(ctx, toks, 0, decode, model.ExtendOptions{Logits: []int{tokens - 1}})
				if err != nil {
					return err
				}
				prefill = append(prefill, time.Since(t0).Seconds())
				prefillCPU = append(prefillCPU, cpuSince(c0))
				t0 = time.Now()
				for i := range cases {
					if err := pool.MatMul(cases[i].out, cases[i].x, tokens, &cases[i].w); err != nil {
						return err
					}
				}
				gemm = append(gemm, time.Since(t0).Seconds())
				prog.Add(1)
				if decode > 0 {
					st := m.NewState(kv, decode)
					next := model.Argmax(res.Logits)
					c0, _ = cputime.Process()
					t0 = time.Now()
					for i := 0; i < decode; i++ {
						l, err := st.Feed(ctx, next)
						if err != nil {
							return err
						}
						next = model.Argmax(l)
					}
					dec = append(dec, time.Since(t0).Seconds())
					decCPU = append(decCPU, cpuSince(c0))
				}
				prog.Add(1)
			}
			prog.Finish()
			// Best times throughout (prefill, decode and the GEMM comparison alike), so
			// that all are measured the same way on a shared machine.
			ps, gemmSecs := slices.Min(prefill), slices.Min(gemm)
			flops := c.PrefillFLOPs(0, tokens)
			r := benchEngineResult{
				Model: modelPath, CPUPath: cpu.Active().String(), Activations: pool.Activations().String(), WeightType: m.WeightType.String(), Threads: pool.Threads(), Tokens: tokens, DecodeTokens: decode,
				PrefillSeconds: ps, PrefillTokensPerS: float64(tokens) / ps, PrefillGFLOPs: flops / ps / 1e9,
				GemmGFLOPs: gemmFlops / gemmSecs / 1e9,
			}
			r.MatmulShareOfFLOPs = gemmFlops / flops
			r.PrefillVsGemm = r.PrefillGFLOPs / r.GemmGFLOPs
			if decode > 0 {
				r.DecodeTokensPerS = float64(decode) / slices.Min(dec)
			}
			if _, ok := cputime.Process(); ok {
				r.PrefillTokensPerCPUS = float64(tokens) / slices.Min(prefillCPU)
				if decode > 0 {
					r.DecodeTokensPerCPUS = float64(decode) / slices.Min(decCPU)
				}
			}
			out := cmd.OutOrStdout()
			if !asJSON {
				fmt.Fprintf(out, "model %s (%s, %d threads, kernel path %s)\n", r.Model, r.WeightType, r.Threads, r.CPUPath)
				fmt.Fprintf(out, "prefill %d tokens: %.3fs  %.1f tokens/s  %.2f GFLOP/s\n", tokens, ps, r.PrefillTokensPerS, r.PrefillGFLOPs)
				fmt.Fprintf(out, "decode  %d tokens: %.1f tokens/s\n", decode, r.DecodeTokensPerS)
				fmt.Fprintf(out, "kernels GEMM at the same shapes: %.2f GFLOP/s; prefill reaches %.0f%% of it (matmuls are %.0f%% of prefill FLOPs)\n",
					r.GemmGFLOPs, 100*r.PrefillVsGemm, 100*r.MatmulShareOfFLOPs)
				return nil
			}
			return cliutil.PrintJSON(cmd.OutOrStdout(), r)
		},
	}
	f := cmd.Flags()
	f.StringVar(&modelPath, "model", "", "model file")
	f.IntVar(&tokens, "tokens", 512, "prompt tokens to prefill")
	f.IntVar(&decode, "decode", 32, "tokens to decode after the prefill")
	f.IntVar(&iters, "iters", 3, "timed repetitions (the best is reported, for prefill, decode and GEMM alike)")
	f.IntVar(&threads, "threads", 0, "kernel threads (0: all cores)")
	f.Uint64Var(&seed, "seed", 1, "seed of the random prompt")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last line")
	f.StringVar(&activations, "activations", "", "quantized weights' activations: ggml (llama.cpp's quantization), int8 (per 32-block, float32 scale) or float (default: the engine's)")
	benchCmd.AddCommand(cmd)
}
