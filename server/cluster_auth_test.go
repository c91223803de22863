package server

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/server/auth"
	"github.com/ragkv/ragkv/store"
)

// TestLocateForwardsCallerToken: with auth on every replica, Locate asks the peers as
// the caller (its token is forwarded), so a peer's chunk is found, and a caller's
// foreign namespace stays hidden on the peers too.
func TestLocateForwardsCallerToken(t *testing.T) {
	st, err := auth.Load(writeAuthFile(t, authYAML()))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	var lis [2]net.Listener
	var addrs [2]string
	for i := range lis {
		if lis[i], err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		addrs[i] = lis[i].Addr().String()
	}
	var clients [2]ragkvv1.ChunkCacheClient
	for i := range lis {
		c, err := chunkcache.New(context.Background(), chunkcache.Options{Tiers: []chunkcache.TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}}}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(WithChunkCache(c), WithLogger(quiet), WithAuth(st, AuthOptions{}),
			WithReplica(ReplicaOptions{ID: addrs[i], Peers: []string{addrs[1-i]}, PeerTimeout: 2 * time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(lis[i]) }()
		conn := dialChunk(t, addrs[i])
		clients[i] = ragkvv1.NewChunkCacheClient(conn)
		t.Cleanup(func() { conn.Close(); srv.Stop(context.Background()); <-done; c.Close() })
	}
	ctx := testCtx(t)
	h, frames := rawChunk(30, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	res, err := pushChunk(as(ctx, tokWriter), clients[1], h, frames)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := clients[0].Locate(as(ctx, tokReader), &ragkvv1.LocateRequest{Namespace: "a", Keys: [][]byte{res.GetKey()}})
	if err != nil {
		t.Fatal(err)
	}
	if len(loc.GetUnreachable()) != 0 || len(loc.GetChunks()) != 1 || len(loc.GetChunks()[0].GetReplicas()) != 1 ||
		loc.GetChunks()[0].GetReplicas()[0].GetReplica() != addrs[1] {
		t.Fatalf("Locate through a peer with auth: %v", loc)
	}
}
