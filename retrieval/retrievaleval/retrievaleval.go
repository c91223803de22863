// Package retrievaleval scores retrieval the way `ragkv eval retrieval` and `ragkv eval
// tools` report it: a collection built from a BEIR corpus (Thakur et al., "BEIR: A
// Heterogeneous Benchmark for Zero-shot Evaluation of Information Retrieval Models",
// NeurIPS 2021) in a fresh directory, every query run at k passages grouped by document,
// and nDCG@10, recall@100 and MRR@10 with BEIR's definitions (package beir); and tool
// retrieval (Tool2Vec, Moon et al. 2024) scored by recall@1/3/5 and nDCG@5 with one
// relevant tool per query.
//
// The package owns the protocol and the result objects; cmd/ragkv parses flags and
// prints. Human-readable lines go to Options.Out, progress to Options.NewBar.
package retrievaleval

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/beir"
	"github.com/ragkv/ragkv/retrieval/embed"
)

// Bar reports the progress of one stage. Implementations must accept calls after Finish.
type Bar interface {
	Add(n int64)
	Finish()
}

type noBar struct{}

func (noBar) Add(int64) {}
func (noBar) Finish()   {}

// Options configure a retrieval evaluation.
type Options struct {
	Docs    []retrieval.Document
	Queries []beir.Query
	Qrels   beir.Qrels
	// Fit, if set, are labelled queries the hybrid fusion weight is fitted on (5-fold
	// cross-validated for the queries that are also evaluated).
	Fit        []retrieval.LabeledQuery
	Embedders  []embed.Embedder
	Collection retrieval.CollectionOptions
	Shards     int
	// K passages retrieved per query (documents after grouping); ≥ 100 for recall@100.
	K int
	// DataDir holds the collection; empty: a temporary directory removed afterwards.
	DataDir string
	// Out receives one human-readable line per run (nil: discarded).
	Out io.Writer
	// NewBar starts a progress report (nil: none).
	NewBar func(label string, total int64) Bar
	// Logger for the store (nil: warnings and errors to stderr).
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.NewBar == nil {
		o.NewBar = func(string, int64) Bar { return noBar{} }
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if o.Shards == 0 {
		o.Shards = 1
	}
	if o.K == 0 {
		o.K = 100
	}
}

// Validate reports the first invalid field.
func (o *Options) Validate() error {
	switch {
	case o.Shards < 1 || o.Shards > 256:
		return fmt.Errorf("shards must be in [1, 256], got %d", o.Shards)
	case o.K < 100 || o.K > 1000:
		return fmt.Errorf("k must be in [100, 1000] (recall@100 needs 100), got %d", o.K)
	case len(o.Queries) == 0:
		return errors.New("no queries")
	}
	return nil
}

// collection is the name of the evaluated collection inside the store.
const collection = "eval"

type evaluator struct {
	ctx context.Context
	Options
}

func newEvaluator(ctx context.Context, o Options) (*evaluator, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &evaluator{ctx: ctx, Options: o}, nil
}

// LoadCorpus reads a BEIR corpus (JSONL {"_id","title","text"}) as documents.
func LoadCorpus(path string) ([]retrieval.Document, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var docs []retrieval.Document
	err = beir.ReadCorpus(fh, path, func(d beir.Doc) error {
		docs = append(docs, retrieval.Document{ID: d.ID, Title: d.Title, Text: d.Text})
		return nil
	})
	return docs, err
}

// build opens a store in a fresh directory and ingests the corpus.
func (ev *evaluator) build(copts retrieval.CollectionOptions) (*retrieval.Store, func(), float64, error) {
	dir := ev.DataDir
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "ragkv-eval-retrieval-")
		if err != nil {
			return nil, nil, 0, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, 0, fmt.Errorf("data dir: %w", err)
	}
	cleanup := func() {
		if ev.DataDir == "" {
			_ = os.RemoveAll(dir)
		}
	}
	st, err := retrieval.Open(ev.ctx, retrieval.Options{Dir: dir, Embedders: ev.Embedders, Logger: ev.Logger})
	if err != nil {
		cleanup()
		return nil, nil, 0, err
	}
	done := func() { _ = st.Close(); cleanup() }
	if _, err := st.Collection(collection); err == nil {
		if err := st.DeleteCollection(ev.ctx, collection); err != nil {
			done()
			return nil, nil, 0, err
		}
	}
	start := time.Now()
	var prog Bar = noBar{}
	stage, last := "", 0
	in, err := st.BeginIngest(ev.ctx, collection, retrieval.IngestOptions{
		Create: &copts, Shards: ev.Shards,
		Progress: func(s string, d, t int) {
			if s != stage {
				prog.Finish()
				stage, last, prog = s, 0, ev.NewBar("ingest: "+s, int64(t))
			}
			prog.Add(int64(d - last))
			last = d
		},
	})
	if err != nil {
		done()
		return nil, nil, 0, err
	}
	prog = ev.NewBar("ingest: chunk", int64(len(ev.Docs)))
	for i := 0; i < len(ev.Docs); i += 512 {
		if err := in.Add(ev.ctx, ev.Docs[i:min(i+512, len(ev.Docs))]...); err != nil {
			in.Abort()
			done()
			return nil, nil, 0, err
		}
		prog.Add(int64(min(512, len(ev.Docs)-i)))
	}
	stage = "chunk"
	res, err := in.Commit(ev.ctx)
	prog.Finish()
	if err != nil {
		done()
		return nil, nil, 0, err
	}
	fmt.Fprintf(ev.Out, "collection: %d docs, %d passages (%d duplicates dropped), %d shards, built in %.1f s\n",
		res.TotalDocs, res.TotalPass, res.Duplicates, res.Shards, time.Since(start).Seconds())
	return st, done, time.Since(start).Seconds(), nil
}

