package blendbench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/model"
)

// bench prefill --compare F1 --compare F2 ...: the formats side by side in one process.
// Each format gets its own tier holding the same chunks; every round times each
// method from each format, the formats' order alternating between rounds (ABBA) so
// that a drifting machine load falls on both alike; full prefill (not format-
// dependent) runs once per round unless --no-full. Reported per format and method:
// every round's TTFT, min, median, and the median over rounds of the TTFT ratio to the
// first format in the same round (paired), plus the load-hidden fractions.

// CompareReport is the report of Compare (bench prefill --compare).
type CompareReport struct {
	Model       string  `json:"model"`
	Threads     int     `json:"threads"`
	KernelPath  string  `json:"kernel_path"`
	Tier        string  `json:"tier"`
	Chunks      int     `json:"chunks"`
	ChunkTokens int     `json:"chunk_tokens"`
	QueryTokens int     `json:"query_tokens"`
	Ratio       float64 `json:"ratio"`
	Rounds      int     `json:"rounds"`
	PreRoPE     bool    `json:"prerope,omitempty"`
	NoFull      bool    `json:"no_full,omitempty"`
	// LoadAvg is /proc/loadavg before the timed rounds and after them.
	LoadAvgStart string `json:"loadavg_start,omitempty"`
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
	// Full is full prefill's TTFT per round (absent with --no-full).
	Full    *CompareMethod   `json:"full,omitempty"`
	Formats []*CompareFormat `json:"formats"`
}

type CompareFormat struct {
	Format      string                    `json:"format"`
	StoredBytes int64                     `json:"stored_bytes"`
	PrecomputeS float64                   `json:"precompute_s"`
	Methods     map[string]*CompareMethod `json:"methods"`
	// LoadHiddenMin is the smallest load-hidden fraction of any fused prefill of
	// this format; LoadHidden is 1 − Σwait/Σ(load+rotate) over all of them.
	LoadHiddenMin float64 `json:"load_hidden_min"`
	LoadHidden    float64 `json:"load_hidden"`
	loadSum       float64
	waitSum       float64
}

type CompareMethod struct {
	TTFT       []float64 `json:"ttft_s"`
	TTFTMin    float64   `json:"ttft_min_s"`
	TTFTMedian float64   `json:"ttft_median_s"`
	// RatioToFirst is the median over rounds of TTFT / the first format's TTFT of the
	// same method in the same round (1 for the first format).
	RatioToFirst float64 `json:"ratio_to_first,omitempty"`
	// SpeedupMedian is the median over rounds of full's TTFT / this TTFT (same round).
	SpeedupMedian float64   `json:"speedup_median,omitempty"`
	LoadHidden    []float64 `json:"load_hidden,omitempty"`
}

