package sim

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/ragkv/ragkv/chunkcache/eviction"
)

// DefaultSizes are the cache sizes of the suite, as fractions of each trace's working
// set (distinct chunks for unit-size traces, their bytes otherwise).
var DefaultSizes = []float64{0.01, 0.05, 0.20}

// DefaultTraces returns the bench suite for a request count and seed: four unit-size
// traces (Zipf 0.8 and 1.1 over 10^5 chunks; Zipf 0.9 over 10^5 chunks with 25% of the
// requests in one-off scans of 2,000–20,000 chunks; Zipf 0.9 over 5·10^4 chunks whose
// popular set is replaced halfway) and one variable-size trace (Zipf 0.9 over 5·10^4
// chunks, log-normal token counts with median 300, two models).
func DefaultTraces(requests int, seed uint64) []*Trace {
	return []*Trace{
		Zipf("zipf-0.8", 0.8, 100_000, requests, seed),
		Zipf("zipf-1.1", 1.1, 100_000, requests, seed),
		ScanPolluted("scan", 0.9, 100_000, requests, 0.25, 2_000, 20_000, seed),
		Shifting("shift", 0.9, 50_000, requests, seed),
		VariableSize("varsize-zipf-0.9", 0.9, 50_000, requests, 300, DefaultModels, seed),
	}
}

// Config is one online configuration of the suite.
type Config struct {
	Policy    string `json:"policy"`
	Admission string `json:"admission"`
}

// Label is "policy" or "policy+tinylfu".
func (c Config) Label() string {
	if c.Admission == eviction.AdmissionTinyLFU {
		return c.Policy + "+tinylfu"
	}
	return c.Policy
}

// AllConfigs returns every policy with and without TinyLFU admission.
func AllConfigs() []Config {
	var out []Config
	for _, p := range eviction.Policies() {
		for _, a := range eviction.Admissions() {
			out = append(out, Config{Policy: p, Admission: a})
		}
	}
	return out
}

// TraceInfo describes a trace in a report.
type TraceInfo struct {
	Name            string         `json:"name"`
	Description     string         `json:"description"`
	UnitSize        bool           `json:"unit_size"`
	Requests        int            `json:"requests"`
	DistinctChunks  int            `json:"distinct_chunks"`
	WorkingSetBytes int64          `json:"working_set_bytes"`
	Params          map[string]any `json:"params"`
}

// Row is one (trace, size, configuration) replay.
type Row struct {
	Trace     string  `json:"trace"`
	SizeFrac  float64 `json:"size_frac"`
	SizePct   float64 `json:"size_pct"`
	Capacity  int64   `json:"capacity"`
	Policy    string  `json:"policy"`
	Admission string  `json:"admission"`
	Result
}

// Best is the best online configuration for one (trace, size), with Belady's optimum
// for unit-size traces.
type Best struct {
	Trace          string  `json:"trace"`
	SizePct        float64 `json:"size_pct"`
	Capacity       int64   `json:"capacity"`
	BestConfig     string  `json:"best_config"`
	BestHitRatio   float64 `json:"best_hit_ratio"`
	BeladyHitRatio float64 `json:"belady_hit_ratio,omitempty"`
	VsBelady       float64 `json:"best_vs_belady,omitempty"`
	// OracleHitRatio is StaticOracle's hit ratio (the best online policy for
	// independent requests from the trace's known popularity), where the trace has one.
	OracleHitRatio float64 `json:"static_oracle_hit_ratio,omitempty"`
	OracleVsBelady float64 `json:"static_oracle_vs_belady,omitempty"`
	// VsOracle is the best online hit ratio over the static oracle's, for
	// independent-reference traces.
	VsOracle float64 `json:"best_vs_static_oracle,omitempty"`
	// For variable-size traces: the best configuration by recompute cost saved.
	BestCostConfig string  `json:"best_cost_config,omitempty"`
	BestCostSaved  float64 `json:"best_cost_saved_ratio,omitempty"`
}

