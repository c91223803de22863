package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/model"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval/beir"
	"github.com/ragkv/ragkv/store"
)

// Fused prefill clients and jobs: `ragkv precompute` (local batch job or through a
// server), `ragkv prefill --addr`, and the remote mode of `ragkv generate`.
func init() {
	rootCmd.AddCommand(newPrecomputeCmd(), newPrefillCmd())
}

// jsonlChunk is one line of a chunks file.
type jsonlChunk struct {
	ID   string `json:"id"`
	Text string `json:"text"`
	Key  string `json:"key"`
}

// readChunksFile reads JSONL chunk lines; needText requires a text on every line.
func readChunksFile(flag, path string, needText bool) ([]jsonlChunk, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, flagErr(flag, "%v", err)
	}
	defer f.Close()
	var out []jsonlChunk
	err = beir.ScanJSONL(f, path, func(line int, b []byte) error {
		var c jsonlChunk
		if err := json.Unmarshal(b, &c); err != nil {
			return fmt.Errorf("%s:%d: %v", path, line, err)
		}
		if c.Text == "" && (needText || c.Key == "") {
			return fmt.Errorf("%s:%d: no \"text\"", path, line)
		}
		if c.ID == "" {
			c.ID = fmt.Sprint(line)
		}
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, flagErr(flag, "%v", err)
	}
	if len(out) == 0 {
		return nil, flagErr(flag, "%s: no chunks", path)
	}
	return out, nil
}

func dialInference(addr string) (ragkvv1.InferenceClient, func(), error) {
	conn, err := dialServer(addr)
	if err != nil {
		return nil, nil, err
	}
	return ragkvv1.NewInferenceClient(conn), func() { conn.Close() }, nil
}

