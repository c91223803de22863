package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/shared"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server"
)

// PlaywrightVersion is the playwright-core release the browser test drives chromium
// with (installed by `make ui-deps` into .cache/ui, see the Makefile).
const PlaywrightVersion = "1.65.1"

// browserTools finds node, chromium and playwright-core, skipping the test where node
// or chromium is missing; a missing playwright-core is a failure (make ui-deps installs
// it).
func browserTools(t *testing.T) (node, chromium, playwright string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("browser test skipped: node is not installed (Debian: apt-get install nodejs)")
	}
	chromium = os.Getenv("RAGKV_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser test skipped: chromium not found at %s (Debian: apt-get install chromium; or set RAGKV_CHROMIUM)", chromium)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	playwright = filepath.Join(root, ".cache", "ui", "node_modules", "playwright-core")
	b, err := os.ReadFile(filepath.Join(playwright, "package.json"))
	if err != nil {
		t.Fatalf("playwright-core is not installed in %s: run `make ui-deps` (npm install --prefix .cache/ui playwright-core@%s)", playwright, PlaywrightVersion)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version != PlaywrightVersion {
		t.Fatalf("playwright-core %q in %s, want %s: run `make ui-deps`", pkg.Version, playwright, PlaywrightVersion)
	}
	return node, chromium, playwright
}

// TestPlaywrightVersionPinned: the Makefile installs the version the test expects.
func TestPlaywrightVersionPinned(t *testing.T) {
	b, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "PLAYWRIGHT_VERSION ?= "+PlaywrightVersion+"\n") {
		t.Fatalf("the Makefile's PLAYWRIGHT_VERSION is not %s", PlaywrightVersion)
	}
}

// consoleServer is a ragkv server built from the serve components as `ragkv serve`
// builds it: chunk cache (RAM over Badger), retrieval, inference when the shared
// stories260K model is there, and the console on the admin listener.
type consoleServer struct {
	grpcAddr, adminURL string
	cache              *chunkcache.Cache
	retrieval          *retrieval.Store
	engine             bool
}

func startConsoleServer(t *testing.T, reg prometheus.Registerer) *consoleServer {
	t.Helper()
	ctx := context.Background()
	cfg := defaultServeConfig()
	cfg.DataDir = t.TempDir()
	cfg.AdminListen = "127.0.0.1:0"
	cfg.Cache.SyncWrites = false
	cfg.Cache.Memory.Capacity = 192 << 10
	cfg.Cache.Disk.Capacity = 2 << 20
	cfg.Cache.Namespaces = []string{"default", "tenant-a"}
	cfg.Console = consoleConfig{Interval: 200 * time.Millisecond, History: time.Minute, Refresh: 250 * time.Millisecond}
	if d, err := shared.Dir(); err == nil {
		m := filepath.Join(d, "models", "stories260K")
		if _, err := os.Stat(filepath.Join(m, "stories260K.bin")); err == nil {
			cfg.Inference = inferenceConfig{Model: filepath.Join(m, "stories260K.bin"), Tokenizer: filepath.Join(m, "tok512.bin"),
				Threads: 1, HandleTTL: time.Minute}
		}
	}
	env := &serveEnv{log: slog.New(slog.DiscardHandler), reg: reg}
	order, err := orderComponents(serveComponents)
	if err != nil {
		t.Fatal(err)
	}
	opts := []server.Option{server.WithLogger(env.log), server.WithMetrics(env.reg)}
	deps := map[string]any{}
	var closers []io.Closer
	for _, c := range order {
		opt, val, closer, err := c.build(ctx, &cfg, env, deps)
		if err != nil {
			t.Fatalf("component %s: %v", c.name, err)
		}
		if closer != nil {
			closers = append(closers, closer)
		}
		if opt != nil {
			opts = append(opts, opt)
		}
		deps[c.name] = val
	}
	srv, err := server.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	alis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.Serve(lis) }()
	go func() { defer wg.Done(); _ = srv.ServeAdmin(alis) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Stop(sctx)
		wg.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i].Close()
		}
	})
	cs := &consoleServer{grpcAddr: lis.Addr().String(), adminURL: "http://" + alis.Addr().String() + "/"}
	cs.cache, _ = deps["chunkcache"].(*chunkcache.Cache)
	cs.retrieval, _ = deps["retrieval"].(*retrieval.Store)
	cs.engine = deps["inference"] != nil
	if cs.cache == nil || cs.retrieval == nil || deps["console"] == nil {
		t.Fatalf("components: %v", deps)
	}
	return cs
}

