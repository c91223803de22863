package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/certs"
	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/model"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/server/auth"
	"github.com/ragkv/ragkv/store"
)

// benchLoadResult is the JSON line of `ragkv bench load`.
type benchLoadResult struct {
	Clients    int     `json:"clients"`
	Identities int     `json:"identities"`
	Seconds    float64 `json:"seconds"`
	TLS        bool    `json:"tls"`
	Auth       bool    `json:"auth"`
	Server     string  `json:"server"` // "in-process" or "child" (a `ragkv serve` process)
	Requests   int64   `json:"requests"`
	// Errors counts failed well-formed requests (must be 0).
	Errors     int64              `json:"errors"`
	ErrorCodes map[string]int64   `json:"error_codes"`
	PerRPC     map[string]int64   `json:"requests_per_rpc"`
	P99Ms      map[string]float64 `json:"p99_ms"`
	P50Ms      map[string]float64 `json:"p50_ms"`
	ReqPerSec  float64            `json:"requests_per_sec"`
	// BudgetViolations counts Stats samples where a tier held more than its capacity.
	BudgetViolations int64 `json:"budget_violations"`
	// IsolationViolations counts probes of another identity's namespace that did not
	// answer NotFound (must be 0).
	IsolationViolations int64 `json:"isolation_violations"`
	// QuotaViolations sums the bytes a tenant namespace held beyond its quota after an
	// operation, over both tiers (in-process server: each tenant namespace has a quota of
	// 0.99/identities of each tier; must be 0). Null against a serve child.
	QuotaViolations *int64 `json:"quota_violations"`
	// FillChunks and FillSeconds: chunks put (in process) to fill the tiers before the
	// timed run (--fill).
	FillChunks  int     `json:"fill_chunks,omitempty"`
	FillSeconds float64 `json:"fill_seconds,omitempty"`
	// WarmupSeconds is when the RSS baseline was taken: after --warmup and once the
	// disk tier had filled to 95% of its capacity (steady state: both tiers evicting),
	// at most half the run.
	WarmupSeconds float64 `json:"warmup_seconds"`
	RSSWarmBytes  int64   `json:"rss_after_warmup_bytes"`
	RSSEndBytes   int64   `json:"rss_end_bytes"`
	RSSGrowthFrac float64 `json:"rss_growth_frac"`
	// The RSS split (/proc status): anonymous memory (Go heap, stacks, Badger's
	// anonymous allocations) and file-backed pages (Badger's memory-mapped value log,
	// memtables and tables, the binary).
	RSSAnonWarmBytes  int64   `json:"rss_anon_after_warmup_bytes"`
	RSSAnonEndBytes   int64   `json:"rss_anon_end_bytes"`
	RSSAnonGrowthFrac float64 `json:"rss_anon_growth_frac"`
	RSSFileWarmBytes  int64   `json:"rss_file_after_warmup_bytes"`
	RSSFileEndBytes   int64   `json:"rss_file_end_bytes"`
	// HeapWarmBytes/HeapEndBytes are the Go heap in use (after a GC) at the same
	// points (in-process server only; the clients' heap is included).
	HeapWarmBytes  uint64  `json:"heap_after_warmup_bytes"`
	HeapEndBytes   uint64  `json:"heap_end_bytes"`
	HeapGrowthFrac float64 `json:"heap_growth_frac"`
	// RSSRetained*: RSS right after the Go heap was collected and its free pages
	// returned to the OS (debug.FreeOSMemory, in-process server only), at the same two
	// points, read after the plain RSS figures above: what the process keeps, without
	// the garbage and free pages the collector's pacing and the scavenger leave. A leak
	// grows it; GC pacing does not.
	RSSRetainedWarmBytes  int64   `json:"rss_retained_after_warmup_bytes,omitempty"`
	RSSRetainedEndBytes   int64   `json:"rss_retained_end_bytes,omitempty"`
	RSSRetainedGrowthFrac float64 `json:"rss_retained_growth_frac,omitempty"`
	// GoMemEnd is the Go runtime's view at the end (in-process server only): heap in
	// use, heap freed but not returned to the OS, goroutine stacks, everything the
	// runtime obtained from the OS.
	GoMemEnd *goMem `json:"go_mem_end,omitempty"`
	// RSSByKindEndMiB is the resident memory at the end by mapping (/proc smaps): file
	// mappings grouped by kind (Badger's value log "*.vlog", memtables "*.mem", tables
	// "*.sst", the binary, other files) and anonymous memory ("anon").
	RSSByKindEndMiB map[string]float64 `json:"rss_by_kind_end_mib,omitempty"`
	// RSSSamples is the RSS (MiB) once per second, to see where it levels off.
	RSSSamples []int64 `json:"rss_mib_per_second,omitempty"`
	// Kill is the outcome of --kill-after.
	Kill *benchKillResult `json:"kill,omitempty"`
	Note string           `json:"note"`
}

// benchKillResult is what the restart after the SIGKILL found.
type benchKillResult struct {
	KilledAfterSeconds float64 `json:"killed_after_seconds"`
	// Acknowledged puts (the client saw PutChunk return) before the kill; every one is
	// read back after the restart.
	Acknowledged int `json:"acknowledged"`
	Intact       int `json:"intact"`
	Lost         int `json:"lost"`
	// Corrupt: read back with other bytes; ReadErrors: the read failed otherwise.
	Corrupt    int              `json:"corrupt"`
	ReadErrors map[string]int64 `json:"read_errors,omitempty"`
	// DiskEvictions is the disk tier's eviction count last seen before the kill: when
	// not 0, a missing chunk may have been evicted, not lost (the run is then not a
	// consistency check; raise --disk-capacity).
	DiskEvictions uint64 `json:"disk_evictions_before_kill"`
	// Check is `ragkv cache check` (chunkcache.Verify) on the data directory after the
	// kill, before the restart.
	Check          chunkcache.VerifyReport `json:"check"`
	RestartSeconds float64                 `json:"restart_seconds"`
	// ErrorsAfterKill are client errors after the kill (expected: not counted).
	ErrorsAfterKill int64 `json:"errors_after_kill"`
}

