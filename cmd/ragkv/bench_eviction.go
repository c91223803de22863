package main

import (
	"fmt"
	"io"
	"os"
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

// bench eviction: replay synthetic chunk-reuse traces through every eviction policy,
// with and without TinyLFU admission, and compare with Belady's offline optimum.
func init() {
	var (
		requests, workers int
		seed              uint64
		asJSON            bool
	)
	cmd := &cobra.Command{
		Use:   "eviction",
		Short: "Replay synthetic chunk-reuse traces through every eviction policy and Belady's optimum",
		Long: `Replays deterministic synthetic traces through the production eviction.Tracker for every
policy (` + strings.Join(eviction.Policies(), ", ") + `), each with and without TinyLFU admission,
at cache sizes of 1%, 5% and 20% of each trace's working set (distinct chunks, or their
bytes for variable-size traces), and computes Belady's offline optimum for the unit-size
traces.

Traces (--requests each, default 10^6; --seed):
  zipf-0.8          independent Zipf α=0.8 requests over 10^5 chunks
  zipf-1.1          independent Zipf α=1.1 requests over 10^5 chunks
  scan              Zipf α=0.9 over 10^5 chunks, 25% of requests in one-off sequential
                    scans of 2,000-20,000 fresh chunks
  shift             Zipf α=0.9 over 5·10^4 chunks; the popular set is replaced halfway
  varsize-zipf-0.9  Zipf α=0.9 over 5·10^4 chunks with log-normal token counts (median
                    300, σ 0.6, 32-4096) from an 8B-like (70%) and a 70B-like (30%) model:
                    size = tokens · KV bytes/token, cost = prefill FLOPs

Reports hit ratio, byte hit ratio and recompute cost saved per (trace, size, policy);
min_best_vs_belady is, over the unit-size traces and sizes, the smallest ratio of the
best online configuration's hit ratio to Belady's (target ≥ 0.85).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if requests < 1000 {
				return flagErr("requests", "must be at least 1000, got %d", requests)
			}
			if requests > 50_000_000 {
				return flagErr("requests", "at most 50000000, got %d", requests)
			}
			if workers < 0 {
				return flagErr("workers", "must be ≥ 0 (0: GOMAXPROCS), got %d", workers)
			}
			start := time.Now()
			traces := sim.DefaultTraces(requests, seed)
			configs := sim.AllConfigs()
			prog := cliutil.NewProgress(os.Stderr, "bench eviction", int64(sim.JobCount(traces, sim.DefaultSizes, configs)))
			rep, err := sim.RunSuite(cmd.Context(), traces, sim.DefaultSizes, configs, workers, func() { prog.Add(1) })
			prog.Finish()
			if err != nil {
				return err
			}
			elapsed := time.Since(start).Seconds()
			out := cmd.OutOrStdout()
			printEvictionTables(out, rep, configs)
			fmt.Fprintf(out, "min best/belady over unit-size traces: %.3f at %s (target %.2f) in %.1f s\n", rep.MinBestVsBelady, rep.MinAt, evictionTarget, elapsed)
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
				"target":                evictionTarget,
				"target_met":            rep.MinBestVsBelady >= evictionTarget,
				"elapsed_seconds":       elapsed,
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&requests, "requests", 1_000_000, "requests per trace")
	f.Uint64Var(&seed, "seed", 1, "trace generator seed")
	f.IntVar(&workers, "workers", 0, "parallel replays (0: GOMAXPROCS)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last stdout line")
	benchCmd.AddCommand(cmd)
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
