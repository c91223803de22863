package sim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// This file is the cross-check harness against libCacheSim (Yang et al.,
// https://github.com/1a1a11a/libCacheSim), the reference cache simulator: it runs
// libCacheSim's cachesim binary on a trace and parses its result lines, so that a
// replay here and there can be compared side by side (`ragkv bench eviction --trace F
// --libcachesim BIN`). libCacheSim is not part of ragkv: build it beside the project
// (`cmake .. && make cachesim` in its _build folder).

// ErrNoCachesim means the cachesim binary was not found.
var ErrNoCachesim = errors.New("sim: libCacheSim cachesim binary not found")

// LibCacheSimEnv names the environment variable holding the libCacheSim checkout (its
// cachesim binary is <dir>/_build/bin/cachesim and its sample traces <dir>/data);
// default: ../peers/libCacheSim beside the module root.
const LibCacheSimEnv = "RAGKV_LIBCACHESIM"

// LibCacheSimDir returns the libCacheSim checkout: $RAGKV_LIBCACHESIM, else
// peers/libCacheSim beside the directory holding go.mod above the working directory.
func LibCacheSimDir() (string, error) {
	if d := os.Getenv(LibCacheSimEnv); d != "" {
		if _, err := os.Stat(d); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNoCachesim, LibCacheSimEnv, d, err)
		}
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the working directory and %s unset", ErrNoCachesim, LibCacheSimEnv)
		}
		dir = parent
	}
	d := filepath.Join(filepath.Dir(dir), "peers", "libCacheSim")
	if _, err := os.Stat(d); err != nil {
		return "", fmt.Errorf("%w: %s (set %s)", ErrNoCachesim, d, LibCacheSimEnv)
	}
	return d, nil
}

// CachesimBinary returns <dir>/_build/bin/cachesim if it exists.
func CachesimBinary(dir string) (string, error) {
	b := filepath.Join(dir, "_build", "bin", "cachesim")
	if st, err := os.Stat(b); err != nil || st.IsDir() {
		return "", fmt.Errorf("%w: %s (build it: cd %s && mkdir -p _build && cd _build && cmake .. && make cachesim)", ErrNoCachesim, b, dir)
	}
	return b, nil
}

// LibCacheSimAlgos maps libCacheSim's algorithm names to ragkv's policies where the
// two implement the same algorithm with the same parameters, so that unit-size replays
// should agree (libCacheSim's GDSF uses cost 1, as replays of its traces do). With
// object sizes, ragkv's ARC adapts p by the request's size (the paper's rule in
// bytes), libCacheSim's by 1 byte, so sized ARC replays differ. Not paired: S3-FIFO
// (libCacheSim moves a small-queue entry to main after 2 hits, ragkv after 1, as in
// the paper's pseudocode), W-TinyLFU (different window and sketch), LFUDA (different
// tie-breaking and aging).
var LibCacheSimAlgos = map[string]string{
	"lru": "lru", "fifo": "fifo", "sieve": "sieve", "arc": "arc", "lirs": "lirs", "gdsf": "gdsf",
}

// DefaultLibCacheSimAlgos are the online algorithms the harness runs by default: the
// ones ragkv has, plus libCacheSim's other well-known online policies (Belady is
// reported separately).
var DefaultLibCacheSimAlgos = []string{"fifo", "lru", "clock", "sieve", "arc", "lirs", "s3fifo", "wtinylfu",
	"twoq", "slru", "lfu", "lfuda", "gdsf", "lecar", "cacheus", "lhd", "hyperbolic"}

// CachesimRow is one result of cachesim.
type CachesimRow struct {
	Algo          string  `json:"algo"`
	Name          string  `json:"name"` // as cachesim prints it (with parameters)
	SizeFrac      float64 `json:"size_frac"`
	CacheSize     int64   `json:"cache_size"`
	Requests      int64   `json:"requests"`
	HitRatio      float64 `json:"hit_ratio"`
	ByteHitRatio  float64 `json:"byte_hit_ratio"`
	MissRatio     float64 `json:"miss_ratio"`
	ByteMissRatio float64 `json:"byte_miss_ratio"`
}

