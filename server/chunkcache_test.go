package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/store"
)

type ccEnv struct {
	addr   string
	cache  *chunkcache.Cache
	mem    *store.Memory
	client ragkvv1.ChunkCacheClient
	conn   *grpc.ClientConn
	stop   func()
}

// newChunkCache opens a memory + Badger (write-through) cache in dir, keyed with the
// salt secret dir.salt.secret.
func newChunkCache(t testing.TB, dir string, memCap, diskCap int64) (*chunkcache.Cache, *store.Memory) {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, GCInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mem := store.NewMemory()
	// Keys salted with a secret as in `ragkv serve` (beside dir, so a restart finds it).
	keyer, err := chunkcache.OpenKeyer(dir + ".salt.secret")
	if err != nil {
		t.Fatal(err)
	}
	c, err := chunkcache.New(ctx, chunkcache.Options{
		Tiers: []chunkcache.TierConfig{
			{Tier: mem, Eviction: eviction.Config{Capacity: memCap}},
			{Tier: disk, Eviction: eviction.Config{Capacity: diskCap}, WriteThrough: true},
		},
		Keyer:  keyer,
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, mem
}

// startChunkServer serves a cache on loopback TCP and returns a connected client.
func startChunkServer(t testing.TB, dir string, memCap, diskCap int64, opts ...Option) *ccEnv {
	t.Helper()
	c, mem := newChunkCache(t, dir, memCap, diskCap)
	srv, err := New(append([]Option{WithChunkCache(c), WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
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
	e := &ccEnv{addr: lis.Addr().String(), cache: c, mem: mem, conn: conn, client: ragkvv1.NewChunkCacheClient(conn)}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			conn.Close()
			srv.Stop(context.Background())
			if err := <-done; err != nil {
				t.Error(err)
			}
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(e.stop)
	return e
}

func dialChunk(t testing.TB, addr string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(DefaultMaxRecvMsgBytes), grpc.MaxCallSendMsgSize(256<<20)))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

var ccModel = &ragkvv1.ChunkModelFingerprint{Architecture: "llama", WeightsDigest: "sha256:weights", TokenizerDigest: "sha256:tok",
	Rope: &ragkvv1.ChunkRoPEConfig{Theta: 10000, Style: "interleaved"}}

// rawChunk is a chunk as an engine pushes it: random bit patterns in the dtype
// (positive finite scales for int8), so a round trip must be bit-exact.
func rawChunk(seed uint64, ns string, dt ragkvv1.ChunkKVDType, layers, tokens int) (*ragkvv1.ChunkPutHeader, []*ragkvv1.ChunkLayerFrame) {
	r := rand.New(rand.NewPCG(seed, 5))
	const heads, dim = 2, 16
	toks := make([]uint32, tokens)
	for i := range toks {
		toks[i] = uint32(seed)<<12 | uint32(i)
	}
	h := &ragkvv1.ChunkPutHeader{
		Namespace: ns, Model: ccModel, TokenIds: toks, PositionBase: int64(seed),
		Layout:   &ragkvv1.ChunkKVLayout{Layers: uint32(layers), KvHeads: heads, HeadDim: dim, Dtype: dt},
		Metadata: map[string][]byte{"cachecraft/summary": []byte(fmt.Sprint("summary-", seed))},
	}
	size := map[ragkvv1.ChunkKVDType]int{1: 4, 2: 2, 3: 2, 4: 1}[dt]
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	scales := func(n int) []byte {
		b := make([]byte, 4*n)
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(r.Float32()))
		}
		return b
	}
	var frames []*ragkvv1.ChunkLayerFrame
	for l := 0; l < layers; l++ {
		f := &ragkvv1.ChunkLayerFrame{Layer: uint32(l), K: rnd(tokens * heads * dim * size), V: rnd(tokens * heads * dim * size)}
		if dt == ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_INT8 {
			f.KScales, f.VScales = scales(heads*dim), scales(tokens) // defaults: K per-channel, V per-token
		}
		frames = append(frames, f)
	}
	return h, frames
}

func frameCRC(f *ragkvv1.ChunkLayerFrame) uint32 {
	tab := crc32.MakeTable(crc32.Castagnoli)
	c := crc32.Update(0, tab, f.K)
	c = crc32.Update(c, tab, f.V)
	c = crc32.Update(c, tab, f.KScales)
	return crc32.Update(c, tab, f.VScales)
}

// push streams a header and frames; an error the server sent early surfaces from
// CloseAndRecv.
func push(ctx context.Context, cl ragkvv1.ChunkCacheClient, msgs ...*ragkvv1.PutChunkRequest) (*ragkvv1.PutChunkResponse, error) {
	st, err := cl.PutChunk(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := st.Send(m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, err
		}
	}
	return st.CloseAndRecv()
}

func hdrMsg(h *ragkvv1.ChunkPutHeader) *ragkvv1.PutChunkRequest {
	return &ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Header{Header: h}}
}

func frameMsg(f *ragkvv1.ChunkLayerFrame) *ragkvv1.PutChunkRequest {
	return &ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Layer{Layer: f}}
}

