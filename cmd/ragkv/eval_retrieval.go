package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/beir"
	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/retrievaleval"
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
			docs, err := retrievaleval.LoadCorpus(corpus)
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
			eo := retrievaleval.Options{
				Docs: docs, Queries: qs, Qrels: rels, Fit: fitQs, Embedders: embs, Collection: copts,
				Shards: shards, K: k, DataDir: dataDir, Out: cmd.OutOrStdout(), NewBar: bar,
			}
			var res map[string]any
			if len(sweep) > 0 {
				res, err = retrievaleval.Sweep(cmd.Context(), eo, sweep)
			} else {
				res, err = retrievaleval.Evaluate(cmd.Context(), eo, m, fu, noRescore)
			}
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
	f.StringVar(&embeddings, "embeddings", "", "GloVe word vectors (text, optionally gzip) for the GloVe-SIF embedder, or gguf:FILE / hf:DIR[,pool=mean|cls|last,max=N,prefix=TEXT,query-prefix=TEXT,eos=true]: an in-engine sentence encoder (BERT-family GGUF or safetensors, or a Llama-family decoder)")
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

// bar adapts a CLI progress line to retrievaleval.Bar.
func bar(label string, total int64) retrievaleval.Bar {
	return cliutil.NewProgress(os.Stderr, label, total)
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
				train, test = retrievaleval.SplitHoldout(train, seed, holdout)
			}
			if len(test) == 0 {
				return flagErr("test", "no test queries")
			}
			if maxUsage < 0 {
				return flagErr("max-usage", "must be ≥ 0 (0: all), got %d", maxUsage)
			}
			train = retrievaleval.CapUsage(train, maxUsage)
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
			sc, err := retrievaleval.EvaluateTools(cmd.Context(), ti, tools, test, bar("tool queries", int64(len(test))))
			if errors.Is(err, retrievaleval.ErrUnknownTool) {
				return flagErr("test", "%v", err)
			} else if err != nil {
				return err
			}
			withUsage := 0
			for _, u := range ti.Usage {
				if u > 0 {
					withUsage++
				}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %d tools (%d with usage queries), %d train / %d test queries\n", m, len(tools), withUsage, len(train), len(test))
			fmt.Fprintf(out, "recall@1 %.4f  recall@3 %.4f  recall@5 %.4f  nDCG@5 %.4f\n", sc.Recall1, sc.Recall3, sc.Recall5, sc.NDCG5)
			if !asJSON {
				return nil
			}
			return cliutil.PrintJSON(out, map[string]any{
				"eval": "tools", "method": string(m), "embedder": emb.Name(), "tools": len(tools), "tools_with_usage": withUsage,
				"train": len(train), "test": len(test), "holdout": holdout, "seed": seed, "test_file": testPath, "max_usage": maxUsage,
				"recall@1": sc.Recall1, "recall@3": sc.Recall3, "recall@5": sc.Recall5, "ndcg@5": sc.NDCG5,
				"build_seconds": build, "qps": sc.QPS,
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
