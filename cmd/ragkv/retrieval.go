package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/beir"
	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/server"
)

// retrievalConfig is the `retrieval:` section of the serve configuration. The zero
// value serves retrieval from <data_dir>/retrieval with no embedder (BM25 only).
type retrievalConfig struct {
	// Disabled turns the retrieval service off.
	Disabled bool `yaml:"disabled"`
	// Dir holds collections and tool registries (default <data_dir>/retrieval).
	Dir string `yaml:"dir"`
	// Embeddings is a GloVe word-vector file (text, optionally gzip) for the built-in
	// GloVe-SIF embedder; SIFWeights is "rank" (default) or "corpus".
	Embeddings string `yaml:"embeddings"`
	SIFWeights string `yaml:"sif_weights"`
	// HTTPEmbedder configures an OpenAI-compatible /v1/embeddings server.
	HTTPEmbedder struct {
		URL       string `yaml:"url"`
		Model     string `yaml:"model"`
		APIKeyEnv string `yaml:"api_key_env"` // environment variable holding the API key
		Dim       int    `yaml:"dim"`         // 0: asked from the server at start
		BatchSize int    `yaml:"batch_size"`
	} `yaml:"http_embedder"`
	// CompactEvery is the background compaction interval (0: off); MergeFactor and
	// MaxShards the tiered merge policy (see retrieval.CompactionPolicy).
	CompactEvery time.Duration `yaml:"compact_every"`
	MergeFactor  int           `yaml:"merge_factor"`
	MaxShards    int           `yaml:"max_shards"`
	// DefaultEmbedder names the embedder new collections use ("" = the first configured:
	// GloVe-SIF, then HTTP).
	DefaultEmbedder string `yaml:"default_embedder"`
	// MaxK bounds k per request (default 1000).
	MaxK int `yaml:"max_k"`
}