func pushChunk(ctx context.Context, cl ragkvv1.ChunkCacheClient, h *ragkvv1.ChunkPutHeader, frames []*ragkvv1.ChunkLayerFrame) (*ragkvv1.PutChunkResponse, error) {
	msgs := []*ragkvv1.PutChunkRequest{hdrMsg(h)}
	for _, f := range frames {
		msgs = append(msgs, frameMsg(f))
	}
	return push(ctx, cl, msgs...)
}

func fetch(ctx context.Context, cl ragkvv1.ChunkCacheClient, ref *ragkvv1.ChunkRef, layers ...uint32) (*ragkvv1.ChunkInfo, []*ragkvv1.ChunkLayerFrame, error) {
	st, err := cl.GetChunk(ctx, &ragkvv1.GetChunkRequest{Chunk: ref, Layers: layers})
	if err != nil {
		return nil, nil, err
	}
	var info *ragkvv1.ChunkInfo
	var frames []*ragkvv1.ChunkLayerFrame
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return info, frames, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if m.GetInfo() != nil {
			info = m.GetInfo()
		} else {
			frames = append(frames, m.GetLayer())
		}
	}
}

func keyRef(ns string, key []byte) *ragkvv1.ChunkRef {
	return &ragkvv1.ChunkRef{Namespace: ns, Ref: &ragkvv1.ChunkRef_Key{Key: key}}
}

// checkFetched fetches the chunk and compares every byte with what was pushed.
func checkFetched(t testing.TB, ctx context.Context, cl ragkvv1.ChunkCacheClient, key []byte, h *ragkvv1.ChunkPutHeader, frames []*ragkvv1.ChunkLayerFrame) *ragkvv1.ChunkInfo {
	t.Helper()
	info, got, err := fetch(ctx, cl, keyRef(h.Namespace, key))
	if err != nil {
		t.Fatalf("GetChunk: %v", err)
	}
	if len(got) != len(frames) {
		t.Fatalf("%d frames, want %d", len(got), len(frames))
	}
	for i, f := range frames {
		g := got[i]
		if g.Layer != f.Layer || !bytes.Equal(g.K, f.K) || !bytes.Equal(g.V, f.V) || !bytes.Equal(g.KScales, f.KScales) || !bytes.Equal(g.VScales, f.VScales) {
			t.Fatalf("layer %d differs from what was pushed", i)
		}
		if g.GetCrc32C() != frameCRC(f) {
			t.Fatalf("layer %d crc %08x, want %08x", i, g.GetCrc32C(), frameCRC(f))
		}
	}
	if !bytes.Equal(info.Key, key) || info.PositionBase != h.PositionBase || len(info.TokenIds) != len(h.TokenIds) ||
		!bytes.Equal(info.Metadata["cachecraft/summary"], h.Metadata["cachecraft/summary"]) ||
		info.Layout.Layers != h.Layout.Layers || info.Layout.Dtype != h.Layout.Dtype || info.Model.WeightsDigest != h.Model.WeightsDigest {
		t.Fatalf("info %v does not match header %v", info, h)
	}
	return info
}

var allDTypes = []ragkvv1.ChunkKVDType{
	ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F32, ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16,
	ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_BF16, ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_INT8,
}

