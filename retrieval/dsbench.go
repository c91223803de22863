package retrieval

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/synth"
)

// DatastoreBenchConfig describes one `ragkv bench datastore` run: a synthetic corpus
// (package retrieval/synth) streamed into a fresh store in commits of Batch passages
// (the ingest holds one batch in memory at a time), then query latency and throughput.
type DatastoreBenchConfig struct {
	// Dir is the store directory (must not hold a store, unless Reuse).
	Dir string
	// Reuse skips the ingest: Dir holds the store of an earlier run with the same
	// Passages and Seed (kept with --keep), and only the opened store is measured (RAM,
	// disk, queries, recall). The ingest figures stay zero.
	Reuse bool
	// Passages is the corpus size (one passage per synthetic document).
	Passages int
	// Batch is the passages per commit (bounds ingest memory; default 100,000) and
	// ShardsPerCommit the shards each commit builds in parallel (default 2).
	Batch, ShardsPerCommit int
	// BuildMemory is the store's Options.BuildMemory (0: unbounded).
	BuildMemory int64
	// Embedder embeds passages (GloVe-SIF); Vocab is the synthetic vocabulary, most
	// frequent first.
	Embedder embed.Embedder
	Vocab    []string
	// PCADims, Int8, DenseIndex and ANNThreshold are the collection's dense options.
	PCADims      int
	Int8         bool
	DenseIndex   DenseIndex
	ANNThreshold int
	// Queries is how many timed queries per mode (default 200), K their k (default
	// 10), Threads the concurrent searchers of the QPS measurement (default 2).
	Queries, K, Threads int
	Seed                uint64
	Logger              *slog.Logger
	// Progress, when set, reports ingest progress.
	Progress func(done, total int)
}

