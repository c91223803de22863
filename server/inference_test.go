package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ragkv/ragkv/internal/shared"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/model"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/store"
)

func openStoriesModel(t testing.TB) *model.Model {
	d := shared.Path(t)
	m, err := model.Open(filepath.Join(d, "models/stories260K/stories260K.bin"),
		model.Options{Tokenizer: filepath.Join(d, "models/stories260K/tok512.bin"), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// inferenceServer is an Inference + ChunkCache server over a RAM tier and a Badger
// tier in dir, on a loopback TCP port.
type inferenceServer struct {
	addr  string
	srv   *Server
	cache *chunkcache.Cache
	eng   *blend.Engine
	done  chan error
}

func startInferenceServer(t testing.TB, m *model.Model, dir string) *inferenceServer {
	t.Helper()
	ctx := context.Background()
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := chunkcache.New(ctx, chunkcache.Options{
		Tiers: []chunkcache.TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}},
			{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 30}, WriteThrough: true},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := blend.NewStore(m, cache, blend.StoreOptions{DType: chunkcache.F32})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := blend.NewEngine(st, blend.EngineOptions{MaxHandles: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(WithChunkCache(cache), WithInference(eng), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &inferenceServer{addr: lis.Addr().String(), srv: srv, cache: cache, eng: eng, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(lis) }()
	return s
}

func (s *inferenceServer) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.srv.Stop(ctx)
	if err := <-s.done; err != nil {
		t.Error(err)
	}
	if err := s.cache.Close(); err != nil {
		t.Error(err)
	}
}

func dialInference(t testing.TB, addr string) ragkvv1.InferenceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ragkvv1.NewInferenceClient(conn)
}

var inferenceChunks = []string{
	"Once upon a time, there was a little girl named Lily. She loved to play in the park with her red ball.",
	"One day, a big dog came to the park. The dog was very friendly and wanted to play with Lily.",
	"Lily threw the ball and the dog ran after it. They played all day until the sun went down.",
}

const inferenceSystem = "A story."

// TestInferenceHelperProcess is the "previous server process": with
// RAGKV_INFER_SERVER_DIR set it serves on a loopback port over that directory, prints
// its address and stops gracefully when stdin closes.
func TestInferenceHelperProcess(t *testing.T) {
	dir := os.Getenv("RAGKV_INFER_SERVER_DIR")
	if dir == "" {
		t.Skip("helper process for TestInferenceAcrossRestart")
	}
	m := openStoriesModel(t)
	s := startInferenceServer(t, m, dir)
	fmt.Printf("ADDR %s\n", s.addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
	s.stop(t)
}

// precomputeInChild runs PrecomputeChunks against a child server process over dir and
// returns the chunks' keys.
func precomputeInChild(t *testing.T, dir string, texts []string) [][]byte {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestInferenceHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RAGKV_INFER_SERVER_DIR="+dir)
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
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child server: %v", err)
		}
	}()
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
	cl := dialInference(t, addr)
	req := &ragkvv1.PrecomputeChunksRequest{System: inferenceSystem}
	for i, tx := range texts {
		req.Chunks = append(req.Chunks, &ragkvv1.PrecomputeChunk{Id: fmt.Sprint("c", i), Text: tx})
	}
	keys := make([][]byte, len(texts))
	for round := 0; round < 2; round++ {
		stream, err := cl.PrecomputeChunks(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			p, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			want := map[int]string{0: "computed", 1: "skipped"}[round] // the job is resumable
			if p.Status != want || p.Id != fmt.Sprint("c", n) || p.Total != uint32(len(texts)) || p.Done != uint32(n+1) {
				t.Fatalf("round %d progress %d: %+v", round, n, p)
			}
			keys[n] = p.Key
			n++
		}
		if n != len(texts) {
			t.Fatalf("%d progress messages for %d chunks", n, len(texts))
		}
	}
	return keys
}

// inProcess computes the same prefill with package blend directly: the chunks'
// KVs computed alone after the system prefix, with the statistics precompute stores.
func inProcess(t *testing.T, m *model.Model, texts []string, query string, method blend.Method, ratio float64) *blend.Result {
	t.Helper()
	ctx := context.Background()
	prefix := m.Tok.Encode(inferenceSystem, true, false)
	prefixKV, _, err := m.Prefill(ctx, prefix, 0, 0, model.ExtendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kvPrev := []blend.Hash{blend.TokenHash(prefix)}
	segs := []blend.Segment{{Tokens: prefix, Source: &blend.KVSource{KV: prefixKV}, Meta: &blend.Meta{}}}
	var all [][]int
	for _, tx := range texts {
		all = append(all, m.Tok.Encode(tx, false, false))
	}
	for i, toks := range all {
		kv, err := blend.ComputeAlone(ctx, m, prefixKV, toks)
		if err != nil {
			t.Fatal(err)
		}
		// The statistics pass of precompute: prefix + the previous chunk + this one.
		ctxKV, _ := model.ConcatKV(512, prefixKV)
		prev := append([]blend.Hash(nil), kvPrev...)
		if i > 0 {
			if _, err := m.Extend(ctx, ctxKV, all[i-1], seq(ctxKV.Len(), len(all[i-1])), model.ExtendOptions{}); err != nil {
				t.Fatal(err)
			}
			prev = append(prev, blend.TokenHash(all[i-1]))
		}
		stats, err := blend.ContextStats(ctx, m, ctxKV, toks, prev)
		if err != nil {
			t.Fatal(err)
		}
		// What the cache returns: the statistics after their 16-bit encoding.
		enc, err := blend.EncodeMeta(&blend.Meta{KVPrev: kvPrev, Stats: stats})
		if err != nil {
			t.Fatal(err)
		}
		meta, err := blend.DecodeMeta(enc)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, blend.Segment{Tokens: toks, Source: &blend.KVSource{KV: kv}, Meta: meta})
	}
	b, err := blend.New(m, blend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Prefill(ctx, &blend.Request{Method: method, Ratio: ratio, Segments: segs, Query: m.Tok.Encode(query, false, false)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func seq(from, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = from + i
	}
	return p
}

func textChunks(texts ...string) []*ragkvv1.InferenceChunk {
	var out []*ragkvv1.InferenceChunk
	for _, tx := range texts {
		out = append(out, &ragkvv1.InferenceChunk{Chunk: &ragkvv1.InferenceChunk_Text{Text: tx}})
	}
	return out
}

func wantInfCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	st, ok := status.FromError(err)
	if err == nil || !ok || st.Code() != code || !strings.Contains(st.Message(), substr) {
		t.Fatalf("got %v, want %v containing %q", err, code, substr)
	}
}

// TestInferenceAcrossRestart: chunks precomputed by a previous server process (a child
// process over the same Badger directory) serve Prefill over loopback gRPC with the
// same first token and logits as the in-process path, for every method; reordered
// chunks, a repeated chunk, a missing chunk, chunks by key and an empty query work;
// bad requests fail with precise statuses; Generate streams from a handle or a prompt.
func TestInferenceAcrossRestart(t *testing.T) {
	m := openStoriesModel(t)
	dir := t.TempDir()
	keys := precomputeInChild(t, dir, inferenceChunks)
	s := startInferenceServer(t, m, dir)
	defer s.stop(t)
	cl := dialInference(t, s.addr)
	ctx := context.Background()
	query := "What did Lily do?"
	V := m.Config.Vocab
	for _, meth := range blend.Methods {
		ratio := 0.3
		resp, err := cl.Prefill(ctx, &ragkvv1.PrefillRequest{System: inferenceSystem, Chunks: textChunks(inferenceChunks...),
			Query: query, Method: string(meth), Ratio: &ratio, ReturnLogits: true})
		if err != nil {
			t.Fatalf("%s: %v", meth, err)
		}
		ref := inProcess(t, m, inferenceChunks, query, meth, ratio)
		d := 0.0
		for i := range ref.Logits {
			d = math.Max(d, math.Abs(float64(ref.Logits[i]-resp.Logits[i])))
		}
		if len(resp.Logits) != V || d > 1e-4 || resp.FirstToken != uint32(model.Argmax(ref.Logits)) {
			t.Fatalf("%s: first token %d vs %d in process, logits differ by %g", meth, resp.FirstToken, model.Argmax(ref.Logits), d)
		}
		b := resp.Breakdown
		if meth != blend.Full && (b.CacheHits["disk"]+b.CacheHits["memory"] != 4 || b.CacheHits["computed"] != 0) {
			t.Fatalf("%s: chunks were not served from the cache: %v", meth, b.CacheHits)
		}
		if len(b.Segments) != 4 || b.Segments[0].Kind != "system" || meth != blend.Full && (!b.Segments[1].Exact || b.Segments[2].Exact) {
			t.Fatalf("%s: segments %v", meth, b.Segments)
		}
		if resp.Handle != "" || b.TotalTokens == 0 || b.Flops <= 0 || b.Flops > b.FullFlops*1.01 {
			t.Fatalf("%s: response %v", meth, resp)
		}
		t.Logf("%-10s first token %q, recomputed %.1f (%.3f), flops %.2f of full, load %.2gs hidden %.2f, cache %v",
			meth, resp.FirstText, b.RecomputedTokens, b.RecomputeFrac, b.Flops/b.FullFlops, b.LoadSeconds, b.LoadHiddenFrac, b.CacheHits)
	}

	// By key: the same result as by text.
	var byKey []*ragkvv1.InferenceChunk
	for _, k := range keys {
		byKey = append(byKey, &ragkvv1.InferenceChunk{Chunk: &ragkvv1.InferenceChunk_Key{Key: k}})
	}
	r1, err := cl.Prefill(ctx, &ragkvv1.PrefillRequest{System: inferenceSystem, Chunks: byKey, Query: query, ReturnLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := cl.Prefill(ctx, &ragkvv1.PrefillRequest{System: inferenceSystem, Chunks: textChunks(inferenceChunks...), Query: query, ReturnLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range r1.Logits {
		if r1.Logits[i] != r2.Logits[i] {
			t.Fatal("chunks by key and by text differ")
		}
	}

	// Reordered and repeated chunks work and match the in-process path.
	for _, order := range [][]string{
		{inferenceChunks[2], inferenceChunks[0], inferenceChunks[1]},
		{inferenceChunks[1], inferenceChunks[1], inferenceChunks[0]},
	} {
		for _, meth := range []blend.Method{blend.CacheBlend, blend.CacheCraft} {
			resp, err := cl.Prefill(ctx, &ragkvv1.PrefillRequest{System: inferenceSystem, Chunks: textChunks(order...), Query: query,
				Method: string(meth), ReturnLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			// Every chunk was computed right after the system prefix: exact in first
			// place only.
			if sg := resp.Breakdown.Segments; !sg[1].Exact || sg[2].Exact || sg[3].Exact {
				t.Fatalf("exactness: %v", sg)
			}
			if ref := inProcess(t, m, order, query, meth, 0.15); resp.FirstToken != uint32(model.Argmax(ref.Logits)) {
				t.Fatalf("%s reordered: first token %d vs %d", meth, resp.FirstToken, model.Argmax(ref.Logits))
			}
		}
	}

	// A chunk missing from the cache is computed, stored (admitted) and then found.
	missing := "The cat sat on the mat and looked at the bird in the tree."
	for round, want := range []string{"computed", "memory"} {
		resp, err := cl.Prefill(ctx, &ragkvv1.PrefillRequest{System: inferenceSystem, Chunks: textChunks(inferenceChunks[0], missing), Query: query})
		if err != nil {
			t.Fatal(err)
		}
		seg := resp.Breakdown.Segments[2]
		if seg.Source != want || (round == 0 && !seg.Stored) {
			t.Fatalf("round %d: missing chunk %v", round, seg)
		}
	}

	// Empty query: the last prompt token is the query.
	resp, err := cl.Prefill(ctx, &ragkvv1.PrefillRequest{System: inferenceSystem, Chunks: textChunks(inferenceChunks...), Method: "cachecraft"})
	if err != nil || resp.Breakdown.QueryTokens != 1 {
		t.Fatalf("empty query: %v %v", resp, err)
	}
	// No chunks, no query: the BOS + system prefix alone.
	if _, err := cl.Prefill(ctx, &ragkvv1.PrefillRequest{}); err != nil {
		t.Fatalf("empty prompt: %v", err)
	}

	// Bad requests.
	_, err = cl.Prefill(ctx, &ragkvv1.PrefillRequest{Chunks: []*ragkvv1.InferenceChunk{{Chunk: &ragkvv1.InferenceChunk_Key{Key: make([]byte, 32)}}}})
	wantInfCode(t, err, codes.NotFound, "send its text")
	_, err = cl.Prefill(ctx, &ragkvv1.PrefillRequest{Chunks: []*ragkvv1.InferenceChunk{{Chunk: &ragkvv1.InferenceChunk_Key{Key: []byte{1}}}}})
	wantInfCode(t, err, codes.InvalidArgument, "want 32")
	_, err = cl.Prefill(ctx, &ragkvv1.PrefillRequest{Method: "magic"})
	wantInfCode(t, err, codes.InvalidArgument, "method")
	bad := 1.5
	_, err = cl.Prefill(ctx, &ragkvv1.PrefillRequest{Ratio: &bad})
	wantInfCode(t, err, codes.InvalidArgument, "ratio")
	_, err = cl.Prefill(ctx, &ragkvv1.PrefillRequest{Chunks: textChunks(strings.Repeat("word ", 600))})
	wantInfCode(t, err, codes.InvalidArgument, "context")
	_, err = cl.Prefill(ctx, &ragkvv1.PrefillRequest{Chunks: []*ragkvv1.InferenceChunk{{}}})
	wantInfCode(t, err, codes.InvalidArgument, "key or a text")
	_, err = cl.Prefill(ctx, &ragkvv1.PrefillRequest{Namespace: "bad namespace!"})
	wantInfCode(t, err, codes.InvalidArgument, "namespace")

	// Generate from a handle: greedy tokens equal decoding the full prefill in process.
	full, err := cl.Prefill(ctx, &ragkvv1.PrefillRequest{System: inferenceSystem, Chunks: textChunks(inferenceChunks...), Query: query, Method: "full", KeepHandle: true})
	if err != nil {
		t.Fatal(err)
	}
	toks := generate(t, cl, &ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Handle{Handle: full.Handle}, MaxTokens: 12, IgnoreEos: true})
	prompt := m.Tok.Encode(inferenceSystem, true, false)
	for _, tx := range inferenceChunks {
		prompt = append(prompt, m.Tok.Encode(tx, false, false)...)
	}
	prompt = append(prompt, m.Tok.Encode(query, false, false)...)
	stt := m.NewState(nil, len(prompt)+16)
	logits, err := stt.Feed(ctx, prompt...)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range toks {
		if want := model.Argmax(logits); tok != want {
			t.Fatalf("generated token %d: %d, decoding in process gives %d", i, tok, want)
		}
		if logits, err = stt.Feed(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if toks[0] != int(full.FirstToken) || len(toks) != 12 {
		t.Fatalf("generated %v (first token of the prefill %d)", toks, full.FirstToken)
	}
	// The handle was consumed.
	st, err := cl.Generate(ctx, &ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Handle{Handle: full.Handle}})
	if err == nil {
		_, err = st.Recv()
	}
	wantInfCode(t, err, codes.NotFound, "handle")
	// Generate from a prompt streams the prefill first.
	gen := generate(t, cl, &ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Prefill{Prefill: &ragkvv1.PrefillRequest{
		System: inferenceSystem, Chunks: textChunks(inferenceChunks...), Query: query, Method: "full"}}, MaxTokens: 12, IgnoreEos: true})
	for i := range gen {
		if gen[i] != toks[i] {
			t.Fatalf("generate from a prompt: %v, from the handle %v", gen, toks)
		}
	}
}

// generate runs a Generate stream and returns the token ids.
func generate(t *testing.T, cl ragkvv1.InferenceClient, req *ragkvv1.GenerateRequest) []int {
	t.Helper()
	st, err := cl.Generate(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var toks []int
	var done *ragkvv1.GenerateDone
	sawPrefill := false
	for {
		msg, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case msg.GetPrefill() != nil:
			sawPrefill = true
		case msg.GetToken() != nil: // one message per token
			toks = append(toks, int(msg.GetToken().Id))
		case msg.GetDone() != nil:
			done = msg.GetDone()
		}
	}
	if done == nil || done.Tokens != uint32(len(toks)) {
		t.Fatalf("generate: done %v after %d tokens", done, len(toks))
	}
	if _, ok := req.Source.(*ragkvv1.GenerateRequest_Prefill); ok != sawPrefill {
		t.Fatalf("prefill message sent: %v", sawPrefill)
	}
	return toks
}

// TestGenerateResponse: every Generate event is one message; the end carries the rest
// of an incomplete UTF-8 sequence itself, so that token messages are exactly the tokens.
func TestGenerateResponse(t *testing.T) {
	tok := generateResponse(blend.GenerateEvent{Token: 7, Text: "a"}, false).GetToken()
	if tok == nil || tok.Id != 7 || tok.Text != "a" {
		t.Fatalf("token event: %v", tok)
	}
	msg := generateResponse(blend.GenerateEvent{Done: &blend.GenerateDone{Reason: "max_tokens", Tokens: 3}, Text: "\uFFFD"}, false)
	if d := msg.GetDone(); d == nil || d.Text != "\uFFFD" || d.Tokens != 3 || d.Reason != "max_tokens" || msg.GetToken() != nil {
		t.Fatalf("done event with a tail: %v", msg)
	}
	out := &blend.PrefillOutput{Logits: []float32{1, 2}, Stats: blend.Stats{Method: blend.Naive}}
	if p := generateResponse(blend.GenerateEvent{Prefill: out}, true).GetPrefill(); p == nil || len(p.Logits) != 2 || p.Breakdown.Method != "naive" {
		t.Fatalf("prefill event: %v", p)
	}
	if p := generateResponse(blend.GenerateEvent{Prefill: out}, false).GetPrefill(); p == nil || p.Logits != nil {
		t.Fatalf("prefill event without logits: %v", p)
	}
}