func TestChunkCacheRoundTripEveryDType(t *testing.T) {
	e := startChunkServer(t, t.TempDir(), 1<<20, 1<<26)
	ctx := context.Background()
	for i, dt := range allDTypes {
		h, frames := rawChunk(uint64(i), "", dt, 4, 9)
		res, err := pushChunk(ctx, e.client, h, frames)
		if err != nil {
			t.Fatalf("%v: %v", dt, err)
		}
		if !res.Admitted || strings.Join(res.Tiers, ",") != "memory,disk" {
			t.Fatalf("%v: response %v", dt, res)
		}
		checkFetched(t, ctx, e.client, res.Key, h, frames)
		// By spec instead of key, and a subset of layers.
		spec := &ragkvv1.ChunkRef{Ref: &ragkvv1.ChunkRef_Spec{Spec: &ragkvv1.ChunkSpec{Model: ccModel, Dtype: dt, TokenIds: h.TokenIds}}}
		info, got, err := fetch(ctx, e.client, spec, 1, 3)
		if err != nil || !bytes.Equal(info.Key, res.Key) || len(got) != 2 || got[1].Layer != 3 || !bytes.Equal(got[1].V, frames[3].V) {
			t.Fatalf("%v: by spec: %v", dt, err)
		}
	}
	// The same bytes come back from disk after memory dropped them.
	if _, err := e.client.SetPolicy(ctx, &ragkvv1.SetChunkPolicyRequest{Tiers: []*ragkvv1.ChunkTierPolicyUpdate{{Tier: "memory", CapacityBytes: ptrU64(1)}}}); err != nil {
		t.Fatal(err)
	}
	for i, dt := range allDTypes {
		h, frames := rawChunk(uint64(i), "", dt, 4, 9)
		lr, err := e.client.Lookup(ctx, &ragkvv1.ChunkLookupRequest{Specs: []*ragkvv1.ChunkSpec{{Model: ccModel, Dtype: dt, TokenIds: h.TokenIds}}})
		if err != nil || !lr.Results[0].Present || lr.Results[0].Tier != "disk" {
			t.Fatalf("lookup %v: %v %v", dt, lr, err)
		}
		if info := checkFetched(t, ctx, e.client, lr.Results[0].Key, h, frames); info.Tier != "disk" {
			t.Fatalf("served from %s", info.Tier)
		}
	}
}

func ptrU64(v uint64) *uint64 { return &v }

