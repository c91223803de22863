package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/embed"
)

// Targets of issue 15 for `ragkv bench datastore` at 10^7 passages on 2 cores.
const (
	dsTargetIngest    = 5000 // passages/s with BM25 + GloVe-SIF + PCA-32
	dsTargetRAM       = 64   // bytes per passage beyond the page cache, after the reopen and after the queries
	dsTargetHybridP99 = 50   // ms
)

// bench datastore: synthetic corpus streamed into a store, then query latency.
func init() {
	var (
		cfg             retrieval.DatastoreBenchConfig
		embeddings, dir string
		denseIndex      string
		asJSON, keep    bool
		reuse           bool
		cpuProfile      string
		memProfile      string
		seed            int64
	)
	cmd := &cobra.Command{
		Use:   "datastore",
		Short: "Datastore scale benchmark: ingest a synthetic corpus of --passages passages, then BM25/dense/hybrid query latency, QPS, RAM and disk per passage",
		Long: `Generates --passages synthetic passages (package retrieval/synth: Zipf word frequencies over
the GloVe vocabulary, topic mixtures, log-normal lengths; deterministic from --seed) and
streams them into a fresh store in commits of --batch passages, each built into
--shards shards in parallel (BM25 + GloVe-SIF + PCA --pca-dims). Then: anonymous RAM and
disk bytes per passage of the opened store, p50/p99 latency at --k of --queries BM25,
dense and hybrid queries (words of random corpus passages), hybrid QPS over --threads
searchers, recall@k of the dense path (ANN on shards above --ann-threshold) against the
exact scan, and the peak RSS of the whole run.

Targets (issue 15, 10^7 passages, 2 cores): ingest ≥ 5,000 passages/s, RAM ≤ 64 bytes per
passage, hybrid p99 ≤ 50 ms.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case cfg.Passages < 1000 || cfg.Passages > 100_000_000:
				return flagErr("passages", "must be in [1000, 100000000], got %d", cfg.Passages)
			case cfg.Batch < 1000 || cfg.Batch > 10_000_000:
				return flagErr("batch", "must be in [1000, 10000000], got %d", cfg.Batch)
			case cfg.ShardsPerCommit < 1 || cfg.ShardsPerCommit > 256:
				return flagErr("shards", "must be in [1, 256], got %d", cfg.ShardsPerCommit)
			case cfg.Queries < 10 || cfg.Queries > 100_000:
				return flagErr("queries", "must be in [10, 100000], got %d", cfg.Queries)
			case cfg.K < 1 || cfg.K > 1000:
				return flagErr("k", "must be in [1, 1000], got %d", cfg.K)
			case cfg.Threads < 1 || cfg.Threads > 1024:
				return flagErr("threads", "must be in [1, 1024], got %d", cfg.Threads)
			case cfg.BuildMemory < 0:
				return flagErr("build-memory", "must be ≥ 0, got %d", cfg.BuildMemory)
			case cfg.ANNThreshold < 0:
				return flagErr("ann-threshold", "must be ≥ 0 (0: the collection default), got %d", cfg.ANNThreshold)
			}
			di, err := retrieval.ParseDenseIndex(denseIndex)
			if err != nil {
				return flagErr("dense-index", "%v", err)
			}
			cfg.DenseIndex = di
			cfg.Seed = uint64(seed)
			if embeddings == "" {
				d, err := shared.Dir()
				if err != nil {
					return flagErr("embeddings", "not given and no shared folder: %v", err)
				}
				embeddings = filepath.Join(d, "embeddings", "glove.6B.100d.top50k.txt.gz")
			}
			wv, err := embed.LoadGloVe(embeddings, 0)
			if err != nil {
				return flagErr("embeddings", "%v", err)
			}
			sif, err := embed.NewSIF(wv, embed.SIFOptions{})
			if err != nil {
				return err
			}
			cfg.Embedder = sif
			cfg.Vocab = make([]string, wv.Len())
			for i := range cfg.Vocab {
				cfg.Vocab[i] = wv.Word(i)
			}
			if dir == "" && reuse {
				return flagErr("reuse", "needs --dir (the store of an earlier run with --keep)")
			}
			if dir == "" {
				tmp, err := os.MkdirTemp("", "ragkv-bench-datastore-")
				if err != nil {
					return err
				}
				dir = tmp
			} else if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 && !reuse {
				return flagErr("dir", "%s is not empty", dir)
			}
			if reuse {
				if _, err := os.Stat(dir); err != nil {
					return flagErr("reuse", "needs --dir holding a kept bench store: %v", err)
				}
				keep = true // never remove a store this run did not make
			}
			cfg.Reuse = reuse
			if !keep {
				defer os.RemoveAll(dir)
			}
			cfg.Dir = dir
			prog := cliutil.NewProgress(os.Stderr, "ingest", int64(cfg.Passages))
			last := 0
			cfg.Progress = func(done, _ int) { prog.Add(int64(done - last)); last = done }
			if cpuProfile != "" {
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return flagErr("cpuprofile", "%v", err)
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return flagErr("cpuprofile", "%v", err)
				}
				defer pprof.StopCPUProfile()
			}
			res, err := retrieval.BenchDatastore(cmd.Context(), cfg)
			prog.Finish()
			if err != nil {
				return err
			}
			if memProfile != "" {
				pf, err := os.Create(memProfile)
				if err != nil {
					return flagErr("memprofile", "%v", err)
				}
				err = pprof.Lookup("allocs").WriteTo(pf, 0)
				if cerr := pf.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return flagErr("memprofile", "%v", err)
				}
			}
			res.CPU = cpu.Active().String()
			out := cmd.OutOrStdout()
			ingest := fmt.Sprintf("ingest %.0f passages/s (%.1f s; CPU %.1f s = %.0f passages/s on %d dedicated cores)", res.IngestPassagesPerS, res.IngestSeconds, res.IngestCPUSeconds, res.IngestCPUBoundPassagesPerS, res.CPUCores)
			if res.Reused {
				ingest = "reused store (no ingest)"
			}
			fmt.Fprintf(out, "passages %d in %d shards: %s, RAM %.1f B/passage anonymous (%.1f after the queries; dense index %.1f; Go heap %.1f; mapped file pages %.1f), disk %.0f B/passage, peak RSS %.2f GiB\n",
				res.Passages, res.Shards, ingest, res.RAMBytesPerPassage, res.RAMBytesPerPassageEnd, res.DenseIndexBytesPerPassage, res.HeapBytesPerPassage, res.MappedFileBytesPerPassage,
				res.DiskBytesPerPassage, float64(res.PeakRSSBytes)/(1<<30))
			fmt.Fprintf(out, "k=%d over %d queries: bm25 p50 %.2f p99 %.2f ms; dense p50 %.2f p99 %.2f ms; hybrid p50 %.2f p99 %.2f ms; hybrid %.1f q/s on %d threads; dense recall@%d vs brute-force full vectors (%d queries): %.4f (%d ANN shards), exact code scan %.4f\n",
				res.K, res.Queries, res.BM25P50ms, res.BM25P99ms, res.DenseP50ms, res.DenseP99ms, res.HybridP50ms, res.HybridP99ms,
				res.QPS, res.Threads, res.K, res.RecallQueries, res.ANNRecall10, res.ANNShards, res.ExactScanRecall10)
			fmt.Fprintf(out, "hypervisor steal: %.1f CPU s during the ingest, %.1f during the timed queries\n", res.StealSecondsIngest, res.StealSecondsQueries)
			if !asJSON {
				return nil
			}
			return cliutil.PrintJSON(out, struct {
				Bench string `json:"bench"`
				*retrieval.DatastoreBenchResult
				IngestTargetMet bool `json:"ingest_target_met"`
				RAMTargetMet    bool `json:"ram_target_met"`
				P99TargetMet    bool `json:"hybrid_p99_target_met"`
			}{"datastore", res, !res.Reused && res.IngestPassagesPerS >= dsTargetIngest, max(res.RAMBytesPerPassage, res.RAMBytesPerPassageEnd) <= dsTargetRAM, res.HybridP99ms <= dsTargetHybridP99})
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Passages, "passages", 100_000, "synthetic passages to ingest")
	f.IntVar(&cfg.Batch, "batch", 500_000, "passages per commit (the ingest holds one batch in memory)")
	f.IntVar(&cfg.ShardsPerCommit, "shards", 2, "shards each commit builds in parallel")
	f.Int64Var(&cfg.BuildMemory, "build-memory", 0, "bound in bytes on the estimated memory of shard builds running at once (0: unbounded)")
	f.StringVar(&embeddings, "embeddings", "", "GloVe word vectors (default: the shared glove.6B.100d.top50k)")
	f.IntVar(&cfg.PCADims, "pca-dims", 32, "PCA dimensions of the dense codes")
	f.BoolVar(&cfg.Int8, "int8", true, "int8-quantize the codes (PCA-32 int8: 32 bytes per passage in RAM on exact-scan shards)")
	f.StringVar(&denseIndex, "dense-index", "auto", "auto, exact or ann")
	f.IntVar(&cfg.ANNThreshold, "ann-threshold", 40_000, "shard size from which auto uses ANN (IVF-PQ on the PCA codes, rescored with the full vectors; 0: the collection default, 200000)")
	f.IntVar(&cfg.Queries, "queries", 200, "timed queries per mode")
	f.IntVar(&cfg.K, "k", 10, "results per query")
	f.IntVar(&cfg.Threads, "threads", 2, "concurrent searchers for QPS")
	f.Int64Var(&seed, "seed", 1, "corpus seed")
	f.StringVar(&dir, "dir", "", "store directory (default: a temporary one, removed)")
	f.BoolVar(&keep, "keep", false, "keep the store directory")
	f.BoolVar(&reuse, "reuse", false, "skip the ingest and measure the store --dir kept by an earlier run with the same --passages and --seed (no ingest figures)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run (ingest and queries) to this file")
	f.StringVar(&memProfile, "memprofile", "", "write a heap profile (allocations of the whole run, and what is in use at its end) to this file")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last stdout line")
	benchCmd.AddCommand(cmd)
}
