// Package annbench is the synthetic benchmark behind `ragkv bench retrieval`: it
// generates clustered vectors with a decaying spectrum, fits a PCA on a sample, indexes
// the projected vectors with package ann, rescores candidates with the full vectors and
// measures throughput and recall@k against exact search over the full vectors.
package annbench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/retrieval/internal/ann"
)

// Config describes one benchmark run.
type Config struct {
	N, Dim, PCADims, K, Queries int
	Threads                     int
	Seed                        int64
	Data                        Synthetic // Dim and Seed are taken from the fields above
	PCASample                   int       // rows used to fit the PCA (default 100,000)
	// Index parameters (zero: ann's defaults); Kind is "ivfpq" (default), "flat" or "auto".
	Kind                      string
	NList, M, NProbe, Rescore int
	// DumpDir, when set, receives base.f32, queries.f32 (full vectors) and truth.f32 (ids
	// of the exact top k) for the FAISS comparison script in testdata/.
	DumpDir string
	// Sweep lists extra (nprobe, rescore) operating points measured on the same index.
	Sweep      []Point
	MinSeconds float64   // minimum timed duration per operating point (default 2)
	Progress   io.Writer // progress lines (nil: none)
}

// Point is one search operating point.
type Point struct {
	NProbe  int `json:"nprobe"`
	Rescore int `json:"rescore"`
}

// Measure is what one operating point achieved.
type Measure struct {
	Point
	QPS    float64 `json:"qps"`
	Recall float64 `json:"recall"`
}

// Result is the benchmark report (the JSON of `ragkv bench retrieval`).
type Result struct {
	N               int       `json:"n"`
	Dim             int       `json:"dim"`
	PCADims         int       `json:"pca_dims"`
	PCAEnergy       float64   `json:"pca_energy_retained"`
	K               int       `json:"k"`
	Queries         int       `json:"queries"`
	Threads         int       `json:"threads"`
	Seed            int64     `json:"seed"`
	Kind            string    `json:"kind"`
	NList           int       `json:"nlist"`
	M               int       `json:"m"`
	NProbe          int       `json:"nprobe"`
	Rescore         int       `json:"rescore"`
	QPS             float64   `json:"qps"`
	QPSPerCore      float64   `json:"qps_per_core"`
	Recall          float64   `json:"recall@10"`
	RecallK         float64   `json:"recall@k"`
	BytesPerVector  float64   `json:"bytes_per_vector"`
	BuildSeconds    float64   `json:"build_seconds"`
	PCASeconds      float64   `json:"pca_seconds"`
	IndexSeconds    float64   `json:"index_seconds"`
	GenerateSeconds float64   `json:"generate_seconds"`
	TruthSeconds    float64   `json:"truth_seconds"`
	FAISSPerCore    float64   `json:"faiss_ivfpq_qps_per_core_ratio"`
	Clusters        int       `json:"clusters"`
	Noise           float64   `json:"noise"`
	Decay           float64   `json:"decay"`
	Sweep           []Measure `json:"sweep,omitempty"`
	GOMAXPROCS      int       `json:"gomaxprocs"`
}

// FAISSAnchorQPSPerCore is the FAISS 1.7.3 anchor (OPQ16_64,IVF4096,PQ16, rescoring 100,
// one thread, generic build) from issue 5: 11,000 queries/s on one core.
const FAISSAnchorQPSPerCore = 11000

func (c *Config) ensureDefaults() {
	if c.Threads <= 0 {
		c.Threads = 2
	}
	if c.PCASample <= 0 {
		c.PCASample = 100_000
	}
	if c.MinSeconds <= 0 {
		c.MinSeconds = 2
	}
	if c.Queries <= 0 {
		c.Queries = 1000
	}
	if c.K <= 0 {
		c.K = 10
	}
	if c.PCADims <= 0 {
		c.PCADims = c.Dim
	}
	if c.Kind == "" {
		c.Kind = string(ann.KindIVFPQ)
	}
	c.Data.Dim, c.Data.Seed = c.Dim, c.Seed
}

type phase struct {
	w     io.Writer
	label string
	start time.Time
}

func (c *Config) phase(label string) *phase {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "%s...\n", label)
	}
	return &phase{w: c.Progress, label: label, start: time.Now()}
}

