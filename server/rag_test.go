package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/store"
)

// ragServer is an Inference + Retrieval + ChunkCache server over a RAM tier and a
// Badger tier in dir/cache and a retrieval store in dir/retrieval, on a loopback port.
type ragServer struct {
	addr  string
	srv   *Server
	cache *chunkcache.Cache
	ret   *retrieval.Store
	done  chan error
	conn  *grpc.ClientConn
	inf   ragkvv1.InferenceClient
	rc    ragkvv1.RetrievalClient
}

func startRAGServer(t testing.TB, m *model.Model, dir string) *ragServer {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: filepath.Join(dir, "cache"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := chunkcache.New(ctx, chunkcache.Options{
		Tiers: []chunkcache.TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}},
			{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 30}, WriteThrough: true},
		},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ret, err := retrieval.Open(ctx, retrieval.Options{Dir: filepath.Join(dir, "retrieval"), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	st, err := blend.NewStore(m, cache, blend.StoreOptions{DType: chunkcache.F32})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := blend.NewEngine(st, blend.EngineOptions{MaxHandles: 4, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(WithChunkCache(cache), WithInference(eng), WithRetrieval(ret), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &ragServer{addr: lis.Addr().String(), srv: srv, cache: cache, ret: ret, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(lis) }()
	if s.conn, err = grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	s.inf, s.rc = ragkvv1.NewInferenceClient(s.conn), ragkvv1.NewRetrievalClient(s.conn)
	return s
}

func (s *ragServer) stop(t testing.TB) {
	s.conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.srv.Stop(ctx)
	if err := <-s.done; err != nil {
		t.Error(err)
	}
	if err := s.cache.Close(); err != nil {
		t.Error(err)
	}
	if err := s.ret.Close(); err != nil {
		t.Error(err)
	}
}

// storyDocs are n stories of the shared dev set (in-distribution text for stories260K).
func storyDocs(t testing.TB, n int) []*ragkvv1.RetrievalDocument {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(shared.Path(t), "data", "stories", "stories.dev.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*ragkvv1.RetrievalDocument
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() && len(out) < n {
		var d struct{ ID, Text string }
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, &ragkvv1.RetrievalDocument{Id: d.ID, Text: d.Text})
	}
	return out
}

// ingestStories ingests n stories into collection "stories" in passages of 40 words,
// lexical only.
func (s *ragServer) ingestStories(t testing.TB, n int) *ragkvv1.IngestResponse {
	t.Helper()
	stream, err := s.rc.Ingest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&ragkvv1.IngestRequest{Collection: "stories", Documents: storyDocs(t, n),
		Options: &ragkvv1.RetrievalCollectionOptions{ChunkWords: 40, ChunkOverlap: 0, Embedder: "none"}}); err != nil {
		t.Fatal(err)
	}
	res, err := stream.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func ragSource(query string, k int32) *ragkvv1.RetrievalSource {
	return &ragkvv1.RetrievalSource{Collection: "stories", Query: query, K: k, Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25}
}

const ragQuery = "Tim saw a big fox in the park"

// TestPrefillRetrievalSource: a Prefill with a retrieval source fuses the passages
// Retrieve returns, in rank order after the given chunks, each as its text + "\n\n";
// the response names them with scores, keys and sources; Retrieve with_keys reports
// the same keys and whether they are cached; the result equals a Prefill of the same
// chunks given as text; Generate takes the same source; bad inputs fail precisely.
func TestPrefillRetrievalSource(t *testing.T) {
	m := openStoriesModel(t)
	s := startRAGServer(t, m, t.TempDir())
	defer s.stop(t)
	s.ingestStories(t, 12)
	ctx := context.Background()

	ret, err := s.rc.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "stories", Query: ragQuery, K: 3,
		Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25, WithKeys: true, System: inferenceSystem})
	if err != nil {
		t.Fatal(err)
	}
	if len(ret.Passages) != 3 {
		t.Fatalf("retrieved %d passages, want 3", len(ret.Passages))
	}
	for _, p := range ret.Passages {
		if len(p.ChunkKey) != 32 || p.Cached || p.Tier != "" {
			t.Fatalf("before any prefill: passage %s key %x cached %v tier %q", p.PassageId, p.ChunkKey, p.Cached, p.Tier)
		}
	}

	const given = "Once upon a time, there was a girl."
	req := &ragkvv1.PrefillRequest{System: inferenceSystem, Chunks: textChunks(given), Query: "Tim was happy.",
		Method: "cacheblend", Retrieval: ragSource(ragQuery, 3)}
	resp, err := s.inf.Prefill(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	segs := resp.Breakdown.Segments
	if len(segs) != 1+1+3 || len(resp.Passages) != 3 {
		t.Fatalf("%d segments, %d passages; want 5 and 3", len(segs), len(resp.Passages))
	}
	for i, p := range resp.Passages {
		rp := ret.Passages[i]
		if p.PassageId != rp.PassageId || p.Score != rp.Score || p.ChunkId != rp.ChunkId || p.DocId != rp.DocId {
			t.Fatalf("passage %d: %+v, Retrieve returned %+v", i, p, rp)
		}
		if i > 0 && p.Score > resp.Passages[i-1].Score {
			t.Fatalf("passages not in rank order: %v after %v", p.Score, resp.Passages[i-1].Score)
		}
		seg := segs[p.Segment]
		if p.Segment != uint32(2+i) || !bytes.Equal(p.Key, seg.Key) || !bytes.Equal(p.Key, rp.ChunkKey) ||
			p.Source != "computed" || seg.Source != "computed" || p.Tokens != seg.Tokens {
			t.Fatalf("passage %d: segment %d key %x source %s tokens %d; segment key %x source %s tokens %d; Retrieve key %x",
				i, p.Segment, p.Key, p.Source, p.Tokens, seg.Key, seg.Source, seg.Tokens, rp.ChunkKey)
		}
		want := len(m.Tok.Encode(rp.Text+"\n\n", false, false))
		if int(p.Tokens) != want {
			t.Fatalf("passage %d: %d tokens, its text + separator has %d", i, p.Tokens, want)
		}
	}

	// Now cached: Retrieve says so, and a second prefill reads them from a tier.
	ret2, err := s.rc.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "stories", Query: ragQuery, K: 3,
		Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25, WithKeys: true, System: inferenceSystem, OmitText: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ret2.Passages {
		if !p.Cached || p.Tier != "memory" || !bytes.Equal(p.ChunkKey, ret.Passages[i].ChunkKey) || p.Text != "" {
			t.Fatalf("after a prefill: passage %d cached %v tier %q key %x text %q", i, p.Cached, p.Tier, p.ChunkKey, p.Text)
		}
	}
	// Another namespace keys (and caches) apart.
	ret3, err := s.rc.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "stories", Query: ragQuery, K: 1,
		Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25, WithKeys: true, System: inferenceSystem, Namespace: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if ret3.Passages[0].Cached || bytes.Equal(ret3.Passages[0].ChunkKey, ret.Passages[0].ChunkKey) {
		t.Fatalf("namespace other: cached %v, key %x (default's %x)", ret3.Passages[0].Cached, ret3.Passages[0].ChunkKey, ret.Passages[0].ChunkKey)
	}
	again, err := s.inf.Prefill(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range again.Passages {
		if p.Source != "memory" {
			t.Fatalf("second prefill: passage %d from %q, want memory", i, p.Source)
		}
	}
	// The same prompt with the passages given as text.
	explicit := &ragkvv1.PrefillRequest{System: inferenceSystem, Query: req.Query, Method: "cacheblend", Chunks: textChunks(given)}
	for _, p := range ret.Passages {
		explicit.Chunks = append(explicit.Chunks, textChunks(p.Text+"\n\n")...)
	}
	ex, err := s.inf.Prefill(ctx, explicit)
	if err != nil {
		t.Fatal(err)
	}
	if ex.FirstToken != again.FirstToken || len(ex.Passages) != 0 {
		t.Fatalf("explicit chunks: first token %d (%d passages); retrieval source: %d", ex.FirstToken, len(ex.Passages), again.FirstToken)
	}
	for i, seg := range ex.Breakdown.Segments {
		if !bytes.Equal(seg.Key, again.Breakdown.Segments[i].Key) {
			t.Fatalf("segment %d: key %x given as text, %x retrieved", i, seg.Key, again.Breakdown.Segments[i].Key)
		}
	}

	// Generate with the source (the search text defaults to the query).
	stream, err := s.inf.Generate(ctx, &ragkvv1.GenerateRequest{MaxTokens: 4, Source: &ragkvv1.GenerateRequest_Prefill{Prefill: &ragkvv1.PrefillRequest{
		System: inferenceSystem, Query: ragQuery, Method: "full", Retrieval: &ragkvv1.RetrievalSource{Collection: "stories", K: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	var first *ragkvv1.PrefillResponse
	tokens := 0
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p := msg.GetPrefill(); p != nil {
			first = p
		}
		if msg.GetToken() != nil {
			tokens++
		}
	}
	if first == nil || len(first.Passages) != 2 || first.Passages[0].Source != "none" || tokens == 0 {
		t.Fatalf("generate: prefill %+v, %d tokens", first, tokens)
	}

	// Bad inputs.
	bad := func(src *ragkvv1.RetrievalSource, query string, code codes.Code, substr string) {
		t.Helper()
		_, err := s.inf.Prefill(ctx, &ragkvv1.PrefillRequest{System: inferenceSystem, Query: query, Retrieval: src})
		wantInfCode(t, err, code, substr)
	}
	bad(&ragkvv1.RetrievalSource{Collection: "nope", Query: "x", K: 2}, "", codes.NotFound, "nope")
	bad(ragSource("fox", 0), "", codes.InvalidArgument, "k = 0")
	bad(ragSource("fox", -3), "", codes.InvalidArgument, "k = -3")
	bad(ragSource("fox", MaxRetrievalK+1), "", codes.InvalidArgument, "want 1 to 64")
	bad(ragSource("", 2), "", codes.InvalidArgument, "no query text")
	bad(ragSource("  ", 2), "", codes.InvalidArgument, "no query text")
	bad(&ragkvv1.RetrievalSource{K: 2, Query: "fox"}, "", codes.InvalidArgument, "names no collection")
	bad(&ragkvv1.RetrievalSource{Collection: "stories", K: 2, Query: "fox", Mode: 99}, "", codes.InvalidArgument, "mode")
	_, err = s.rc.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "nope", Query: "x", K: 2, WithKeys: true})
	wantInfCode(t, err, codes.NotFound, "nope")

	// A passage longer than the context (512 tokens): a whole-document collection.
	long := strings.Repeat("The little dog ran to the big tree and saw a red bird. ", 60)
	ing, err := s.rc.Ingest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ing.Send(&ragkvv1.IngestRequest{Collection: "long", Options: &ragkvv1.RetrievalCollectionOptions{ChunkWords: -1, Embedder: "none"},
		Documents: []*ragkvv1.RetrievalDocument{{Id: "big", Text: long}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ing.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	for _, meth := range []string{"cacheblend", "full"} {
		_, err = s.inf.Prefill(ctx, &ragkvv1.PrefillRequest{System: inferenceSystem, Query: "dog", Method: meth,
			Retrieval: &ragkvv1.RetrievalSource{Collection: "long", K: 1}})
		wantInfCode(t, err, codes.InvalidArgument, "context")
	}
	// PrecomputeCollection reports such a passage and goes on.
	lp := precomputeCollection(t, s.inf, &ragkvv1.PrecomputeCollectionRequest{Collection: "long", System: inferenceSystem}, 0)
	if len(lp) != 1 || lp[0].Status != "too_long" || lp[0].Tokens <= 512 || lp[0].Done != 1 || lp[0].Computed != 0 {
		t.Fatalf("precompute of a too long passage: %+v", lp)
	}
	// Without the Retrieval service.
	plain := startInferenceServer(t, m, t.TempDir())
	defer plain.stop(t)
	_, err = dialInference(t, plain.addr).Prefill(ctx, &ragkvv1.PrefillRequest{Query: "x", Retrieval: ragSource("fox", 2)})
	wantInfCode(t, err, codes.FailedPrecondition, "serves no retrieval")
}

// precomputeCollection runs PrecomputeCollection to the end (or until stopAfter
// progress messages, then cancels) and returns the progress messages.
func precomputeCollection(t testing.TB, cl ragkvv1.InferenceClient, req *ragkvv1.PrecomputeCollectionRequest, stopAfter int) []*ragkvv1.PrecomputeCollectionProgress {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := cl.PrecomputeCollection(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var out []*ragkvv1.PrecomputeCollectionProgress
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			if stopAfter > 0 && len(out) >= stopAfter {
				return out
			}
			t.Fatal(err)
		}
		out = append(out, p)
		if stopAfter > 0 && len(out) == stopAfter {
			cancel()
		}
	}
}

// TestRAGHelperProcess is a RAG server process over RAGKV_RAG_SERVER_DIR: it prints
// its address and serves until killed (or stdin closes).
func TestRAGHelperProcess(t *testing.T) {
	dir := os.Getenv("RAGKV_RAG_SERVER_DIR")
	if dir == "" {
		t.Skip("helper process for TestPrecomputeCollection")
	}
	m := openStoriesModel(t)
	s := startRAGServer(t, m, dir)
	fmt.Printf("ADDR %s\n", s.addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
	s.stop(t)
}

// TestPrecomputeCollection: a server process precomputing a collection is killed
// (SIGKILL) part way; a new server over the same directory resumes the job (what was
// stored before the kill is skipped, the rest computed), a second run skips every
// passage, and a prompt with a retrieval source then reads every passage from a tier;
// cancelling a job stops it; bad requests fail precisely.
func TestPrecomputeCollection(t *testing.T) {
	m := openStoriesModel(t)
	dir := t.TempDir()

	// The first server process: ingest, start the job, kill it after a few passages.
	cmd := exec.Command(os.Args[0], "-test.run=^TestRAGHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RAGKV_RAG_SERVER_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var addr string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("child server did not report its address")
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	child := &ragServer{rc: ragkvv1.NewRetrievalClient(conn), inf: ragkvv1.NewInferenceClient(conn)}
	ing := child.ingestStories(t, 10)
	total := int(ing.TotalPassages)
	if total < 20 {
		t.Fatalf("%d passages: want at least 20", total)
	}
	req := &ragkvv1.PrecomputeCollectionRequest{Collection: "stories", System: inferenceSystem, EngineShare: 1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := child.inf.PrecomputeCollection(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	const before = 7
	for i := 0; i < before; i++ {
		p, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != "computed" || p.Done != uint32(i+1) || p.Total != uint32(total) || len(p.Key) != 32 {
			t.Fatalf("progress %d: %+v", i, p)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	conn.Close()

	// A new server over the same directory resumes.
	s := startRAGServer(t, m, dir)
	defer s.stop(t)
	prog := precomputeCollection(t, s.inf, req, 0)
	if len(prog) != total {
		t.Fatalf("resumed job: %d progress messages for %d passages", len(prog), total)
	}
	last := prog[len(prog)-1]
	if last.Skipped < before || last.Computed+last.Skipped != uint32(total) || last.Done != uint32(total) || last.Rejected != 0 {
		t.Fatalf("resumed job after %d passages: %+v", before, last)
	}
	for i := 0; i < before; i++ {
		if prog[i].Status != "skipped" {
			t.Fatalf("resumed job: passage %d (%s) %s, stored before the kill", i, prog[i].PassageId, prog[i].Status)
		}
	}
	keys := map[string][]byte{}
	for _, p := range prog {
		keys[p.PassageId] = p.Key
	}
	again := precomputeCollection(t, s.inf, req, 0)
	if a := again[len(again)-1]; a.Skipped != uint32(total) || a.Computed != 0 {
		t.Fatalf("second run: %+v", a)
	}
	// Every retrieved passage now comes from a tier, under the key precompute reported.
	resp, err := s.inf.Prefill(context.Background(), &ragkvv1.PrefillRequest{System: inferenceSystem, Query: ragQuery,
		Retrieval: ragSource("", 5)})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Passages) != 5 {
		t.Fatalf("%d passages", len(resp.Passages))
	}
	for _, p := range resp.Passages {
		if p.Source == "computed" || p.Source == "none" || !bytes.Equal(p.Key, keys[p.PassageId]) {
			t.Fatalf("passage %s from %q, key %x (precomputed %x)", p.PassageId, p.Source, p.Key, keys[p.PassageId])
		}
	}

	// With co_retrieved_context the passages retrieved together follow each other.
	ord := precomputeCollection(t, s.inf, &ragkvv1.PrecomputeCollectionRequest{Collection: "stories", System: inferenceSystem,
		Namespace: "ns3", EngineShare: 1, CoRetrievedContext: true}, 0)
	together := map[string]bool{}
	for _, p := range resp.Passages {
		together[p.PassageId] = true
	}
	at := -1
	for i, p := range ord {
		if together[p.PassageId] {
			at = i
			break
		}
	}
	if at < 0 || at+len(together) > len(ord) || len(ord) != total {
		t.Fatalf("co-retrieved order: first at %d of %d", at, len(ord))
	}
	for _, p := range ord[at : at+len(together)] {
		if !together[p.PassageId] {
			var ids []string
			for _, q := range ord {
				ids = append(ids, q.PassageId)
			}
			t.Fatalf("co-retrieved passages %v not consecutive in %v", together, ids)
		}
	}

	// Cancelling stops a job (another namespace, a fifth of the engine, cancelled after
	// 3 passages): a rerun skips what it stored and computes the rest.
	ns2 := &ragkvv1.PrecomputeCollectionRequest{Collection: "stories", System: inferenceSystem, Namespace: "ns2", EngineShare: 0.2}
	part := precomputeCollection(t, s.inf, ns2, 3)
	if len(part) != 3 {
		t.Fatalf("cancelled job sent %d messages", len(part))
	}
	time.Sleep(200 * time.Millisecond) // let the server see the cancellation
	rest := precomputeCollection(t, s.inf, ns2, 0)
	if r := rest[len(rest)-1]; r.Skipped < 3 || r.Computed < uint32(total/2) || r.Skipped+r.Computed != uint32(total) {
		t.Fatalf("after cancelling at 3 of %d: %+v", total, r)
	}

	for _, tc := range []struct {
		req    *ragkvv1.PrecomputeCollectionRequest
		code   codes.Code
		substr string
	}{
		{&ragkvv1.PrecomputeCollectionRequest{}, codes.InvalidArgument, "collection is empty"},
		{&ragkvv1.PrecomputeCollectionRequest{Collection: "nope"}, codes.NotFound, "nope"},
		{&ragkvv1.PrecomputeCollectionRequest{Collection: "stories", EngineShare: 1.5}, codes.InvalidArgument, "engine_share"},
		{&ragkvv1.PrecomputeCollectionRequest{Collection: "stories", EngineShare: -1}, codes.InvalidArgument, "engine_share"},
	} {
		st, err := s.inf.PrecomputeCollection(context.Background(), tc.req)
		if err == nil {
			_, err = st.Recv()
		}
		wantInfCode(t, err, tc.code, tc.substr)
	}
}

// TestRetrieveKeysNeedInference: with_keys on a server without the Inference service
// fails with FailedPrecondition; without with_keys nothing changes.
func TestRetrieveKeysNeedInference(t *testing.T) {
	c := retrievalClient(t)
	if _, err := ingestStream(t, c, &ragkvv1.IngestRequest{Collection: "c", Documents: testDocs(8)}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "c", Query: "animals", K: 2, Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25})
	if err != nil || len(res.Passages) == 0 || res.Passages[0].ChunkKey != nil {
		t.Fatalf("plain retrieve: %v, %+v", err, res)
	}
	_, err = c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "c", Query: "animals", K: 2, WithKeys: true})
	wantCode(t, err, codes.FailedPrecondition, "Inference service")
}