// Report is the outcome of a suite run.
type Report struct {
	Traces          []TraceInfo `json:"traces"`
	SizesPct        []float64   `json:"sizes_pct"`
	Rows            []Row       `json:"results"`
	Best            []Best      `json:"best"`
	MinBestVsBelady float64     `json:"min_best_vs_belady"`
	// MinAt names the (trace, size) where MinBestVsBelady occurs.
	MinAt string `json:"min_best_vs_belady_at"`
	// MinBestVsOracle is the smallest Best.VsOracle over the independent-reference
	// traces (0 if there are none), at MinOracleAt.
	MinBestVsOracle float64 `json:"min_best_vs_oracle"`
	MinOracleAt     string  `json:"min_best_vs_oracle_at"`
}

// RunSuite replays every trace through every configuration at every size (fractions
// of the working set), computes Belady's optimum for unit-size traces, and summarizes.
// Replays run on up to workers goroutines (≤ 0: GOMAXPROCS); progress, if not nil, is
// called after each replay (from the worker goroutines, one call at a time).
func RunSuite(ctx context.Context, traces []*Trace, sizes []float64, configs []Config, workers int, progress func()) (Report, error) {
	return Run(ctx, SuiteOptions{Traces: traces, Sizes: sizes, Configs: configs, Workers: workers, Progress: progress})
}

// SuiteOptions configure Run.
type SuiteOptions struct {
	Traces   []*Trace
	Sizes    []float64 // fractions of each trace's working set
	Configs  []Config
	Workers  int    // ≤ 0: GOMAXPROCS
	Progress func() // called after each replay, one call at a time
	// FloorCapacity rounds capacities down (libCacheSim's cachesim: size = (uint64)
	// (wss·fraction)) instead of to the nearest integer.
	FloorCapacity bool
}