func statsOf(t testing.TB, cl ragkvv1.ChunkCacheClient) *ragkvv1.ChunkCacheStatsResponse {
	t.Helper()
	st, err := cl.Stats(context.Background(), &ragkvv1.ChunkCacheStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestChunkCacheBadInput(t *testing.T) {
	// A 1 MiB message limit makes the oversized-message case cheap.
	e := startChunkServer(t, t.TempDir(), 4<<20, 64<<20, WithMaxRecvMsgBytes(1<<20))
	ctx := context.Background()
	f16 := ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16
	goodH, goodF := rawChunk(1, "", f16, 3, 8)
	res, err := pushChunk(ctx, e.client, goodH, goodF)
	if err != nil {
		t.Fatal(err)
	}
	before := statsOf(t, e.client)

	withHeader := func(mut func(h *ragkvv1.ChunkPutHeader)) func() error {
		return func() error {
			h, f := rawChunk(2, "", f16, 3, 8)
			mut(h)
			_, err := pushChunk(ctx, e.client, h, f)
			return err
		}
	}
	withFrames := func(mut func(f []*ragkvv1.ChunkLayerFrame) []*ragkvv1.ChunkLayerFrame) func() error {
		return func() error {
			h, f := rawChunk(3, "", f16, 3, 8)
			_, err := pushChunk(ctx, e.client, h, mut(f))
			return err
		}
	}
	bigH, _ := rawChunk(4, "", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F32, 1, 8)
	bigH.Layout.KvHeads, bigH.Layout.HeadDim = 64, 128 // 8 tokens × 64 × 128 × 4 B = 256 KiB per tensor
	bigF := &ragkvv1.ChunkLayerFrame{K: make([]byte, 8*64*128*4*4), V: make([]byte, 8*64*128*4)}

	cases := []struct {
		name string
		code codes.Code
		msg  string
		call func() error
	}{
		{"frames out of order", codes.InvalidArgument, "layer 1 out of order: expected layer 0", withFrames(func(f []*ragkvv1.ChunkLayerFrame) []*ragkvv1.ChunkLayerFrame {
			return []*ragkvv1.ChunkLayerFrame{f[1], f[0], f[2]}
		})},
		{"layout does not match frames", codes.InvalidArgument, "V is 511 bytes, layout wants 512", withFrames(func(f []*ragkvv1.ChunkLayerFrame) []*ragkvv1.ChunkLayerFrame {
			f[1].V = f[1].V[:511]
			return f
		})},
		{"more frames than layers", codes.InvalidArgument, "after the last layer", withFrames(func(f []*ragkvv1.ChunkLayerFrame) []*ragkvv1.ChunkLayerFrame {
			extra := proto.Clone(f[2]).(*ragkvv1.ChunkLayerFrame)
			extra.Layer = 3
			return append(f, extra)
		})},
		{"stream ends early", codes.InvalidArgument, "commit after 2 of 3 layers", withFrames(func(f []*ragkvv1.ChunkLayerFrame) []*ragkvv1.ChunkLayerFrame {
			return f[:2]
		})},
		{"bad frame crc", codes.InvalidArgument, "crc32c", withFrames(func(f []*ragkvv1.ChunkLayerFrame) []*ragkvv1.ChunkLayerFrame {
			c := frameCRC(f[0]) ^ 1
			f[0].Crc32C = &c
			return f
		})},
		{"frame before header", codes.InvalidArgument, "first message must be a header", func() error {
			_, f := rawChunk(5, "", f16, 3, 8)
			_, err := push(ctx, e.client, frameMsg(f[0]))
			return err
		}},
		{"oversized message", codes.ResourceExhausted, "larger than max", func() error {
			_, err := push(ctx, e.client, hdrMsg(bigH), frameMsg(bigF))
			return err
		}},
		{"chunk larger than the limit", codes.ResourceExhausted, "exceeds the", withHeader(func(h *ragkvv1.ChunkPutHeader) {
			h.Layout = &ragkvv1.ChunkKVLayout{Layers: 4096, KvHeads: 128, HeadDim: 256, Dtype: ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F32}
			h.TokenIds = make([]uint32, 4096)
		})},
		{"unknown dtype", codes.InvalidArgument, "unknown dtype 9", withHeader(func(h *ragkvv1.ChunkPutHeader) { h.Layout.Dtype = 9 })},
		{"unspecified dtype", codes.InvalidArgument, "dtype is unspecified", withHeader(func(h *ragkvv1.ChunkPutHeader) { h.Layout.Dtype = 0 })},
		{"empty token list", codes.InvalidArgument, "empty token list", withHeader(func(h *ragkvv1.ChunkPutHeader) { h.TokenIds = nil })},
		{"missing weights digest", codes.InvalidArgument, "weights digest is empty", withHeader(func(h *ragkvv1.ChunkPutHeader) {
			h.Model = &ragkvv1.ChunkModelFingerprint{Architecture: "llama"}
		})},
		{"scale mode on a float dtype", codes.InvalidArgument, "scale modes apply to int8 only", withHeader(func(h *ragkvv1.ChunkPutHeader) {
			h.Layout.KScale = ragkvv1.ChunkKVScaleMode_CHUNK_KV_SCALE_MODE_PER_TOKEN
		})},
		{"bad namespace name", codes.InvalidArgument, "namespace", withHeader(func(h *ragkvv1.ChunkPutHeader) { h.Namespace = "a b" })},
		{"unknown namespace", codes.NotFound, `unknown namespace "nobody"`, func() error {
			_, _, err := fetch(ctx, e.client, keyRef("nobody", res.Key))
			return err
		}},
		{"unknown key", codes.NotFound, "not found", func() error {
			_, _, err := fetch(ctx, e.client, keyRef("", make([]byte, 32)))
			return err
		}},
		{"short key", codes.InvalidArgument, "key is 3 bytes", func() error {
			_, err := e.client.DeleteChunk(ctx, &ragkvv1.DeleteChunkRequest{Chunk: keyRef("", []byte{1, 2, 3})})
			return err
		}},
		{"layer out of range", codes.InvalidArgument, "layer 7 out of range", func() error {
			_, _, err := fetch(ctx, e.client, keyRef("", res.Key), 7)
			return err
		}},
		{"unknown key in delete", codes.NotFound, "not found", func() error {
			_, err := e.client.DeleteChunk(ctx, &ragkvv1.DeleteChunkRequest{Chunk: keyRef("", make([]byte, 32))})
			return err
		}},
		{"unknown key in pin", codes.NotFound, "not found", func() error {
			_, err := e.client.Pin(ctx, &ragkvv1.PinChunkRequest{Chunk: keyRef("", make([]byte, 32))})
			return err
		}},
		{"unknown namespace in lookup", codes.NotFound, "unknown namespace", func() error {
			_, err := e.client.Lookup(ctx, &ragkvv1.ChunkLookupRequest{Namespace: "nobody", Keys: [][]byte{res.Key}})
			return err
		}},
		{"unknown policy", codes.InvalidArgument, "unknown policy", func() error {
			p := "mru"
			_, err := e.client.SetPolicy(ctx, &ragkvv1.SetChunkPolicyRequest{Tiers: []*ragkvv1.ChunkTierPolicyUpdate{{Tier: "memory", Policy: &p}}})
			return err
		}},
		{"unknown tier", codes.InvalidArgument, `unknown tier "gpu"`, func() error {
			_, err := e.client.SetPolicy(ctx, &ragkvv1.SetChunkPolicyRequest{Tiers: []*ragkvv1.ChunkTierPolicyUpdate{{Tier: "gpu", CapacityBytes: ptrU64(5)}}})
			return err
		}},
	}
	for _, c := range cases {
		err := c.call()
		st := status.Convert(err)
		if err == nil || st.Code() != c.code || !strings.Contains(st.Message(), c.msg) {
			t.Errorf("%s: got %v (%q), want %v containing %q", c.name, st.Code(), st.Message(), c.code, c.msg)
		}
	}
	after := statsOf(t, e.client)
	for i := range after.Tiers {
		if after.Tiers[i].Bytes != before.Tiers[i].Bytes || after.Tiers[i].Entries != before.Tiers[i].Entries {
			t.Errorf("tier %s changed: %v -> %v", after.Tiers[i].Name, before.Tiers[i], after.Tiers[i])
		}
	}
	if after.Chunks != 1 {
		t.Errorf("%d chunks stored, want 1", after.Chunks)
	}
	checkFetched(t, ctx, e.client, res.Key, goodH, goodF)
}

func TestChunkCacheLookupPinPolicyNamespaces(t *testing.T) {
	e := startChunkServer(t, t.TempDir(), 1<<20, 1<<24)
	ctx := context.Background()
	f32 := ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F32
	hA, fA := rawChunk(1, "tenant-a", f32, 2, 4)
	resA, err := pushChunk(ctx, e.client, hA, fA)
	if err != nil {
		t.Fatal(err)
	}
	hB, fB := rawChunk(1, "tenant-b", f32, 2, 4) // the same tokens in another namespace
	resB, err := pushChunk(ctx, e.client, hB, fB)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(resA.Key, resB.Key) {
		t.Fatal("namespaces share a key")
	}
	if _, _, err := fetch(ctx, e.client, keyRef("tenant-b", resA.Key)); status.Code(err) != codes.NotFound {
		t.Fatalf("tenant-b read tenant-a's chunk: %v", err)
	}
	lr, err := e.client.Lookup(ctx, &ragkvv1.ChunkLookupRequest{Namespace: "tenant-a", Keys: [][]byte{resA.Key, resB.Key},
		Specs: []*ragkvv1.ChunkSpec{{Model: ccModel, Dtype: f32, TokenIds: hA.TokenIds}}})
	if err != nil {
		t.Fatal(err)
	}
	if !lr.Results[0].Present || lr.Results[1].Present || !lr.Results[2].Present || !bytes.Equal(lr.Results[2].Key, resA.Key) ||
		strings.Join(lr.Results[0].Tiers, ",") != "memory,disk" {
		t.Fatalf("lookup %v", lr)
	}
	if _, err := e.client.Pin(ctx, &ragkvv1.PinChunkRequest{Chunk: keyRef("tenant-a", resA.Key), Pin: ragkvv1.ChunkPin_CHUNK_PIN_SOFT}); err != nil {
		t.Fatal(err)
	}
	lr, _ = e.client.Lookup(ctx, &ragkvv1.ChunkLookupRequest{Namespace: "tenant-a", Keys: [][]byte{resA.Key}})
	if lr.Results[0].Pin != ragkvv1.ChunkPin_CHUNK_PIN_SOFT {
		t.Fatalf("pin %v", lr.Results[0].Pin)
	}
	if _, err := e.client.Unpin(ctx, &ragkvv1.UnpinChunkRequest{Chunk: keyRef("tenant-a", resA.Key)}); err != nil {
		t.Fatal(err)
	}
	pol, err := e.client.SetPolicy(ctx, &ragkvv1.SetChunkPolicyRequest{Tiers: []*ragkvv1.ChunkTierPolicyUpdate{
		{Tier: "memory", Policy: ptrStr("gdsf"), Admission: ptrStr("tinylfu")},
		{Tier: "disk", Policy: ptrStr("s3fifo"), HighWatermark: ptrF64(0.9), LowWatermark: ptrF64(0.8)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if pol.Tiers[0].Policy != "gdsf" || pol.Tiers[0].Admission != "tinylfu" || pol.Tiers[1].Policy != "s3fifo" || pol.Tiers[1].LowWatermark != 0.8 {
		t.Fatalf("policy %v", pol)
	}
	got, err := e.client.GetPolicy(ctx, &ragkvv1.GetChunkPolicyRequest{})
	if err != nil || got.Tiers[1].HighWatermark != 0.9 || len(got.AvailablePolicies) < 4 {
		t.Fatalf("GetPolicy %v %v", got, err)
	}
	del, err := e.client.DeleteChunk(ctx, &ragkvv1.DeleteChunkRequest{Chunk: keyRef("tenant-a", resA.Key)})
	if err != nil || del.FreedBytes == 0 {
		t.Fatalf("delete %v %v", del, err)
	}
	st := statsOf(t, e.client)
	if st.Chunks != 1 || st.Tiers[0].Entries != 1 || st.Tiers[1].Entries != 1 || !st.Tiers[1].Persistent {
		t.Fatalf("stats %v", st)
	}
	checkFetched(t, ctx, e.client, resB.Key, hB, fB)
	hc, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: ChunkCacheServiceName})
	if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v %v", hc, err)
	}
}

func ptrStr(s string) *string   { return &s }
func ptrF64(f float64) *float64 { return &f }

func TestChunkCacheRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	e := startChunkServer(t, dir, 1<<20, 1<<26)
	ctx := context.Background()
	type pushed struct {
		h   *ragkvv1.ChunkPutHeader
		f   []*ragkvv1.ChunkLayerFrame
		key []byte
	}
	var all []pushed
	for i, dt := range allDTypes {
		h, f := rawChunk(uint64(10+i), "tenant", dt, 3, 6)
		res, err := pushChunk(ctx, e.client, h, f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, pushed{h, f, res.Key})
	}
	before := statsOf(t, e.client)
	e.stop()
	e2 := startChunkServer(t, dir, 1<<20, 1<<26)
	after := statsOf(t, e2.client)
	if after.Tiers[1].Bytes != before.Tiers[1].Bytes || after.Tiers[1].Entries != 4 || after.Chunks != 4 {
		t.Fatalf("disk accounting: before %v after %v", before.Tiers[1], after.Tiers[1])
	}
	for _, p := range all {
		checkFetched(t, ctx, e2.client, p.key, p.h, p.f)
	}
}

// TestChunkCacheConcurrentClients runs 32 clients, each on its own connection, mixing
// puts, gets and deletes against small tiers (so evictions and demotions happen all
// the time) for 10 s (2 s with -short). Every get must return the exact bytes of its
// chunk, the only tolerated error is NotFound for an evicted or deleted chunk, and no
// tier may ever account more bytes than its capacity.
func TestChunkCacheConcurrentClients(t *testing.T) {
	const clients = 32
	dur := 10 * time.Second
	if testing.Short() {
		dur = 2 * time.Second
	}
	// Chunks of 4 layers × 16 tokens × 2 heads × 16 dims × f16 ≈ 8 KiB; 64 distinct ones.
	e := startChunkServer(t, t.TempDir(), 96<<10, 320<<10)
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	type chunk struct {
		h *ragkvv1.ChunkPutHeader
		f []*ragkvv1.ChunkLayerFrame
	}
	chunks := make([]chunk, 64)
	for i := range chunks {
		chunks[i].h, chunks[i].f = rawChunk(uint64(i), "", allDTypes[i%4], 4, 16)
	}
	var puts, gets, hits, dels, notFound atomic.Int64
	errc := make(chan error, clients+1)
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			conn := dialChunk(t, e.addr)
			defer conn.Close()
			cl := ragkvv1.NewChunkCacheClient(conn)
			r := rand.New(rand.NewPCG(uint64(g), 99))
			for time.Now().Before(deadline) {
				c := chunks[r.IntN(len(chunks))]
				spec := &ragkvv1.ChunkRef{Ref: &ragkvv1.ChunkRef_Spec{Spec: &ragkvv1.ChunkSpec{Model: ccModel, Dtype: c.h.Layout.Dtype, TokenIds: c.h.TokenIds}}}
				switch op := r.IntN(10); {
				case op < 4:
					if _, err := pushChunk(ctx, cl, c.h, c.f); err != nil {
						errc <- fmt.Errorf("put: %w", err)
						return
					}
					puts.Add(1)
				case op < 9:
					gets.Add(1)
					_, got, err := fetch(ctx, cl, spec)
					if status.Code(err) == codes.NotFound {
						notFound.Add(1)
						continue
					}
					if err != nil {
						errc <- fmt.Errorf("get: %w", err)
						return
					}
					for i := range c.f {
						if !bytes.Equal(got[i].K, c.f[i].K) || !bytes.Equal(got[i].V, c.f[i].V) ||
							!bytes.Equal(got[i].KScales, c.f[i].KScales) || !bytes.Equal(got[i].VScales, c.f[i].VScales) {
							errc <- fmt.Errorf("get: layer %d differs", i)
							return
						}
					}
					hits.Add(1)
				default:
					_, err := cl.DeleteChunk(ctx, &ragkvv1.DeleteChunkRequest{Chunk: spec})
					if err != nil && status.Code(err) != codes.NotFound {
						errc <- fmt.Errorf("delete: %w", err)
						return
					}
					dels.Add(1)
				}
			}
		}(g)
	}
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() { // the budget watcher
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(10 * time.Millisecond):
			}
			st, err := e.client.Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{})
			if err != nil {
				errc <- err
				return
			}
			for _, ts := range st.Tiers {
				if ts.Bytes > ts.CapacityBytes {
					errc <- fmt.Errorf("tier %s over budget: %d > %d bytes", ts.Name, ts.Bytes, ts.CapacityBytes)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stopWatch)
	<-watchDone
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	st := statsOf(t, e.client)
	if e.mem.Bytes() != int64(st.Tiers[0].Bytes) || e.mem.Bytes() > int64(st.Tiers[0].CapacityBytes) {
		t.Fatalf("memory tier holds %d bytes, accounts %d, capacity %d", e.mem.Bytes(), st.Tiers[0].Bytes, st.Tiers[0].CapacityBytes)
	}
	if st.Tiers[0].Evictions == 0 || st.Tiers[1].Evictions == 0 || hits.Load() == 0 {
		t.Fatalf("the test did not exercise eviction or reads: %v, %d hits", st.Tiers, hits.Load())
	}
	t.Logf("%d puts, %d gets (%d hits, %d not found), %d deletes; evictions memory %d disk %d",
		puts.Load(), gets.Load(), hits.Load(), notFound.Load(), dels.Load(), st.Tiers[0].Evictions, st.Tiers[1].Evictions)
}