// ingestKB creates the collection "kb" (3 shards) that the load queries.
func (cs *consoleServer) ingestKB(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	in, err := cs.retrieval.BeginIngest(ctx, "kb", retrieval.IngestOptions{Shards: 3})
	if err != nil {
		t.Fatal(err)
	}
	var docs []retrieval.Document
	for i := 0; i < 30; i++ {
		docs = append(docs, retrieval.Document{ID: fmt.Sprintf("d%d", i), Title: "story",
			Text: fmt.Sprintf("the little girl %d played with a red ball in the park on a sun day with the cat and the dog by the tree", i)})
	}
	if err := in.Add(ctx, docs...); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// load drives the server over gRPC until stop is closed: chunk puts (two namespaces,
// a few KiB each, enough to evict from both tiers), reads of earlier chunks (hits and,
// once evicted from disk, misses), retrieval queries and, with the engine, fused
// prefills and short generations.
func (cs *consoleServer) load(t *testing.T, stop <-chan struct{}) error {
	conn, err := grpc.NewClient(cs.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx := context.Background()
	cc := ragkvv1.NewChunkCacheClient(conn)
	rc := ragkvv1.NewRetrievalClient(conn)
	ic := ragkvv1.NewInferenceClient(conn)
	rng := rand.New(rand.NewPCG(7, 7))
	type stored struct {
		ns  string
		key []byte
	}
	var keys []stored
	queries := []string{"ball park", "little girl", "red dog", "cat tree", "sun day"}
	stories := []string{"Tom had a red ball.", "The cat sat in the sun.", "Lily went to the park.", "A dog ran to the tree."}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		switch {
		case i%4 == 0 || len(keys) == 0:
			ns := "default"
			if i%3 == 0 {
				ns = "tenant-a"
			}
			k, err := putRandomChunk(ctx, cc, rng, ns, 24+rng.IntN(72))
			if err != nil {
				return err
			}
			keys = append(keys, stored{ns, k})
		case i%7 == 0:
			if _, err := rc.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: queries[i%len(queries)], K: 3,
				Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25}); err != nil {
				return fmt.Errorf("retrieve: %w", err)
			}
		case cs.engine && i%11 == 0:
			a, b := stories[rng.IntN(len(stories))], stories[rng.IntN(len(stories))]
			req := &ragkvv1.PrefillRequest{Chunks: []*ragkvv1.InferenceChunk{{Chunk: &ragkvv1.InferenceChunk_Text{Text: a}},
				{Chunk: &ragkvv1.InferenceChunk_Text{Text: b}}}, Query: "Who was there?", Method: "cacheblend"}
			if i%22 == 0 {
				st, err := ic.Generate(ctx, &ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Prefill{Prefill: req}, MaxTokens: 6})
				if err != nil {
					return fmt.Errorf("generate: %w", err)
				}
				for {
					if _, err := st.Recv(); err == io.EOF {
						break
					} else if err != nil {
						return fmt.Errorf("generate: %w", err)
					}
				}
			} else if _, err := ic.Prefill(ctx, req); err != nil {
				return fmt.Errorf("prefill: %w", err)
			}
		default:
			// Mostly recent chunks (hits), sometimes old ones (evicted: misses).
			j := len(keys) - 1 - rng.IntN(min(len(keys), 12))
			if rng.IntN(4) == 0 {
				j = rng.IntN(len(keys))
			}
			st, err := cc.GetChunk(ctx, &ragkvv1.GetChunkRequest{Chunk: &ragkvv1.ChunkRef{Namespace: keys[j].ns,
				Ref: &ragkvv1.ChunkRef_Key{Key: keys[j].key}}})
			if err != nil {
				return err
			}
			for {
				if _, err := st.Recv(); err == io.EOF {
					break
				} else if err != nil {
					if strings.Contains(err.Error(), "NotFound") {
						break // evicted from every tier: a miss, as in production
					}
					return fmt.Errorf("get: %w", err)
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func putRandomChunk(ctx context.Context, cc ragkvv1.ChunkCacheClient, rng *rand.Rand, ns string, tokens int) ([]byte, error) {
	layout := chunkcache.Layout{Layers: 2, KVHeads: 2, HeadDim: 16, DType: chunkcache.F16}
	toks := make([]uint32, tokens)
	for i := range toks {
		toks[i] = rng.Uint32()
	}
	st, err := cc.PutChunk(ctx)
	if err != nil {
		return nil, err
	}
	h := &ragkvv1.ChunkPutHeader{Namespace: ns, TokenIds: toks, Cost: float64(tokens),
		Model: &ragkvv1.ChunkModelFingerprint{Architecture: "llama", WeightsDigest: "sha256:console-test"}, Layout: server.LayoutToProto(layout)}
	if err := st.Send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Header{Header: h}}); err != nil {
		return nil, err
	}
	n := layout.Elems(tokens)
	k, v := make([]float32, n), make([]float32, n)
	for l := 0; l < layout.Layers; l++ {
		for i := range k {
			k[i], v[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		s, err := layout.AppendLayer(nil, tokens, k, v)
		if err != nil {
			return nil, err
		}
		p, err := layout.Split(s, tokens)
		if err != nil {
			return nil, err
		}
		crc := chunkcache.Checksum(s)
		if err := st.Send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Layer{Layer: &ragkvv1.ChunkLayerFrame{
			Layer: uint32(l), K: p.K, V: p.V, Crc32C: &crc}}}); err != nil {
			return nil, err
		}
	}
	res, err := st.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return res.Key, nil
}

// uiField is what the page shows for one data-field.
type uiField struct {
	Value *string `json:"value"`
	Text  string  `json:"text"`
	Title string  `json:"title"`
}

// TestConsoleInBrowser runs the console in Debian's chromium (headless, driven by
// playwright-core) against a server under a small gRPC load: the page updates live,
// shows both tiers with the numbers of the cache's Stats once the load stops, a policy
// change made with the page's form is what `ragkv cache policy --json` reports, a pin
// made with a row's button is what `ragkv cache lookup` reports, and a screenshot is
// written ($RAGKV_UI_SCREENSHOT, default a temporary file).
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	node, chromium, playwright := browserTools(t)
	cs := startConsoleServer(t, prometheus.NewRegistry())
	cs.ingestKB(t)

	shot := os.Getenv("RAGKV_UI_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "console.png")
	}
	shot, err := filepath.Abs(shot)
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs(filepath.Join("testdata", "console_browser.cjs"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, cs.adminURL, shot)
	cmd.Env = append(os.Environ(), "RAGKV_PLAYWRIGHT="+playwright, "RAGKV_CHROMIUM="+chromium)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan map[string]json.RawMessage, 8)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 1<<20), 1<<24)
		for sc.Scan() {
			var m map[string]json.RawMessage
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				events <- m
			}
		}
		close(events)
	}()
	next := func(want string) map[string]json.RawMessage {
		t.Helper()
		select {
		case m, ok := <-events:
			if !ok {
				_ = cmd.Wait()
				t.Fatalf("browser script ended before %q; stderr:\n%s", want, stderr.String())
			}
			var ev string
			_ = json.Unmarshal(m["event"], &ev)
			if ev != want {
				t.Fatalf("browser script: got %s, want %q: %s\nstderr:\n%s", m["event"], want, m["error"], stderr.String())
			}
			return m
		case <-ctx.Done():
			t.Fatalf("browser script timed out waiting for %q; stderr:\n%s", want, stderr.String())
		}
		return nil
	}

	stop := make(chan struct{})
	loadErr := make(chan error, 1)
	go func() { loadErr <- cs.load(t, stop) }()
	live := next("live")
	// Keep the load on until both tiers have hit and evicted (the page has shown live
	// updates by now), so that every number compared below has moved.
	for deadline := time.Now().Add(90 * time.Second); ; {
		ok := true
		for _, ts := range cs.cache.Stats().Tiers {
			ok = ok && ts.Hits > 0 && ts.Evictions > 0
		}
		if ok || time.Now().After(deadline) {
			break
		}
		select {
		case err := <-loadErr:
			t.Fatalf("load: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	close(stop)
	if err := <-loadErr; err != nil {
		t.Fatalf("load: %v", err)
	}
	quiet := time.Now().UnixMilli()
	fmt.Fprintf(stdin, "QUIESCED %d\n", quiet)
	t.Logf("live updates: %s", mustJSON(live))

	got := next("tiers")
	st := cs.cache.Stats()
	var tiers map[string]map[string]uiField
	if err := json.Unmarshal(got["tiers"], &tiers); err != nil {
		t.Fatal(err)
	}
	for _, ts := range st.Tiers {
		ui := tiers[ts.Name]
		if ui == nil {
			t.Fatalf("the page shows no %s tier", ts.Name)
		}
		for f, want := range map[string]int64{"bytes": ts.Bytes, "capacity_bytes": ts.Capacity, "entries": ts.Entries,
			"pinned_bytes": ts.PinnedBytes, "hits": int64(ts.Hits), "misses": int64(ts.Misses), "evictions": int64(ts.Evictions),
			"admissions": int64(ts.Admissions), "rejections": int64(ts.Rejections), "promotions": int64(ts.Promotions),
			"demotions": int64(ts.Demotions), "corrupt_reads": int64(ts.CorruptReads)} {
			u := ui[f]
			if u.Value == nil || *u.Value != strconv.FormatInt(want, 10) {
				shown := "(none)"
				if u.Value != nil {
					shown = *u.Value
				}
				t.Errorf("%s %s: page value %s, Stats %d", ts.Name, f, shown, want)
				continue
			}
			switch f {
			case "bytes", "capacity_bytes", "pinned_bytes": // shown in KiB/MiB, exact in the title
				if u.Title != groupDigits(want)+" bytes" {
					t.Errorf("%s %s: title %q, want %q", ts.Name, f, u.Title, groupDigits(want)+" bytes")
				}
			default:
				if u.Text != groupDigits(want) {
					t.Errorf("%s %s: page shows %q, Stats %d", ts.Name, f, u.Text, want)
				}
			}
		}
		if ts.Evictions == 0 || ts.Hits == 0 {
			t.Errorf("%s: the load did not evict (%d) or hit (%d): too small to test anything", ts.Name, ts.Evictions, ts.Hits)
		}
	}
	var colls []struct{ Name, Shards, Queries string }
	_ = json.Unmarshal(got["collections"], &colls)
	info, _ := cs.retrieval.Collection("kb")
	if len(colls) != 1 || colls[0].Name != "kb" || colls[0].Shards != "3" || colls[0].Queries != groupDigits(int64(info.Queries)) || info.Queries == 0 {
		t.Errorf("collections on the page %+v; store: %d shards, %d queries", colls, info.Shards, info.Queries)
	}
	var engine map[string]string
	_ = json.Unmarshal(got["engine"], &engine)
	if cs.engine {
		if p, _ := strconv.ParseFloat(engine["prefills"], 64); p == 0 {
			t.Errorf("engine on the page: %v (the load ran fused prefills)", engine)
		}
	} else {
		t.Log("no shared stories260K model: engine section not exercised")
	}

	ctl := next("controls")
	var result, key, ns string
	_ = json.Unmarshal(ctl["result"], &result)
	_ = json.Unmarshal(ctl["pinned_key"], &key)
	_ = json.Unmarshal(ctl["pinned_namespace"], &ns)
	out, err := runCLI(t, "cache", "policy", "--addr", cs.grpcAddr, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var pol struct {
		Tiers []struct {
			Tier, Policy, Admission string
			CapacityBytes           uint64 `json:"capacity_bytes"`
		} `json:"tiers"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &pol); err != nil {
		t.Fatalf("cache policy --json: %v: %s", err, out)
	}
	if m := pol.Tiers[0]; m.Tier != "memory" || m.Policy != "sieve" || m.Admission != "tinylfu" || m.CapacityBytes != 160<<10 {
		t.Errorf("after the console's change (%q), `ragkv cache policy --json` says %+v", result, m)
	}
	out, err = runCLI(t, "cache", "lookup", "--addr", cs.grpcAddr, "--namespace", ns, key, "--json")
	if err != nil || !strings.Contains(out, `"pin":"hard"`) {
		t.Errorf("after pinning %s in the console, `ragkv cache lookup` says %s (%v)", key, out, err)
	}

	fmt.Fprintln(stdin, "SHOT")
	done := next("done")
	var pageErrors []string
	_ = json.Unmarshal(done["errors"], &pageErrors)
	if len(pageErrors) > 0 {
		t.Errorf("errors in the page: %v", pageErrors)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser script: %v\n%s", err, stderr.String())
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}

// groupDigits formats n as the page does (en-US thousands separators).
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