// cachesimLine matches "<trace> <name> cache size <n><unit>, <r> req, miss ratio <m>,
// byte miss ratio <b>".
var cachesimLine = regexp.MustCompile(`^\S+\s+(\S.*?)\s+cache size\s+([0-9.]+)\s*([KMGT]i?B|B)?,\s*(\d+) req, miss ratio ([0-9.]+), byte miss ratio ([0-9.]+)`)

// ParseCachesimOutput parses cachesim's result lines (others are ignored), in order.
func ParseCachesimOutput(r io.Reader) ([]CachesimRow, error) {
	var out []CachesimRow
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		m := cachesimLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		size, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, fmt.Errorf("sim: cachesim output %q: %w", sc.Text(), err)
		}
		switch m[3] {
		case "KiB", "KB":
			size *= 1 << 10
		case "MiB", "MB":
			size *= 1 << 20
		case "GiB", "GB":
			size *= 1 << 30
		case "TiB", "TB":
			size *= 1 << 40
		}
		req, _ := strconv.ParseInt(m[4], 10, 64)
		miss, err1 := strconv.ParseFloat(m[5], 64)
		bmiss, err2 := strconv.ParseFloat(m[6], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("sim: cachesim output %q: bad ratio", sc.Text())
		}
		out = append(out, CachesimRow{Name: m[1], CacheSize: int64(math.Round(size)), Requests: req,
			MissRatio: miss, ByteMissRatio: bmiss, HitRatio: 1 - miss, ByteHitRatio: 1 - bmiss})
	}
	return out, sc.Err()
}

// CachesimOptions describe one cachesim run.
type CachesimOptions struct {
	Binary      string
	Trace       string
	Format      string // one of Formats() except chunk
	TraceParams string // cachesim -t (CSV columns)
	Algos       []string
	Sizes       []float64
	IgnoreSize  bool
	// Progress, if not nil, is called after each algorithm.
	Progress func(algo string)
}

// cachesimType maps a format to cachesim's trace type.
func cachesimType(format string) (string, error) {
	switch strings.ToLower(format) {
	case FormatTxt:
		return "txt", nil
	case FormatCSV:
		return "csv", nil
	case FormatOracleGeneral, "oraclegeneralbin":
		return "oracleGeneral", nil
	}
	return "", fmt.Errorf("%w: cachesim cannot read format %q", ErrTraceFormat, format)
}

