package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/server/auth"
	"github.com/ragkv/ragkv/store"
)

// TestInferenceHandlesOwnedWithAuth: a Prefill keeps a handle only with keep_handle (bounded per identity); a handle is its identity's only: another identity continuing from it gets what a missing handle gets;
// the owner can; a foreign namespace is refused before anything is computed.
func TestInferenceHandlesOwnedWithAuth(t *testing.T) {
	m := openStoriesModel(t)
	st, err := auth.Load(writeAuthFile(t, authYAML()))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	cache, err := chunkcache.New(context.Background(), chunkcache.Options{Tiers: []chunkcache.TierConfig{
		{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}}}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	bs, err := blend.NewStore(m, cache, blend.StoreOptions{DType: chunkcache.F32})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := blend.NewEngine(bs, blend.EngineOptions{MaxHandles: 8, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(WithChunkCache(cache), WithInference(eng), WithLogger(quiet), WithAuth(st, AuthOptions{MaxHandlesPerIdentity: 1}))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	defer func() { srv.Stop(context.Background()); <-done }()
	cl := dialInference(t, lis.Addr().String())
	ctx := testCtx(t)
	pre := &ragkvv1.PrefillRequest{Namespace: "a", System: inferenceSystem, Query: "Lily",
		Chunks: []*ragkvv1.InferenceChunk{{Chunk: &ragkvv1.InferenceChunk_Text{Text: inferenceChunks[0]}}}}
	// Without keep_handle nothing is kept: no handle, none held by the engine, and such
	// prefills do not count against the identity's bound (1 here).
	for range 2 {
		out, err := cl.Prefill(as(ctx, tokReader), pre)
		if err != nil {
			t.Fatal(err)
		}
		if out.GetHandle() != "" || out.GetHandleExpiresUnixNanos() != 0 {
			t.Fatalf("prefill without keep_handle returned handle %q", out.GetHandle())
		}
		if n, _ := eng.Handles(); n != 0 {
			t.Fatalf("engine holds %d handles after prefills without keep_handle", n)
		}
	}
	pre.KeepHandle = true
	out, err := cl.Prefill(as(ctx, tokReader), pre)
	if err != nil {
		t.Fatal(err)
	}
	if out.GetHandle() == "" {
		t.Fatal("prefill with keep_handle returned no handle")
	}
	_, err = cl.Prefill(as(ctx, tokReader), pre)
	wantAuthCode(t, "a second kept handle over the bound of 1", err, codes.ResourceExhausted)
	pre.KeepHandle = false
	if _, err := cl.Prefill(as(ctx, tokReader), pre); err != nil {
		t.Fatalf("prefill without keep_handle at the handle bound: %v", err)
	}
	gen := func(tok string, req *ragkvv1.GenerateRequest) (*ragkvv1.PrefillResponse, error) {
		s, err := cl.Generate(as(ctx, tok), req)
		if err != nil {
			return nil, err
		}
		var p *ragkvv1.PrefillResponse
		for {
			r, err := s.Recv()
			if err == io.EOF {
				return p, nil
			}
			if err != nil {
				return nil, err
			}
			if r.GetPrefill() != nil {
				p = r.GetPrefill()
			}
		}
	}
	_, err = gen(tokWriter, &ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Handle{Handle: out.GetHandle()}, MaxTokens: 2})
	wantAuthCode(t, "another identity's handle", err, codes.NotFound)
	if _, err := gen(tokReader, &ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Handle{Handle: out.GetHandle()}, MaxTokens: 2}); err != nil {
		t.Fatalf("owner continuing from its handle: %v", err)
	}
	before := cache.Stats().Chunks
	foreign := &ragkvv1.PrefillRequest{Namespace: "b", Query: "x", Chunks: []*ragkvv1.InferenceChunk{{Chunk: &ragkvv1.InferenceChunk_Text{Text: inferenceChunks[1]}}}}
	_, err = cl.Prefill(as(ctx, tokReader), foreign)
	wantAuthCode(t, "prefill in a foreign namespace", err, codes.NotFound)
	if cache.Stats().Chunks != before {
		t.Fatal("a refused prefill computed and stored chunks")
	}
}