// DatastoreBenchResult is the report (JSON keys as issue 15 lists them).
type DatastoreBenchResult struct {
	Passages int `json:"passages"`
	Shards   int `json:"shards"`
	// Reused: the store of an earlier run was queried (no ingest figures).
	Reused             bool    `json:"reused,omitempty"`
	IngestSeconds      float64 `json:"ingest_seconds"`
	IngestPassagesPerS float64 `json:"ingest_passages_per_s"`
	// IngestCPUSeconds is the process CPU time (user + system, getrusage) the ingest
	// took, and IngestCPUBoundPassagesPerS the rate that CPU time would give on
	// CPUCores dedicated cores fully used (passages / (CPU seconds / cores)): on a
	// shared, loaded machine the wall-clock rate measures the load, this the work.
	IngestCPUSeconds           float64 `json:"ingest_cpu_seconds"`
	IngestCPUBoundPassagesPerS float64 `json:"ingest_cpu_bound_passages_per_s"`
	CPUCores                   int     `json:"cpu_cores"`
	// RAMBytesPerPassage is the anonymous resident memory (/proc/self/smaps_rollup
	// "Anonymous": not the page cache of memory-mapped or read files) the opened and
	// queried store adds, per passage; HeapBytes the Go heap part of it;
	// MappedFileBytes the resident file-backed pages it adds (memory-mapped postings,
	// passage tables: page cache the OS may evict).
	RAMBytesPerPassage        float64 `json:"ram_bytes_per_passage"`
	HeapBytesPerPassage       float64 `json:"heap_bytes_per_passage"`
	MappedFileBytesPerPassage float64 `json:"mapped_file_bytes_per_passage"`
	// RAMBytesPerPassageEnd is the same anonymous memory measured again after every
	// query pass (the first measurement can include transient buffers of Badger's
	// background compactions after the reopen); DenseIndexBytesPerPassage is what the
	// dense structures themselves hold in RAM (ANN indexes, scanned codes), by size.
	RAMBytesPerPassageEnd float64 `json:"ram_bytes_per_passage_end"`
	// SettleSeconds is how long the reopened store took to become idle (Badger's
	// background compaction) before RAM and latency were measured.
	SettleSeconds             float64 `json:"settle_seconds"`
	DenseIndexBytesPerPassage float64 `json:"dense_index_bytes_per_passage"`
	DiskBytesPerPassage       float64 `json:"disk_bytes_per_passage"`
	BM25P50ms                 float64 `json:"bm25_p50_ms"`
	BM25P99ms                 float64 `json:"bm25_p99_ms"`
	DenseP50ms                float64 `json:"dense_p50_ms"`
	DenseP99ms                float64 `json:"dense_p99_ms"`
	HybridP50ms               float64 `json:"hybrid_p50_ms"`
	HybridP99ms               float64 `json:"hybrid_p99_ms"`
	// CPUms is the mean process CPU time per query of each mode's latency run (one
	// query at a time): the work per query, which the wall-clock percentiles of a
	// loaded machine hide.
	CPUms map[Mode]float64 `json:"cpu_ms_per_query"`
	// Cold*: the same, for the first pass over the queries, when the memory-mapped
	// files they touch are not yet in the page cache (p50/p99/CPU above are the second,
	// warm pass).
	ColdP50ms map[Mode]float64 `json:"cold_p50_ms"`
	ColdP99ms map[Mode]float64 `json:"cold_p99_ms"`
	ColdCPUms map[Mode]float64 `json:"cold_cpu_ms_per_query"`
	// QPS is hybrid queries per second over Threads concurrent searchers.
	QPS     float64 `json:"qps"`
	Threads int     `json:"threads"`
	// ANNRecall10 is the recall@10 of the collection's dense path (ANN where shards have
	// an index) against the exact scan; ANNShards counts the shards with an index.
	// Both are measured against a brute-force full-vector search (the true top k) over
	// RecallQueries queries; ExactScanRecall10 is the exact scan of the compressed
	// codes with rescoring (what shards without an index use).
	ANNRecall10       float64 `json:"ann_recall@10"`
	ExactScanRecall10 float64 `json:"exact_scan_recall@10"`
	RecallQueries     int     `json:"recall_queries"`
	ANNShards         int     `json:"ann_shards"`
	// PeakRSSBytes is the process's peak resident set (VmHWM) at the end of the run.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// StealSecondsIngest and StealSecondsQueries are the CPU time the hypervisor gave
	// to other guests while this machine's vCPUs wanted to run (/proc/stat "steal",
	// all CPUs), during the ingest and during the timed queries (latency passes and
	// QPS): where it is large, wall-clock figures measure the host, not ragkv.
	StealSecondsIngest  float64 `json:"steal_seconds_ingest"`
	StealSecondsQueries float64 `json:"steal_seconds_queries"`
	K                   int     `json:"k"`
	Queries             int     `json:"queries"`
	CPU                 string  `json:"cpu,omitempty"`
}