// TestChunkCacheKilledDuringPutStream runs the server in a child process (this test
// binary), pushes acknowledged chunks, opens a put stream that sends the header and
// half of the layers, kills the server with SIGKILL, restarts it on the same data
// directory and checks that every acknowledged chunk is intact and that the
// interrupted chunk left nothing behind.
func TestChunkCacheKilledDuringPutStream(t *testing.T) {
	if dir := os.Getenv("RAGKV_CHUNK_SERVER_DIR"); dir != "" {
		chunkServerChild(t, dir)
		return
	}
	dir := t.TempDir()
	ctx := context.Background()
	f16 := ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16
	type pushed struct {
		h   *ragkvv1.ChunkPutHeader
		f   []*ragkvv1.ChunkLayerFrame
		key []byte
	}
	var acked []pushed
	var partial []*ragkvv1.ChunkPutHeader
	for round := 0; round < 2; round++ {
		cmd, addr := startChildServer(t, dir)
		conn := dialChunk(t, addr)
		cl := ragkvv1.NewChunkCacheClient(conn)
		for i := 0; i < 3; i++ {
			h, f := rawChunk(uint64(round*100+i), "", f16, 8, 64)
			res, err := pushChunk(ctx, cl, h, f)
			if err != nil {
				t.Fatal(err)
			}
			acked = append(acked, pushed{h, f, res.Key})
		}
		h, f := rawChunk(uint64(round*100+50), "", f16, 8, 64)
		st, err := cl.PutChunk(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(hdrMsg(h)); err != nil {
			t.Fatal(err)
		}
		for _, fr := range f[:4] {
			if err := st.Send(frameMsg(fr)); err != nil {
				t.Fatal(err)
			}
		}
		// Make sure the server has the frames before it dies: a Stats round trip on
		// the same connection follows the stream's messages.
		if _, err := cl.Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{}); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if _, err := st.CloseAndRecv(); err == nil {
			t.Fatal("the interrupted put was acknowledged")
		}
		conn.Close()
		partial = append(partial, h)
	}
	cmd, addr := startChildServer(t, dir)
	defer func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() }()
	conn := dialChunk(t, addr)
	defer conn.Close()
	cl := ragkvv1.NewChunkCacheClient(conn)
	for _, p := range acked {
		checkFetched(t, ctx, cl, p.key, p.h, p.f)
	}
	for _, h := range partial {
		lr, err := cl.Lookup(ctx, &ragkvv1.ChunkLookupRequest{Specs: []*ragkvv1.ChunkSpec{{Model: ccModel, Dtype: f16, TokenIds: h.TokenIds}}})
		if err != nil || lr.Results[0].Present {
			t.Fatalf("interrupted chunk present after restart: %v %v", lr, err)
		}
	}
	if st := statsOf(t, cl); st.Chunks != uint64(len(acked)) || st.Tiers[1].Entries != uint64(len(acked)) {
		t.Fatalf("after restart: %v, want %d chunks", st, len(acked))
	}
}