// Run is the scored run of one configuration.
type Run struct {
	beir.Scores
	// RunSHA256 hashes the ranked document ids of every query; ScoresSHA256 adds the scores
	// (two runs with equal hashes ranked identically).
	RunSHA256    string  `json:"run_sha256"`
	ScoresSHA256 string  `json:"scores_sha256"`
	QPS          float64 `json:"qps"`
}

func (ev *evaluator) search(st *retrieval.Store, label string, req retrieval.SearchRequest, weightFor map[string]float64) (Run, error) {
	run := map[string][]string{}
	hr, hs := sha256.New(), sha256.New()
	prog := ev.NewBar("queries: "+label, int64(len(ev.Queries)))
	start := time.Now()
	for _, q := range ev.Queries {
		r := req
		r.Collection, r.Query, r.K, r.GroupByDoc, r.NoText = collection, q.Text, ev.K, true, true
		if w, ok := weightFor[q.ID]; ok {
			r.FusionWeight = &w
		}
		res, err := st.Search(ev.ctx, r)
		if err != nil {
			prog.Finish()
			if errors.Is(err, retrieval.ErrEmptyQuery) {
				return Run{}, fmt.Errorf("query %q: %w", q.ID, err)
			}
			return Run{}, err
		}
		ids := make([]string, len(res.Hits))
		fmt.Fprintf(hr, "%s", q.ID)
		fmt.Fprintf(hs, "%s", q.ID)
		for i, h := range res.Hits {
			ids[i] = h.DocID
			fmt.Fprintf(hr, "\t%s", h.DocID)
			fmt.Fprintf(hs, "\t%s:%s", h.DocID, strconv.FormatFloat(h.Score, 'g', -1, 64))
		}
		hr.Write([]byte{'\n'})
		hs.Write([]byte{'\n'})
		run[q.ID] = ids
		prog.Add(1)
	}
	prog.Finish()
	el := time.Since(start).Seconds()
	out := Run{Scores: beir.Evaluate(run, ev.Qrels), RunSHA256: hex.EncodeToString(hr.Sum(nil)), ScoresSHA256: hex.EncodeToString(hs.Sum(nil))}
	if el > 0 {
		out.QPS = float64(len(ev.Queries)) / el
	}
	fmt.Fprintf(ev.Out, "%-24s nDCG@10 %.4f  recall@100 %.4f  MRR@10 %.4f  (%d queries, %.0f q/s)\n",
		label, out.NDCG10, out.Recall100, out.MRR10, out.Queries, out.QPS)
	return out, nil
}

func (r Run) into(m map[string]any) {
	m["ndcg@10"], m["recall@100"], m["mrr@10"], m["queries"] = r.NDCG10, r.Recall100, r.MRR10, r.Queries
	m["run_sha256"], m["scores_sha256"], m["qps"] = r.RunSHA256, r.ScoresSHA256, r.QPS
}

