package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/retrieval"
)

// Targets of issue 5 for `ragkv bench retrieval` at n=10^6, dim 100, 32 PCA dimensions.
const (
	annTargetRecall = 0.95
	annTargetQPS    = 11000
	annTargetBytes  = 40
	annTargetBuild  = 300
)

// bench retrieval: synthetic ANN benchmark (PCA-compressed IVF-PQ with exact rescoring).
func init() {
	var (
		cfg    retrieval.ANNBenchConfig
		sweep  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "retrieval",
		Short: "Vector-index benchmark: PCA + IVF-PQ fast-scan + exact rescoring on synthetic embeddings",
		Long: `Generates --n database vectors and --queries query vectors of --dim dimensions from the
same distribution (deterministic from --seed): --clusters Gaussian centres plus Gaussian
noise (--noise standard deviations), dimension i scaled so that its variance decays like
(i+1)^-decay, normalized to unit length. Fits a PCA (uncentred, on 100,000 rows) to
--pca-dims dimensions, indexes the projected vectors (--kind ivfpq: inverted lists with
4-bit product-quantization codes scanned with AVX2 byte shuffles) and answers each query by
projecting it, scanning --nprobe lists, re-ranking the best --rescore candidates exactly
with the full vectors (kept in RAM outside the index, not counted in bytes_per_vector).

Reports throughput over --threads goroutines (one query per call), recall@k against exact
search over the full vectors, index bytes per vector and build seconds (PCA fit and
projection + index build). --sweep "nprobe:rescore,..." measures more operating points
on the same index. --dump DIR writes the data for testdata/faiss_anchor.py.

Targets (issue 5, n=10^6, dim 100, pca 32): recall@10 ≥ 0.95 at ≥ 11,000 q/s on 2 cores,
≤ 40 bytes per vector, build ≤ 300 s.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case cfg.N < 1000 || cfg.N > 50_000_000:
				return flagErr("n", "must be in [1000, 50000000], got %d", cfg.N)
			case cfg.Dim < 2 || cfg.Dim > 4096:
				return flagErr("dim", "must be in [2, 4096], got %d", cfg.Dim)
			case cfg.PCADims < 0 || cfg.PCADims > cfg.Dim:
				return flagErr("pca-dims", "must be in [0, --dim=%d] (0: no PCA), got %d", cfg.Dim, cfg.PCADims)
			case cfg.K < 1 || cfg.K > 1000:
				return flagErr("k", "must be in [1, 1000], got %d", cfg.K)
			case cfg.Queries < 1 || cfg.Queries > 100_000:
				return flagErr("queries", "must be in [1, 100000], got %d", cfg.Queries)
			case cfg.Threads < 1 || cfg.Threads > 1024:
				return flagErr("threads", "must be in [1, 1024], got %d", cfg.Threads)
			case cfg.Data.Clusters < 1:
				return flagErr("clusters", "must be positive, got %d", cfg.Data.Clusters)
			case cfg.Data.Noise < 0:
				return flagErr("noise", "must be ≥ 0, got %g", cfg.Data.Noise)
			case cfg.Data.Decay < 0 || cfg.Data.Decay > 8:
				return flagErr("decay", "must be in [0, 8], got %g", cfg.Data.Decay)
			case cfg.NList < 0 || cfg.M < 0 || cfg.NProbe < 0 || cfg.Rescore < 0:
				return flagErr("nlist", "--nlist, --m, --nprobe and --rescore must be ≥ 0 (0: default)")
			case cfg.MinSeconds <= 0 || cfg.MinSeconds > 3600:
				return flagErr("seconds", "must be in (0, 3600], got %g", cfg.MinSeconds)
			}
			switch cfg.Kind {
			case "ivfpq", "flat", "auto":
			default:
				return flagErr("kind", "must be ivfpq, flat or auto, got %q", cfg.Kind)
			}
			if cfg.NProbe > 0 && cfg.NList > 0 && cfg.NProbe > cfg.NList {
				return flagErr("nprobe", "%d exceeds --nlist %d", cfg.NProbe, cfg.NList)
			}
			pts, err := parseSweep(sweep)
			if err != nil {
				return err
			}
			cfg.Sweep = pts
			if cfg.DumpDir != "" {
				if st, err := os.Stat(cfg.DumpDir); err != nil || !st.IsDir() {
					return flagErr("dump", "%q is not a directory", cfg.DumpDir)
				}
			}
			if cfg.PCADims == 0 {
				cfg.PCADims = cfg.Dim
			}
			cfg.Progress = os.Stderr
			res, err := retrieval.BenchANN(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "n=%d dim=%d pca=%d (energy kept %.3f) %s nlist=%d m=%d nprobe=%d rescore=%d\n",
				res.N, res.Dim, res.PCADims, res.PCAEnergy, res.Kind, res.NList, res.M, res.NProbe, res.Rescore)
			fmt.Fprintf(out, "recall@%d %.4f  %.0f q/s on %d threads (%.0f per core, %.2f× FAISS IVF-PQ anchor per core)  %.2f bytes/vector  build %.1f s\n",
				res.K, res.RecallK, res.QPS, res.Threads, res.QPSPerCore, res.FAISSPerCore, res.BytesPerVector, res.BuildSeconds)
			for _, m := range res.Sweep {
				fmt.Fprintf(out, "  nprobe %d rescore %d: recall@%d %.4f  %.0f q/s\n", m.NProbe, m.Rescore, res.K, m.Recall, m.QPS)
			}
			if !asJSON {
				return nil
			}
			met := res.RecallK >= annTargetRecall && res.QPS >= annTargetQPS && res.BytesPerVector <= annTargetBytes && res.BuildSeconds <= annTargetBuild
			return cliutil.PrintJSON(out, struct {
				Bench string `json:"bench"`
				*retrieval.ANNBenchResult
				TargetMet bool `json:"target_met"`
			}{"retrieval", res, met && res.N >= 1_000_000 && res.K == 10})
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.N, "n", 1_000_000, "database vectors")
	f.IntVar(&cfg.Dim, "dim", 100, "full vector dimension")
	f.IntVar(&cfg.PCADims, "pca-dims", 32, "PCA dimensions indexed (0 or --dim: no PCA)")
	f.IntVar(&cfg.K, "k", 10, "results per query")
	f.IntVar(&cfg.Queries, "queries", 1000, "query vectors (recall is averaged over them; throughput cycles through them)")
	f.IntVar(&cfg.Threads, "threads", 2, "concurrent searching goroutines")
	f.Int64Var(&cfg.Seed, "seed", 1, "data and training seed")
	f.StringVar(&cfg.Kind, "kind", "ivfpq", "index kind: ivfpq, flat or auto")
	f.IntVar(&cfg.NList, "nlist", 0, "inverted lists (0: default for n)")
	f.IntVar(&cfg.M, "m", 0, "PQ sub-quantizers, even (0: default for the dimension)")
	f.IntVar(&cfg.NProbe, "nprobe", 32, "lists scanned per query (0: the index default, NList/128)")
	f.IntVar(&cfg.Rescore, "rescore", 150, "candidates rescored exactly with the full vectors (0: the index default, 100)")
	f.IntVar(&cfg.Data.Clusters, "clusters", 3000, "Gaussian cluster centres")
	f.Float64Var(&cfg.Data.Noise, "noise", 0.5, "within-cluster noise standard deviation (centres have 1)")
	f.Float64Var(&cfg.Data.Decay, "decay", 1.5, "variance of dimension i ∝ (i+1)^-decay")
	f.Float64Var(&cfg.MinSeconds, "seconds", 3, "timed seconds per operating point")
	f.StringVar(&sweep, "sweep", "", `extra operating points "nprobe:rescore,..."`)
	f.StringVar(&cfg.DumpDir, "dump", "", "write base.f32, queries.f32, truth.f32 into this directory")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last stdout line")
	benchCmd.AddCommand(cmd)
}

// parseSweep parses "nprobe:rescore,..." (either part may be 0 for the default).
func parseSweep(s string) ([]retrieval.ANNBenchPoint, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var pts []retrieval.ANNBenchPoint
	for _, item := range strings.Split(s, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(item), ":")
		np, err1 := strconv.Atoi(a)
		r, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || np < 0 || r < 0 {
			return nil, flagErr("sweep", "bad operating point %q (want nprobe:rescore)", item)
		}
		pts = append(pts, retrieval.ANNBenchPoint{NProbe: np, Rescore: r})
	}
	return pts, nil
}