func startChildServer(t *testing.T, dir string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChunkCacheKilledDuringPutStream$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RAGKV_CHUNK_SERVER_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	var said []string
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return cmd, addr
		}
		said = append(said, sc.Text())
	}
	_ = cmd.Process.Kill()
	werr := cmd.Wait()
	t.Fatalf("child server did not report its address (%v); it printed:\n%s", werr, strings.Join(said, "\n"))
	return nil, ""
}

func chunkServerChild(t *testing.T, dir string) {
	c, _ := newChunkCache(t, dir, 1<<20, 1<<28)
	srv, err := New(WithChunkCache(c), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("ADDR %s\n", lis.Addr())
	_ = srv.Serve(lis) // until killed
}

// A grouped-format chunk pushed over gRPC keeps its layout (group size, rotation) and
// bytes; GetChunk with as_dtype F16 serves the same values converted by the server.
func TestChunkGroupedFormatAndConversion(t *testing.T) {
	e := startChunkServer(t, t.TempDir(), 1<<20, 1<<24)
	ctx := context.Background()
	f, err := chunkcache.ParseFormat("q4r:group=8")
	if err != nil {
		t.Fatal(err)
	}
	const layers, tokens = 2, 11
	l := chunkcache.Layout{Layers: layers, KVHeads: 2, HeadDim: 16}.WithFormat(f)
	r := rand.New(rand.NewPCG(8, 8))
	toks := make([]uint32, tokens)
	for i := range toks {
		toks[i] = uint32(900 + i)
	}
	h := &ragkvv1.ChunkPutHeader{Model: ccModel, TokenIds: toks, Layout: LayoutToProto(l), KPreRope: true}
	var frames []*ragkvv1.ChunkLayerFrame
	var sections [][]byte
	for i := range layers {
		k, v := make([]float32, l.Elems(tokens)), make([]float32, l.Elems(tokens))
		for j := range k {
			k[j], v[j] = float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		s, err := l.AppendLayer(nil, tokens, k, v)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := l.Split(s, tokens)
		sections = append(sections, s)
		frames = append(frames, &ragkvv1.ChunkLayerFrame{Layer: uint32(i), K: p.K, V: p.V, KScales: p.KScales, VScales: p.VScales})
	}
	res, err := pushChunk(ctx, e.client, h, frames)
	if err != nil {
		t.Fatal(err)
	}
	info := checkFetched(t, ctx, e.client, res.Key, h, frames)
	if gl := info.GetLayout(); gl.GetDtype() != ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_Q4 || gl.GetGroup() != 8 || !gl.GetRotate() || !info.GetKPreRope() {
		t.Fatalf("stored layout %v (K pre-RoPE %v)", gl, info.GetKPreRope())
	}
	st0, err := e.client.Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// q4 with group 8, 32 channels, 11 tokens: per layer K and V codes 2×176 B, K
	// pairs 2 groups × 32 × 4 B, V pairs 11 × 4 × 4 B = 784 B; 2 layers = 142.5 B/token
	// plus the manifest's share; f16 would be 256.
	if ts := st0.GetTiers()[0]; ts.GetChunkTokens() != tokens || !(ts.GetBytesPerToken() > 142.5 && ts.GetBytesPerToken() < 256) {
		t.Fatalf("memory tier stats: %d tokens, %.1f bytes/token", ts.GetChunkTokens(), ts.GetBytesPerToken())
	}
	st, err := e.client.GetChunk(ctx, &ragkvv1.GetChunkRequest{Chunk: keyRef("", res.Key), AsDtype: ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16})
	if err != nil {
		t.Fatal(err)
	}
	f16 := chunkcache.Layout{Layers: layers, KVHeads: 2, HeadDim: 16, DType: chunkcache.F16}
	n := 0
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if in := m.GetInfo(); in != nil {
			if in.GetLayout().GetDtype() != ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16 || in.GetLayout().GetGroup() != 0 || !in.GetKPreRope() {
				t.Fatalf("converted layout %v", in.GetLayout())
			}
			continue
		}
		fr := m.GetLayer()
		sec := append(append([]byte(nil), fr.K...), fr.V...)
		if chunkcache.Checksum(sec) != fr.GetCrc32C() {
			t.Fatalf("layer %d: converted frame CRC mismatch", fr.Layer)
		}
		gk, gv := make([]float32, l.Elems(tokens)), make([]float32, l.Elems(tokens))
		if err := f16.DecodeLayer(sec, tokens, gk, gv); err != nil {
			t.Fatal(err)
		}
		wk, wv := make([]float32, l.Elems(tokens)), make([]float32, l.Elems(tokens))
		if err := l.DecodeLayer(sections[fr.Layer], tokens, wk, wv); err != nil {
			t.Fatal(err)
		}
		for j := range wk {
			if math.Abs(float64(gk[j]-wk[j])) > 1e-3*(1+math.Abs(float64(wk[j]))) || math.Abs(float64(gv[j]-wv[j])) > 1e-3*(1+math.Abs(float64(wv[j]))) {
				t.Fatalf("layer %d element %d: f16 %v/%v, q4 decode %v/%v", fr.Layer, j, gk[j], gv[j], wk[j], wv[j])
			}
		}
		n++
	}
	if n != layers {
		t.Fatalf("%d converted layers", n)
	}
	_, err = e.client.GetChunk(ctx, &ragkvv1.GetChunkRequest{Chunk: keyRef("", res.Key), AsDtype: ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_Q2})
	if err == nil {
		st, _ := e.client.GetChunk(ctx, &ragkvv1.GetChunkRequest{Chunk: keyRef("", res.Key), AsDtype: ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_Q2})
		_, err = st.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("as_dtype Q2: %v, want InvalidArgument", err)
	}
}