func (p *phase) done() float64 {
	s := time.Since(p.start).Seconds()
	if p.w != nil {
		fmt.Fprintf(p.w, "%s: %.2fs\n", p.label, s)
	}
	return s
}

// Run executes the benchmark.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.ensureDefaults()
	if cfg.N <= 0 || cfg.Dim <= 0 || cfg.PCADims > cfg.Dim {
		return nil, fmt.Errorf("annbench: bad sizes n=%d dim=%d pca=%d", cfg.N, cfg.Dim, cfg.PCADims)
	}
	// Build parallelism: everything but the timed searches uses all cores.
	buildThreads := max(runtime.GOMAXPROCS(0), cfg.Threads)
	res := &Result{N: cfg.N, Dim: cfg.Dim, PCADims: cfg.PCADims, K: cfg.K, Queries: cfg.Queries,
		Threads: cfg.Threads, Seed: cfg.Seed, Clusters: cfg.Data.Clusters, Noise: cfg.Data.Noise,
		Decay: cfg.Data.Decay, GOMAXPROCS: runtime.GOMAXPROCS(0)}

	ph := cfg.phase("generate")
	var prog *cliutil.Progress
	if cfg.Progress != nil {
		prog = cliutil.NewProgress(cfg.Progress, "generate vectors", int64(cfg.N+cfg.Queries))
	}
	add := func(n int) { prog.Add(int64(n)) }
	if err := cfg.Data.check(cfg.N); err != nil {
		return nil, err
	}
	full, err := cfg.Data.generate(ctx, cfg.N, 0, buildThreads, add, allocF32(cfg.N*cfg.Dim))
	if err != nil {
		return nil, err
	}
	queries, err := cfg.Data.Generate(ctx, cfg.Queries, 1, buildThreads, add)
	if err != nil {
		return nil, err
	}
	prog.Finish()
	res.GenerateSeconds = ph.done()

	ph = cfg.phase("exact ground truth")
	truth, err := ann.ExactSearch(ctx, full, cfg.Dim, queries, cfg.K, buildThreads)
	if err != nil {
		return nil, err
	}
	res.TruthSeconds = ph.done()
	if cfg.DumpDir != "" {
		if err := dump(cfg.DumpDir, full, queries, truth); err != nil {
			return nil, err
		}
	}

	// PCA fit and projection (counted in the build time).
	ph = cfg.phase("pca")
	var pca *PCA
	proj := full
	if cfg.PCADims < cfg.Dim {
		sample := full[:min(cfg.N, cfg.PCASample)*cfg.Dim] // rows are i.i.d.: a prefix is a sample
		if pca, err = FitPCA(sample, cfg.Dim, cfg.PCADims); err != nil {
			return nil, err
		}
		res.PCAEnergy = pca.Retained
		proj = pca.ProjectAll(full, buildThreads)
	} else {
		res.PCAEnergy = 1
	}
	res.PCASeconds = ph.done()

	ph = cfg.phase("build index")
	kind, err := ann.ParseKind(cfg.Kind)
	if err != nil {
		return nil, err
	}
	opts := ann.Options{Kind: kind, NList: cfg.NList, M: cfg.M, NProbe: cfg.NProbe, Rescore: cfg.Rescore,
		Seed: cfg.Seed, Threads: buildThreads}
	ix, err := ann.Build(ctx, proj, cfg.PCADims, opts)
	if err != nil {
		return nil, err
	}
	res.IndexSeconds = ph.done()
	res.BuildSeconds = res.PCASeconds + res.IndexSeconds
	proj = nil
	rescorer, err := ann.NewVectors(full, cfg.Dim)
	if err != nil {
		return nil, err
	}
	ix.SetRescorer(rescorer)
	p := ix.Params()
	res.Kind, res.NList, res.M = string(p.Kind), p.NList, p.M
	res.BytesPerVector = ix.BytesPerVector()

	points := append([]Point{{NProbe: p.NProbe, Rescore: p.Rescore}}, cfg.Sweep...)
	for i, pt := range points {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, err := measure(ctx, &cfg, ix, pca, queries, truth, pt)
		if err != nil {
			return nil, err
		}
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "nprobe %d rescore %d: %.0f q/s, recall@%d %.4f\n", pt.NProbe, pt.Rescore, m.QPS, cfg.K, m.Recall)
		}
		if i == 0 {
			res.NProbe, res.Rescore = pt.NProbe, pt.Rescore
			res.QPS, res.RecallK = m.QPS, m.Recall
			if cfg.K == 10 {
				res.Recall = m.Recall
			}
		} else {
			res.Sweep = append(res.Sweep, m)
		}
	}
	res.QPSPerCore = res.QPS / float64(cfg.Threads)
	res.FAISSPerCore = res.QPSPerCore / FAISSAnchorQPSPerCore
	return res, nil
}