func medianOf(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// runPrefillCompare sets up one bench per format (base options o, Format replaced)
// and times the rounds.
// Compare stores the same chunks in each format (one tier each) and times every fused
// method from each format per round, alternating the formats' order (ABBA); full prefill
// runs once per round unless noFull. Log gets per-round progress.
func Compare(ctx context.Context, m *model.Model, o Options, formats []string, noFull bool) (*CompareReport, error) {
	o.EnsureDefaults()
	rep := &CompareReport{Model: m.Path, Threads: m.Pool().Threads(), KernelPath: cpu.Describe(), Tier: o.Tier, Chunks: o.Chunks,
		ChunkTokens: o.ChunkTokens, QueryTokens: o.QueryTokens, Ratio: o.Ratio, Rounds: o.Iters, PreRoPE: o.PreRoPE, NoFull: noFull}
	var benches []*Bench
	defer func() {
		for _, b := range benches {
			b.Close()
		}
	}()
	for _, f := range formats {
		lf, err := chunkcache.ParseFormat(f)
		if err != nil {
			return nil, fmt.Errorf("%w: format %q: %v", ErrInvalid, f, err)
		}
		fo := o
		fo.Format, fo.DType, fo.Iters, fo.Dir = lf, lf.DType, 1, ""
		if o.Log != nil {
			o.Log.Info("precomputing chunks", "format", f, "chunks", o.Chunks, "tokens", o.ChunkTokens, "tier", o.Tier)
		}
		bn, err := Setup(ctx, m, fo)
		if err != nil {
			return nil, fmt.Errorf("format %s: %w", f, err)
		}
		benches = append(benches, bn)
		rep.Formats = append(rep.Formats, &CompareFormat{Format: f, StoredBytes: bn.StoredBytes(), PrecomputeS: bn.PrecomputeTime.Seconds(),
			Methods: map[string]*CompareMethod{}, LoadHiddenMin: 1})
	}
	// Warm up the weights and pools, and each format's read path once (untimed).
	for _, bn := range benches {
		if _, _, err := bn.Prefill(ctx, blend.CacheBlend); err != nil {
			return nil, err
		}
	}
	methods := []blend.Method{blend.CacheBlend, blend.CacheCraft}
	if !noFull {
		rep.Full = &CompareMethod{}
	}
	rep.LoadAvgStart = loadAvg()
	for it := 0; it < o.Iters; it++ {
		var full float64
		if !noFull {
			t := time.Now()
			if _, _, err := benches[0].Prefill(ctx, blend.Full); err != nil {
				return nil, err
			}
			full = time.Since(t).Seconds()
			rep.Full.TTFT = append(rep.Full.TTFT, full)
		}
		order := make([]int, len(benches))
		for i := range order {
			order[i] = i
		}
		if it%2 == 1 {
			slices.Reverse(order)
		}
		for _, fi := range order {
			fr := rep.Formats[fi]
			for _, meth := range methods {
				t := time.Now()
				res, _, err := benches[fi].Prefill(ctx, meth)
				if err != nil {
					return nil, fmt.Errorf("%s from %s: %w", meth, fr.Format, err)
				}
				ttft := time.Since(t).Seconds()
				mr := fr.Methods[string(meth)]
				if mr == nil {
					mr = &CompareMethod{}
					fr.Methods[string(meth)] = mr
				}
				s := res.Stats
				mr.TTFT = append(mr.TTFT, ttft)
				mr.LoadHidden = append(mr.LoadHidden, s.LoadHiddenFrac)
				fr.LoadHiddenMin = min(fr.LoadHiddenMin, s.LoadHiddenFrac)
				fr.loadSum += (s.Load + s.Rotate).Seconds()
				fr.waitSum += s.Wait.Seconds()
				if o.Log != nil {
					o.Log.Info("prefill", "round", it, "format", fr.Format, "method", meth, "ttft_s", ttft, "hidden", s.LoadHiddenFrac)
				}
			}
		}
	}
	rep.LoadAvgEnd = loadAvg()
	if rep.Full != nil {
		rep.Full.TTFTMin, rep.Full.TTFTMedian = slices.Min(rep.Full.TTFT), medianOf(rep.Full.TTFT)
	}
	for fi, fr := range rep.Formats {
		if fr.loadSum > 0 {
			fr.LoadHidden = max(0, 1-fr.waitSum/fr.loadSum)
		}
		for name, mr := range fr.Methods {
			mr.TTFTMin, mr.TTFTMedian = slices.Min(mr.TTFT), medianOf(mr.TTFT)
			first := rep.Formats[0].Methods[name]
			var ratios, speedups []float64
			for r := range mr.TTFT {
				ratios = append(ratios, mr.TTFT[r]/first.TTFT[r])
				if rep.Full != nil {
					speedups = append(speedups, rep.Full.TTFT[r]/mr.TTFT[r])
				}
			}
			if fi > 0 {
				mr.RatioToFirst = medianOf(ratios)
			} else {
				mr.RatioToFirst = 1
			}
			mr.SpeedupMedian = medianOf(speedups)
		}
	}
	return rep, nil
}

// Print writes the report as text.
func (rep *CompareReport) Print(out io.Writer) {
	methods := []blend.Method{blend.CacheBlend, blend.CacheCraft}
	fmt.Fprintf(out, "%s (%d threads, kernels %s), %d×%d chunk tokens + %d query tokens, tier %s, ratio %g, %d rounds; loadavg %s → %s\n",
		rep.Model, rep.Threads, rep.KernelPath, rep.Chunks, rep.ChunkTokens, rep.QueryTokens, rep.Tier, rep.Ratio, rep.Rounds, rep.LoadAvgStart, rep.LoadAvgEnd)
	if rep.Full != nil {
		fmt.Fprintf(out, "%-22s ttft min %8.3fs median %8.3fs\n", "full", rep.Full.TTFTMin, rep.Full.TTFTMedian)
	}
	for _, fr := range rep.Formats {
		for _, meth := range methods {
			mr := fr.Methods[string(meth)]
			fmt.Fprintf(out, "%-10s %-11s ttft min %8.3fs median %8.3fs  ×first %.3f  speedup %.2fx  hidden min %.3f\n",
				fr.Format, meth, mr.TTFTMin, mr.TTFTMedian, mr.RatioToFirst, mr.SpeedupMedian, slices.Min(mr.LoadHidden))
		}
		fmt.Fprintf(out, "%-10s stored %d bytes, load hidden %.3f (min %.3f)\n", fr.Format, fr.StoredBytes, fr.LoadHidden, fr.LoadHiddenMin)
	}
}
