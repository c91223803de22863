package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/store"
)

// TestSaltKeysAreServerSide: the keys the server derives (salted with its secret)
// are not the ones a client computes from public information, so a client cannot
// probe another namespace by key; a spec is keyed by the server.
func TestSaltKeysAreServerSide(t *testing.T) {
	e := startChunkServer(t, t.TempDir(), 1<<20, 1<<22)
	ctx := testCtx(t)
	h, frames := rawChunk(1, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	res, err := pushChunk(ctx, e.client, h, frames)
	if err != nil {
		t.Fatal(err)
	}
	public, err := chunkcache.PublicKeyer().ChunkKey(&chunkcache.ChunkID{Namespace: "a", Model: fingerprintFromProto(h.GetModel()),
		DType: chunkcache.F16, Tokens: h.GetTokenIds()})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(public[:], res.GetKey()) {
		t.Fatal("the server's key equals the public-salt key a client can compute")
	}
	lr, err := e.client.Lookup(ctx, &ragkvv1.ChunkLookupRequest{Namespace: "a", Keys: [][]byte{public[:]},
		Specs: []*ragkvv1.ChunkSpec{{Model: h.GetModel(), Dtype: h.GetLayout().GetDtype(), TokenIds: h.GetTokenIds()}}})
	if err != nil {
		t.Fatal(err)
	}
	if lr.Results[0].Present || !lr.Results[1].Present || !bytes.Equal(lr.Results[1].Key, res.GetKey()) {
		t.Fatalf("lookup by the public key %v / by spec %v (key %x, want %x)", lr.Results[0].Present, lr.Results[1].Present, lr.Results[1].Key, res.GetKey())
	}
}

// TestRotateSaltRPC: RotateSalt is admin-only (and all namespaces only for an admin of
// "*"), deletes the namespace's chunks under the old keys, leaves the others', and the
// same content gets a new key; Stats reports the generation.
func TestRotateSaltRPC(t *testing.T) {
	e := startAuthServer(t)
	ctx := testCtx(t)
	put := func(seed uint64, ns string) ([]byte, *ragkvv1.ChunkPutHeader) {
		h, frames := rawChunk(seed, ns, ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
		tok := tokWriter
		if ns == "b" {
			tok = tokOther
		}
		res, err := pushChunk(as(ctx, tok), e.client, h, frames)
		if err != nil {
			t.Fatal(err)
		}
		return res.GetKey(), h
	}
	ka, _ := put(1, "a")
	kb, _ := put(2, "b")
	for _, tok := range []string{tokReader, tokWriter, tokOther} {
		_, err := e.client.RotateSalt(as(ctx, tok), &ragkvv1.RotateSaltRequest{Namespace: "a"})
		wantAuthCode(t, "RotateSalt by a non-admin", err, codes.PermissionDenied)
	}
	_, err := e.client.RotateSalt(as(ctx, tokAdmin), &ragkvv1.RotateSaltRequest{Namespace: "bad name!"})
	wantAuthCode(t, "bad namespace", err, codes.InvalidArgument)
	res, err := e.client.RotateSalt(as(ctx, tokAdmin), &ragkvv1.RotateSaltRequest{Namespace: "a"})
	if err != nil || res.GetGeneration() != 2 || res.GetDeleted() != 1 || res.GetFreedBytes() == 0 {
		t.Fatalf("rotate a: %v %v", res, err)
	}
	lookup := func(ns string, k []byte) bool {
		lr, err := e.client.Lookup(as(ctx, tokAdmin), &ragkvv1.ChunkLookupRequest{Namespace: ns, Keys: [][]byte{k}})
		if err != nil {
			t.Fatal(err)
		}
		return lr.Results[0].Present
	}
	if lookup("a", ka) || !lookup("b", kb) {
		t.Fatal("after rotating a: a's chunk still there or b's gone")
	}
	// The same content again: a new key.
	h, frames := rawChunk(1, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	r2, err := pushChunk(as(ctx, tokWriter), e.client, h, frames)
	if err != nil || bytes.Equal(r2.GetKey(), ka) {
		t.Fatalf("re-put after rotation: key unchanged %v, %v", bytes.Equal(r2.GetKey(), ka), err)
	}
	st := adminStats(t, e)
	gens := map[string]uint32{}
	for _, n := range st.GetNamespaceStats() {
		gens[n.GetNamespace()] = n.GetSaltGeneration()
	}
	if gens["a"] != 2 || gens["b"] != 1 {
		t.Fatalf("salt generations in Stats: %v", gens)
	}
	rs, err := e.client.Stats(as(ctx, tokReader), &ragkvv1.ChunkCacheStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range rs.GetNamespaceStats() {
		if n.GetNamespace() != "a" && n.GetNamespace() != "ghost" {
			t.Fatalf("a reader of a and ghost sees namespace stats of %q", n.GetNamespace())
		}
	}
	if _, err := e.client.RotateSalt(as(ctx, tokAdmin), &ragkvv1.RotateSaltRequest{}); err != nil {
		t.Fatalf("admin of * rotating all: %v", err)
	}
	if lookup("b", kb) || lookup("a", r2.GetKey()) {
		t.Fatal("a full rotation left chunks")
	}

	// Public salts (no secret): FailedPrecondition.
	pub, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 1 << 20}}},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	svc := &chunkCacheService{c: pub, log: slog.New(slog.DiscardHandler)}
	_, err = svc.RotateSalt(ctx, &ragkvv1.RotateSaltRequest{})
	wantAuthCode(t, "rotating public salts", err, codes.FailedPrecondition)
}

// TestPutChunkOverQuotaIsResourceExhausted: a chunk that no tier can take within its
// namespace's quota fails ResourceExhausted and stores nothing; another namespace's put
// succeeds; Stats reports each namespace's bytes against its quota.
func TestPutChunkOverQuotaIsResourceExhausted(t *testing.T) {
	ctx := testCtx(t)
	c, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{{Tier: store.NewMemory(),
		Eviction: eviction.Config{Capacity: 1 << 20}, Quotas: map[string]int64{"a": 1024}}}, Namespaces: []string{"default", "a"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	e := startServerWithCache(t, c)
	h, frames := rawChunk(1, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 16) // 2 × 16 × 2 × 16 × 2 × 2 bytes > 1 KiB
	_, err = pushChunk(ctx, e, h, frames)
	wantAuthCode(t, "a chunk larger than its namespace's quota", err, codes.ResourceExhausted)
	hb, fb := rawChunk(2, "b", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 16)
	if _, err := pushChunk(ctx, e, hb, fb); err != nil {
		t.Fatalf("the same size in a namespace without a quota: %v", err)
	}
	st, err := e.Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]uint64{}
	for _, n := range st.GetNamespaceStats() {
		got[n.GetNamespace()] = [2]uint64{n.GetTiers()[0].GetBytes(), n.GetTiers()[0].GetQuotaBytes()}
	}
	if got["a"] != [2]uint64{0, 1024} || got["b"][0] == 0 || got["b"][1] != 0 {
		t.Fatalf("namespace stats %v", got)
	}
}

// startServerWithCache serves c on loopback and returns a ChunkCache client.
func startServerWithCache(t *testing.T, c *chunkcache.Cache) ragkvv1.ChunkCacheClient {
	t.Helper()
	srv, err := New(WithChunkCache(c), WithLogger(slog.New(slog.DiscardHandler)))
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
	})
	return ragkvv1.NewChunkCacheClient(conn)
}