// RunCachesim runs cachesim once per algorithm (all sizes at once) and returns its
// results, with SizeFrac and Algo filled in. Output goes to a temporary directory.
func RunCachesim(ctx context.Context, o CachesimOptions) ([]CachesimRow, error) {
	typ, err := cachesimType(o.Format)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "ragkv-cachesim-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	abs, err := filepath.Abs(o.Trace)
	if err != nil {
		return nil, err
	}
	sizes := make([]string, len(o.Sizes))
	for i, f := range o.Sizes {
		sizes[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	var out []CachesimRow
	for _, algo := range o.Algos {
		args := []string{abs, typ, algo, strings.Join(sizes, ","), "--num-thread", "1", "-o", filepath.Join(tmp, "out")}
		if o.IgnoreSize {
			args = append(args, "--ignore-obj-size", "1")
		}
		if o.TraceParams != "" {
			args = append(args, "-t", o.TraceParams)
		}
		cmd := exec.CommandContext(ctx, o.Binary, args...)
		cmd.Dir = tmp
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("sim: cachesim %s: %w: %s", algo, err, lastLines(stderr.String()+stdout.String(), 3))
		}
		rows, err := ParseCachesimOutput(io.MultiReader(&stdout, &stderr))
		if err != nil {
			return nil, err
		}
		if len(rows) != len(o.Sizes) {
			return nil, fmt.Errorf("sim: cachesim %s printed %d results for %d sizes: %s", algo, len(rows), len(o.Sizes), lastLines(stderr.String()+stdout.String(), 3))
		}
		// cachesim prints sizes in ascending order.
		fr := append([]float64(nil), o.Sizes...)
		sort.Float64s(fr)
		sort.SliceStable(rows, func(a, b int) bool { return rows[a].CacheSize < rows[b].CacheSize })
		for i := range rows {
			rows[i].Algo, rows[i].SizeFrac = strings.ToLower(algo), fr[i]
		}
		out = append(out, rows...)
		if o.Progress != nil {
			o.Progress(algo)
		}
	}
	return out, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Comparison is ragkv against libCacheSim at one cache size.
type Comparison struct {
	SizeFrac float64 `json:"size_frac"`
	// Best online configurations: ragkv's over every policy with and without TinyLFU
	// admission, ragkv's over eviction policies alone, and libCacheSim's over the
	// algorithms run.
	RagkvBest              string  `json:"ragkv_best"`
	RagkvBestHitRatio      float64 `json:"ragkv_best_hit_ratio"`
	RagkvBestEviction      string  `json:"ragkv_best_eviction_only"`
	RagkvBestEvictionRatio float64 `json:"ragkv_best_eviction_only_hit_ratio"`
	LibBest                string  `json:"libcachesim_best"`
	LibBestHitRatio        float64 `json:"libcachesim_best_hit_ratio"`
	// GapPoints is 100·(libCacheSim best − ragkv eviction-only best): positive when
	// ragkv is behind.
	GapPoints float64 `json:"gap_points"`
	// Same holds, per algorithm both have, whether the hit ratios agree to 3 decimals
	// (|Δ| < 0.0005), with both values.
	Same []SameAlgo `json:"same_algorithm"`
}

// SameAlgo compares one algorithm both simulators implement.
type SameAlgo struct {
	Algo        string  `json:"algo"`
	Ragkv       float64 `json:"ragkv_hit_ratio"`
	LibCacheSim float64 `json:"libcachesim_hit_ratio"`
	Equal3      bool    `json:"equal_to_3_decimals"`
}

// Compare pairs ragkv's rows of one trace with cachesim's rows by size.
func Compare(rows []Row, lib []CachesimRow) []Comparison {
	bySize := map[float64]*Comparison{}
	var order []float64
	get := func(f float64) *Comparison {
		c, ok := bySize[f]
		if !ok {
			c = &Comparison{SizeFrac: f}
			bySize[f] = c
			order = append(order, f)
		}
		return c
	}
	ragkv := map[[2]any]float64{}
	for _, r := range rows {
		if r.Policy == "belady" || r.Policy == "static-oracle" {
			continue
		}
		c := get(r.SizeFrac)
		label := Config{r.Policy, r.Admission}.Label()
		if c.RagkvBest == "" || r.HitRatio > c.RagkvBestHitRatio {
			c.RagkvBest, c.RagkvBestHitRatio = label, r.HitRatio
		}
		if r.Admission == "" || r.Admission == "none" {
			ragkv[[2]any{r.SizeFrac, r.Policy}] = r.HitRatio
			if c.RagkvBestEviction == "" || r.HitRatio > c.RagkvBestEvictionRatio {
				c.RagkvBestEviction, c.RagkvBestEvictionRatio = label, r.HitRatio
			}
		}
	}
	for _, l := range lib {
		if l.Algo == "belady" || l.Algo == "beladysize" {
			continue
		}
		c := get(l.SizeFrac)
		if c.LibBest == "" || l.HitRatio > c.LibBestHitRatio {
			c.LibBest, c.LibBestHitRatio = l.Algo, l.HitRatio
		}
		if pol, ok := LibCacheSimAlgos[l.Algo]; ok {
			if v, ok := ragkv[[2]any{l.SizeFrac, pol}]; ok {
				c.Same = append(c.Same, SameAlgo{Algo: l.Algo, Ragkv: v, LibCacheSim: l.HitRatio,
					Equal3: math.Abs(v-l.HitRatio) < 0.0005})
			}
		}
	}
	out := make([]Comparison, 0, len(order))
	sort.Float64s(order)
	for _, f := range order {
		c := bySize[f]
		c.GapPoints = 100 * (c.LibBestHitRatio - c.RagkvBestEvictionRatio)
		out = append(out, *c)
	}
	return out
}