// BenchDatastore runs the datastore benchmark.
func BenchDatastore(ctx context.Context, cfg DatastoreBenchConfig) (*DatastoreBenchResult, error) {
	if cfg.Batch == 0 {
		cfg.Batch = 100_000
	}
	if cfg.ShardsPerCommit == 0 {
		cfg.ShardsPerCommit = 2
	}
	if cfg.Queries == 0 {
		cfg.Queries = 200
	}
	if cfg.K == 0 {
		cfg.K = 10
	}
	if cfg.Threads == 0 {
		cfg.Threads = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Passages < 1 || cfg.Batch < 1 || cfg.ShardsPerCommit < 1 || cfg.ShardsPerCommit > maxShards || cfg.Embedder == nil {
		return nil, fmt.Errorf("%w: datastore bench needs passages, batch, shards per commit in [1, %d] and an embedder", ErrInvalidArgument, maxShards)
	}
	corpus, err := synth.New(synth.Options{Vocab: cfg.Vocab, Seed: cfg.Seed})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	opts := Options{Dir: cfg.Dir, Embedders: []embed.Embedder{cfg.Embedder}, Logger: cfg.Logger, BuildMemory: cfg.BuildMemory}
	res := &DatastoreBenchResult{Passages: cfg.Passages, K: cfg.K, Queries: cfg.Queries, Threads: cfg.Threads, CPUms: map[Mode]float64{},
		ColdCPUms: map[Mode]float64{}, ColdP50ms: map[Mode]float64{}, ColdP99ms: map[Mode]float64{}, Reused: cfg.Reuse}
	if !cfg.Reuse {
		st, err := Open(ctx, opts)
		if err != nil {
			return nil, err
		}
		copts := &CollectionOptions{PCADims: cfg.PCADims, Int8: cfg.Int8, DenseIndex: cfg.DenseIndex, ANNThreshold: cfg.ANNThreshold, Dedup: DedupNone}
		if err := ingestBench(ctx, cfg, st, corpus, copts, res); err != nil {
			return nil, err
		}
	}
	return measureBench(ctx, cfg, opts, corpus, res)
}

// ingestBench streams the synthetic corpus into st (which it closes) and records the
// ingest figures.
func ingestBench(ctx context.Context, cfg DatastoreBenchConfig, st *Store, corpus *synth.Corpus, copts *CollectionOptions, res *DatastoreBenchResult) error {
	start := time.Now()
	cpu0 := cpuSeconds()
	steal0 := stealSeconds()
	docs := make([]Document, 0, min(cfg.Batch, cfg.Passages))
	for lo := 0; lo < cfg.Passages; lo += cfg.Batch {
		hi := min(lo+cfg.Batch, cfg.Passages)
		docs = docs[:hi-lo]
		var wg sync.WaitGroup
		workers := runtime.GOMAXPROCS(0)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := lo + w; i < hi; i += workers {
					id, title, text, _ := corpus.Doc(i)
					docs[i-lo] = Document{ID: id, Title: title, Text: text}
				}
			}()
		}
		wg.Wait()
		in, err := st.BeginIngest(ctx, "bench", IngestOptions{Create: copts, Shards: cfg.ShardsPerCommit})
		if err != nil {
			st.Close()
			return err
		}
		if err := in.Add(ctx, docs...); err != nil {
			in.Abort()
			st.Close()
			return err
		}
		if _, err := in.Commit(ctx); err != nil {
			st.Close()
			return err
		}
		if cfg.Progress != nil {
			cfg.Progress(hi, cfg.Passages)
		}
		copts = nil
	}
	res.IngestSeconds = time.Since(start).Seconds()
	res.IngestPassagesPerS = float64(cfg.Passages) / res.IngestSeconds
	res.IngestCPUSeconds = cpuSeconds() - cpu0
	res.StealSecondsIngest = stealSeconds() - steal0
	res.CPUCores = runtime.GOMAXPROCS(0)
	if res.IngestCPUSeconds > 0 {
		res.IngestCPUBoundPassagesPerS = float64(cfg.Passages) / (res.IngestCPUSeconds / float64(res.CPUCores))
	}
	return st.Close()
}

