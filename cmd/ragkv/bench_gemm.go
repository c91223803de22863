package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/internal/kernels/cputime"
)

// bench gemm: the weight-matrix product of the inference engine at a given shape, with
// the shape read as ggml reads it (W is m×k, X is n×k, out is n×m, 2·m·n·k FLOPs).
func init() {
	var (
		m, n, k, threads, iters int
		dtype                   string
		seed                    uint64
		asJSON, floatAct        bool
	)
	cmd := &cobra.Command{
		Use:   "gemm",
		Short: "Measure the kernels' matrix product (W m×k of --dtype times X n×k, f32 activations)",
		Long: `Measure the kernels' matrix product. The shape is read as ggml reads it: W is m×k
(m output rows), X is n×k (n tokens), out is n×m, 2·m·n·k FLOPs per call.
JSON keys: cpu_path (the kernel path that ran, see --cpu), gflops (median over --iters calls after one warm-up), gflops_best, seconds,
seconds_best, weight_gb_per_s, and where the platform reports process CPU time,
cpu_seconds (per call) and gflops_per_core (FLOPs per CPU-second: the per-core rate,
unaffected by other processes sharing the cores).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if m <= 0 {
				return flagErr("m", "must be positive, got %d", m)
			}
			if n <= 0 {
				return flagErr("n", "must be positive, got %d", n)
			}
			if k <= 0 {
				return flagErr("k", "must be positive, got %d", k)
			}
			if iters <= 0 {
				return flagErr("iters", "must be positive, got %d", iters)
			}
			if threads < 0 {
				return flagErr("threads", "must be ≥ 0 (0: all cores), got %d", threads)
			}
			t, err := kernels.ParseDType(dtype)
			if err != nil {
				return flagErr("dtype", "%v", err)
			}
			if k%t.BlockElems() != 0 {
				return flagErr("k", "%d is not a multiple of the %v block size %d", k, t, t.BlockElems())
			}
			w, err := kernels.RandomMat(t, m, k, 0.05, seed)
			if err != nil {
				return fmt.Errorf("make weights: %w", err)
			}
			rng := rand.New(rand.NewPCG(seed, 1))
			x := make([]float32, n*k)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			out := make([]float32, n*m)
			pool := kernels.NewPool(threads)
			defer pool.Close()
			pool.SetFloatActivations(floatAct)
			ctx := cmd.Context()
			prog := cliutil.NewProgress(os.Stderr, "bench gemm", int64(iters+1))
			// One warm-up call (grows the pool's scratch), then the timed ones.
			if err := pool.MatMul(out, x, n, &w); err != nil {
				return err
			}
			prog.Add(1)
			secs := make([]float64, 0, iters)
			cpu0, cpuOK := cputime.Process()
			for range iters {
				if err := ctx.Err(); err != nil {
					return err
				}
				start := time.Now()
				if err := pool.MatMul(out, x, n, &w); err != nil {
					return err
				}
				secs = append(secs, time.Since(start).Seconds())
				prog.Add(1)
			}
			cpu1, _ := cputime.Process()
			prog.Finish()
			sorted := slices.Clone(secs)
			slices.Sort(sorted)
			median := sorted[len(sorted)/2]
			if len(sorted)%2 == 0 {
				median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
			}
			flops := 2 * float64(m) * float64(n) * float64(k)
			res := map[string]any{
				"m": m, "n": n, "k": k, "dtype": t.String(), "threads": pool.Threads(), "iters": iters,
				"float_activations": floatAct,
				"cpu_path":          cpu.Active().String(),
				"cpu_features":      cpu.Features(),
				"seconds":           median,
				"seconds_best":      sorted[0],
				"gflops":            flops / median / 1e9,
				"gflops_best":       flops / sorted[0] / 1e9,
				"weight_gbytes":     float64(len(w.Data)) / 1e9,
				"weight_gb_per_s":   float64(len(w.Data)) / median / 1e9,
			}
			if cpuOK && cpu1 > cpu0 {
				// Throughput per CPU-second: on a machine shared with other work, wall time
				// includes time the cores ran other processes; CPU time does not.
				cpuPerIter := (cpu1 - cpu0).Seconds() / float64(iters)
				res["cpu_seconds"] = cpuPerIter
				res["gflops_per_core"] = flops / cpuPerIter / 1e9
			}
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "gemm %v m=%d n=%d k=%d threads=%d path=%s: %.1f GFLOP/s median, %.1f best (%.4f s median over %d iterations)\n",
					t, m, n, k, pool.Threads(), cpu.Active(), res["gflops"], res["gflops_best"], median, iters)
				return nil
			}
			return cliutil.PrintJSON(cmd.OutOrStdout(), res)
		},
	}
	f := cmd.Flags()
	f.IntVar(&m, "m", 4096, "weight rows (output features)")
	f.IntVar(&n, "n", 512, "activation rows (tokens)")
	f.IntVar(&k, "k", 14336, "inner dimension")
	f.StringVar(&dtype, "dtype", "f32", "weight type: f32, f16, bf16, q8_0, q4_0, q5_0, q4_K, q5_K, q6_K")
	f.IntVar(&threads, "threads", 0, "worker threads (0: GOMAXPROCS)")
	f.IntVar(&iters, "iters", 5, "timed iterations (after one warm-up)")
	f.Uint64Var(&seed, "seed", 1, "random seed for weights and activations")
	f.BoolVar(&floatAct, "float-activations", false, "quantized weights: multiply float32 activations instead of int8-quantized ones (Pool.SetFloatActivations)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last stdout line")
	benchCmd.AddCommand(cmd)
}
