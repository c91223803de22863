package main

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
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/beir"
	"github.com/ragkv/ragkv/retrieval/embed"
)

// eval retrieval: build a collection from a BEIR corpus and score BEIR queries.
func init() {
	var (
		corpus, queries, qrels       string
		fitQueries, fitQrels         string
		mode, fusion, embeddings     string
		denseIndex, dedup, dataDir   string
		sifWeights, pcaSweep         string
		shards, pcaDims, k           int
		chunkWords, chunkOverlap     int
		int8Codes, asJSON, noRescore bool
	)
	cmd := &cobra.Command{
		Use:   "retrieval",
		Short: "Evaluate BM25, dense or hybrid retrieval on a BEIR dataset (nDCG@10, recall@100, MRR@10)",
		Long: `Builds a collection from a BEIR corpus (JSONL {"_id","title","text"}) in a temporary
directory (or --data-dir), runs every query of --queries (JSONL {"_id","text"}) with k=100,
keeping the best passage per document, and scores the runs against --qrels (TSV with a
header line) with BEIR's definitions: nDCG@10 (graded gains), recall@100, MRR@10, averaged
over the queries that have a relevant judgement.

Hybrid search fuses BM25 and dense scores. With --fit-queries/--fit-qrels the BM25 weight of
weighted fusion is fitted by grid search (step 0.05) and stored with the collection; queries
that are also fit queries are ranked with the weight fitted on the other 4 of 5 folds
(cross-validation), so no query is scored with a weight fitted on itself. Reciprocal-rank
fusion (k=60) is reported alongside.

--pca-sweep 16,32,50,64,100 (dense mode) rebuilds the collection at each projected dimension
and reports the nDCG@10 retained relative to full vectors, with and without rescoring.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := retrieval.ParseMode(mode)
			if err != nil || m == retrieval.ModeDefault {
				return flagErr("mode", "want bm25, dense or hybrid, got %q", mode)
			}
			fu, err := retrieval.ParseFusion(fusion)
			if err != nil {
				return flagErr("fusion", "want weighted or rrf, got %q", fusion)
			}
			di, err := retrieval.ParseDenseIndex(denseIndex)
			if err != nil {
				return flagErr("dense-index", "want auto, exact or ann, got %q", denseIndex)
			}
			if shards < 1 || shards > 256 {
				return flagErr("shards", "must be in [1, 256], got %d", shards)
			}
			if k < 100 || k > 1000 {
				return flagErr("k", "must be in [100, 1000] (recall@100 needs 100), got %d", k)
			}
			if (fitQueries == "") != (fitQrels == "") {
				return flagErr("fit-queries", "--fit-queries and --fit-qrels go together")
			}
			switch retrieval.Dedup(dedup) {
			case retrieval.DedupExact, retrieval.DedupMinHash, retrieval.DedupNone:
			default:
				return flagErr("dedup", "want exact, minhash or none, got %q", dedup)
			}
			if sifWeights != "corpus" && sifWeights != "rank" {
				return flagErr("sif-weights", "want rank or corpus, got %q", sifWeights)
			}
			if m != retrieval.ModeBM25 && embeddings == "" {
				return flagErr("embeddings", "required for --mode %s (a GloVe text file, e.g. ../shared/embeddings/glove.6B.100d.top50k.txt.gz, or gguf:FILE for an in-engine sentence encoder)", mode)
			}
			var sweep []int
			if pcaSweep != "" {
				if m != retrieval.ModeDense {
					return flagErr("pca-sweep", "only with --mode dense")
				}
				for _, f := range strings.Split(pcaSweep, ",") {
					d, err := strconv.Atoi(strings.TrimSpace(f))
					if err != nil || d < 1 {
						return flagErr("pca-sweep", "%q is not a positive dimension", f)
					}
					sweep = append(sweep, d)
				}
			}
			copts := retrieval.CollectionOptions{
				ChunkWords: chunkWords, ChunkOverlap: chunkOverlap, Dedup: retrieval.Dedup(dedup),
				PCADims: pcaDims, Int8: int8Codes, DenseIndex: di,
			}
			if m == retrieval.ModeBM25 && embeddings == "" {
				copts.Embedder = "none"
			}
			if chunkWords < 0 {
				copts.ChunkOverlap = 0
			}
			copts.EnsureDefaults()
			if err := copts.Validate(); err != nil {
				return flagErr("chunk-words", "%v", err)
			}
			qs, err := beir.LoadQueries(queries)
			if err != nil {
				return flagErr("queries", "%v", err)
			}
			rels, err := beir.LoadQrels(qrels)
			if err != nil {
				return flagErr("qrels", "%v", err)
			}
			docs, err := loadCorpus(corpus)
			if err != nil {
				return flagErr("corpus", "%v", err)
			}
			var fitQs []retrieval.LabeledQuery
			if fitQueries != "" {
				fq, err := beir.LoadQueries(fitQueries)
				if err != nil {
					return flagErr("fit-queries", "%v", err)
				}
				fr, err := beir.LoadQrels(fitQrels)
				if err != nil {
					return flagErr("fit-qrels", "%v", err)
				}
				for _, q := range fq {
					if fr.HasRelevant(q.ID) {
						fitQs = append(fitQs, retrieval.LabeledQuery{ID: q.ID, Text: q.Text, Relevant: fr[q.ID]})
					}
				}
			}
			var embs []embed.Embedder
			if enc, ok, err := openEncoderEmbedder(embeddings, "embeddings"); err != nil {
				return err
			} else if ok {
				defer enc.Close()
				embs = append(embs, enc)
			} else if embeddings != "" {
				wv, err := embed.LoadGloVe(embeddings, 0)
				if err != nil {
					return flagErr("embeddings", "%v", err)
				}
				sif, err := embed.NewSIF(wv, embed.SIFOptions{CorpusFrequencies: sifWeights == "corpus"})
				if err != nil {
					return err
				}
				embs = append(embs, sif)
			}
			ev := &retrievalEval{
				ctx: cmd.Context(), out: cmd.OutOrStdout(), docs: docs, queries: qs, qrels: rels, fit: fitQs,
				embs: embs, copts: copts, shards: shards, k: k, dataDir: dataDir,
			}
			res, err := ev.run(m, fu, sweep, noRescore)
			if err != nil {
				return err
			}
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&corpus, "corpus", "", "BEIR corpus JSONL")
	f.StringVar(&queries, "queries", "", "BEIR queries JSONL")
	f.StringVar(&qrels, "qrels", "", "BEIR qrels TSV (with a header line)")
	f.StringVar(&mode, "mode", "bm25", "bm25, dense or hybrid")
	f.StringVar(&fusion, "fusion", "weighted", "hybrid fusion reported at the top level: weighted or rrf")
	f.StringVar(&embeddings, "embeddings", "", "GloVe word vectors (text, optionally gzip) for the GloVe-SIF embedder, or gguf:FILE / hf:DIR[,pool=mean|cls|last,max=N,prefix=TEXT,eos=true]: an in-engine sentence encoder (BERT-family GGUF or safetensors, or a Llama-family decoder)")
	f.StringVar(&sifWeights, "sif-weights", "rank", "SIF word probabilities: rank (Zipf over the GloVe frequency rank) or corpus")
	f.IntVar(&pcaDims, "pca-dims", 0, "PCA dimension of the dense codes (0: the collection default; -1: full vectors)")
	f.StringVar(&pcaSweep, "pca-sweep", "", "comma-separated PCA dimensions to sweep (dense mode), e.g. 16,32,50,64,100")
	f.BoolVar(&int8Codes, "int8", false, "int8-quantize the projected vectors")
	f.BoolVar(&noRescore, "no-rescore", false, "dense: rank by the compressed codes only (no full-vector rescoring)")
	f.StringVar(&denseIndex, "dense-index", "auto", "dense search structure: auto, exact or ann")
	f.IntVar(&shards, "shards", 1, "shards the corpus is split into (built in parallel, merged exactly)")
	f.IntVar(&chunkWords, "chunk-words", retrieval.DefaultChunkWords, "passage length in words (negative: one passage per document)")
	f.IntVar(&chunkOverlap, "chunk-overlap", retrieval.DefaultChunkOverlap, "words shared by consecutive passages")
	f.StringVar(&dedup, "dedup", "exact", "duplicate passages: exact, minhash or none")
	f.StringVar(&fitQueries, "fit-queries", "", "labelled queries (BEIR JSONL) to fit hybrid fusion weights on")
	f.StringVar(&fitQrels, "fit-qrels", "", "qrels of --fit-queries")
	f.IntVar(&k, "k", 100, "passages retrieved per query (documents after grouping)")
	f.StringVar(&dataDir, "data-dir", "", "directory for the collection (default: a temporary directory, removed afterwards)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last stdout line")
	evalCmd.AddCommand(cmd)
}

func loadCorpus(path string) ([]retrieval.Document, error) {
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

type retrievalEval struct {
	ctx     context.Context
	out     io.Writer
	docs    []retrieval.Document
	queries []beir.Query
	qrels   beir.Qrels
	fit     []retrieval.LabeledQuery
	embs    []embed.Embedder
	copts   retrieval.CollectionOptions
	shards  int
	k       int
	dataDir string
}

const evalCollection = "eval"

// build opens a store in a fresh directory and ingests the corpus.
func (ev *retrievalEval) build(copts retrieval.CollectionOptions) (*retrieval.Store, func(), float64, error) {
	dir := ev.dataDir
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "ragkv-eval-retrieval-")
		if err != nil {
			return nil, nil, 0, err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, 0, flagErr("data-dir", "%v", err)
	}
	cleanup := func() {
		if ev.dataDir == "" {
			_ = os.RemoveAll(dir)
		}
	}
	st, err := retrieval.Open(ev.ctx, retrieval.Options{Dir: dir, Embedders: ev.embs, Logger: quietLogger()})
	if err != nil {
		cleanup()
		return nil, nil, 0, err
	}
	done := func() { _ = st.Close(); cleanup() }
	if _, err := st.Collection(evalCollection); err == nil {
		if err := st.DeleteCollection(ev.ctx, evalCollection); err != nil {
			done()
			return nil, nil, 0, err
		}
	}
	start := time.Now()
	var prog *cliutil.Progress
	stage, last := "", 0
	in, err := st.BeginIngest(ev.ctx, evalCollection, retrieval.IngestOptions{
		Create: &copts, Shards: ev.shards,
		Progress: func(s string, d, t int) {
			if s != stage {
				prog.Finish()
				stage, last, prog = s, 0, cliutil.NewProgress(os.Stderr, "ingest: "+s, int64(t))
			}
			prog.Add(int64(d - last))
			last = d
		},
	})
	if err != nil {
		done()
		return nil, nil, 0, err
	}
	prog = cliutil.NewProgress(os.Stderr, "ingest: chunk", int64(len(ev.docs)))
	for i := 0; i < len(ev.docs); i += 512 {
		if err := in.Add(ev.ctx, ev.docs[i:min(i+512, len(ev.docs))]...); err != nil {
			in.Abort()
			done()
			return nil, nil, 0, err
		}
		prog.Add(int64(min(512, len(ev.docs)-i)))
	}
	stage = "chunk"
	res, err := in.Commit(ev.ctx)
	prog.Finish()
	if err != nil {
		done()
		return nil, nil, 0, err
	}
	fmt.Fprintf(ev.out, "collection: %d docs, %d passages (%d duplicates dropped), %d shards, built in %.1f s\n",
		res.TotalDocs, res.TotalPass, res.Duplicates, res.Shards, time.Since(start).Seconds())
	return st, done, time.Since(start).Seconds(), nil
}

// runResult is the scored run of one configuration.
type runResult struct {
	beir.Scores
	RunSHA256    string  `json:"run_sha256"`
	ScoresSHA256 string  `json:"scores_sha256"`
	QPS          float64 `json:"qps"`
}

func (ev *retrievalEval) search(st *retrieval.Store, label string, req retrieval.SearchRequest, weightFor map[string]float64) (runResult, error) {
	run := map[string][]string{}
	hr, hs := sha256.New(), sha256.New()
	prog := cliutil.NewProgress(os.Stderr, "queries: "+label, int64(len(ev.queries)))
	start := time.Now()
	for _, q := range ev.queries {
		r := req
		r.Collection, r.Query, r.K, r.GroupByDoc, r.NoText = evalCollection, q.Text, ev.k, true, true
		if w, ok := weightFor[q.ID]; ok {
			r.FusionWeight = &w
		}
		res, err := st.Search(ev.ctx, r)
		if err != nil {
			prog.Finish()
			if errors.Is(err, retrieval.ErrEmptyQuery) {
				return runResult{}, fmt.Errorf("query %q: %w", q.ID, err)
			}
			return runResult{}, err
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
	out := runResult{Scores: beir.Evaluate(run, ev.qrels), RunSHA256: hex.EncodeToString(hr.Sum(nil)), ScoresSHA256: hex.EncodeToString(hs.Sum(nil))}
	if el > 0 {
		out.QPS = float64(len(ev.queries)) / el
	}
	fmt.Fprintf(ev.out, "%-24s nDCG@10 %.4f  recall@100 %.4f  MRR@10 %.4f  (%d queries, %.0f q/s)\n",
		label, out.NDCG10, out.Recall100, out.MRR10, out.Queries, out.QPS)
	return out, nil
}

func (ev *retrievalEval) run(mode retrieval.Mode, fusion retrieval.Fusion, sweep []int, noRescore bool) (map[string]any, error) {
	if len(sweep) > 0 {
		return ev.runSweep(sweep)
	}
	st, done, buildSec, err := ev.build(ev.copts)
	if err != nil {
		return nil, err
	}
	defer done()
	info, err := st.Collection(evalCollection)
	if err != nil {
		return nil, err
	}
	res := map[string]any{
		"eval": "retrieval", "mode": string(mode), "shards": ev.shards, "docs": info.Docs, "passages": info.Passages,
		"chunk_words": info.Options.ChunkWords, "chunk_overlap": info.Options.ChunkOverlap,
		"build_seconds": buildSec, "k": ev.k,
	}
	if info.Dim > 0 {
		res["embedder"], res["dim"], res["pca_dims"], res["int8"] = info.Embedder, info.Dim, info.PCADims, info.Int8
		res["bytes_per_vector"] = info.BytesPerVector
	}
	put := func(r runResult, into map[string]any) {
		into["ndcg@10"], into["recall@100"], into["mrr@10"], into["queries"] = r.NDCG10, r.Recall100, r.MRR10, r.Queries
		into["run_sha256"], into["scores_sha256"], into["qps"] = r.RunSHA256, r.ScoresSHA256, r.QPS
	}
	sub := func(r runResult) map[string]any { m := map[string]any{}; put(r, m); return m }
	if mode != retrieval.ModeHybrid {
		r, err := ev.search(st, string(mode), retrieval.SearchRequest{Mode: mode, NoRescore: noRescore}, nil)
		if err != nil {
			return nil, err
		}
		put(r, res)
		return res, nil
	}
	bm, err := ev.search(st, "bm25", retrieval.SearchRequest{Mode: retrieval.ModeBM25}, nil)
	if err != nil {
		return nil, err
	}
	de, err := ev.search(st, "dense", retrieval.SearchRequest{Mode: retrieval.ModeDense}, nil)
	if err != nil {
		return nil, err
	}
	rrf, err := ev.search(st, "hybrid rrf", retrieval.SearchRequest{Mode: retrieval.ModeHybrid, Fusion: retrieval.FusionRRF}, nil)
	if err != nil {
		return nil, err
	}
	var weightFor map[string]float64
	wlabel := fmt.Sprintf("hybrid weighted w=%.2f", retrieval.DefaultFusionWeight)
	if len(ev.fit) > 0 {
		prog := cliutil.NewProgress(os.Stderr, "fit fusion", 0)
		fit, err := st.FitFusion(ev.ctx, evalCollection, ev.fit, retrieval.FitOptions{K: ev.k, Persist: true})
		prog.Finish()
		if err != nil {
			return nil, err
		}
		weightFor = fit.FoldWeight
		overlap := 0
		for _, q := range ev.queries {
			if _, ok := fit.FoldWeight[q.ID]; ok {
				overlap++
			}
		}
		res["fit"] = map[string]any{
			"weight": fit.Weight, "in_sample_ndcg@10": fit.NDCG10, "cv_ndcg@10": fit.CVNDCG10, "folds": 5,
			"fit_queries": fit.Queries, "eval_queries_cross_validated": overlap, "grid": fit.Grid,
		}
		fmt.Fprintf(ev.out, "fitted BM25 weight %.2f (in-sample nDCG@10 %.4f, 5-fold CV %.4f); %d eval queries use their fold's weight\n",
			fit.Weight, fit.NDCG10, fit.CVNDCG10, overlap)
		wlabel = "hybrid weighted (fitted)"
	}
	wr, err := ev.search(st, wlabel, retrieval.SearchRequest{Mode: retrieval.ModeHybrid, Fusion: retrieval.FusionWeighted}, weightFor)
	if err != nil {
		return nil, err
	}
	top := wr
	if fusion == retrieval.FusionRRF {
		top = rrf
	}
	put(top, res)
	res["fusion"] = string(fusion)
	if fusion == retrieval.FusionDefault {
		res["fusion"] = string(retrieval.FusionWeighted)
	}
	res["weighted"], res["rrf"], res["bm25"], res["dense"] = sub(wr), sub(rrf), sub(bm), sub(de)
	bestSingle := math.Max(bm.NDCG10, de.NDCG10)
	res["best_single_ndcg@10"] = bestSingle
	res["hybrid_minus_best_single"] = wr.NDCG10 - bestSingle
	fmt.Fprintf(ev.out, "weighted hybrid − best single mode: %+.4f nDCG@10 (target ≥ −0.005); RRF: %+.4f\n",
		wr.NDCG10-bestSingle, rrf.NDCG10-bestSingle)
	return res, nil
}

// runSweep measures dense nDCG@10 at each PCA dimension relative to full vectors.
func (ev *retrievalEval) runSweep(dims []int) (map[string]any, error) {
	score := func(pcaDims int) (withR, noR runResult, bpv float64, err error) {
		c := ev.copts
		c.PCADims = pcaDims
		st, done, _, err := ev.build(c)
		if err != nil {
			return
		}
		defer done()
		info, _ := st.Collection(evalCollection)
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
		fmt.Fprintf(ev.out, "pca %3d: nDCG@10 %.4f (%.1f%% of full) rescored, %.4f (%.1f%%) codes only, %.0f B/vector in RAM\n",
			r["dims"], r["ndcg@10"], 100*r["retained"].(float64), r["ndcg@10_no_rescore"], 100*r["retained_no_rescore"].(float64), r["bytes_per_vector"])
	}
	return map[string]any{
		"eval": "retrieval", "mode": "dense", "shards": ev.shards, "full_ndcg@10": full.NDCG10, "full_recall@100": full.Recall100,
		"full_bytes_per_vector": fullBPV, "pca_sweep": rows, "smallest_dims_retaining_95pct_without_rescore": def,
		"smallest_dims_retaining_95pct_ndcg": defNDCG, "smallest_dims_retaining_95pct_ndcg_and_recall": defBoth,
		"collection_default_pca_dims": retrieval.DefaultPCADims,
		"ndcg@10":                     full.NDCG10, "recall@100": full.Recall100, "mrr@10": full.MRR10,
	}, nil
}

// quietLogger logs warnings and errors to stderr (batch jobs).
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// evalHoldout reports whether a query id falls in the held-out fraction (deterministic
// in seed and id).
func evalHoldout(id string, seed uint64, frac float64) bool {
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h := sha256.Sum256(append(b[:], id...))
	u := uint64(h[0])<<45 | uint64(h[1])<<37 | uint64(h[2])<<29 | uint64(h[3])<<21 | uint64(h[4])<<13 | uint64(h[5])<<5 | uint64(h[6])>>3
	return float64(u)/float64(1<<53) < frac
}

// eval tools: Tool2Vec vs description embeddings on labelled tool-use queries.
func init() {
	var (
		toolsPath, trainPath, testPath string
		method, embeddings, sifWeights string
		holdout                        float64
		seed                           uint64
		asJSON                         bool
		maxUsage                       int
	)
	cmd := &cobra.Command{
		Use:   "tools",
		Short: "Evaluate tool retrieval (Tool2Vec or description embeddings): recall@1/3/5, nDCG@5",
		Long: `Builds a tool index from --tools (JSON [{"name","description"}]) and the labelled usage
queries of --train (JSONL {"_id","query","tool"}), then retrieves the top 5 tools for every
query of --test and reports recall@1, recall@3, recall@5 and nDCG@5 (one relevant tool per
query).

--method tool2vec: a tool's vector is the mean embedding of its training usage queries
(its description's embedding when it has none). --method description: the embedding of its
description. --method tool2vec-prior: the centroid of n usage queries shrunk towards the
embedding of the tool's name and description, n/(n+2) : 2/(n+2). --method knn: the mean
similarity to the tool's 3 nearest usage queries, weighted n/(n+2), plus 2/(n+2) times the
similarity to that prior. --max-usage N keeps N training queries per tool (thin usage
data, as on Gorilla-style API hubs). The GloVe-SIF embedder is fitted on the descriptions and training queries for
both methods.

Without --test, a deterministic --holdout fraction of --train (chosen by a hash of --seed
and the query's "_id") is held out as the test set and the rest is used for training.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := retrieval.ParseToolMethod(method)
			if err != nil {
				return flagErr("method", "want tool2vec, description, tool2vec-prior or knn, got %q", method)
			}
			if embeddings == "" {
				return flagErr("embeddings", "required (a GloVe text file, e.g. ../shared/embeddings/glove.6B.100d.top50k.txt.gz)")
			}
			if testPath == "" && (holdout <= 0 || holdout >= 1) {
				return flagErr("holdout", "must be in (0, 1) when --test is not given, got %v", holdout)
			}
			if sifWeights != "rank" && sifWeights != "corpus" {
				return flagErr("sif-weights", "want rank or corpus, got %q", sifWeights)
			}
			tf, err := os.Open(toolsPath)
			if err != nil {
				return flagErr("tools", "%v", err)
			}
			tools, err := retrieval.ReadTools(tf, toolsPath)
			tf.Close()
			if err != nil {
				return flagErr("tools", "%v", err)
			}
			train, err := readToolQueries(trainPath)
			if err != nil {
				return flagErr("train", "%v", err)
			}
			var test []retrieval.LabeledToolQuery
			if testPath != "" {
				if test, err = readToolQueries(testPath); err != nil {
					return flagErr("test", "%v", err)
				}
			} else {
				var tr []retrieval.LabeledToolQuery
				for _, q := range train {
					if evalHoldout(q.ID, seed, holdout) {
						test = append(test, q)
					} else {
						tr = append(tr, q)
					}
				}
				train = tr
			}
			if len(test) == 0 {
				return flagErr("test", "no test queries")
			}
			if maxUsage < 0 {
				return flagErr("max-usage", "must be ≥ 0 (0: all), got %d", maxUsage)
			}
			if maxUsage > 0 { // thin usage data: the first maxUsage training queries of each tool
				per := map[string]int{}
				var kept []retrieval.LabeledToolQuery
				for _, q := range train {
					if per[q.Tool] < maxUsage {
						per[q.Tool]++
						kept = append(kept, q)
					}
				}
				train = kept
			}
			var emb embed.Embedder
			if enc, ok, err := openEncoderEmbedder(embeddings, "embeddings"); err != nil {
				return err
			} else if ok {
				defer enc.Close()
				emb = enc
			} else {
				wv, err := embed.LoadGloVe(embeddings, 0)
				if err != nil {
					return flagErr("embeddings", "%v", err)
				}
				if emb, err = embed.NewSIF(wv, embed.SIFOptions{CorpusFrequencies: sifWeights == "corpus"}); err != nil {
					return err
				}
			}
			usage := make([]retrieval.ToolUsage, len(train))
			for i, q := range train {
				usage[i] = retrieval.ToolUsage{Query: q.Query, Tool: q.Tool}
			}
			start := time.Now()
			ti, err := retrieval.BuildToolIndex(cmd.Context(), emb, tools, usage, m)
			if err != nil {
				return fmt.Errorf("--train: %w", err)
			}
			build := time.Since(start).Seconds()
			known := map[string]bool{}
			for _, t := range tools {
				known[t.Name] = true
			}
			var r1, r3, r5, nd float64
			prog := cliutil.NewProgress(os.Stderr, "tool queries", int64(len(test)))
			start = time.Now()
			for _, q := range test {
				if !known[q.Tool] {
					prog.Finish()
					return flagErr("test", "query %q is labelled with unknown tool %q", q.ID, q.Tool)
				}
				hits, err := ti.Search(cmd.Context(), q.Query, 5)
				if err != nil {
					prog.Finish()
					return err
				}
				for rank, h := range hits {
					if h.Name != q.Tool {
						continue
					}
					if rank < 1 {
						r1++
					}
					if rank < 3 {
						r3++
					}
					r5++
					nd += 1 / math.Log2(float64(rank)+2)
					break
				}
				prog.Add(1)
			}
			prog.Finish()
			qsec := time.Since(start).Seconds()
			n := float64(len(test))
			withUsage := 0
			for _, u := range ti.Usage {
				if u > 0 {
					withUsage++
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %d tools (%d with usage queries), %d train / %d test queries\n", m, len(tools), withUsage, len(train), len(test))
			fmt.Fprintf(out, "recall@1 %.4f  recall@3 %.4f  recall@5 %.4f  nDCG@5 %.4f\n", r1/n, r3/n, r5/n, nd/n)
			if !asJSON {
				return nil
			}
			return cliutil.PrintJSON(out, map[string]any{
				"eval": "tools", "method": string(m), "embedder": emb.Name(), "tools": len(tools), "tools_with_usage": withUsage,
				"train": len(train), "test": len(test), "holdout": holdout, "seed": seed, "test_file": testPath, "max_usage": maxUsage,
				"recall@1": r1 / n, "recall@3": r3 / n, "recall@5": r5 / n, "ndcg@5": nd / n,
				"build_seconds": build, "qps": n / qsec,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&toolsPath, "tools", "", `tools JSON: [{"name","description"}]`)
	f.StringVar(&trainPath, "train", "", `labelled usage queries JSONL: {"_id","query","tool"}`)
	f.StringVar(&testPath, "test", "", "test queries JSONL (default: hold out --holdout of --train)")
	f.StringVar(&method, "method", "tool2vec", "tool2vec, description, tool2vec-prior (centroid shrunk to the name+description prior) or knn (nearest usage queries + prior)")
	f.IntVar(&maxUsage, "max-usage", 0, "keep at most this many training usage queries per tool (thin usage data; 0: all)")
	f.StringVar(&embeddings, "embeddings", "", "GloVe word vectors (text, optionally gzip), or gguf:FILE / hf:DIR[,pool=...]: an in-engine sentence encoder")
	f.StringVar(&sifWeights, "sif-weights", "rank", "SIF word probabilities: rank or corpus")
	f.Float64Var(&holdout, "holdout", 0.2, "fraction of --train held out as the test set when --test is not given")
	f.Uint64Var(&seed, "seed", 1, "seed of the hold-out split")
	f.BoolVar(&asJSON, "json", false, "print one JSON object as the last stdout line")
	evalCmd.AddCommand(cmd)
}

func readToolQueries(path string) ([]retrieval.LabeledToolQuery, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return retrieval.ReadToolQueries(fh, path)
}
