package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/chunkcache/eviction/sim"
	"github.com/ragkv/ragkv/internal/cliutil"
)

// evictionTarget is the target for min_best_vs_belady.
const evictionTarget = 0.85

// bench eviction: replay synthetic chunk-reuse traces (or a trace file) through every
// eviction policy, with and without TinyLFU admission, and compare with Belady's
// offline optimum, the static-popularity oracle and, for trace files, libCacheSim.
func init() {
	var (
		requests, workers int
		seed              uint64
		asJSON            bool
		tracePath, format string
		traceParams       string
		sizesFlag         string
		ignoreSize        bool
		maxRequests       int
		libBin            string
		libAlgos          []string
	)
	cmd := &cobra.Command{
		Use:   "eviction",
		Short: "Replay synthetic or real traces through every eviction policy, Belady's optimum and (optionally) libCacheSim",
		Long: `Replays traces through the production eviction.Tracker for every policy
(` + strings.Join(eviction.Policies(), ", ") + `), each with and without TinyLFU admission.

Without --trace: deterministic synthetic traces at cache sizes of 1%, 5% and 20% of each
trace's working set (distinct chunks, or their bytes for variable-size traces), with
Belady's offline optimum and the static-popularity oracle for the unit-size traces.
Traces (--requests each, default 10^6; --seed):
  zipf-0.8          independent Zipf α=0.8 requests over 10^5 chunks
  zipf-1.1          independent Zipf α=1.1 requests over 10^5 chunks
  scan              Zipf α=0.9 over 10^5 chunks, 25% of requests in one-off sequential
                    scans of 2,000-20,000 fresh chunks
  shift             Zipf α=0.9 over 5·10^4 chunks; the popular set is replaced halfway
  varsize-zipf-0.9  Zipf α=0.9 over 5·10^4 chunks with log-normal token counts (median
                    300, σ 0.6, 32-4096) from an 8B-like (70%) and a 70B-like (30%) model:
                    size = tokens · KV bytes/token, cost = prefill FLOPs
min_best_vs_belady is, over the unit-size traces and sizes, the smallest ratio of the best
online configuration's hit ratio to Belady's; min_best_vs_oracle the same against the
static oracle over the independent-reference (Zipf) traces (target ≥ 0.97).

With --trace FILE: one trace file in libCacheSim's formats (txt: one object id per line;
csv: columns per --trace-params, libCacheSim's syntax "obj-id-col=5,obj-size-col=4,
has-header=true,delimiter=,,"; oraclegeneral: 24-byte little-endian records u32 time, u64
id, u32 size, i64 next access) or ragkv's chunk trace (format chunk: sizes and recompute
costs per request; see package chunkcache/eviction/sim). Cache sizes are --sizes fractions
of the working set in bytes (rounded down, as libCacheSim's cachesim does); --ignore-size
counts every request as size 1 (cachesim --ignore-obj-size). Belady is computed for
unit-size replays. With --libcachesim BIN (cachesim; "auto": $RAGKV_LIBCACHESIM/_build/bin/
cachesim or ../peers/libCacheSim/_build/bin/cachesim) the same trace and sizes also run
through libCacheSim, both tables are printed, and the JSON compares them: target_met means
ragkv's best eviction policy is within 0.5 hit-ratio points of libCacheSim's best online
algorithm at every size and LRU and FIFO agree with libCacheSim's to 3 decimals.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workers < 0 {
				return flagErr("workers", "must be ≥ 0 (0: GOMAXPROCS), got %d", workers)
			}
			sizes, err := parseSizes(sizesFlag)
			if err != nil {
				return err
			}
			if tracePath != "" {
				return runEvictionTrace(cmd, evictionTraceArgs{path: tracePath, format: format, params: traceParams,
					sizes: sizes, ignoreSize: ignoreSize, maxRequests: maxRequests, workers: workers,
					libBin: libBin, libAlgos: libAlgos, asJSON: asJSON})
			}
			for _, name := range []string{"format", "trace-params", "ignore-size", "max-requests", "libcachesim", "libcachesim-algos"} {
				if cmd.Flags().Changed(name) {
					return flagErr(name, "only applies with --trace")
				}
			}
			if requests < 1000 {
				return flagErr("requests", "must be at least 1000, got %d", requests)
			}
			if requests > 50_000_000 {
				return flagErr("requests", "at most 50000000, got %d", requests)
			}
			if !cmd.Flags().Changed("sizes") {
				sizes = sim.DefaultSizes
			}
			start := time.Now()
			traces := sim.DefaultTraces(requests, seed)
			configs := sim.AllConfigs()
			prog := cliutil.NewProgress(os.Stderr, "bench eviction", int64(sim.JobCount(traces, sizes, configs)))
			rep, err := sim.RunSuite(cmd.Context(), traces, sizes, configs, workers, func() { prog.Add(1) })
			prog.Finish()
			if err != nil {
				return err
			}
			elapsed := time.Since(start).Seconds()
			out := cmd.OutOrStdout()
			printEvictionTables(out, rep, configs)
			fmt.Fprintf(out, "min best/belady over unit-size traces: %.3f at %s (target %.2f)\n", rep.MinBestVsBelady, rep.MinAt, evictionTarget)
			fmt.Fprintf(out, "min best/static oracle over the Zipf (IRM) traces: %.3f at %s (target %.2f) in %.1f s\n", rep.MinBestVsOracle, rep.MinOracleAt, oracleTarget, elapsed)
			if !asJSON {
				return nil
			}
			return cliutil.PrintJSON(out, map[string]any{
				"bench":                 "eviction",
				"requests":              requests,
				"seed":                  seed,
				"sizes_pct":             rep.SizesPct,
				"traces":                rep.Traces,
				"results":               rep.Rows,
				"best":                  rep.Best,
				"min_best_vs_belady":    rep.MinBestVsBelady,
				"min_best_vs_belady_at": rep.MinAt,
				"min_best_vs_oracle":    rep.MinBestVsOracle,
				"min_best_vs_oracle_at": rep.MinOracleAt,
				"oracle_target":         oracleTarget,
				"target":                evictionTarget,
				"target_met":            rep.MinBestVsBelady >= evictionTarget,
				"oracle_target_met":     rep.MinBestVsOracle >= oracleTarget,
				"elapsed_seconds":       elapsed,
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&requests, "requests", 1_000_000, "requests per synthetic trace")
	f.Uint64Var(&seed, "seed", 1, "synthetic trace generator seed")
	f.IntVar(&workers, "workers", 0, "parallel replays (0: GOMAXPROCS)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last stdout line")
	f.StringVar(&tracePath, "trace", "", "replay this trace file instead of the synthetic suite")
	f.StringVar(&format, "format", "", "trace format: "+strings.Join(sim.Formats(), ", ")+" (default: guessed from the file)")
	f.StringVar(&traceParams, "trace-params", "", `CSV columns in libCacheSim's syntax, e.g. "obj-id-col=5,obj-size-col=4,has-header=true"`)
	f.StringVar(&sizesFlag, "sizes", "0.01,0.05,0.1,0.2", "cache sizes as comma-separated fractions of the working set (without --trace the default is 0.01,0.05,0.2)")
	f.BoolVar(&ignoreSize, "ignore-size", false, "count every request as size 1 (libCacheSim --ignore-obj-size)")
	f.IntVar(&maxRequests, "max-requests", 0, "read at most this many requests of the trace (0: all)")
	f.StringVar(&libBin, "libcachesim", "", `libCacheSim's cachesim binary to run side by side ("auto": find it beside the project)`)
	f.StringSliceVar(&libAlgos, "libcachesim-algos", sim.DefaultLibCacheSimAlgos, "libCacheSim algorithms to run")
	benchCmd.AddCommand(cmd)
}

// oracleTarget is the target for the best online policy ÷ the static oracle on
// the independent-reference traces.
const oracleTarget = 0.97

// parseSizes parses --sizes: 1 to 64 distinct fractions in (0, 1].
func parseSizes(s string) ([]float64, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 64 {
		return nil, flagErr("sizes", "give 1 to 64 fractions, got %d", len(parts))
	}
	var out []float64
	for _, p := range parts {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || !(f > 0 && f <= 1) {
			return nil, flagErr("sizes", "%q is not a fraction in (0, 1]", p)
		}
		if slices.Contains(out, f) {
			return nil, flagErr("sizes", "%v given twice", f)
		}
		out = append(out, f)
	}
	return out, nil
}

type evictionTraceArgs struct {
	path, format, params string
	sizes                []float64
	ignoreSize           bool
	maxRequests, workers int
	libBin               string
	libAlgos             []string
	asJSON               bool
}

func runEvictionTrace(cmd *cobra.Command, a evictionTraceArgs) error {
	if a.maxRequests < 0 {
		return flagErr("max-requests", "must be ≥ 0, got %d", a.maxRequests)
	}
	fh, err := os.Open(a.path)
	if err != nil {
		return flagErr("trace", "%v", err)
	}
	defer fh.Close()
	format := strings.ToLower(a.format)
	if format == "" {
		head := make([]byte, 4096)
		n, _ := io.ReadFull(fh, head)
		format = sim.Sniff(head[:n])
		if _, err := fh.Seek(0, io.SeekStart); err != nil {
			return flagErr("trace", "%v", err)
		}
	}
	if !slices.Contains(sim.Formats(), format) {
		return flagErr("format", "unknown format %q (want %s)", a.format, strings.Join(sim.Formats(), ", "))
	}
	ro := sim.ReadOptions{IgnoreSize: a.ignoreSize, MaxRequests: a.maxRequests}
	if a.params != "" {
		if format != sim.FormatCSV {
			return flagErr("trace-params", "only applies to --format csv")
		}
		if ro.CSV, err = sim.ParseCSVParams(a.params); err != nil {
			return flagErr("trace-params", "%v", err)
		}
	}
	start := time.Now()
	tr, err := sim.ReadTrace(bufio.NewReaderSize(fh, 1<<20), filepath.Base(a.path), format, ro)
	if err != nil {
		return flagErr("trace", "%v", err)
	}
	readSeconds := time.Since(start).Seconds()
	var lib []sim.CachesimRow
	libPath := ""
	if a.libBin != "" {
		if format == sim.FormatChunk {
			return flagErr("libcachesim", "libCacheSim cannot read chunk traces")
		}
		if a.maxRequests > 0 {
			return flagErr("libcachesim", "cannot be combined with --max-requests (cachesim reads the whole trace)")
		}
		libPath = a.libBin
		if libPath == "auto" {
			dir, err := sim.LibCacheSimDir()
			if err == nil {
				libPath, err = sim.CachesimBinary(dir)
			}
			if err != nil {
				return flagErr("libcachesim", "%v", err)
			}
		}
		if _, err := os.Stat(libPath); err != nil {
			return flagErr("libcachesim", "%v", err)
		}
	}
	configs := sim.AllConfigs()
	total := int64(sim.JobCount([]*sim.Trace{tr}, a.sizes, configs) + len(a.libAlgos)*btoi(libPath != ""))
	prog := cliutil.NewProgress(os.Stderr, "bench eviction", total)
	rep, err := sim.Run(cmd.Context(), sim.SuiteOptions{Traces: []*sim.Trace{tr}, Sizes: a.sizes, Configs: configs,
		Workers: a.workers, Progress: func() { prog.Add(1) }, FloorCapacity: true})
	if err != nil {
		prog.Finish()
		return err
	}
	if libPath != "" {
		lib, err = sim.RunCachesim(cmd.Context(), sim.CachesimOptions{Binary: libPath, Trace: a.path, Format: format,
			TraceParams: a.params, Algos: a.libAlgos, Sizes: a.sizes, IgnoreSize: a.ignoreSize,
			Progress: func(string) { prog.Add(1) }})
		if err != nil {
			prog.Finish()
			return err
		}
	}
	prog.Finish()
	elapsed := time.Since(start).Seconds()
	out := cmd.OutOrStdout()
	printTraceTables(out, rep, configs, lib)
	var cmp []sim.Comparison
	met := true
	if lib != nil {
		cmp = sim.Compare(rep.Rows, lib)
		fmt.Fprintln(out, "ragkv vs libCacheSim (hit ratio; gap = libCacheSim best − ragkv best eviction policy, in points):")
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "size\tragkv best\t\tragkv best eviction\t\tlibCacheSim best\t\tgap\tsame algorithm (ragkv/libCacheSim)\t")
		for _, c := range cmp {
			var same []string
			for _, s := range c.Same {
				mark := ""
				if !s.Equal3 {
					mark = " ≠"
				}
				same = append(same, fmt.Sprintf("%s %.4f/%.4f%s", s.Algo, s.Ragkv, s.LibCacheSim, mark))
				if (s.Algo == "lru" || s.Algo == "fifo") && !s.Equal3 {
					met = false
				}
			}
			if c.GapPoints > 0.5 {
				met = false
			}
			fmt.Fprintf(tw, "%g%%\t%s\t%.4f\t%s\t%.4f\t%s\t%.4f\t%+.2f\t%s\t\n", 100*c.SizeFrac, c.RagkvBest, c.RagkvBestHitRatio,
				c.RagkvBestEviction, c.RagkvBestEvictionRatio, c.LibBest, c.LibBestHitRatio, c.GapPoints, strings.Join(same, ", "))
		}
		_ = tw.Flush()
		fmt.Fprintf(out, "target (best within 0.5 points at every size, LRU and FIFO equal to 3 decimals): %v\n", met)
	}
	fmt.Fprintf(out, "%s: %d requests, %d objects, %d working-set bytes; read in %.1f s, total %.1f s\n",
		tr.Name, rep.Traces[0].Requests, rep.Traces[0].DistinctChunks, rep.Traces[0].WorkingSetBytes, readSeconds, elapsed)
	if !a.asJSON {
		return nil
	}
	res := map[string]any{
		"bench":           "eviction",
		"trace":           rep.Traces[0],
		"format":          format,
		"ignore_size":     a.ignoreSize,
		"sizes":           a.sizes,
		"results":         rep.Rows,
		"best":            rep.Best,
		"elapsed_seconds": elapsed,
	}
	if lib != nil {
		res["libcachesim"] = map[string]any{"binary": libPath, "algos": a.libAlgos, "results": lib}
		res["comparison"] = cmp
		res["target"] = "ragkv best eviction policy within 0.5 hit-ratio points of libCacheSim's best online algorithm at every size; LRU and FIFO equal to 3 decimals"
		res["target_met"] = met
	}
	return cliutil.PrintJSON(out, res)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// printTraceTables prints ragkv's hit ratios (and byte hit ratios for sized traces)
// per configuration and size, then libCacheSim's.
func printTraceTables(w io.Writer, rep sim.Report, configs []sim.Config, lib []sim.CachesimRow) {
	t := rep.Traces[0]
	type key struct {
		label string
		frac  float64
	}
	res := map[key]sim.Result{}
	var fracs []float64
	for _, r := range rep.Rows {
		label := r.Policy
		if r.Policy != "belady" && r.Policy != "static-oracle" {
			label = sim.Config{Policy: r.Policy, Admission: r.Admission}.Label()
		}
		if !slices.Contains(fracs, r.SizeFrac) {
			fracs = append(fracs, r.SizeFrac)
		}
		res[key{label, r.SizeFrac}] = r.Result
	}
	slices.Sort(fracs)
	labels := []string{}
	if t.UnitSize {
		labels = append(labels, "belady")
	}
	for _, c := range configs {
		labels = append(labels, c.Label())
	}
	metric := "hit ratio"
	if !t.UnitSize {
		metric = "hit ratio / byte hit ratio / recompute cost saved"
	}
	fmt.Fprintf(w, "ragkv, %s (%s):\n", t.Name, metric)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := []string{"policy"}
	for _, f := range fracs {
		hdr = append(hdr, fmt.Sprintf("%g%%", 100*f))
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
	for _, l := range labels {
		row := []string{l}
		for _, f := range fracs {
			r := res[key{l, f}]
			if t.UnitSize {
				row = append(row, fmt.Sprintf("%.4f", r.HitRatio))
			} else {
				row = append(row, fmt.Sprintf("%.4f/%.4f/%.4f", r.HitRatio, r.ByteHitRatio, r.CostSavedRatio))
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	_ = tw.Flush()
	if len(lib) == 0 {
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "\nlibCacheSim cachesim, same trace and sizes (hit ratio / byte hit ratio):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
	var algos []string
	libRes := map[key]sim.CachesimRow{}
	for _, l := range lib {
		if !slices.Contains(algos, l.Algo) {
			algos = append(algos, l.Algo)
		}
		libRes[key{l.Algo, l.SizeFrac}] = l
	}
	for _, a := range algos {
		row := []string{a}
		for _, f := range fracs {
			l := libRes[key{a, f}]
			row = append(row, fmt.Sprintf("%.4f/%.4f", l.HitRatio, l.ByteHitRatio))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
}

func printEvictionTables(w io.Writer, rep sim.Report, configs []sim.Config) {
	unit := map[string]bool{}
	for _, t := range rep.Traces {
		unit[t.Name] = t.UnitSize
	}
	type key struct {
		trace string
		pct   float64
		label string
	}
	res := map[key]sim.Result{}
	for _, r := range rep.Rows {
		label := r.Policy
		if r.Policy != "belady" && r.Policy != "static-oracle" {
			label = sim.Config{Policy: r.Policy, Admission: r.Admission}.Label()
		}
		res[key{r.Trace, r.SizePct, label}] = r.Result
	}
	best := map[key]sim.Best{}
	for _, b := range rep.Best {
		best[key{b.Trace, b.SizePct, ""}] = b
	}

	fmt.Fprintln(w, "Hit ratio, unit-size traces. oracle: the best online policy for independent requests with known")
	fmt.Fprintln(w, "popularity (hold the top chunks; scan: reference only). best/belady: best online configuration ÷ Belady.")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	hdr := []string{"trace", "size", "belady", "oracle"}
	for _, c := range configs {
		hdr = append(hdr, c.Label())
	}
	hdr = append(hdr, "oracle/belady", "best/belady", "")
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, t := range rep.Traces {
		if !t.UnitSize {
			continue
		}
		for _, p := range rep.SizesPct {
			row := []string{t.Name, fmt.Sprintf("%g%%", p), fmt.Sprintf("%.4f", res[key{t.Name, p, "belady"}].HitRatio),
				fmt.Sprintf("%.4f", res[key{t.Name, p, "static-oracle"}].HitRatio)}
			for _, c := range configs {
				row = append(row, fmt.Sprintf("%.4f", res[key{t.Name, p, c.Label()}].HitRatio))
			}
			b := best[key{t.Name, p, ""}]
			row = append(row, fmt.Sprintf("%.3f", b.OracleVsBelady), fmt.Sprintf("%.3f", b.VsBelady), "")
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	_ = tw.Flush()

	for _, t := range rep.Traces {
		if t.UnitSize {
			continue
		}
		fmt.Fprintf(w, "\n%s: hit ratio / byte hit ratio / recompute cost saved:\n", t.Name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		hdr := []string{"size"}
		for _, c := range configs {
			hdr = append(hdr, c.Label())
		}
		fmt.Fprintln(tw, strings.Join(append(hdr, ""), "\t"))
		for _, p := range rep.SizesPct {
			row := []string{fmt.Sprintf("%g%%", p)}
			for _, c := range configs {
				r := res[key{t.Name, p, c.Label()}]
				row = append(row, fmt.Sprintf("%.3f/%.3f/%.3f", r.HitRatio, r.ByteHitRatio, r.CostSavedRatio))
			}
			fmt.Fprintln(tw, strings.Join(append(row, ""), "\t"))
		}
		_ = tw.Flush()
	}
	fmt.Fprintln(w)
}
