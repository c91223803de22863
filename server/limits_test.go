package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
)

func startLimitedServer(t *testing.T, l Limits) (*Server, ragkvv1.ChunkCacheClient) {
	t.Helper()
	c, _ := newChunkCache(t, t.TempDir(), 1<<20, 1<<22)
	srv, err := New(WithChunkCache(c), WithLogger(slog.New(slog.DiscardHandler)), WithLimits(l))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	conn := dialChunk(t, lis.Addr().String())
	t.Cleanup(func() {
		conn.Close()
		srv.Stop(context.Background())
		<-done
		c.Close()
	})
	return srv, ragkvv1.NewChunkCacheClient(conn)
}

func TestSetPolicyCapacityBounds(t *testing.T) {
	_, cl := startLimitedServer(t, Limits{MinCapacityBytes: 1 << 20, MaxCapacityBytes: map[string]int64{"memory": 64 << 20}})
	ctx := testCtx(t)
	set := func(c uint64) error {
		_, err := cl.SetPolicy(ctx, &ragkvv1.SetChunkPolicyRequest{Tiers: []*ragkvv1.ChunkTierPolicyUpdate{{Tier: "memory", CapacityBytes: &c}}})
		return err
	}
	if err := set(1); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("capacity 1 byte (mass eviction): %v, want InvalidArgument", err)
	}
	if err := set(1 << 62); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("capacity 2^62 bytes (out of memory): %v, want InvalidArgument", err)
	}
	if err := set(32 << 20); err != nil {
		t.Fatalf("capacity within the bounds: %v", err)
	}
}

func TestPutChunkStagedBytesCap(t *testing.T) {
	h, frames := rawChunk(7, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 4, 16)
	layer := int64(len(frames[0].K) + len(frames[0].V))
	srv, cl := startLimitedServer(t, Limits{MaxStagedBytes: 3 * layer})
	ctx := testCtx(t)
	// A put of 4 layers cannot fit a 3-layer budget.
	_, err := pushChunk(ctx, cl, h, frames)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("put larger than the staging cap: %v, want ResourceExhausted", err)
	}
	// Concurrent puts share the budget: one holding 2 layers leaves room for 1.
	a, err := cl.PutChunk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ha, fa := rawChunk(8, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 16)
	for _, m := range []*ragkvv1.PutChunkRequest{hdrMsg(ha), frameMsg(fa[0]), frameMsg(fa[1])} {
		if err := a.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Staged() != 2*layer {
		if time.Now().After(deadline) {
			t.Fatalf("staged %d bytes, want %d", srv.Staged(), 2*layer)
		}
		time.Sleep(5 * time.Millisecond)
	}
	hb, fb := rawChunk(9, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 16)
	if _, err := pushChunk(ctx, cl, hb, fb); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second put over the shared cap: %v, want ResourceExhausted", err)
	}
	if _, err := a.CloseAndRecv(); err != nil {
		t.Fatalf("first put within the cap: %v", err)
	}
	for srv.Staged() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("staged bytes not released: %d", srv.Staged())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := pushChunk(ctx, cl, hb, fb); err != nil {
		t.Fatalf("put after the first committed: %v", err)
	}
}

func TestUnaryServerDeadline(t *testing.T) {
	lm := &limiter{l: Limits{UnaryTimeout: 30 * time.Millisecond}}
	start := time.Now()
	_, err := lm.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(ctx context.Context, _ any) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("handler without a client deadline: %v after %v", err, time.Since(start))
	}
}

func TestMaxConcurrentStreams(t *testing.T) {
	_, cl := startLimitedServer(t, Limits{MaxConcurrentStreams: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 2; i++ {
		st, err := cl.WatchChunks(ctx, &ragkvv1.WatchChunksRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Header(); err != nil { // the stream is open on the server
			t.Fatal(err)
		}
	}
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	_, err := cl.Stats(short, &ragkvv1.ChunkCacheStatsRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("third stream on a connection allowing 2: %v, want it to wait (DeadlineExceeded)", err)
	}
}