// searcher holds one goroutine's buffers.
type searcher struct {
	ix   *ann.Index
	pca  *PCA
	proj []float32
	dst  []ann.Result
	p    ann.SearchParams
}

func (s *searcher) search(q []float32, k int) ([]ann.Result, error) {
	in := q
	if s.pca != nil {
		s.pca.Project(s.proj, q)
		in = s.proj
	}
	s.p.Full = q
	var err error
	s.dst, err = s.ix.SearchWith(in, k, s.p, s.dst)
	return s.dst, err
}

// measure computes recall over all queries, then times Threads goroutines searching the
// query set round-robin for at least MinSeconds.
func measure(ctx context.Context, cfg *Config, ix *ann.Index, pca *PCA, queries []float32, truth [][]ann.Result, pt Point) (Measure, error) {
	m := Measure{Point: pt}
	d := cfg.Dim
	nq := len(queries) / d
	mk := func() *searcher {
		s := &searcher{ix: ix, pca: pca, p: ann.SearchParams{NProbe: pt.NProbe, Rescore: pt.Rescore}}
		if pca != nil {
			s.proj = make([]float32, pca.Out)
		}
		return s
	}
	s := mk()
	var hits int
	for i := 0; i < nq; i++ {
		got, err := s.search(queries[i*d:(i+1)*d], cfg.K)
		if err != nil {
			return m, err
		}
		want := make(map[int]bool, len(truth[i]))
		for _, r := range truth[i] {
			want[r.ID] = true
		}
		for _, r := range got {
			if want[r.ID] {
				hits++
			}
		}
	}
	m.Recall = float64(hits) / float64(nq*cfg.K)

	var (
		wg    sync.WaitGroup
		total atomic.Int64
		stop  atomic.Bool
		first = make(chan error, cfg.Threads)
	)
	start := time.Now()
	for t := 0; t < cfg.Threads; t++ {
		wg.Add(1)
		go func(t int) {
			defer wg.Done()
			s := mk()
			n := 0
			for i := t; !stop.Load(); i += cfg.Threads {
				if _, err := s.search(queries[(i%nq)*d:(i%nq+1)*d], cfg.K); err != nil {
					first <- err
					return
				}
				n++
				if n%64 == 0 && ctx.Err() != nil {
					break
				}
			}
			total.Add(int64(n))
		}(t)
	}
	timer := time.NewTimer(time.Duration(cfg.MinSeconds * float64(time.Second)))
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	stop.Store(true)
	wg.Wait()
	el := time.Since(start).Seconds()
	close(first)
	if err := <-first; err != nil {
		return m, err
	}
	if err := ctx.Err(); err != nil {
		return m, err
	}
	m.QPS = float64(total.Load()) / el
	return m, nil
}

// dump writes the data set for an external comparison (little-endian float32 files).
func dump(dir string, full, queries []float32, truth [][]ann.Result) error {
	ids := make([]float32, 0, len(truth)*10)
	for _, r := range truth {
		for _, x := range r {
			ids = append(ids, float32(x.ID))
		}
	}
	for name, v := range map[string][]float32{"base.f32": full, "queries.f32": queries, "truth.f32": ids} {
		if err := writeF32(filepath.Join(dir, name), v); err != nil {
			return err
		}
	}
	return nil
}

func writeF32(path string, v []float32) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("annbench: dump: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var b [4]byte
	for _, x := range v {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		w.Write(b[:])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("annbench: dump: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("annbench: dump: %w", err)
	}
	return nil
}