func newPrecomputeCmd() *cobra.Command {
	var (
		chunksPath, modelPath, tokPath, dataDir, cacheDir, dtype, ns, system, addr, keysOut string
		collection, saltFile                                                                string
		engineShare                                                                         float64
		coRetrieved                                                                         bool
		contextChunks, threads, batch                                                       int
		diskCapacity                                                                        cacheBytes = 16 << 30
		syncWrites, asJSON                                                                  bool
	)
	cmd := &cobra.Command{
		Use:   "precompute (--chunks FILE.jsonl (--model FILE [--data-dir DIR] | --addr HOST:PORT) | --collection C --addr HOST:PORT)",
		Short: "Compute chunk KV caches (with Cache-Craft statistics) into the chunk cache; resumable",
		Long: `Reads {"id","text"} lines and stores each chunk's KV, computed alone after the
system prefix (BOS + --system), with Cache-Craft's statistics from a pass where the chunk
follows the --context-chunks chunks before it in the file. Chunks already stored are
skipped, so an interrupted job resumes where it stopped.

Locally (--model) it writes the chunk cache's Badger directory (<data-dir>/chunkcache,
as ` + "`ragkv serve`" + ` uses it; the server must not be running on it). With --addr it sends
the chunks to a running server (PrecomputeChunks RPC, --batch chunks per call; the
statistics context does not cross batches). --keys-out writes {"id","key"} lines.

With --collection and --addr the server precomputes every passage of one of its
collections exactly as a prompt with a retrieval source (` + "`ragkv ask`" + `) fuses it: the
passage text + "\n\n" after BOS + --system in --namespace (PrecomputeCollection RPC), at
--engine-share of the engine so that live requests keep priority. Passages already
stored are skipped, so running it again after an interruption resumes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr != "" {
				for _, name := range []string{"model", "tokenizer", "data-dir", "cache-dir", "salt-secret-file", "disk-capacity", "sync-writes", "dtype", "threads"} {
					if cmd.Flags().Changed(name) {
						return flagErr(name, "applies to the local job only, not with --addr (the server's settings apply)")
					}
				}
			}
			if collection != "" {
				if chunksPath != "" {
					return flagErr("chunks", "give --chunks or --collection, not both")
				}
				if addr == "" {
					return flagErr("collection", "needs --addr (the server holding the collection precomputes it)")
				}
				if cmd.Flags().Changed("batch") {
					return flagErr("batch", "applies to --chunks only")
				}
				if !(engineShare > 0 && engineShare <= 1) {
					return flagErr("engine-share", "want a number in (0, 1], got %g", engineShare)
				}
				return precomputeCollection(cmd, addr, &ragkvv1.PrecomputeCollectionRequest{Collection: collection, Namespace: ns, System: system,
					ContextChunks: int32(contextChunksFlag(contextChunks)), EngineShare: engineShare, CoRetrievedContext: coRetrieved}, keysOut, asJSON)
			}
			for _, name := range []string{"engine-share", "co-retrieved"} {
				if cmd.Flags().Changed(name) {
					return flagErr(name, "applies to --collection only")
				}
			}
			if chunksPath == "" {
				return flagErr("chunks", "a JSONL file of {\"id\",\"text\"} lines is required (or --collection with --addr)")
			}
			chunks, err := readChunksFile("chunks", chunksPath, true)
			if err != nil {
				return err
			}
			if (addr == "") == (modelPath == "") {
				return flagErr("model", "give either --model (local job) or --addr (through a server)")
			}
			if batch < 1 {
				return flagErr("batch", "must be ≥ 1, got %d", batch)
			}
			contextChunks = contextChunksFlag(contextChunks)
			var keysW *bufio.Writer
			if keysOut != "" {
				f, err := os.Create(keysOut)
				if err != nil {
					return flagErr("keys-out", "%v", err)
				}
				defer f.Close()
				keysW = bufio.NewWriter(f)
				defer keysW.Flush()
			}
			prog := cliutil.NewProgress(os.Stderr, "precompute", int64(len(chunks)))
			var res blend.PrecomputeResult
			res.Chunks = len(chunks)
			record := func(id string, key []byte) error {
				prog.Add(1)
				if keysW == nil {
					return nil
				}
				b, _ := json.Marshal(map[string]string{"id": id, "key": hex.EncodeToString(key)})
				_, err := keysW.Write(append(b, '\n'))
				return err
			}
			t0 := time.Now()
			if addr != "" {
				err = precomputeRemote(cmd.Context(), addr, ns, system, chunks, contextChunks, batch, &res, record)
			} else {
				if _, err := os.Stat(modelPath); err != nil {
					return flagErr("model", "%v", err)
				}
				dt, err2 := chunkcache.ParseDType(dtype)
				if err2 != nil {
					return flagErr("dtype", "%v", err2)
				}
				if cacheDir == "" {
					cacheDir = filepath.Join(dataDir, "chunkcache")
				}
				err = precomputeLocal(cmd.Context(), precomputeLocalArgs{modelPath: modelPath, tokPath: tokPath, threads: threads,
					dataDir: dataDir, saltFile: saltFile, dir: cacheDir, capacity: int64(diskCapacity), sync: syncWrites, dtype: dt, ns: ns, system: system,
					contextChunks: contextChunks}, chunks, &res, record)
			}
			prog.Finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "precompute: %d chunks: %d computed (%d tokens), %d already stored, %d not admitted, in %s\n",
				res.Chunks, res.Computed, res.Tokens, res.Skipped, res.Rejected, time.Since(t0).Round(time.Millisecond))
			if asJSON {
				return cliutil.PrintJSON(out, res)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&chunksPath, "chunks", "", "JSONL chunks file ({\"id\",\"text\"} per line)")
	f.StringVar(&modelPath, "model", "", "model file (local job)")
	f.StringVar(&tokPath, "tokenizer", "", "tokenizer file (local job; default: the model's own)")
	f.StringVar(&dataDir, "data-dir", "./data", "data directory of the local job (the chunk cache is <data-dir>/chunkcache)")
	f.StringVar(&cacheDir, "cache-dir", "", "chunk cache Badger directory (overrides --data-dir)")
	f.StringVar(&saltFile, "salt-secret-file", "", "salt secret of the keys, as `ragkv serve` uses it (local job; default <data-dir>/keys/salt.secret)")
	f.Var(&diskCapacity, "disk-capacity", "disk tier budget of the local job (keep it ≥ the server's to avoid evicting)")
	f.BoolVar(&syncWrites, "sync-writes", true, "fsync every chunk (local job)")
	f.StringVar(&dtype, "dtype", "f16", "stored KV dtype (local job; must match the server's --kv-dtype): f32, f16, bf16, int8")
	f.IntVar(&threads, "threads", 0, "kernel threads of the local job (0: all cores)")
	f.StringVar(&addr, "addr", "", "send the chunks to the ragkv server at this address instead")
	f.IntVar(&batch, "batch", 256, "chunks per PrecomputeChunks call (with --addr)")
	f.StringVar(&ns, "namespace", "", "chunk cache namespace (default \"default\")")
	f.StringVar(&system, "system", "", "system text after the BOS token (the prefix every chunk is computed after)")
	f.IntVar(&contextChunks, "context-chunks", 1, "chunks before each one in its Cache-Craft statistics pass (0 or negative: no statistics)")
	f.StringVar(&keysOut, "keys-out", "", "write {\"id\",\"key\"} lines (chunk-cache keys) to this file")
	f.BoolVar(&asJSON, "json", false, "print the counts as one JSON object as the last line")
	f.StringVar(&collection, "collection", "", "precompute every passage of this collection of the --addr server instead of --chunks (as retrieval sources fuse them; resumable)")
	f.BoolVar(&coRetrieved, "co-retrieved", false, "--collection: compute each passage's Cache-Craft statistics after the passage the server most often retrieved with it")
	f.Float64Var(&engineShare, "engine-share", 0.5, "share of the time the --collection job may hold the server's engine, in (0, 1]")
	return cmd
}

// contextChunksFlag maps --context-chunks 0 (no chunks of context) to -1: no statistics
// pass, locally and through a server alike (the RPCs read 0 as "the server's default").
func contextChunksFlag(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// precomputeCollection runs PrecomputeCollection on a server, showing its progress.
func precomputeCollection(cmd *cobra.Command, addr string, req *ragkvv1.PrecomputeCollectionRequest, keysOut string, asJSON bool) error {
	var keysW *bufio.Writer
	if keysOut != "" {
		f, err := os.Create(keysOut)
		if err != nil {
			return flagErr("keys-out", "%v", err)
		}
		defer f.Close()
		keysW = bufio.NewWriter(f)
		defer keysW.Flush()
	}
	cl, done, err := dialInference(addr)
	if err != nil {
		return err
	}
	defer done()
	t0 := time.Now()
	stream, err := cl.PrecomputeCollection(cmd.Context(), req)
	if err != nil {
		return cacheRPCErr("precompute", err)
	}
	var (
		prog *cliutil.Progress
		last *ragkvv1.PrecomputeCollectionProgress
		res  struct {
			Collection string  `json:"collection"`
			Passages   int     `json:"passages"`
			Computed   int     `json:"computed"`
			Skipped    int     `json:"skipped"`
			Rejected   int     `json:"rejected"`
			TooLong    int     `json:"too_long"`
			Tokens     int     `json:"tokens"`
			Seconds    float64 `json:"seconds"`
		}
	)
	res.Collection = req.Collection
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if prog != nil {
				prog.Finish()
			}
			return cacheRPCErr("precompute", err)
		}
		if prog == nil {
			prog = cliutil.NewProgress(os.Stderr, "precompute "+req.Collection, int64(p.Total))
		}
		prog.Add(1)
		last = p
		switch p.Status {
		case "computed", "rejected":
			res.Tokens += int(p.Tokens)
		case "too_long":
			res.TooLong++
		}
		if keysW != nil && len(p.Key) > 0 {
			b, _ := json.Marshal(map[string]string{"id": p.PassageId, "key": hex.EncodeToString(p.Key)})
			if _, err := keysW.Write(append(b, '\n')); err != nil {
				return err
			}
		}
	}
	if prog != nil {
		prog.Finish()
	}
	if last != nil {
		res.Passages, res.Computed, res.Skipped, res.Rejected = int(last.Total), int(last.Computed), int(last.Skipped), int(last.Rejected)
	}
	res.Seconds = time.Since(t0).Seconds()
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "precompute %s: %d passages: %d computed (%d tokens), %d already stored, %d not admitted, %d longer than the context, in %s\n",
		req.Collection, res.Passages, res.Computed, res.Tokens, res.Skipped, res.Rejected, res.TooLong, time.Since(t0).Round(time.Millisecond))
	if asJSON {
		return cliutil.PrintJSON(out, res)
	}
	return nil
}

type precomputeLocalArgs struct {
	modelPath, tokPath string
	dataDir, saltFile  string
	threads            int
	dir                string
	capacity           int64
	sync               bool
	dtype              chunkcache.DType
	ns, system         string
	contextChunks      int
}

func precomputeLocal(ctx context.Context, a precomputeLocalArgs, chunks []jsonlChunk, res *blend.PrecomputeResult, record func(string, []byte) error) error {
	m, err := model.Open(a.modelPath, model.Options{Tokenizer: a.tokPath, Threads: a.threads})
	if err != nil {
		return err
	}
	defer m.Close()
	quiet := slog.New(slog.DiscardHandler)
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: a.dir, SyncWrites: a.sync, Logger: quiet})
	if err != nil {
		return flagErr("data-dir", "open the chunk cache in %s: %v (is a server running on it?)", a.dir, err)
	}
	// The keys must be the ones `ragkv serve` on this data directory derives.
	keyer, err := openSaltKeyer(ctx, a.dataDir, a.saltFile, disk)
	if err != nil {
		disk.Close()
		return err
	}
	cache, err := chunkcache.New(ctx, chunkcache.Options{
		Keyer: keyer,
		Tiers: []chunkcache.TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}},
			{Tier: disk, Eviction: eviction.Config{Capacity: a.capacity}, WriteThrough: true},
		},
		DisablePromotion: true,
		Logger:           quiet,
	})
	if errors.Is(err, chunkcache.ErrForeignChunks) {
		return flagErr("salt-secret-file", "%v (is %s the file the server on this data directory uses?)", err, keyer.Path())
	}
	if err != nil {
		return err
	}
	defer cache.Close()
	st, err := blend.NewStore(m, cache, blend.StoreOptions{DType: a.dtype})
	if err != nil {
		return err
	}
	eng, err := blend.NewEngine(st, blend.EngineOptions{Logger: quiet})
	if err != nil {
		return err
	}
	pcs := make([]blend.PrecomputeChunk, len(chunks))
	for i, c := range chunks {
		pcs[i] = blend.PrecomputeChunk{ID: c.ID, Text: c.Text}
	}
	r, err := eng.Precompute(ctx, a.ns, a.system, pcs, a.contextChunks, func(ev blend.PrecomputeEvent) error {
		return record(ev.ID, ev.Key[:])
	})
	if r != nil {
		*res = *r
	}
	if err != nil {
		return err
	}
	return cache.Close()
}

func precomputeRemote(ctx context.Context, addr, ns, system string, chunks []jsonlChunk, contextChunks, batch int, res *blend.PrecomputeResult, record func(string, []byte) error) error {
	cl, done, err := dialInference(addr)
	if err != nil {
		return err
	}
	defer done()
	for lo := 0; lo < len(chunks); lo += batch {
		hi := min(lo+batch, len(chunks))
		req := &ragkvv1.PrecomputeChunksRequest{Namespace: ns, System: system, ContextChunks: int32(contextChunks)}
		for _, c := range chunks[lo:hi] {
			req.Chunks = append(req.Chunks, &ragkvv1.PrecomputeChunk{Id: c.ID, Text: c.Text})
		}
		stream, err := cl.PrecomputeChunks(ctx, req)
		if err != nil {
			return cacheRPCErr("precompute", err)
		}
		for {
			p, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return cacheRPCErr("precompute", err)
			}
			switch p.Status {
			case "computed":
				res.Computed++
				res.Tokens += int(p.Tokens)
			case "rejected":
				res.Computed++
				res.Rejected++
				res.Tokens += int(p.Tokens)
			case "skipped":
				res.Skipped++
			}
			if err := record(p.Id, p.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// promptFlags are the prompt flags of `ragkv prefill` and remote `ragkv generate`.
type promptFlags struct {
	addr, ns, system, query, method, chunksFile string
	chunks                                      []string
	ratio                                       float64
	timeout                                     time.Duration
}

func (p *promptFlags) register(cmd *cobra.Command, addrDefault string) {
	f := cmd.Flags()
	f.StringVar(&p.addr, "addr", addrDefault, "address of the ragkv server")
	f.StringVar(&p.ns, "namespace", "", "chunk cache namespace (default \"default\")")
	f.StringVar(&p.system, "system", "", "system text after the BOS token")
	f.StringArrayVar(&p.chunks, "chunk", nil, "a chunk's text, or key:<64 hex digits> for a stored chunk (repeatable, in prompt order)")
	f.StringVar(&p.chunksFile, "chunks-file", "", "JSONL chunks ({\"text\"} or {\"key\"} per line), before the --chunk ones")
	f.StringVar(&p.query, "query", "", "query text (empty: the last prompt token is the query)")
	f.StringVar(&p.method, "method", "cacheblend", "full, prefix, naive, cacheblend or cachecraft")
	f.Float64Var(&p.ratio, "ratio", 0.15, "recompute ratio of cacheblend and cachecraft")
	f.DurationVar(&p.timeout, "timeout", 10*time.Minute, "deadline of the call")
}

func (p *promptFlags) request() (*ragkvv1.PrefillRequest, error) {
	if _, err := blend.ParseMethod(p.method); err != nil {
		return nil, flagErr("method", "%v", err)
	}
	if !(p.ratio >= 0 && p.ratio <= 1) {
		return nil, flagErr("ratio", "want a number in [0, 1], got %g", p.ratio)
	}
	ratio := p.ratio
	req := &ragkvv1.PrefillRequest{Namespace: p.ns, System: p.system, Query: p.query, Method: p.method, Ratio: &ratio}
	var specs []string
	if p.chunksFile != "" {
		cs, err := readChunksFile("chunks-file", p.chunksFile, false)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.Text != "" {
				specs = append(specs, c.Text)
			} else {
				specs = append(specs, "key:"+c.Key)
			}
		}
	}
	for _, s := range append(specs, p.chunks...) {
		if k, ok := strings.CutPrefix(s, "key:"); ok {
			b, err := hex.DecodeString(strings.TrimSpace(k))
			if err != nil || len(b) != 32 {
				return nil, flagErr("chunk", "key %q: want 64 hex digits", k)
			}
			req.Chunks = append(req.Chunks, &ragkvv1.InferenceChunk{Chunk: &ragkvv1.InferenceChunk_Key{Key: b}})
		} else if s == "" {
			return nil, flagErr("chunk", "empty chunk text")
		} else {
			req.Chunks = append(req.Chunks, &ragkvv1.InferenceChunk{Chunk: &ragkvv1.InferenceChunk_Text{Text: s}})
		}
	}
	return req, nil
}

func newPrefillCmd() *cobra.Command {
	var (
		p                    promptFlags
		logits, asJSON, keep bool
	)
	cmd := &cobra.Command{
		Use:   "prefill --addr HOST:PORT --chunk TEXT|key:HEX ... --query TEXT",
		Short: "Prefill a RAG prompt on a server from cached chunks (fused) and show the first token and the breakdown",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := p.request()
			if err != nil {
				return err
			}
			req.ReturnLogits = logits
			req.KeepHandle = keep
			cl, done, err := dialInference(p.addr)
			if err != nil {
				return err
			}
			defer done()
			ctx, cancel := context.WithTimeout(cmd.Context(), p.timeout)
			defer cancel()
			resp, err := cl.Prefill(ctx, req)
			if err != nil {
				return cacheRPCErr("prefill", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(resp)
				if err != nil {
					return err
				}
				var v map[string]any
				if err := json.Unmarshal(b, &v); err != nil {
					return err
				}
				// Keys in hex, as --keys-out and the cache commands print them.
				if bd, ok := v["breakdown"].(map[string]any); ok {
					segs, _ := bd["segments"].([]any)
					for _, sg := range segs {
						if m, ok := sg.(map[string]any); ok {
							if k, ok := m["key"].(string); ok {
								if raw, err := base64.StdEncoding.DecodeString(k); err == nil {
									m["key"] = hex.EncodeToString(raw)
								}
							}
						}
					}
				}
				return cliutil.PrintJSON(out, v)
			}
			printPrefill(out, resp)
			return nil
		},
	}
	p.register(cmd, "127.0.0.1:7431")
	cmd.Flags().BoolVar(&logits, "logits", false, "also return the logits (with --json)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the response as one JSON line")
	cmd.Flags().BoolVar(&keep, "keep-handle", false, "keep the fused KV on the server under a handle (printed) for `ragkv generate --handle`")
	return cmd
}

func printPrefill(w io.Writer, r *ragkvv1.PrefillResponse) {
	b := r.Breakdown
	if r.Handle != "" {
		fmt.Fprintf(w, "first token %d %q   handle %s\n", r.FirstToken, r.FirstText, r.Handle)
	} else {
		fmt.Fprintf(w, "first token %d %q\n", r.FirstToken, r.FirstText)
	}
	fmt.Fprintf(w, "method %s ratio %g: %d tokens (%d query), recomputed %.1f (%.3f of the chunks), FLOPs %.3f of a full prefill\n",
		b.Method, b.Ratio, b.TotalTokens, b.QueryTokens, b.RecomputedTokens, b.RecomputeFrac, b.Flops/max(b.FullFlops, 1))
	fmt.Fprintf(w, "time: total %.4fs = prepare %.4fs + load %.4fs (hidden %.0f%%), rotate %.4fs, recompute %.4fs (attention ≈%.4fs), select %.4fs, wait %.4fs\n",
		b.TotalSeconds, b.PrepareSeconds, b.LoadSeconds, 100*b.LoadHiddenFrac, b.RotateSeconds, b.RecomputeSeconds, b.AttentionSeconds, b.SelectSeconds, b.WaitSeconds)
	var srcs []string
	for s, n := range b.CacheHits {
		srcs = append(srcs, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(srcs)
	fmt.Fprintf(w, "segments from: %s\n", strings.Join(srcs, ", "))
	for i, s := range b.Segments {
		fmt.Fprintf(w, "  %2d %-6s %s  %4d tokens  reused %4d  recomputed %4d  exact %-5v source %-8s impact %.3f stored %v\n",
			i, s.Kind, hex.EncodeToString(s.Key)[:16], s.Tokens, s.Reused, s.Recomputed, s.Exact, s.Source, s.Impact, s.Stored)
	}
}

// remoteGenerate holds the remote-mode flags of `ragkv generate`.
var remoteGenerate struct {
	p         promptFlags
	maxTokens int
	handle    string
	keep      bool
}

// addRemoteGenerate gives `ragkv generate` its remote mode: with --addr it generates
// on a server from a fused prefill of --chunk/--query instead of a local model.
func addRemoteGenerate(cmd *cobra.Command) {
	local := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if remoteGenerate.p.addr == "" {
			for _, name := range []string{"handle", "keep-handle"} {
				if c.Flags().Changed(name) {
					return flagErr(name, "needs --addr (handles live on a server)")
				}
			}
			return local(c, args)
		}
		for _, name := range []string{"model", "tokenizer", "steps", "threads"} {
			if c.Flags().Changed(name) {
				return flagErr(name, "does not apply with --addr (the server's model generates; --max-tokens bounds it)")
			}
		}
		return runRemoteGenerate(c)
	}
	remoteGenerate.p.register(cmd, "")
	cmd.Flags().IntVar(&remoteGenerate.maxTokens, "max-tokens", 256, "tokens to generate (with --addr)")
	cmd.Flags().StringVar(&remoteGenerate.handle, "handle", "", "continue from a handle of `ragkv prefill --keep-handle` (with --addr; no --chunk/--query)")
	cmd.Flags().BoolVar(&remoteGenerate.keep, "keep-handle", false, "with --handle: keep the handle for another generate instead of consuming it")
	cmd.Flags().Lookup("addr").Usage = "generate on the ragkv server at this address (fused prefill of --chunk/--query) instead of a local --model"
}

func runRemoteGenerate(cmd *cobra.Command) error {
	rg := &remoteGenerate
	var src ragkvv1.GenerateRequest
	if rg.handle != "" {
		for _, name := range []string{"chunk", "chunks-file", "query", "system", "namespace", "method", "ratio", "prompt"} {
			if cmd.Flags().Changed(name) {
				return flagErr(name, "does not apply with --handle (the handle holds the prefilled prompt)")
			}
		}
		src.Source = &ragkvv1.GenerateRequest_Handle{Handle: rg.handle}
		src.KeepHandle = rg.keep
	} else {
		if rg.keep {
			return flagErr("keep-handle", "applies only with --handle (use `ragkv prefill --keep-handle` to make one)")
		}
		req, err := rg.p.request()
		if err != nil {
			return err
		}
		if rg.p.query == "" {
			if pr, _ := cmd.Flags().GetString("prompt"); pr != "" {
				req.Query = pr
			}
		}
		src.Source = &ragkvv1.GenerateRequest_Prefill{Prefill: req}
	}
	if rg.maxTokens < 1 {
		return flagErr("max-tokens", "must be ≥ 1, got %d", rg.maxTokens)
	}
	temp, _ := cmd.Flags().GetFloat64("temperature")
	topP, _ := cmd.Flags().GetFloat64("top-p")
	seed, _ := cmd.Flags().GetUint64("seed")
	if temp < 0 {
		return flagErr("temperature", "must be ≥ 0, got %g", temp)
	}
	if topP < 0 || topP > 1 {
		return flagErr("top-p", "must be in [0, 1], got %g", topP)
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	cl, done, err := dialInference(rg.p.addr)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(cmd.Context(), rg.p.timeout)
	defer cancel()
	src.MaxTokens, src.Temperature, src.TopP, src.Seed = uint32(rg.maxTokens), float32(temp), float32(topP), seed
	stream, err := cl.Generate(ctx, &src)
	if err != nil {
		return cacheRPCErr("generate", err)
	}
	out := bufio.NewWriter(cmd.OutOrStdout())
	defer out.Flush()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out.Flush()
			return cacheRPCErr("generate", err)
		}
		switch {
		case msg.GetPrefill() != nil:
			b := msg.GetPrefill().Breakdown
			fmt.Fprintf(os.Stderr, "prefill %s: %d tokens, recomputed %.3f, %.3fs (load hidden %.0f%%)\n",
				b.Method, b.TotalTokens, b.RecomputeFrac, b.TotalSeconds, 100*b.LoadHiddenFrac)
		case msg.GetToken() != nil:
			out.WriteString(msg.GetToken().Text)
			out.Flush()
		case msg.GetDone() != nil:
			d := msg.GetDone()
			out.WriteString(d.Text + "\n")
			if d.DecodeSeconds > 0 {
				fmt.Fprintf(os.Stderr, "%d tokens (%s), %.1f tokens/s\n", d.Tokens, d.Reason, float64(d.Tokens)/d.DecodeSeconds)
			}
		}
	}
	return nil
}