// measureBench opens the bench store and measures it: RAM and disk per passage, query
// latency and throughput, recall.
func measureBench(ctx context.Context, cfg DatastoreBenchConfig, opts Options, corpus *synth.Corpus, res *DatastoreBenchResult) (*DatastoreBenchResult, error) {
	// RAM: anonymous resident memory added by opening the store (codes, passage tables,
	// ANN indexes, dictionaries), measured after a GC with the OS given back what Go
	// freed.
	runtime.GC()
	debug.FreeOSMemory()
	anon0, file0 := memRollup()
	heap0 := heapInUse()
	st, err := Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if cfg.Reuse {
		info, err := st.Collection("bench")
		if err != nil {
			return nil, fmt.Errorf("%w: reused store %s: %w", ErrInvalidArgument, cfg.Dir, err)
		}
		if info.Passages != int64(cfg.Passages) {
			return nil, fmt.Errorf("%w: reused store %s holds %d passages, not %d", ErrInvalidArgument, cfg.Dir, info.Passages, cfg.Passages)
		}
	}
	queries := make([]string, cfg.Queries)
	for i := range queries {
		queries[i], _ = corpus.Query(i, cfg.Passages)
	}
	for _, m := range []Mode{ModeBM25, ModeDense, ModeHybrid} { // warm up (lazy loads)
		if _, err := st.Search(ctx, SearchRequest{Collection: "bench", Query: queries[0], K: cfg.K, Mode: m}); err != nil {
			return nil, err
		}
	}
	// Badger compacts what the ingest wrote after the reopen: wait until the process is
	// idle, so that neither the RAM nor the query CPU figures include that work.
	if res.SettleSeconds, err = settle(ctx, 3*time.Minute); err != nil {
		return nil, err
	}
	runtime.GC()
	debug.FreeOSMemory()
	anon1, file1 := memRollup()
	res.RAMBytesPerPassage = float64(anon1-anon0) / float64(cfg.Passages)
	res.MappedFileBytesPerPassage = float64(file1-file0) / float64(cfg.Passages)
	res.HeapBytesPerPassage = float64(heapInUse()-heap0) / float64(cfg.Passages)
	info, err := st.Collection("bench")
	if err != nil {
		return nil, err
	}
	res.Shards = info.Shards
	res.DiskBytesPerPassage = float64(dirBytes(cfg.Dir)) / float64(cfg.Passages)
	sn, err := st.pin("bench")
	if err != nil {
		return nil, err
	}
	var dense float64
	for _, sh := range sn.shards {
		if sh.ann != nil {
			res.ANNShards++
		}
		dense += sh.denseRAMBytes()
	}
	sn.release()
	res.DenseIndexBytesPerPassage = dense / float64(cfg.Passages)

	// Each mode's queries run twice, one at a time: first on a cold page cache for that
	// mode's files (postings, vectors: memory-mapped, read from disk as touched), then
	// again, timed as the main figures with the pages resident.
	lat := func(m Mode) (p50, p99 float64, err error) {
		pass := func() (p50, p99 float64, err error) {
			ms := make([]float64, len(queries))
			for i, q := range queries {
				t0 := time.Now()
				if _, err := st.Search(ctx, SearchRequest{Collection: "bench", Query: q, K: cfg.K, Mode: m}); err != nil {
					return 0, 0, err
				}
				ms[i] = float64(time.Since(t0).Microseconds()) / 1000
			}
			slices.Sort(ms)
			return ms[len(ms)/2], ms[min(len(ms)-1, int(float64(len(ms))*0.99))], nil
		}
		c0 := cpuSeconds()
		c50, c99, err := pass()
		if err != nil {
			return 0, 0, err
		}
		res.ColdP50ms[m], res.ColdP99ms[m] = c50, c99
		res.ColdCPUms[m] = (cpuSeconds() - c0) * 1000 / float64(len(queries))
		c0 = cpuSeconds()
		defer func() { res.CPUms[m] = (cpuSeconds() - c0) * 1000 / float64(len(queries)) }()
		return pass()
	}
	steal0 := stealSeconds()
	if res.BM25P50ms, res.BM25P99ms, err = lat(ModeBM25); err != nil {
		return nil, err
	}
	if res.DenseP50ms, res.DenseP99ms, err = lat(ModeDense); err != nil {
		return nil, err
	}
	if res.HybridP50ms, res.HybridP99ms, err = lat(ModeHybrid); err != nil {
		return nil, err
	}
	// QPS: hybrid queries over Threads searchers, each its share of the query list
	// (repeated to at least 2 s).
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		done  int
		first error
	)
	t0 := time.Now()
	for w := 0; w < cfg.Threads; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for i := w; time.Since(t0) < 2*time.Second || i < len(queries); i += cfg.Threads {
				if _, err := st.Search(ctx, SearchRequest{Collection: "bench", Query: queries[i%len(queries)], K: cfg.K, Mode: ModeHybrid, NoText: true}); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				n++
			}
			mu.Lock()
			done += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	res.QPS = float64(done) / time.Since(t0).Seconds()
	res.StealSecondsQueries = stealSeconds() - steal0
	// Recall@k of the dense path the collection uses (ANN where shards have an index)
	// and of the exact scan of the compressed codes (rescored), both against a
	// brute-force inner product over every live passage's full vector.
	nr := min(len(queries), recallQueries)
	hitA, hitE, tot := 0, 0, 0
	for _, qs := range queries[:nr] {
		truth, err := st.bruteDense(ctx, "bench", qs, cfg.K)
		if err != nil {
			return nil, err
		}
		want := map[string]bool{}
		for _, pid := range truth {
			want[pid] = true
		}
		for di, hit := range []*int{&hitA, &hitE} {
			req := SearchRequest{Collection: "bench", Query: qs, K: cfg.K, Mode: ModeDense, NoText: true}
			if di == 1 {
				req.DenseIndex = DenseExact
			}
			r, err := st.Search(ctx, req)
			if err != nil {
				return nil, err
			}
			for _, h := range r.Hits {
				if want[h.PassageID] {
					*hit++
				}
			}
		}
		tot += len(truth)
	}
	if tot > 0 {
		res.ANNRecall10 = float64(hitA) / float64(tot)
		res.ExactScanRecall10 = float64(hitE) / float64(tot)
	}
	res.RecallQueries = nr
	runtime.GC()
	debug.FreeOSMemory()
	anon2, _ := memRollup()
	res.RAMBytesPerPassageEnd = float64(anon2-anon0) / float64(cfg.Passages)
	res.PeakRSSBytes = procStatus("VmHWM")
	return res, nil
}