func (r Run) object() map[string]any { m := map[string]any{}; r.into(m); return m }

// Evaluate builds the collection and scores mode (bm25, dense or hybrid). noRescore ranks
// the dense side by the compressed codes alone — in hybrid mode too, where the dense run
// and both fusions use it. The result is the `eval retrieval --json` object.
func Evaluate(ctx context.Context, o Options, mode retrieval.Mode, fusion retrieval.Fusion, noRescore bool) (map[string]any, error) {
	ev, err := newEvaluator(ctx, o)
	if err != nil {
		return nil, err
	}
	st, done, buildSec, err := ev.build(ev.Collection)
	if err != nil {
		return nil, err
	}
	defer done()
	info, err := st.Collection(collection)
	if err != nil {
		return nil, err
	}
	res := map[string]any{
		"eval": "retrieval", "mode": string(mode), "shards": ev.Shards, "docs": info.Docs, "passages": info.Passages,
		"chunk_words": info.Options.ChunkWords, "chunk_overlap": info.Options.ChunkOverlap,
		"build_seconds": buildSec, "k": ev.K, "no_rescore": noRescore,
	}
	if info.Dim > 0 {
		res["embedder"], res["dim"], res["pca_dims"], res["int8"] = info.Embedder, info.Dim, info.PCADims, info.Int8
		res["bytes_per_vector"] = info.BytesPerVector
	}
	suffix := ""
	if noRescore {
		suffix = " no-rescore"
	}
	if mode != retrieval.ModeHybrid {
		r, err := ev.search(st, string(mode)+suffix, retrieval.SearchRequest{Mode: mode, NoRescore: noRescore}, nil)
		if err != nil {
			return nil, err
		}
		r.into(res)
		return res, nil
	}
	bm, err := ev.search(st, "bm25", retrieval.SearchRequest{Mode: retrieval.ModeBM25}, nil)
	if err != nil {
		return nil, err
	}
	de, err := ev.search(st, "dense"+suffix, retrieval.SearchRequest{Mode: retrieval.ModeDense, NoRescore: noRescore}, nil)
	if err != nil {
		return nil, err
	}
	rrf, err := ev.search(st, "hybrid rrf"+suffix, retrieval.SearchRequest{Mode: retrieval.ModeHybrid, Fusion: retrieval.FusionRRF, NoRescore: noRescore}, nil)
	if err != nil {
		return nil, err
	}
	var weightFor map[string]float64
	wlabel := fmt.Sprintf("hybrid weighted w=%.2f", retrieval.DefaultFusionWeight)
	if len(ev.Fit) > 0 {
		prog := ev.NewBar("fit fusion", 0)
		fit, err := st.FitFusion(ev.ctx, collection, ev.Fit, retrieval.FitOptions{K: ev.K, Persist: true})
		prog.Finish()
		if err != nil {
			return nil, err
		}
		weightFor = fit.FoldWeight
		overlap := 0
		for _, q := range ev.Queries {
			if _, ok := fit.FoldWeight[q.ID]; ok {
				overlap++
			}
		}
		res["fit"] = map[string]any{
			"weight": fit.Weight, "in_sample_ndcg@10": fit.NDCG10, "cv_ndcg@10": fit.CVNDCG10, "folds": 5,
			"fit_queries": fit.Queries, "eval_queries_cross_validated": overlap, "grid": fit.Grid,
		}
		fmt.Fprintf(ev.Out, "fitted BM25 weight %.2f (in-sample nDCG@10 %.4f, 5-fold CV %.4f); %d eval queries use their fold's weight\n",
			fit.Weight, fit.NDCG10, fit.CVNDCG10, overlap)
		wlabel = "hybrid weighted (fitted)"
	}
	wr, err := ev.search(st, wlabel+suffix, retrieval.SearchRequest{Mode: retrieval.ModeHybrid, Fusion: retrieval.FusionWeighted, NoRescore: noRescore}, weightFor)
	if err != nil {
		return nil, err
	}
	top := wr
	if fusion == retrieval.FusionRRF {
		top = rrf
	}
	top.into(res)
	res["fusion"] = string(fusion)
	if fusion == retrieval.FusionDefault {
		res["fusion"] = string(retrieval.FusionWeighted)
	}
	res["weighted"], res["rrf"], res["bm25"], res["dense"] = wr.object(), rrf.object(), bm.object(), de.object()
	bestSingle := math.Max(bm.NDCG10, de.NDCG10)
	res["best_single_ndcg@10"] = bestSingle
	res["hybrid_minus_best_single"] = wr.NDCG10 - bestSingle
	fmt.Fprintf(ev.Out, "weighted hybrid − best single mode: %+.4f nDCG@10 (target ≥ −0.005); RRF: %+.4f\n",
		wr.NDCG10-bestSingle, rrf.NDCG10-bestSingle)
	return res, nil
}

