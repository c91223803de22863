package server

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/tmpfstest"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/store"
)

// TestPutChunkOnFullDiskIsResourceExhausted serves a cache whose write-through disk
// tier is on a 32 MiB tmpfs (skipped when it cannot be mounted: needs root) and puts
// chunks until the disk tier refuses one: that PutChunk gets ResourceExhausted, the
// refused chunk is not visible (not even from RAM), the server stays SERVING, and
// every chunk acknowledged before reads back bit-exact.
func TestPutChunkOnFullDiskIsResourceExhausted(t *testing.T) {
	dir := tmpfstest.Mount(t, "32m")
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, ValueLogFileSize: 1 << 20, SegmentBytes: 256 << 10,
		MemTableSize: 1 << 20, MinFreeBytes: 6 << 20, GCInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{
		{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}},
		{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 30}, WriteThrough: true},
	}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv, err := New(WithChunkCache(c), WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop(context.Background())
	conn := dialChunk(t, lis.Addr().String())
	defer conn.Close()
	cl := ragkvv1.NewChunkCacheClient(conn)
	type put struct {
		key    []byte
		h      *ragkvv1.ChunkPutHeader
		frames []*ragkvv1.ChunkLayerFrame
	}
	var acked []put
	var refused *ragkvv1.ChunkPutHeader
	for i := 0; i < 1000 && refused == nil; i++ {
		h, frames := rawChunk(uint64(i), "full", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 4, 256) // 128 KiB
		res, err := pushChunk(ctx, cl, h, frames)
		switch {
		case status.Code(err) == codes.ResourceExhausted:
			refused = h
		case err != nil:
			t.Fatalf("put %d: %v", i, err)
		default:
			acked = append(acked, put{res.GetKey(), h, frames})
		}
	}
	if refused == nil || len(acked) == 0 {
		t.Fatalf("%d chunks acknowledged, refused: %v", len(acked), refused != nil)
	}
	// The refused chunk is not in RAM either.
	h, frames := rawChunk(uint64(len(acked)), "full", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 4, 256)
	if _, err := pushChunk(ctx, cl, h, frames); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("the refused chunk again: %v", err)
	}
	// A re-put of an acknowledged chunk is refused too, and leaves the stored copy.
	if _, err := pushChunk(ctx, cl, acked[0].h, acked[0].frames); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("re-put on a full disk: %v", err)
	}
	if st := c.Stats(); st.Chunks != len(acked) {
		t.Fatalf("%d chunks in the cache, %d acknowledged", st.Chunks, len(acked))
	}
	hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: ChunkCacheServiceName})
	if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health on a full disk: %v %v", hc, err)
	}
	for _, p := range acked {
		checkFetched(t, ctx, cl, p.key, p.h, p.frames)
	}
	lr, err := cl.Lookup(ctx, &ragkvv1.ChunkLookupRequest{Namespace: "full", Keys: [][]byte{acked[0].key}})
	if err != nil || !lr.GetResults()[0].GetPresent() {
		t.Fatalf("lookup on a full disk: %v %v", lr, err)
	}
	t.Logf("%d chunks of 128 KiB acknowledged on a 32 MiB tmpfs, then ResourceExhausted", len(acked))
}