// settle waits (at most limit) until the process uses under 5% of a core over a second,
// and returns how long it waited.
func settle(ctx context.Context, limit time.Duration) (float64, error) {
	t0 := time.Now()
	for time.Since(t0) < limit {
		c0 := cpuSeconds()
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if cpuSeconds()-c0 < 0.05 {
			break
		}
	}
	return time.Since(t0).Seconds(), nil
}

// recallQueries bounds the queries whose true top k is computed by brute force.
const recallQueries = 50

// bruteDense returns the ids of the k live passages of a collection with the largest
// full-vector inner product with the query's embedding (ties by passage id).
func (s *Store) bruteDense(ctx context.Context, coll, text string, k int) ([]string, error) {
	sn, err := s.pin(coll)
	if err != nil {
		return nil, err
	}
	defer sn.release()
	q := &query{s: s, sn: sn, req: &SearchRequest{Query: text, K: k, Mode: ModeDense}, mode: ModeDense}
	if err := q.prepare(ctx); err != nil {
		return nil, err
	}
	var top []scored
	const chunk = 1 << 16
	ords := make([]uint32, 0, chunk)
	out := make([]float64, chunk)
	for si, sh := range sn.shards {
		for lo := 0; lo < sh.n; lo += chunk {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ords = ords[:0]
			for o := lo; o < min(lo+chunk, sh.n); o++ {
				if !sn.dead[si].has(uint32(o)) {
					ords = append(ords, uint32(o))
				}
			}
			if err := sh.fullScores(q.qv, ords, out); err != nil {
				return nil, err
			}
			for j, o := range ords {
				if len(top) == k && out[j] < top[k-1].score {
					continue
				}
				top = append(top, scored{cand: cand{shard: int32(si), ord: o, score: out[j]}, pid: sh.pid(o)})
				slices.SortFunc(top, func(a, b scored) int { return better(&a, &b) })
				if len(top) > k {
					top = top[:k]
				}
			}
		}
	}
	ids := make([]string, len(top))
	for i, t := range top {
		ids[i] = t.pid
	}
	return ids, nil
}

// stealSeconds is the machine's total steal time from /proc/stat (0 where unavailable;
// USER_HZ is 100 on every Linux this runs on).
func stealSeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	n, _ := strconv.ParseInt(f[8], 10, 64)
	return float64(n) / 100
}

// procStatus reads a kB field of /proc/self/status in bytes (0 where unavailable).
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}

// memRollup returns the process's anonymous resident memory and its resident
// file-backed memory (Rss − Anonymous) from /proc/self/smaps_rollup, falling back to
// RssAnon and RssFile of /proc/self/status.
func memRollup() (anon, file int64) {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return procStatus("RssAnon"), procStatus("RssFile")
	}
	var rss int64
	for _, line := range strings.Split(string(b), "\n") {
		for _, kv := range []struct {
			key string
			dst *int64
		}{{"Rss:", &rss}, {"Anonymous:", &anon}} {
			if v, ok := strings.CutPrefix(line, kv.key); ok {
				if f := strings.Fields(v); len(f) > 0 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					*kv.dst = n << 10
				}
			}
		}
	}
	return anon, rss - anon
}

func heapInUse() int64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// dirBytes is the disk space the files under dir occupy (allocated blocks: Badger's
// value log is a sparse, preallocated file).
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += allocatedBytes(info)
			}
		}
		return nil
	})
	return n
}