// Sweep measures dense nDCG@10 at each PCA dimension relative to full vectors, with and
// without rescoring; the result is the `eval retrieval --pca-sweep --json` object.
func Sweep(ctx context.Context, o Options, dims []int) (map[string]any, error) {
	ev, err := newEvaluator(ctx, o)
	if err != nil {
		return nil, err
	}
	score := func(pcaDims int) (withR, noR Run, bpv float64, err error) {
		c := ev.Collection
		c.PCADims = pcaDims
		st, done, _, err := ev.build(c)
		if err != nil {
			return
		}
		defer done()
		info, _ := st.Collection(collection)
		bpv = info.BytesPerVector
		label := fmt.Sprintf("dense pca=%d", info.PCADims)
		if info.PCADims == 0 {
			label = "dense full"
		}
		if withR, err = ev.search(st, label, retrieval.SearchRequest{Mode: retrieval.ModeDense}, nil); err != nil {
			return
		}
		if info.PCADims > 0 {
			noR, err = ev.search(st, label+" no-rescore", retrieval.SearchRequest{Mode: retrieval.ModeDense, NoRescore: true}, nil)
		} else {
			noR = withR
		}
		return
	}
	full, _, fullBPV, err := score(-1)
	if err != nil {
		return nil, err
	}
	var rows []map[string]any
	def, defNDCG, defBoth := 0, 0, 0
	for _, d := range dims {
		r, nr, bpv, err := score(d)
		if err != nil {
			return nil, err
		}
		row := map[string]any{
			"dims": d, "ndcg@10": r.NDCG10, "recall@100": r.Recall100, "retained": r.NDCG10 / full.NDCG10,
			"ndcg@10_no_rescore": nr.NDCG10, "retained_no_rescore": nr.NDCG10 / full.NDCG10, "bytes_per_vector": bpv,
		}
		rows = append(rows, row)
		if def == 0 && nr.NDCG10/full.NDCG10 >= 0.95 {
			def = d
		}
		if defNDCG == 0 && r.NDCG10/full.NDCG10 >= 0.95 {
			defNDCG = d
		}
		if defBoth == 0 && r.NDCG10/full.NDCG10 >= 0.95 && r.Recall100/full.Recall100 >= 0.95 {
			defBoth = d
		}
		row["recall@100_retained"] = r.Recall100 / full.Recall100
	}
	slices.SortFunc(rows, func(a, b map[string]any) int { return a["dims"].(int) - b["dims"].(int) })
	for _, r := range rows {
		fmt.Fprintf(ev.Out, "pca %3d: nDCG@10 %.4f (%.1f%% of full) rescored, %.4f (%.1f%%) codes only, %.0f B/vector in RAM\n",
			r["dims"], r["ndcg@10"], 100*r["retained"].(float64), r["ndcg@10_no_rescore"], 100*r["retained_no_rescore"].(float64), r["bytes_per_vector"])
	}
	return map[string]any{
		"eval": "retrieval", "mode": "dense", "shards": ev.Shards, "full_ndcg@10": full.NDCG10, "full_recall@100": full.Recall100,
		"full_bytes_per_vector": fullBPV, "pca_sweep": rows, "smallest_dims_retaining_95pct_without_rescore": def,
		"smallest_dims_retaining_95pct_ndcg": defNDCG, "smallest_dims_retaining_95pct_ndcg_and_recall": defBoth,
		"collection_default_pca_dims": retrieval.DefaultPCADims,
		"ndcg@10":                     full.NDCG10, "recall@100": full.Recall100, "mrr@10": full.MRR10,
	}, nil
}