// Run is RunSuite with options.
func Run(ctx context.Context, o SuiteOptions) (Report, error) {
	traces, sizes, configs, workers, progress := o.Traces, o.Sizes, o.Configs, o.Workers, o.Progress
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	rep := Report{}
	type job struct {
		t      *Trace
		frac   float64
		cap    int64
		cfg    Config
		belady bool
		out    *Row
	}
	var jobs []job
	var rows []*Row
	for _, t := range traces {
		keys, bytes := t.WorkingSet()
		rep.Traces = append(rep.Traces, TraceInfo{Name: t.Name, Description: t.Description, UnitSize: t.UnitSize(),
			Requests: len(t.Requests), DistinctChunks: keys, WorkingSetBytes: bytes, Params: t.Params})
		for _, f := range sizes {
			c := max(1, int64(math.Round(f*float64(bytes))))
			if o.FloorCapacity {
				c = max(1, int64(float64(bytes)*f))
			}
			if t.UnitSize() {
				r := &Row{Trace: t.Name, SizeFrac: f, SizePct: 100 * f, Capacity: c, Policy: "belady"}
				jobs = append(jobs, job{t: t, frac: f, cap: c, belady: true, out: r})
				rows = append(rows, r)
				if len(t.Phases) > 0 {
					res, err := StaticOracle(t, int(c))
					if err != nil {
						return Report{}, err
					}
					rows = append(rows, &Row{Trace: t.Name, SizeFrac: f, SizePct: 100 * f, Capacity: c, Policy: "static-oracle", Result: res})
				}
			}
			for _, cfg := range configs {
				r := &Row{Trace: t.Name, SizeFrac: f, SizePct: 100 * f, Capacity: c, Policy: cfg.Policy, Admission: cfg.Admission}
				jobs = append(jobs, job{t: t, frac: f, cap: c, cfg: cfg, out: r})
				rows = append(rows, r)
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan job)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	var progressMu sync.Mutex // progress is called from the workers, one call at a time
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				var res Result
				var err error
				if j.belady {
					res, err = Belady(j.t, int(j.cap))
				} else {
					res, err = Replay(ctx, j.t, eviction.Config{Policy: j.cfg.Policy, Admission: j.cfg.Admission, Capacity: j.cap})
				}
				if err != nil {
					once.Do(func() {
						firstErr = fmt.Errorf("%s at %.0f%% with %s: %w", j.t.Name, 100*j.frac, j.cfg.Label(), err)
						cancel()
					})
					continue
				}
				j.out.Result = res
				if progress != nil {
					progressMu.Lock()
					progress()
					progressMu.Unlock()
				}
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if firstErr != nil {
		return Report{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	rep.SizesPct = make([]float64, len(sizes))
	for i, f := range sizes {
		rep.SizesPct[i] = 100 * f
	}
	for _, r := range rows {
		rep.Rows = append(rep.Rows, *r)
	}
	rep.Best, rep.MinBestVsBelady, rep.MinAt = summarize(traces, rep.Rows)
	irm := map[string]bool{}
	for _, t := range traces {
		irm[t.Name] = t.IRM && t.UnitSize()
	}
	minOracle := math.Inf(1)
	for i := range rep.Best {
		b := &rep.Best[i]
		if irm[b.Trace] && b.OracleHitRatio > 0 {
			b.VsOracle = b.BestHitRatio / b.OracleHitRatio
			if b.VsOracle < minOracle {
				minOracle = b.VsOracle
				rep.MinOracleAt = fmt.Sprintf("%s@%g%%", b.Trace, b.SizePct)
			}
		}
	}
	if !math.IsInf(minOracle, 1) {
		rep.MinBestVsOracle = minOracle
	}
	return rep, nil
}

// JobCount is the number of replays RunSuite performs (for progress totals).
func JobCount(traces []*Trace, sizes []float64, configs []Config) int {
	n := 0
	for _, t := range traces {
		per := len(configs)
		if t.UnitSize() {
			per++
		}
		n += per * len(sizes)
	}
	return n
}

func summarize(traces []*Trace, rows []Row) ([]Best, float64, string) {
	var out []Best
	minRatio := math.Inf(1)
	type key struct {
		trace string
		pct   float64
	}
	idx := map[key]int{}
	for _, r := range rows {
		k := key{r.Trace, r.SizePct}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, Best{Trace: r.Trace, SizePct: r.SizePct, Capacity: r.Capacity})
		}
		b := &out[i]
		switch r.Policy {
		case "belady":
			b.BeladyHitRatio = r.HitRatio
			continue
		case "static-oracle":
			b.OracleHitRatio = r.HitRatio
			continue
		}
		label := Config{r.Policy, r.Admission}.Label()
		if b.BestConfig == "" || r.HitRatio > b.BestHitRatio {
			b.BestConfig, b.BestHitRatio = label, r.HitRatio
		}
		if b.BestCostConfig == "" || r.CostSavedRatio > b.BestCostSaved {
			b.BestCostConfig, b.BestCostSaved = label, r.CostSavedRatio
		}
	}
	unit := map[string]bool{}
	for _, t := range traces {
		unit[t.Name] = t.UnitSize()
	}
	minAt := ""
	for i := range out {
		b := &out[i]
		if unit[b.Trace] {
			b.BestCostConfig, b.BestCostSaved = "", 0 // equal to the hit ratio
			if b.BeladyHitRatio > 0 {
				b.VsBelady = b.BestHitRatio / b.BeladyHitRatio
				b.OracleVsBelady = b.OracleHitRatio / b.BeladyHitRatio
				if b.VsBelady < minRatio {
					minRatio = b.VsBelady
					minAt = fmt.Sprintf("%s@%g%%", b.Trace, b.SizePct)
				}
			}
		}
	}
	if math.IsInf(minRatio, 1) {
		minRatio = 0
	}
	return out, minRatio, minAt
}