// buildEmbedders constructs the configured embedders.
func (c *retrievalConfig) buildEmbedders(ctx context.Context, flagPrefix string) (_ []embed.Embedder, err error) {
	var out []embed.Embedder
	defer func() { // an encoder opened before a later embedder failed
		if err != nil {
			if cerr := closeEmbedders(out); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	if enc, ok, err := openEncoderEmbedder(c.Embeddings, flagPrefix+"embeddings"); err != nil {
		return nil, err
	} else if ok {
		out = append(out, enc)
	} else if c.Embeddings != "" {
		w := c.SIFWeights
		if w != "" && w != "rank" && w != "corpus" {
			return nil, flagErr(flagPrefix+"sif-weights", "want rank or corpus, got %q", w)
		}
		wv, err := embed.LoadGloVe(c.Embeddings, 0)
		if err != nil {
			return nil, flagErr(flagPrefix+"embeddings", "%v", err)
		}
		sif, err := embed.NewSIF(wv, embed.SIFOptions{CorpusFrequencies: w == "corpus"})
		if err != nil {
			return nil, err
		}
		out = append(out, sif)
	}
	if h := c.HTTPEmbedder; h.URL != "" {
		key := ""
		if h.APIKeyEnv != "" {
			key = os.Getenv(h.APIKeyEnv)
		}
		e, err := embed.NewHTTP(ctx, embed.HTTPOptions{URL: h.URL, Model: h.Model, APIKey: key, Dim: h.Dim, BatchSize: h.BatchSize})
		if err != nil {
			return nil, flagErr(flagPrefix+"http-url", "%v", err)
		}
		out = append(out, e)
	}
	return out, nil
}

func init() {
	f := serveCmd.Flags()
	rc := &serveCfg.Retrieval
	f.BoolVar(&rc.Disabled, "retrieval-disabled", false, "do not serve the retrieval service")
	f.StringVar(&rc.Dir, "retrieval-dir", "", "retrieval collections directory (default <data-dir>/retrieval)")
	f.StringVar(&rc.Embeddings, "retrieval-embeddings", "", "GloVe word vectors for the GloVe-SIF embedder, or gguf:FILE / hf:DIR[,pool=...]: an in-engine sentence encoder")
	f.StringVar(&rc.SIFWeights, "retrieval-sif-weights", "rank", "GloVe-SIF word probabilities: rank or corpus")
	f.StringVar(&rc.HTTPEmbedder.URL, "retrieval-http-url", "", "OpenAI-compatible embeddings server base URL")
	f.StringVar(&rc.HTTPEmbedder.Model, "retrieval-http-model", "", "model name sent to the embeddings server")
	f.StringVar(&rc.HTTPEmbedder.APIKeyEnv, "retrieval-http-api-key-env", "", "environment variable holding the embeddings server's API key")
	f.StringVar(&rc.DefaultEmbedder, "retrieval-default-embedder", "", "embedder of new collections (default: the first configured)")
	f.IntVar(&rc.MaxK, "retrieval-max-k", retrieval.DefaultMaxK, "largest k a request may ask for")
	f.DurationVar(&rc.CompactEvery, "retrieval-compact-every", time.Minute, "background shard compaction interval (0: off; also runs after each commit)")
	f.IntVar(&rc.MergeFactor, "retrieval-merge-factor", 8, "compaction: merge this many shards of one size tier")
	f.IntVar(&rc.MaxShards, "retrieval-max-shards", 16, "compaction: most shards a collection keeps")

	serveComponents = append(serveComponents, serveComponent{
		name: "retrieval",
		build: func(ctx context.Context, cfg *serveConfig, env *serveEnv, _ map[string]any) (server.Option, any, io.Closer, error) {
			rc := cfg.Retrieval
			if rc.Disabled {
				return nil, nil, nil, nil
			}
			dir := rc.Dir
			if dir == "" {
				dir = filepath.Join(cfg.DataDir, "retrieval")
			}
			embs, err := rc.buildEmbedders(ctx, "retrieval-")
			if err != nil {
				return nil, nil, nil, err
			}
			st, err := retrieval.Open(ctx, retrieval.Options{
				Dir: dir, Embedders: embs, DefaultEmbedder: rc.DefaultEmbedder, MaxK: rc.MaxK,
				CompactEvery: rc.CompactEvery,
				Compaction:   retrieval.CompactionPolicy{MergeFactor: rc.MergeFactor, MaxShards: rc.MaxShards},
				Logger:       env.log.With("component", "retrieval"), Registerer: env.reg,
			})
			if err != nil {
				if cerr := closeEmbedders(embs); cerr != nil {
					err = errors.Join(err, cerr)
				}
				return nil, nil, nil, err
			}
			names := make([]string, len(embs))
			for i, e := range embs {
				names[i] = e.Name()
			}
			env.log.Info("retrieval ready", "dir", dir, "embedders", names, "collections", len(st.Collections()))
			return server.WithRetrieval(st), st, closers{st, closerFunc(func() error { return closeEmbedders(embs) })}, nil
		},
	})

	ingestCmd := &cobra.Command{
		Use:   "ingest",
		Short: "Ingest a BEIR corpus (JSONL {\"_id\",\"title\",\"text\"}) into a collection of a running server",
		Args:  cobra.NoArgs,
	}
	var (
		addr, collection, corpus, embedder, dedup string
		shards, chunkWords, chunkOverlap, batch   int
		pcaDims                                   int
		int8Codes, asJSON, upsert                 bool
		deleteIDs                                 []string
		precompute                                bool
		pcNS, pcSystem                            string
		pcShare                                   float64
	)
	ingestCmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if collection == "" {
			return flagErr("collection", "required")
		}
		if corpus == "" && len(deleteIDs) == 0 {
			return flagErr("corpus", "required (unless --delete names documents to delete)")
		}
		if !precompute {
			for _, name := range []string{"system", "namespace", "engine-share"} {
				if cmd.Flags().Changed(name) {
					return flagErr(name, "applies with --precompute only")
				}
			}
		}
		if !(pcShare > 0 && pcShare <= 1) {
			return flagErr("engine-share", "want a number in (0, 1], got %g", pcShare)
		}
		if batch < 1 || batch > 100000 {
			return flagErr("batch", "must be in [1, 100000], got %d", batch)
		}
		var fh *os.File
		if corpus != "" {
			var err error
			if fh, err = os.Open(corpus); err != nil {
				return flagErr("corpus", "%v", err)
			}
			defer fh.Close()
		}
		opts := &ragkvv1.RetrievalCollectionOptions{
			ChunkWords: int32(chunkWords), ChunkOverlap: int32(chunkOverlap), Embedder: embedder,
			PcaDims: int32(pcaDims), Int8: int8Codes,
		}
		switch dedup {
		case "exact":
			opts.Dedup = ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_EXACT
		case "minhash":
			opts.Dedup = ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_MINHASH
		case "none":
			opts.Dedup = ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_NONE
		default:
			return flagErr("dedup", "want exact, minhash or none, got %q", dedup)
		}
		conn, err := dialServer(addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		stream, err := ragkvv1.NewRetrievalClient(conn).Ingest(ctx)
		if err != nil {
			return err
		}
		msg := &ragkvv1.IngestRequest{Collection: collection, Options: opts, Shards: int32(shards), Upsert: upsert, DeleteIds: deleteIDs}
		if !cmd.Flags().Changed("chunk-words") && !cmd.Flags().Changed("embedder") && !cmd.Flags().Changed("dedup") &&
			!cmd.Flags().Changed("pca-dims") && !cmd.Flags().Changed("int8") && !cmd.Flags().Changed("chunk-overlap") {
			msg.Options = nil // an existing collection keeps its options; a new one gets the defaults
		}
		prog := cliutil.NewProgress(os.Stderr, "ingest "+collection, 0)
		send := func() error {
			if err := stream.Send(msg); err != nil {
				if errors.Is(err, io.EOF) {
					_, err = stream.CloseAndRecv() // the server ended the stream: its status says why
				}
				return err
			}
			prog.Add(int64(len(msg.Documents)))
			msg = &ragkvv1.IngestRequest{}
			return nil
		}
		if fh != nil {
			err = beir.ReadCorpus(fh, corpus, func(d beir.Doc) error {
				msg.Documents = append(msg.Documents, &ragkvv1.RetrievalDocument{Id: d.ID, Title: d.Title, Text: d.Text})
				if len(msg.Documents) >= batch {
					return send()
				}
				return nil
			})
		}
		if err != nil {
			prog.Finish()
			if errors.Is(err, beir.ErrMalformed) {
				return flagErr("corpus", "%v", err)
			}
			return err
		}
		if len(msg.Documents) > 0 || msg.Collection != "" {
			if err := send(); err != nil {
				prog.Finish()
				return err
			}
		}
		res, err := stream.CloseAndRecv()
		prog.Finish()
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprintf(out, "%s: generation %d, %d new docs (%d skipped, %d replaced, %d deleted), %d passages (%d duplicates dropped) in %d shards; total %d docs, %d passages (%.1f s)\n",
			res.GetCollection(), res.GetGeneration(), res.GetDocs(), res.GetDocsSkipped(), res.GetReplaced(), res.GetDeleted(), res.GetPassages(), res.GetDuplicates(),
			res.GetShards(), res.GetTotalDocs(), res.GetTotalPassages(), res.GetSeconds())
		if precompute {
			// Every passage not yet stored (the new ones) into the chunk cache.
			if err := precomputeCollection(cmd, addr, &ragkvv1.PrecomputeCollectionRequest{Collection: collection, Namespace: pcNS,
				System: pcSystem, EngineShare: pcShare}, "", false); err != nil {
				return err
			}
		}
		if asJSON {
			return cliutil.PrintJSON(out, res)
		}
		return nil
	}
	fl := ingestCmd.Flags()
	fl.StringVar(&addr, "addr", "127.0.0.1:7431", "server gRPC address")
	fl.StringVar(&collection, "collection", "", "collection name")
	fl.StringVar(&corpus, "corpus", "", "BEIR corpus JSONL")
	fl.IntVar(&shards, "shards", 1, "shards this ingest's passages are split into")
	fl.IntVar(&batch, "batch", 256, "documents per stream message")
	fl.IntVar(&chunkWords, "chunk-words", 0, "new collection: passage length in words (0: 256; negative: whole documents)")
	fl.IntVar(&chunkOverlap, "chunk-overlap", 0, "new collection: words shared by consecutive passages (0 with chunk-words 0: 32)")
	fl.StringVar(&embedder, "embedder", "", `new collection: embedder ("" server default, "none", or a configured name)`)
	fl.StringVar(&dedup, "dedup", "exact", "new collection: exact, minhash or none")
	fl.IntVar(&pcaDims, "pca-dims", 0, "new collection: PCA dimension (0: default; -1: full vectors)")
	fl.BoolVar(&int8Codes, "int8", false, "new collection: int8-quantize the projected vectors")
	fl.BoolVar(&asJSON, "json", false, "print the result as one JSON line")
	fl.BoolVar(&precompute, "precompute", false, "then precompute the collection's passages into the chunk cache (PrecomputeCollection; needs the server's --model)")
	fl.StringVar(&pcNS, "namespace", "", "with --precompute: chunk cache namespace")
	fl.StringVar(&pcSystem, "system", "", "with --precompute: system text the passages are computed after")
	fl.Float64Var(&pcShare, "engine-share", 0.5, "with --precompute: share of the time the job may hold the engine")
	fl.BoolVar(&upsert, "upsert", false, "replace documents already in the collection (default: skip them)")
	fl.StringSliceVar(&deleteIDs, "delete", nil, "document ids to delete in the same commit (comma-separated)")
	rootCmd.AddCommand(ingestCmd)

	rootCmd.AddCommand(newQueryCmd(), newToolsCmd(), newCollectionCmd())
}

func newQueryCmd() *cobra.Command {
	var (
		addr, collection, query, mode, fusion string
		k                                     int
		weight                                float64
		group, asJSON                         bool
	)
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Retrieve passages from a collection of a running server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if collection == "" {
				return flagErr("collection", "required")
			}
			req := &ragkvv1.RetrieveRequest{Collection: collection, Query: query, K: int32(k), GroupByDoc: group}
			switch mode {
			case "":
			case "bm25":
				req.Mode = ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25
			case "dense":
				req.Mode = ragkvv1.RetrievalMode_RETRIEVAL_MODE_DENSE
			case "hybrid":
				req.Mode = ragkvv1.RetrievalMode_RETRIEVAL_MODE_HYBRID
			default:
				return flagErr("mode", "want bm25, dense or hybrid, got %q", mode)
			}
			switch fusion {
			case "":
			case "weighted":
				req.Fusion = ragkvv1.RetrievalFusion_RETRIEVAL_FUSION_WEIGHTED
			case "rrf":
				req.Fusion = ragkvv1.RetrievalFusion_RETRIEVAL_FUSION_RRF
			default:
				return flagErr("fusion", "want weighted or rrf, got %q", fusion)
			}
			if cmd.Flags().Changed("weight") {
				req.FusionWeight = &weight
			}
			conn, err := dialServer(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := ragkvv1.NewRetrievalClient(conn).Retrieve(cmd.Context(), req)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "rank\tscore\tpassage\tchunk\ttext\n")
			for i, p := range res.GetPassages() {
				text := strings.Join(strings.Fields(p.GetText()), " ")
				if len(text) > 80 {
					text = text[:77] + "..."
				}
				fmt.Fprintf(tw, "%d\t%.4f\t%s\t%.12s\t%s\n", i+1, p.GetScore(), p.GetPassageId(), p.GetChunkId(), text)
			}
			tw.Flush()
			fmt.Fprintf(out, "mode %s, generation %d, %d shards\n", strings.ToLower(strings.TrimPrefix(res.GetMode().String(), "RETRIEVAL_MODE_")), res.GetGeneration(), res.GetShards())
			if asJSON {
				return cliutil.PrintJSON(out, res)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:7431", "server gRPC address")
	f.StringVar(&collection, "collection", "", "collection name")
	f.StringVarP(&query, "query", "q", "", "query text")
	f.IntVar(&k, "k", 10, "passages to return")
	f.StringVar(&mode, "mode", "", "bm25, dense or hybrid (default: the collection's)")
	f.StringVar(&fusion, "fusion", "", "hybrid fusion: weighted or rrf")
	f.Float64Var(&weight, "weight", 0, "BM25 weight of weighted fusion (default: the collection's fitted weight)")
	f.BoolVar(&group, "group-by-doc", false, "best passage per document only")
	f.BoolVar(&asJSON, "json", false, "print the response as one JSON line")
	return cmd
}

func newToolsCmd() *cobra.Command {
	tools := &cobra.Command{Use: "tools", Short: "Tool registries of a running server: register, query"}
	var (
		addr, registry, toolsPath, usagePath, method, query string
		k                                                   int
		asJSON                                              bool
	)
	reg := &cobra.Command{
		Use:   "register",
		Short: "Register tools (JSON [{\"name\",\"description\"}]) with labelled usage queries (JSONL {\"query\",\"tool\"})",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if registry == "" {
				return flagErr("registry", "required")
			}
			fh, err := os.Open(toolsPath)
			if err != nil {
				return flagErr("tools", "%v", err)
			}
			ts, err := retrieval.ReadTools(fh, toolsPath)
			fh.Close()
			if err != nil {
				return flagErr("tools", "%v", err)
			}
			req := &ragkvv1.RegisterToolsRequest{Registry: registry}
			switch method {
			case "tool2vec":
				req.Method = ragkvv1.ToolVectorMethod_TOOL_VECTOR_METHOD_TOOL2VEC
			case "description":
				req.Method = ragkvv1.ToolVectorMethod_TOOL_VECTOR_METHOD_DESCRIPTION
			default:
				return flagErr("method", "want tool2vec or description, got %q", method)
			}
			for _, t := range ts {
				req.Tools = append(req.Tools, &ragkvv1.RetrievalTool{Name: t.Name, Description: t.Description})
			}
			if usagePath != "" {
				us, err := readToolQueries(usagePath)
				if err != nil {
					return flagErr("usage", "%v", err)
				}
				for _, u := range us {
					req.Usage = append(req.Usage, &ragkvv1.ToolUsageQuery{Query: u.Query, Tool: u.Tool})
				}
			}
			conn, err := dialServer(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := ragkvv1.NewRetrievalClient(conn).RegisterTools(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d tools (%d with usage queries, %d queries), embedder %s\n",
				res.GetRegistry(), res.GetTools(), res.GetToolsWithUsage(), res.GetUsageQueries(), res.GetEmbedder())
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	rf := reg.Flags()
	rf.StringVar(&toolsPath, "tools", "", "tools JSON")
	rf.StringVar(&usagePath, "usage", "", "labelled usage queries JSONL")
	rf.StringVar(&method, "method", "tool2vec", "tool2vec or description")
	q := &cobra.Command{
		Use:   "query",
		Short: "Retrieve the tools closest to a request",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if registry == "" {
				return flagErr("registry", "required")
			}
			conn, err := dialServer(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := ragkvv1.NewRetrievalClient(conn).RetrieveTools(cmd.Context(), &ragkvv1.RetrieveToolsRequest{Registry: registry, Query: query, K: int32(k)})
			if err != nil {
				return err
			}
			for i, t := range res.GetTools() {
				fmt.Fprintf(cmd.OutOrStdout(), "%d\t%.4f\t%s\t%s\n", i+1, t.GetScore(), t.GetName(), t.GetDescription())
			}
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	qf := q.Flags()
	qf.StringVarP(&query, "query", "q", "", "request text")
	qf.IntVar(&k, "k", 5, "tools to return")
	for _, c := range []*cobra.Command{reg, q} {
		c.Flags().StringVar(&addr, "addr", "127.0.0.1:7431", "server gRPC address")
		c.Flags().StringVar(&registry, "registry", "", "tool registry name")
		c.Flags().BoolVar(&asJSON, "json", false, "print the response as one JSON line")
	}
	tools.AddCommand(reg, q)
	return tools
}

func newCollectionCmd() *cobra.Command {
	coll := &cobra.Command{Use: "collection", Short: "Retrieval collections of a running server: list, describe, delete, compact, rebuild, fit-fusion"}
	var (
		addr, name, queries, qrels string
		shards                     int
		asJSON, refit              bool
	)
	needName := func() error {
		if name == "" {
			return flagErr("collection", "required")
		}
		return nil
	}
	list := &cobra.Command{
		Use: "list", Short: "List the collections", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := dialServer(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := ragkvv1.NewRetrievalClient(conn).ListCollections(cmd.Context(), &ragkvv1.ListCollectionsRequest{})
			if err != nil {
				return err
			}
			for _, c := range res.GetCollections() {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: generation %d, %d docs, %d passages, %d shards, embedder %q\n",
					c.GetName(), c.GetGeneration(), c.GetDocs(), c.GetPassages(), c.GetShards(), c.GetEmbedder())
			}
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	del := &cobra.Command{
		Use: "delete", Short: "Delete a collection and its data", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needName(); err != nil {
				return err
			}
			conn, err := dialServer(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			if _, err := ragkvv1.NewRetrievalClient(conn).DeleteCollection(cmd.Context(), &ragkvv1.DeleteCollectionRequest{Collection: name}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: deleted\n", name)
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), map[string]any{"collection": name, "deleted": true})
			}
			return nil
		},
	}
	compact := &cobra.Command{
		Use: "compact", Short: "Merge a collection's shards by the server's tiered policy, dropping tombstones", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := needName(); err != nil {
				return err
			}
			conn, err := dialServer(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := ragkvv1.NewRetrievalClient(conn).CompactCollection(cmd.Context(), &ragkvv1.CompactCollectionRequest{Collection: name})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: generation %d, %d merges, %d → %d shards, %d tombstones dropped (%.1f s)\n",
				res.GetCollection(), res.GetGeneration(), res.GetMerges(), res.GetShardsBefore(), res.GetShardsAfter(), res.GetTombstonesDropped(), res.GetSeconds())
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	desc := &cobra.Command{
		Use: "describe", Short: "Describe a collection", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := dialServer(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := ragkvv1.NewRetrievalClient(conn).DescribeCollection(cmd.Context(), &ragkvv1.DescribeCollectionRequest{Collection: name})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: generation %d, %d docs, %d passages, %d shards, embedder %q dim %d pca %d int8 %v, %.0f B/vector\n",
				res.GetName(), res.GetGeneration(), res.GetDocs(), res.GetPassages(), res.GetShards(), res.GetEmbedder(),
				res.GetDim(), res.GetPcaDims(), res.GetInt8(), res.GetBytesPerVector())
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	rebuild := &cobra.Command{
		Use: "rebuild", Short: "Re-shard a collection from its stored passages", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := dialServer(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := ragkvv1.NewRetrievalClient(conn).RebuildCollection(cmd.Context(), &ragkvv1.RebuildCollectionRequest{Collection: name, Shards: int32(shards), Refit: refit})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: generation %d, %d shards (%.1f s)\n", res.GetCollection(), res.GetGeneration(), res.GetShards(), res.GetSeconds())
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	rebuild.Flags().IntVar(&shards, "shards", 1, "number of shards")
	rebuild.Flags().BoolVar(&refit, "refit", false, "re-fit SIF weights, PCA and quantizer on the current corpus (re-embeds every passage)")
	fit := &cobra.Command{
		Use: "fit-fusion", Short: "Fit and keep a collection's hybrid BM25 weight on labelled BEIR queries", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			qs, err := beir.LoadQueries(queries)
			if err != nil {
				return flagErr("queries", "%v", err)
			}
			rels, err := beir.LoadQrels(qrels)
			if err != nil {
				return flagErr("qrels", "%v", err)
			}
			req := &ragkvv1.FitFusionRequest{Collection: name, Persist: true}
			for _, q := range qs {
				if !rels.HasRelevant(q.ID) {
					continue
				}
				lq := &ragkvv1.RetrievalLabeledQuery{Id: q.ID, Text: q.Text, Relevant: map[string]int32{}}
				for d, g := range rels[q.ID] {
					lq.Relevant[d] = int32(g)
				}
				req.Queries = append(req.Queries, lq)
			}
			conn, err := dialServer(addr)
			if err != nil {
				return err
			}
			defer conn.Close()
			res, err := ragkvv1.NewRetrievalClient(conn).FitFusion(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: BM25 weight %.2f (nDCG@10 %.4f on %d queries, 5-fold CV %.4f), kept with the collection\n",
				name, res.GetWeight(), res.GetNdcgAt_10(), res.GetQueries(), res.GetCvNdcgAt_10())
			if asJSON {
				return cliutil.PrintJSON(cmd.OutOrStdout(), res)
			}
			return nil
		},
	}
	fit.Flags().StringVar(&queries, "queries", "", "BEIR queries JSONL")
	fit.Flags().StringVar(&qrels, "qrels", "", "BEIR qrels TSV")
	for _, c := range []*cobra.Command{list, desc, del, compact, rebuild, fit} {
		c.Flags().StringVar(&addr, "addr", "127.0.0.1:7431", "server gRPC address")
		c.Flags().StringVar(&name, "collection", "", "collection name")
		c.Flags().BoolVar(&asJSON, "json", false, "print the response as one JSON line")
	}
	coll.AddCommand(list, desc, del, compact, rebuild, fit)
	return coll
}