// loadConfig is the flags of `ragkv bench load`.
type loadConfig struct {
	clients, identities int
	duration, warmup    time.Duration
	memCap, diskCap     int64
	// killAfter > 0: run against a `ragkv serve` child, SIGKILL it then, restart and check.
	killAfter time.Duration
	// model/tokenizer: prefill in the mix (in-process server only).
	model, tokenizer string
	// passages > 0: a retrieval collection of that many synthetic passages, Retrieve in
	// the mix (in-process server only).
	passages int
	// badgerMemTable, badgerBlockCache: the disk tier's Badger caches (0: defaults).
	badgerMemTable, badgerBlockCache int64
	// badgerVlogFile, badgerGC: the value-log file size and GC interval (0: defaults).
	badgerVlogFile int64
	badgerGC       time.Duration
	// fill: before the timed run, fill both tiers (in process, through the cache API)
	// until RAM evicts and the disk tier is 95% full: the steady state of a long run.
	fill bool
}

func init() {
	cfg := loadConfig{memCap: 64 << 20, diskCap: 256 << 20}
	var memCap, diskCap, memTable, blockCache, vlogFile cacheBytes = 64 << 20, 0, 0, 0, 0
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Load a server (TLS, tokens, several identities and namespaces) with mixed put/get/lookup/prefill/retrieve and cross-tenant probes",
		Long: `Starts a server in this process (memory + Badger tiers in a temporary directory,
TLS with a private CA, an auth file with --identities writers, one namespace each) and runs
--clients concurrent clients for --duration, each as one identity. The mix (weights of 20):
PutChunk 4 (4 layers of 16 f16 tokens), GetChunk of its own chunks 6, Lookup 5, Lookup in
another identity's namespace 2 (must answer NotFound), Retrieve 2 (with --passages: BM25 over
a synthetic collection the identities may read), Prefill 1 (with --model: cacheblend over two
of the collection's passages or fixed texts and a query, in the identity's namespace);
absent kinds go to Lookup. A sampler checks that no tier exceeds its capacity. RSS is read
once per second; its baseline is taken after --warmup and once the disk tier is 95% full.

--kill-after D runs the same load (put/get/lookup/probe) against a separate ragkv serve
process on a data directory, SIGKILLs it after D, checks the directory offline
(chunkcache.Verify, as ragkv cache check), restarts the server on it and reads back every
chunk whose PutChunk was acknowledged before the kill: each must be there, bit-exact.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.clients < 1 {
				return flagErr("clients", "must be positive, got %d", cfg.clients)
			}
			if cfg.identities < 1 {
				return flagErr("identities", "must be positive, got %d", cfg.identities)
			}
			if cfg.duration <= 0 {
				return flagErr("duration", "must be positive")
			}
			if cfg.warmup < 0 {
				return flagErr("warmup", "must be ≥ 0")
			}
			if cfg.killAfter < 0 || (cfg.killAfter > 0 && cfg.killAfter >= cfg.duration) {
				return flagErr("kill-after", "must be in (0, --duration)")
			}
			if cfg.passages < 0 {
				return flagErr("passages", "must be ≥ 0")
			}
			if cfg.killAfter > 0 && (cfg.model != "" || cfg.passages > 0) {
				return flagErr("kill-after", "runs put/get/lookup only: leave out --model and --passages")
			}
			if cfg.model != "" {
				if _, err := os.Stat(cfg.model); err != nil {
					return flagErr("model", "%v", err)
				}
			}
			cfg.memCap, cfg.diskCap = int64(memCap), int64(diskCap)
			if cfg.diskCap == 0 {
				cfg.diskCap = 256 << 20
				if cfg.killAfter > 0 {
					cfg.diskCap = 4 << 30 // nothing evicted: every acknowledged chunk must be there
				}
			}
			cfg.badgerMemTable, cfg.badgerBlockCache, cfg.badgerVlogFile = int64(memTable), int64(blockCache), int64(vlogFile)
			if v := cfg.badgerVlogFile; v != 0 && (v < 1<<20 || v >= 2<<30) {
				return flagErr("badger-vlog-file", "want 1MiB..2GiB, got %d", v)
			}
			if m := cfg.badgerMemTable; m != 0 && m < 1<<20 {
				return flagErr("badger-memtable", "want ≥ 1MiB, got %d", m)
			}
			if cfg.badgerGC < 0 {
				return flagErr("badger-gc-interval", "must be ≥ 0")
			}
			res, err := runBenchLoad(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d requests in %.1fs (%.0f/s), %d errors, budget violations %d, isolation violations %d, rss growth %.3f (anon %.3f)\n",
				res.Requests, res.Seconds, res.ReqPerSec, res.Errors, res.BudgetViolations, res.IsolationViolations, res.RSSGrowthFrac, res.RSSAnonGrowthFrac)
			for _, k := range slices.Sorted(mapKeys(res.P99Ms)) {
				fmt.Fprintf(cmd.OutOrStdout(), "  %-10s %8d requests  p50 %.2f ms  p99 %.2f ms\n", k, res.PerRPC[k], res.P50Ms[k], res.P99Ms[k])
			}
			if k := res.Kill; k != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "killed after %.1fs: %d acknowledged, %d intact, %d lost, %d corrupt; cache check ok=%v (%d problems)\n",
					k.KilledAfterSeconds, k.Acknowledged, k.Intact, k.Lost, k.Corrupt, k.Check.OK, k.Check.Count)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.clients, "clients", 64, "concurrent clients")
	f.IntVar(&cfg.identities, "identities", 8, "identities (one namespace each)")
	f.DurationVar(&cfg.duration, "duration", 30*time.Second, "how long to run")
	f.DurationVar(&cfg.warmup, "warmup", 0, "least warm-up before the RSS baseline (default a fifth of --duration)")
	f.DurationVar(&cfg.killAfter, "kill-after", 0, "SIGKILL a ragkv serve child after this long, restart it and check every acknowledged chunk")
	f.Var(&memCap, "mem-capacity", "memory tier capacity")
	f.Var(&diskCap, "disk-capacity", "disk tier capacity (default 256MiB; 4GiB with --kill-after)")
	f.Var(&memTable, "badger-memtable", "the disk tier's Badger memtable size (default: the store's, 32MiB)")
	f.Var(&blockCache, "badger-block-cache", "the disk tier's Badger block cache (default: the store's, 64MiB)")
	f.Var(&vlogFile, "badger-vlog-file", "the disk tier's Badger value-log file size (default: the store's, 512MiB; GC rewrites only files other than the one being written)")
	f.DurationVar(&cfg.badgerGC, "badger-gc-interval", 0, "the disk tier's value-log GC interval (default: the store's, 1m)")
	f.StringVar(&cfg.model, "model", "", "model for Prefill in the mix (e.g. stories260K.bin); empty: no prefill")
	f.StringVar(&cfg.tokenizer, "tokenizer", "", "tokenizer of --model")
	f.IntVar(&cfg.passages, "passages", 0, "synthetic passages in a retrieval collection for Retrieve in the mix (0: no retrieve)")
	f.BoolVar(&cfg.fill, "fill", true, "fill both tiers to capacity before the timed run (in-process server; steady state)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	benchCmd.AddCommand(cmd)
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// goMem is a summary of runtime.MemStats.
type goMem struct {
	HeapInuse          uint64 `json:"heap_inuse_bytes"`
	HeapIdleUnreleased uint64 `json:"heap_idle_unreleased_bytes"`
	Stacks             uint64 `json:"stack_bytes"`
	Sys                uint64 `json:"sys_bytes"`
	Goroutines         int    `json:"goroutines"`
}

func readGoMem() *goMem {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return &goMem{HeapInuse: ms.HeapInuse, HeapIdleUnreleased: ms.HeapIdle - ms.HeapReleased, Stacks: ms.StackSys,
		Sys: ms.Sys, Goroutines: runtime.NumGoroutine()}
}

// heapInUse is the Go heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// procMem is VmRSS, RssAnon and RssFile (+RssShmem) of a process ("self" or a pid).
type procMem struct{ rss, anon, file int64 }

func readProcMem(pid string) procMem {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return procMem{}
	}
	var m procMem
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch name {
		case "VmRSS":
			m.rss = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile", "RssShmem":
			m.file += kb << 10
		}
	}
	return m
}

// rssByKind sums the Rss of a process's mappings by kind (see RSSByKindEndMiB).
func rssByKind(pid string) map[string]float64 {
	b, err := os.ReadFile("/proc/" + pid + "/smaps")
	if err != nil {
		return nil
	}
	exe, _ := os.Executable()
	out := map[string]float64{}
	kind := "anon"
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			kind = "anon"
			if len(f) >= 6 && strings.HasPrefix(f[5], "/") {
				switch path := f[5]; {
				case strings.HasSuffix(path, ".vlog"):
					kind = "badger *.vlog"
				case strings.HasSuffix(path, ".mem"):
					kind = "badger *.mem"
				case strings.HasSuffix(path, ".sst"):
					kind = "badger *.sst"
				case path == exe:
					kind = "binary"
				default:
					kind = "other files"
				}
			}
		case len(f) >= 2 && f[0] == "Rss:":
			kb, _ := strconv.ParseFloat(f[1], 64)
			out[kind] += kb / 1024
		}
	}
	return out
}

// rssBytes is VmRSS of this process (0 if unknown).
func rssBytes() int64 { return readProcMem("self").rss }

// loadTarget is a server the clients load.
type loadTarget struct {
	addr     string
	tls      *tls.Config
	pid      string // "self" (in-process) or the child's pid
	inferenc bool
	passages int
	cache    *chunkcache.Cache // in-process server only
}

// fillTiers puts bench chunks straight into the cache (4 writers, namespaces of the
// identities, seeds outside the clients' range) until the memory tier has evicted and
// the disk tier is 95% full, or 5 minutes pass.
func fillTiers(ctx context.Context, cache *chunkcache.Cache, identities int) (int, error) {
	full := func() bool {
		st := cache.Stats()
		if len(st.Tiers) < 2 {
			return st.Tiers[0].Evictions > 0
		}
		d := st.Tiers[1]
		return st.Tiers[0].Evictions > 0 && float64(d.Bytes) >= 0.95*float64(d.Capacity)
	}
	deadline := time.Now().Add(5 * time.Minute)
	var n atomic.Int64
	var done atomic.Bool
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := uint64(0); !done.Load(); i++ {
				if ctx.Err() != nil || time.Now().After(deadline) {
					done.Store(true)
					return
				}
				seed := uint64(1<<31+w)<<32 | i
				ns := fmt.Sprintf("tenant-%d", int(i)%identities)
				if err := fillPut(ctx, cache, ns, seed); err != nil {
					errc <- err
					done.Store(true)
					return
				}
				if n.Add(1)%256 == 0 && full() {
					done.Store(true)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return int(n.Load()), fmt.Errorf("bench load: fill: %w", err)
	}
	return int(n.Load()), ctx.Err()
}

// fillPut puts benchChunk(ns, seed) through the cache API (as PutChunk would).
func fillPut(ctx context.Context, cache *chunkcache.Cache, ns string, seed uint64) error {
	h, kv := benchChunk(ns, seed)
	l := h.GetLayout()
	w, err := cache.NewWriter(ctx, chunkcache.PutSpec{Namespace: ns, Tokens: h.GetTokenIds(), PositionBase: h.GetPositionBase(),
		Model:  chunkcache.Fingerprint{Architecture: h.GetModel().GetArchitecture(), WeightsDigest: h.GetModel().GetWeightsDigest(), TokenizerDigest: h.GetModel().GetTokenizerDigest()},
		Layout: chunkcache.Layout{Layers: int(l.GetLayers()), KVHeads: int(l.GetKvHeads()), HeadDim: int(l.GetHeadDim()), DType: chunkcache.F16}})
	if err != nil {
		return err
	}
	for i, p := range kv {
		if err := w.WriteLayerRaw(i, chunkcache.LayerParts{K: p[0], V: p[1]}, nil); err != nil {
			w.Abort()
			return err
		}
	}
	_, err = w.Commit(ctx)
	return err
}

// loadIdentities writes the auth file: an admin and one writer per namespace (reading
// the bench collection). max_handles is high so that the Prefill handles a server
// keeps (until their TTL, where Prefill keeps one per request) never refuse a prefill
// of the mix.
func loadIdentities(dir string, identities int) (path string, tokens []string, err error) {
	tokens = make([]string, identities)
	var y strings.Builder
	y.WriteString("identities:\n  - name: bench-admin\n    role: admin\n    token_sha256: " + auth.HashToken("bench-admin-token") + "\n    namespaces: [\"*\"]\n    collections: [\"*\"]\n")
	for i := range tokens {
		tokens[i] = fmt.Sprintf("bench-token-%d-%d", i, rand.Uint64())
		fmt.Fprintf(&y, "  - name: tenant-%d\n    role: writer\n    token_sha256: %s\n    namespaces: [\"tenant-%d\"]\n    collections: [\"bench\"]\n    max_handles: 1000000\n",
			i, auth.HashToken(tokens[i]), i)
	}
	path = filepath.Join(dir, "auth.yaml")
	return path, tokens, os.WriteFile(path, []byte(y.String()), 0o600)
}

func runBenchLoad(ctx context.Context, cfg loadConfig) (*benchLoadResult, error) {
	if cfg.warmup == 0 {
		cfg.warmup = cfg.duration / 5
	}
	dir, err := os.MkdirTemp("", "ragkv-bench-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tf, err := certs.Write(filepath.Join(dir, "tls"), []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		return nil, err
	}
	authPath, tokens, err := loadIdentities(dir, cfg.identities)
	if err != nil {
		return nil, err
	}
	ccfg, err := server.ClientTLSConfig(server.TLSFiles{CA: tf.CA})
	if err != nil {
		return nil, err
	}
	if cfg.killAfter > 0 {
		return runBenchLoadKill(ctx, cfg, dir, tf, authPath, tokens, ccfg)
	}
	target, stop, err := startLoadServer(ctx, cfg, dir, tf, authPath)
	if err != nil {
		return nil, err
	}
	defer stop()
	target.tls = ccfg
	var filled int
	var fillSecs float64
	if cfg.fill {
		t0 := time.Now()
		if filled, err = fillTiers(ctx, target.cache, cfg.identities); err != nil {
			return nil, err
		}
		fillSecs = time.Since(t0).Seconds()
	}
	res, _, err := driveLoad(ctx, cfg, target, tokens, nil)
	if err != nil {
		return nil, err
	}
	res.FillChunks, res.FillSeconds = filled, fillSecs
	res.Server = "in-process"
	var qv int64
	for _, t := range target.cache.Stats().Tiers {
		qv += int64(t.QuotaViolationBytes)
	}
	res.QuotaViolations = &qv
	res.Note = "in-process server and clients; RSS covers both; each tenant namespace has a quota of 0.99/identities of each tier" + res.Note
	return res, nil
}

// startLoadServer starts the in-process server: chunk cache (memory over Badger),
// optionally the inference engine and a retrieval collection.
func startLoadServer(ctx context.Context, cfg loadConfig, dir string, tf certs.Files, authPath string) (_ *loadTarget, stop func(), err error) {
	quiet := slog.New(slog.DiscardHandler)
	var closers []func()
	stopAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			stopAll()
		}
	}()
	st, err := auth.Load(authPath)
	if err != nil {
		return nil, nil, err
	}
	bo := store.BadgerOptions{Dir: filepath.Join(dir, "disk"), Logger: quiet,
		MemTableSize: cfg.badgerMemTable, BlockCacheSize: cfg.badgerBlockCache, ValueLogFileSize: cfg.badgerVlogFile, GCInterval: cfg.badgerGC}
	if bo.ValueLogFileSize > 0 {
		bo.SegmentBytes = min(64<<20, bo.ValueLogFileSize/2)
	}
	disk, err := store.OpenBadger(ctx, bo)
	if err != nil {
		return nil, nil, err
	}
	// Every tenant namespace has a byte quota in each tier (0.99/identities of it, so the
	// quotas fill the tiers): the bench checks that no operation takes a namespace past it.
	memQ, diskQ := map[string]int64{}, map[string]int64{}
	for i := 0; i < cfg.identities; i++ {
		ns := fmt.Sprintf("tenant-%d", i)
		memQ[ns], diskQ[ns] = int64(0.99*float64(cfg.memCap))/int64(cfg.identities), int64(0.99*float64(cfg.diskCap))/int64(cfg.identities)
	}
	cache, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{
		{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: cfg.memCap}, Quotas: memQ},
		{Tier: disk, Eviction: eviction.Config{Capacity: cfg.diskCap}, Quotas: diskQ},
	}, Logger: quiet})
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() { _ = cache.Close() })
	opts := []server.Option{server.WithChunkCache(cache), server.WithLogger(quiet)}
	target := &loadTarget{pid: "self", cache: cache}
	if cfg.model != "" {
		m, err := model.Open(cfg.model, model.Options{Tokenizer: cfg.tokenizer})
		if err != nil {
			return nil, nil, flagErr("model", "%v", err)
		}
		closers = append(closers, func() { _ = m.Close() })
		bst, err := blend.NewStore(m, cache, blend.StoreOptions{DType: chunkcache.F16})
		if err != nil {
			return nil, nil, err
		}
		eng, err := blend.NewEngine(bst, blend.EngineOptions{Logger: quiet})
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, server.WithInference(eng))
		target.inferenc = true
	}
	if cfg.passages > 0 {
		rs, err := retrieval.Open(ctx, retrieval.Options{Dir: filepath.Join(dir, "retrieval"), Logger: quiet})
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, func() { _ = rs.Close() })
		in, err := rs.BeginIngest(ctx, "bench", retrieval.IngestOptions{Shards: 2})
		if err != nil {
			return nil, nil, err
		}
		docs := make([]retrieval.Document, cfg.passages)
		for i := range docs {
			docs[i] = retrieval.Document{ID: strconv.Itoa(i), Text: benchPassage(i)}
		}
		if err := in.Add(ctx, docs...); err != nil {
			in.Abort()
			return nil, nil, err
		}
		if _, err := in.Commit(ctx); err != nil {
			return nil, nil, err
		}
		opts = append(opts, server.WithRetrieval(rs))
		target.passages = cfg.passages
	}
	scfg, err := server.ServerTLSConfig(server.TLSFiles{Cert: tf.Cert, Key: tf.Key})
	if err != nil {
		return nil, nil, err
	}
	srv, err := server.New(append(opts, server.WithTLS(scfg), server.WithAuth(st, server.AuthOptions{}))...)
	if err != nil {
		return nil, nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	closers = append(closers, func() { srv.Stop(context.Background()); <-done })
	target.addr = lis.Addr().String()
	return target, stopAll, nil
}

var benchWords = strings.Fields("tom lily ball park dog cat tree red big small happy sad sun rain cake mom dad friend toy box " +
	"bird fish water sky green blue house garden car boat river hill flower book school play run jump")

// benchPassage is synthetic passage i (deterministic).
func benchPassage(i int) string {
	r := rand.New(rand.NewPCG(uint64(i), 99))
	w := make([]string, 24+r.IntN(24))
	for j := range w {
		w[j] = benchWords[r.IntN(len(benchWords))]
	}
	return strings.Join(w, " ") + "."
}

// killFlag reports whether the kill channel is closed (never, for a nil channel).
type killFlag struct{ ch <-chan struct{} }

func (k killFlag) Load() bool {
	if k.ch == nil {
		return false
	}
	select {
	case <-k.ch:
		return true
	default:
		return false
	}
}

// ackedPut is a chunk whose PutChunk was acknowledged.
type ackedPut struct {
	ns   string
	seed uint64
	key  []byte
}

// driveLoad runs the clients against target until cfg.duration (or kill closes), and
// returns the figures and the acknowledged puts.
func driveLoad(ctx context.Context, cfg loadConfig, target *loadTarget, tokens []string, kill <-chan struct{}) (*benchLoadResult, []ackedPut, error) {
	dial := func(tok string) (*grpc.ClientConn, error) {
		return grpc.NewClient(target.addr, grpc.WithTransportCredentials(credentials.NewTLS(target.tls)),
			grpc.WithPerRPCCredentials(tokenCreds{token: tok, secure: true}))
	}
	adminConn, err := dial("bench-admin-token")
	if err != nil {
		return nil, nil, err
	}
	defer adminConn.Close()
	admin := ragkvv1.NewChunkCacheClient(adminConn)

	var (
		mu          sync.Mutex
		lat         = map[string][]time.Duration{}
		acked       []ackedPut
		errs        atomic.Int64
		lateErrs    atomic.Int64
		isolation   atomic.Int64
		budget      atomic.Int64
		diskEvicted atomic.Uint64
		diskFull    atomic.Bool
		killed      = killFlag{kill}
		firstErr    atomic.Value
		codesMu     sync.Mutex
		errCodes    = map[string]int64{}
	)
	countCode := func(rpc string, err error) {
		codesMu.Lock()
		errCodes[rpc+":"+status.Code(err).String()]++
		codesMu.Unlock()
	}
	start := time.Now()
	// Clients stop starting requests at stopAt (or at the kill); their calls carry no
	// deadline, so that requests in flight at the end complete instead of failing
	// DeadlineExceeded.
	stopAt := start.Add(cfg.duration)
	runCtx, cancel := context.WithDeadline(ctx, stopAt)
	defer cancel()
	callCtx, cancelCalls := context.WithCancel(ctx)
	defer cancelCalls()
	if kill != nil {
		go func() {
			select {
			case <-kill:
				cancelCalls()
				cancel()
			case <-runCtx.Done():
			}
		}()
	}
	var wg sync.WaitGroup
	// Budget sampler.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			s, err := admin.Stats(runCtx, &ragkvv1.ChunkCacheStatsRequest{})
			if err != nil {
				continue
			}
			for _, tr := range s.GetTiers() {
				if tr.GetBytes() > tr.GetCapacityBytes() {
					budget.Add(1)
				}
				if tr.GetName() == "disk" {
					diskEvicted.Store(tr.GetEvictions())
					if float64(tr.GetBytes()) >= 0.95*float64(tr.GetCapacityBytes()) {
						diskFull.Store(true)
					}
				}
			}
		}
	}()
	// Memory sampler: once per second; the baseline after the warm-up.
	var (
		memWarm    procMem
		heapWarm   uint64
		retWarm    int64
		warmAt     time.Duration
		rssSamples []int64
		memDone    = make(chan struct{})
	)
	go func() {
		defer close(memDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			m := readProcMem(target.pid)
			rssSamples = append(rssSamples, m.rss>>20)
			el := time.Since(start)
			if warmAt == 0 && el >= cfg.warmup && (diskFull.Load() || el >= cfg.duration/2) {
				warmAt = el
				memWarm = m
				if target.pid == "self" {
					heapWarm = heapInUse()
					debug.FreeOSMemory()
					retWarm = rssBytes()
				}
			}
		}
	}()
	for c := 0; c < cfg.clients; c++ {
		id := c % cfg.identities
		conn, err := dial(tokens[id])
		if err != nil {
			return nil, nil, err
		}
		defer conn.Close()
		cl := ragkvv1.NewChunkCacheClient(conn)
		inf := ragkvv1.NewInferenceClient(conn)
		rc := ragkvv1.NewRetrievalClient(conn)
		wg.Add(1)
		go func(c, id int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 42))
			ns := fmt.Sprintf("tenant-%d", id)
			other := fmt.Sprintf("tenant-%d", (id+1)%cfg.identities)
			var keys [][]byte
			local := map[string][]time.Duration{}
			var mine []ackedPut
			seq := uint64(0)
			for time.Now().Before(stopAt) && !killed.Load() {
				op := r.IntN(20)
				switch {
				case op == 19 && !target.inferenc, op >= 17 && op < 19 && target.passages == 0:
					op = 10 // lookup
				}
				t0 := time.Now()
				var name string
				var err error
				switch {
				case op < 4 || len(keys) == 0:
					name = "put"
					seq++
					s := uint64(c)<<32 | seq
					var key []byte
					key, err = benchPut(callCtx, cl, ns, s)
					if err == nil {
						mine = append(mine, ackedPut{ns, s, key})
						keys = append(keys, key)
						if len(keys) > 256 {
							keys = keys[1:]
						}
					}
				case op < 10:
					name = "get"
					err = benchGet(callCtx, cl, ns, keys[r.IntN(len(keys))])
					if status.Code(err) == codes.NotFound {
						err = nil // evicted: a well-formed miss
					}
				case op < 15:
					name = "lookup"
					_, err = cl.Lookup(callCtx, &ragkvv1.ChunkLookupRequest{Namespace: ns, Keys: [][]byte{keys[r.IntN(len(keys))]}})
				case op < 17:
					name = "probe"
					_, perr := cl.Lookup(callCtx, &ragkvv1.ChunkLookupRequest{Namespace: other, Keys: [][]byte{keys[r.IntN(len(keys))]}})
					if cfg.identities > 1 && status.Code(perr) != codes.NotFound && !killed.Load() {
						isolation.Add(1)
						countCode("probe", perr)
					}
				case op < 19:
					name = "retrieve"
					_, err = rc.Retrieve(callCtx, &ragkvv1.RetrieveRequest{Collection: "bench", Query: benchQuery(r), K: 5,
						Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25})
				default:
					name = "prefill"
					err = benchPrefill(callCtx, inf, ns, r)
				}
				if killed.Load() {
					if err != nil {
						lateErrs.Add(1)
					}
					break
				}
				local[name] = append(local[name], time.Since(t0))
				if err != nil {
					errs.Add(1)
					countCode(name, err)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s: %v", name, err))
				}
			}
			mu.Lock()
			for k, v := range local {
				lat[k] = append(lat[k], v...)
			}
			acked = append(acked, mine...)
			mu.Unlock()
		}(c, id)
	}
	wg.Wait()
	cancel()
	<-memDone
	elapsed := time.Since(start)
	res := &benchLoadResult{Clients: cfg.clients, Identities: cfg.identities, Seconds: elapsed.Seconds(), TLS: true, Auth: true,
		Errors: errs.Load(), ErrorCodes: errCodes, PerRPC: map[string]int64{}, P99Ms: map[string]float64{}, P50Ms: map[string]float64{},
		BudgetViolations: budget.Load(), IsolationViolations: isolation.Load(), RSSSamples: rssSamples,
		WarmupSeconds: warmAt.Seconds()}
	if !killed.Load() {
		res.RSSByKindEndMiB = rssByKind(target.pid)
		end := readProcMem(target.pid)
		res.RSSWarmBytes, res.RSSEndBytes = memWarm.rss, end.rss
		res.RSSAnonWarmBytes, res.RSSAnonEndBytes = memWarm.anon, end.anon
		res.RSSFileWarmBytes, res.RSSFileEndBytes = memWarm.file, end.file
		if target.pid == "self" {
			res.GoMemEnd = readGoMem() // before heapInUse's GC: what the run left
			res.HeapWarmBytes, res.HeapEndBytes = heapWarm, heapInUse()
			debug.FreeOSMemory()
			res.RSSRetainedWarmBytes, res.RSSRetainedEndBytes = retWarm, rssBytes()
			if retWarm > 0 {
				res.RSSRetainedGrowthFrac = float64(res.RSSRetainedEndBytes-retWarm) / float64(retWarm)
			}
		}
	}
	for k, v := range lat {
		slices.Sort(v)
		res.PerRPC[k] = int64(len(v))
		res.Requests += int64(len(v))
		res.P99Ms[k] = float64(v[(len(v)*99)/100]) / 1e6
		res.P50Ms[k] = float64(v[len(v)/2]) / 1e6
	}
	res.ReqPerSec = float64(res.Requests) / elapsed.Seconds()
	if res.RSSWarmBytes > 0 {
		res.RSSGrowthFrac = float64(res.RSSEndBytes-res.RSSWarmBytes) / float64(res.RSSWarmBytes)
	}
	if res.RSSAnonWarmBytes > 0 {
		res.RSSAnonGrowthFrac = float64(res.RSSAnonEndBytes-res.RSSAnonWarmBytes) / float64(res.RSSAnonWarmBytes)
	}
	if res.HeapWarmBytes > 0 {
		res.HeapGrowthFrac = (float64(res.HeapEndBytes) - float64(res.HeapWarmBytes)) / float64(res.HeapWarmBytes)
	}
	if warmAt == 0 && !killed.Load() {
		res.Note += "; the run ended before the warm-up (no RSS baseline)"
	}
	if e := firstErr.Load(); e != nil {
		res.Note += "; first error: " + e.(string)
	}
	if killed.Load() {
		res.Kill = &benchKillResult{DiskEvictions: diskEvicted.Load(), ErrorsAfterKill: lateErrs.Load()}
	}
	return res, acked, nil
}

func benchQuery(r *rand.Rand) string {
	return benchWords[r.IntN(len(benchWords))] + " " + benchWords[r.IntN(len(benchWords))] + " " + benchWords[r.IntN(len(benchWords))]
}

// benchPrefill fuses two chunks and a query, CacheBlend at the default ratio. The
// chunks are drawn from the first 16 synthetic passages, so that after the first
// requests of each namespace their KV comes from the cache (the RAG case the cache is
// for) rather than being computed on every request.
func benchPrefill(ctx context.Context, inf ragkvv1.InferenceClient, ns string, r *rand.Rand) error {
	const n = 16
	a, b := r.IntN(n), r.IntN(n)
	_, err := inf.Prefill(ctx, &ragkvv1.PrefillRequest{Namespace: ns, Method: "cacheblend", Query: "What did " + benchQuery(r) + " do?",
		Chunks: []*ragkvv1.InferenceChunk{
			{Chunk: &ragkvv1.InferenceChunk_Text{Text: benchPassage(a) + "\n\n"}},
			{Chunk: &ragkvv1.InferenceChunk_Text{Text: benchPassage(b) + "\n\n"}},
		}})
	return err
}

// benchChunk is the 4-layer f16 chunk of 16 tokens derived from seed: its header
// (namespace ns) and its K and V bytes per layer.
func benchChunk(ns string, seed uint64) (*ragkvv1.ChunkPutHeader, [][2][]byte) {
	const layers, heads, dim, tokens = 4, 2, 16, 16
	// Token ids from the seed alone, so that every seed (client<<32 | sequence) has
	// its own key.
	r := rand.New(rand.NewPCG(seed, 3))
	toks := make([]uint32, tokens)
	for i := range toks {
		toks[i] = r.Uint32() & 0xffffff
	}
	h := &ragkvv1.ChunkPutHeader{Namespace: ns, TokenIds: toks, PositionBase: int64(seed & 0xffff),
		Model:  &ragkvv1.ChunkModelFingerprint{Architecture: "llama", WeightsDigest: "sha256:bench", TokenizerDigest: "sha256:bench"},
		Layout: &ragkvv1.ChunkKVLayout{Layers: layers, KvHeads: heads, HeadDim: dim, Dtype: ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16}}
	n := tokens * heads * dim * 2
	kv := make([][2][]byte, layers)
	for l := range kv {
		k, v := make([]byte, n), make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			binary.LittleEndian.PutUint64(k[i:], seed^uint64(i)^uint64(l)<<40)
			binary.LittleEndian.PutUint64(v[i:], seed+uint64(i)+uint64(l)<<40)
		}
		kv[l] = [2][]byte{k, v}
	}
	return h, kv
}

// benchPut puts benchChunk(ns, seed).
func benchPut(ctx context.Context, cl ragkvv1.ChunkCacheClient, ns string, seed uint64) ([]byte, error) {
	h, kv := benchChunk(ns, seed)
	st, err := cl.PutChunk(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Header{Header: h}}); err != nil {
		_, err2 := st.CloseAndRecv()
		return nil, fmt.Errorf("%w (%v)", err, err2)
	}
	for l, p := range kv {
		if err := st.Send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Layer{Layer: &ragkvv1.ChunkLayerFrame{Layer: uint32(l), K: p[0], V: p[1]}}}); err != nil {
			_, err2 := st.CloseAndRecv()
			return nil, fmt.Errorf("%w (%v)", err, err2)
		}
	}
	res, err := st.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return res.GetKey(), nil
}

func benchGet(ctx context.Context, cl ragkvv1.ChunkCacheClient, ns string, key []byte) error {
	_, err := benchFetch(ctx, cl, ns, key)
	return err
}

// benchFetch reads a chunk's layers (K and V per layer, in order).
func benchFetch(ctx context.Context, cl ragkvv1.ChunkCacheClient, ns string, key []byte) ([][2][]byte, error) {
	st, err := cl.GetChunk(ctx, &ragkvv1.GetChunkRequest{Chunk: &ragkvv1.ChunkRef{Namespace: ns, Ref: &ragkvv1.ChunkRef_Key{Key: key}}})
	if err != nil {
		return nil, err
	}
	var out [][2][]byte
	for {
		m, err := st.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if l := m.GetLayer(); l != nil {
			out = append(out, [2][]byte{l.GetK(), l.GetV()})
		}
	}
}

// serveChild is a `ragkv serve` process started by the load bench.
type serveChild struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

// startServeChild starts this binary as `ragkv serve` on dataDir with TLS and the auth
// file, and waits until it serves.
func startServeChild(ctx context.Context, cfg loadConfig, dataDir string, tf certs.Files, authPath string) (*serveChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", "",
		"--log-level", "warn", "--tls-cert", tf.Cert, "--tls-key", tf.Key, "--auth-file", authPath,
		"--mem-capacity", strconv.FormatInt(cfg.memCap, 10), "--disk-capacity", strconv.FormatInt(cfg.diskCap, 10))
	cmd.Env = append(os.Environ(), "RAGKV_TEST_RUN_CLI=1") // the test binary runs as the CLI (main_test.go)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := &serveChild{cmd: cmd, done: make(chan error, 1)}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "ragkv serving "); ok {
				for _, f := range strings.Fields(rest) {
					if a, ok := strings.CutPrefix(f, "grpc="); ok {
						addrc <- a
					}
				}
			}
		}
		_, _ = io.Copy(io.Discard, out)
		ch.done <- cmd.Wait()
	}()
	select {
	case ch.addr = <-addrc:
		return ch, nil
	case err := <-ch.done:
		return nil, fmt.Errorf("ragkv serve exited before serving: %v\n%s", err, stderr.String())
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-ch.done
		return nil, fmt.Errorf("ragkv serve did not start within 2 minutes\n%s", stderr.String())
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-ch.done
		return nil, ctx.Err()
	}
}

// runBenchLoadKill loads a serve child, SIGKILLs it after cfg.killAfter, checks the
// data directory offline, restarts the child and reads back every acknowledged chunk.
func runBenchLoadKill(ctx context.Context, cfg loadConfig, dir string, tf certs.Files, authPath string, tokens []string, ccfg *tls.Config) (*benchLoadResult, error) {
	dataDir := filepath.Join(dir, "data")
	child, err := startServeChild(ctx, cfg, dataDir, tf, authPath)
	if err != nil {
		return nil, err
	}
	kill := make(chan struct{})
	var killedAt time.Time
	timer := time.AfterFunc(cfg.killAfter, func() {
		killedAt = time.Now()
		close(kill) // first: an error a client sees after the signal is then known as late
		_ = child.cmd.Process.Signal(syscall.SIGKILL)
	})
	t0 := time.Now()
	res, acked, err := driveLoad(ctx, cfg, &loadTarget{addr: child.addr, tls: ccfg, pid: strconv.Itoa(child.cmd.Process.Pid)}, tokens, kill)
	timer.Stop()
	if err != nil {
		_ = child.cmd.Process.Kill()
		<-child.done
		return nil, err
	}
	select {
	case <-kill:
	default:
		_ = child.cmd.Process.Kill()
		<-child.done
		return nil, errors.New("bench load: the run ended before the kill")
	}
	if werr := <-child.done; werr == nil {
		return nil, errors.New("bench load: the server exited cleanly instead of being killed")
	}
	res.Server = "child"
	res.Note = "a ragkv serve child (write-through disk tier, sync writes), SIGKILLed mid-run; RSS not compared (the server died)" + res.Note
	k := res.Kill
	k.KilledAfterSeconds = killedAt.Sub(t0).Seconds()
	k.Acknowledged = len(acked)
	keyer, err := chunkcache.OpenKeyer(filepath.Join(dataDir, chunkcache.SaltSecretFile)) // the child's secret
	if err != nil {
		return nil, fmt.Errorf("bench load: salt secret after the kill: %w", err)
	}
	if k.Check, err = checkCacheDir(ctx, filepath.Join(dataDir, "chunkcache"), keyer, slog.New(slog.DiscardHandler)); err != nil {
		return nil, fmt.Errorf("bench load: cache check after the kill: %w", err)
	}
	t1 := time.Now()
	child, err = startServeChild(ctx, cfg, dataDir, tf, authPath)
	if err != nil {
		return nil, fmt.Errorf("bench load: restart after the kill: %w", err)
	}
	k.RestartSeconds = time.Since(t1).Seconds()
	defer func() {
		_ = child.cmd.Process.Signal(syscall.SIGTERM)
		<-child.done
	}()
	conn, err := grpc.NewClient(child.addr, grpc.WithTransportCredentials(credentials.NewTLS(ccfg)),
		grpc.WithPerRPCCredentials(tokenCreds{token: "bench-admin-token", secure: true}))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cl := ragkvv1.NewChunkCacheClient(conn)
	for _, a := range acked {
		got, err := benchFetch(ctx, cl, a.ns, a.key)
		switch {
		case status.Code(err) == codes.NotFound:
			k.Lost++
			continue
		case err != nil:
			if k.ReadErrors == nil {
				k.ReadErrors = map[string]int64{}
			}
			k.ReadErrors[status.Code(err).String()]++
			continue
		}
		_, want := benchChunk(a.ns, a.seed)
		ok := len(got) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = bytes.Equal(got[i][0], want[i][0]) && bytes.Equal(got[i][1], want[i][1])
		}
		if ok {
			k.Intact++
		} else {
			k.Corrupt++
		}
	}
	return res, nil
}
