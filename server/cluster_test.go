package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/redistest"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/store"
)

type replica struct {
	addr   string
	cache  *chunkcache.Cache
	client ragkvv1.ChunkCacheClient
}

// startReplicas serves n memory-tier caches (over a shared Redis tier at redisAddr
// unless empty), each told about the others as peers (plus extraPeers).
func startReplicas(t *testing.T, n int, redisAddr string, extraPeers ...string) []*replica {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	lis := make([]net.Listener, n)
	addrs := make([]string, n)
	for i := range lis {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lis[i], addrs[i] = l, l.Addr().String()
	}
	out := make([]*replica, n)
	for i := range out {
		tiers := []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}}}
		if redisAddr != "" {
			rt, err := store.OpenRedis(ctx, store.RedisOptions{Addrs: []string{redisAddr}, UsageInterval: -1, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			tiers = append(tiers, chunkcache.TierConfig{Tier: rt})
		}
		c, err := chunkcache.New(ctx, chunkcache.Options{Tiers: tiers, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		var peers []string
		for j, a := range addrs {
			if j != i {
				peers = append(peers, a)
			}
		}
		peers = append(peers, extraPeers...)
		srv, err := New(WithChunkCache(c), WithLogger(quiet), WithReplica(ReplicaOptions{ID: addrs[i], Peers: peers, PeerTimeout: time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- srv.Serve(lis[i]) }()
		conn := dialChunk(t, addrs[i])
		out[i] = &replica{addr: addrs[i], cache: c, client: ragkvv1.NewChunkCacheClient(conn)}
		t.Cleanup(func() {
			conn.Close()
			srv.Stop(context.Background())
			<-done
			c.Close()
		})
	}
	return out
}

// located renders a Locate answer as "replica:tier+tier,..." per chunk (replicas
// sorted), with the shared tiers after a "|".
func located(resp *ragkvv1.LocateResponse, names map[string]string) []string {
	var out []string
	for _, c := range resp.GetChunks() {
		var reps []string
		for _, r := range c.GetReplicas() {
			reps = append(reps, names[r.GetReplica()]+":"+strings.Join(r.GetTiers(), "+"))
		}
		sort.Strings(reps)
		out = append(out, strings.Join(reps, ",")+"|"+strings.Join(c.GetSharedTiers(), "+"))
	}
	return out
}

func TestLocateThreeReplicas(t *testing.T) {
	ctx := context.Background()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // a peer that is down
	rs := startReplicas(t, 3, "", deadAddr)
	names := map[string]string{rs[0].addr: "A", rs[1].addr: "B", rs[2].addr: "C"}
	hx, fx := rawChunk(1, "docs", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 8)
	hy, fy := rawChunk(2, "docs", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 16)
	hz, fz := rawChunk(3, "docs", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 4)
	var kx, ky, kz []byte
	for _, p := range []struct {
		r  *replica
		h  *ragkvv1.ChunkPutHeader
		fs []*ragkvv1.ChunkLayerFrame
		k  *[]byte
	}{{rs[0], hx, fx, &kx}, {rs[1], hx, fx, &kx}, {rs[1], hy, fy, &ky}, {rs[2], hz, fz, &kz}} {
		res, err := pushChunk(ctx, p.r.client, p.h, p.fs)
		if err != nil {
			t.Fatal(err)
		}
		*p.k = res.GetKey()
	}
	unknown := make([]byte, 32)
	req := &ragkvv1.LocateRequest{Namespace: "docs", Keys: [][]byte{kx, ky, kz, unknown},
		Specs: []*ragkvv1.ChunkSpec{{Model: ccModel, Dtype: ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, TokenIds: hy.GetTokenIds()}}}
	want := []string{"A:memory,B:memory|", "B:memory|", "C:memory|", "|", "B:memory|"}
	for i, r := range rs {
		resp, err := r.client.Locate(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if got := located(resp, names); !slices.Equal(got, want) {
			t.Fatalf("Locate via %s: %q, want %q", names[r.addr], got, want)
		}
		if resp.GetReplica() != r.addr || len(resp.GetUnreachable()) != 1 || !strings.HasPrefix(resp.GetUnreachable()[0], deadAddr) {
			t.Fatalf("replica %d: answered as %q, unreachable %q", i, resp.GetReplica(), resp.GetUnreachable())
		}
		c := resp.GetChunks()
		if c[0].GetTokens() != 8 || c[1].GetTokens() != 16 || c[2].GetTokens() != 4 || c[3].GetTokens() != 0 || c[4].GetTokens() != 16 {
			t.Fatalf("tokens %d %d %d %d %d", c[0].GetTokens(), c[1].GetTokens(), c[2].GetTokens(), c[3].GetTokens(), c[4].GetTokens())
		}
	}
	local := cloneLocate(req)
	local.LocalOnly = true
	resp, err := rs[2].client.Locate(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	if got := located(resp, names); !slices.Equal(got, []string{"|", "|", "C:memory|", "|", "|"}) || len(resp.GetUnreachable()) != 0 {
		t.Fatalf("local only: %q", got)
	}
	// A delete on B shows at once.
	if _, err := rs[1].client.DeleteChunk(ctx, &ragkvv1.DeleteChunkRequest{Chunk: &ragkvv1.ChunkRef{Namespace: "docs", Ref: &ragkvv1.ChunkRef_Key{Key: kx}}}); err != nil {
		t.Fatal(err)
	}
	resp, _ = rs[2].client.Locate(ctx, req)
	if got := located(resp, names); got[0] != "A:memory|" {
		t.Fatalf("after the delete: %q", got)
	}
	// Bad requests.
	for _, bad := range []*ragkvv1.LocateRequest{{}, {Keys: [][]byte{{1}}}, {Namespace: "a b", Keys: [][]byte{kx}}} {
		if _, err := rs[0].client.Locate(ctx, bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v", bad, err)
		}
	}
	if _, err := rs[0].client.Locate(ctx, &ragkvv1.LocateRequest{ChunkTexts: []string{"x"}}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("texts without inference: %v", err)
	}
}

// TestLocateSharedTier: with a shared Redis tier, a chunk put through one replica is
// in the shared tier for every replica, and local only where it was put or promoted.
func TestLocateSharedTier(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, redistest.Options{})
	rs := startReplicas(t, 3, srv.Addr())
	names := map[string]string{rs[0].addr: "A", rs[1].addr: "B", rs[2].addr: "C"}
	h, fs := rawChunk(7, "", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F32, 3, 8)
	res, err := pushChunk(ctx, rs[0].client, h, fs)
	if err != nil || !slices.Equal(res.GetTiers(), []string{"memory", "remote"}) {
		t.Fatalf("put: %v %v", res.GetTiers(), err)
	}
	if _, frames, err := fetch(ctx, rs[2].client, &ragkvv1.ChunkRef{Ref: &ragkvv1.ChunkRef_Key{Key: res.GetKey()}}); err != nil || len(frames) != 3 {
		t.Fatalf("get via C: %v", err)
	}
	resp, err := rs[1].client.Locate(ctx, &ragkvv1.LocateRequest{Keys: [][]byte{res.GetKey()}})
	if err != nil {
		t.Fatal(err)
	}
	if got := located(resp, names); !slices.Equal(got, []string{"A:memory,C:memory|remote"}) || resp.GetChunks()[0].GetTokens() != 8 {
		t.Fatalf("located %q", got)
	}
	st, err := rs[2].client.Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{})
	if err != nil || len(st.GetTiers()) != 2 || st.GetTiers()[1].GetName() != "remote" || !st.GetTiers()[1].GetShared() || st.GetTiers()[1].GetHits() != 1 {
		t.Fatalf("stats %v %v", st, err)
	}
}

func cloneLocate(r *ragkvv1.LocateRequest) *ragkvv1.LocateRequest {
	return &ragkvv1.LocateRequest{Namespace: r.Namespace, Keys: r.Keys, Specs: r.Specs, System: r.System, ChunkTexts: r.ChunkTexts}
}

type watchClient struct {
	t      *testing.T
	cancel context.CancelFunc
	st     ragkvv1.ChunkCache_WatchChunksClient
}

func watch(t *testing.T, cl ragkvv1.ChunkCacheClient, req *ragkvv1.WatchChunksRequest) *watchClient {
	ctx, cancel := context.WithCancel(context.Background())
	st, err := cl.WatchChunks(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	w := &watchClient{t: t, cancel: cancel, st: st}
	t.Cleanup(cancel)
	return w
}

func (w *watchClient) next() *ragkvv1.ChunkEvent {
	w.t.Helper()
	ev, err := w.st.Recv()
	if err != nil {
		w.t.Fatalf("watch: %v", err)
	}
	return ev
}

// untilSynced reads RESET, the snapshot and SNAPSHOT_DONE, returning the snapshot's
// keys and the done event.
func (w *watchClient) untilSynced() ([]string, *ragkvv1.ChunkEvent) {
	w.t.Helper()
	if ev := w.next(); ev.GetType() != ragkvv1.ChunkEventType_CHUNK_EVENT_RESET {
		w.t.Fatalf("first event %v, want RESET", ev)
	}
	var snap []string
	for {
		ev := w.next()
		switch {
		case ev.GetType() == ragkvv1.ChunkEventType_CHUNK_EVENT_SNAPSHOT_DONE:
			sort.Strings(snap)
			return snap, ev
		case ev.GetSnapshot() && ev.GetType() == ragkvv1.ChunkEventType_CHUNK_EVENT_STORED:
			snap = append(snap, string(ev.GetKey()[:4])+"@"+ev.GetTier())
		default:
			w.t.Fatalf("unexpected event in the snapshot: %v", ev)
		}
	}
}

// TestWatchChunksOrderResumeRestart: events arrive in sequence order; a watcher that
// disconnects resumes with exactly the events it missed; after a server restart (new
// epoch) the old resume point gets RESET and a snapshot of what the disk tier kept.
func TestWatchChunksOrderResumeRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := startChunkServer(t, dir, 64<<20, 1<<30, WithReplica(ReplicaOptions{ID: "r1"}))
	h0, f0 := rawChunk(10, "", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 8)
	r0, err := pushChunk(ctx, e.client, h0, f0)
	if err != nil {
		t.Fatal(err)
	}
	k0 := string(r0.GetKey()[:4])
	w := watch(t, e.client, &ragkvv1.WatchChunksRequest{})
	snap, done := w.untilSynced()
	if !slices.Equal(snap, []string{k0 + "@disk", k0 + "@memory"}) || done.GetEpoch() == 0 {
		t.Fatalf("snapshot %q, done %v", snap, done)
	}
	epoch, last := done.GetEpoch(), done.GetSeq()
	put := func(seed uint64, ns string) []byte {
		h, f := rawChunk(seed, ns, ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 8)
		r, err := pushChunk(ctx, e.client, h, f)
		if err != nil {
			t.Fatal(err)
		}
		return r.GetKey()
	}
	k1 := put(11, "")
	for _, tier := range []string{"memory", "disk"} {
		ev := w.next()
		if ev.GetSeq() != last+1 || ev.GetEpoch() != epoch || ev.GetType() != ragkvv1.ChunkEventType_CHUNK_EVENT_STORED ||
			ev.GetTier() != tier || string(ev.GetKey()) != string(k1) || ev.GetReplica() != "r1" || ev.GetTokens() != 8 || ev.GetKind() != "chunk" {
			t.Fatalf("event %v (after seq %d), want stored in %s", ev, last, tier)
		}
		last = ev.GetSeq()
	}
	w.cancel()

	// Missed while disconnected: a put in namespace b and a delete.
	kb := put(12, "b")
	if _, err := e.client.DeleteChunk(ctx, &ragkvv1.DeleteChunkRequest{Chunk: &ragkvv1.ChunkRef{Ref: &ragkvv1.ChunkRef_Key{Key: k1}}}); err != nil {
		t.Fatal(err)
	}
	w = watch(t, e.client, &ragkvv1.WatchChunksRequest{Epoch: epoch, AfterSeq: last})
	wantTypes := []string{"STORED@memory", "STORED@disk", "DELETED@memory", "DELETED@disk"}
	wantKeys := [][]byte{kb, kb, k1, k1}
	for i := range wantTypes {
		ev := w.next()
		got := strings.TrimPrefix(ev.GetType().String(), "CHUNK_EVENT_") + "@" + ev.GetTier()
		if ev.GetSeq() != last+1 || got != wantTypes[i] || string(ev.GetKey()) != string(wantKeys[i]) {
			t.Fatalf("resumed event %d: %s seq %d (want %s seq %d)", i, got, ev.GetSeq(), wantTypes[i], last+1)
		}
		last = ev.GetSeq()
	}
	w.cancel()
	// A namespace filter.
	wb := watch(t, e.client, &ragkvv1.WatchChunksRequest{Namespace: "b"})
	if snap, _ := wb.untilSynced(); !slices.Equal(snap, []string{string(kb[:4]) + "@disk", string(kb[:4]) + "@memory"}) {
		t.Fatalf("namespace b snapshot %q", snap)
	}
	put(13, "")
	kb2 := put(14, "b")
	if ev := wb.next(); string(ev.GetKey()) != string(kb2) {
		t.Fatalf("filtered watch got %v", ev)
	}
	wb.cancel()

	// Restart: same disk, new epoch; the memory tier is empty.
	e.stop()
	e = startChunkServer(t, dir, 64<<20, 1<<30, WithReplica(ReplicaOptions{ID: "r1"}))
	w = watch(t, e.client, &ragkvv1.WatchChunksRequest{Epoch: epoch, AfterSeq: last})
	snap, done = w.untilSynced()
	if done.GetEpoch() == epoch {
		t.Fatal("same epoch after a restart")
	}
	for _, s := range snap {
		if strings.HasSuffix(s, "@memory") {
			t.Fatalf("snapshot after restart has memory entries: %q", snap)
		}
	}
	if len(snap) != 4 { // k0, kb, the put of seed 13, kb2 on disk
		t.Fatalf("snapshot after restart: %q", snap)
	}
	k5 := put(15, "")
	if ev := w.next(); ev.GetSeq() != done.GetSeq()+1 || string(ev.GetKey()) != string(k5) {
		t.Fatalf("first live event after restart: %v", ev)
	}
	w.cancel()
	_, err = w.st.Recv()
	for err == nil {
		_, err = w.st.Recv()
	}
	if status.Code(err) != codes.Canceled && !errors.Is(err, io.EOF) {
		t.Fatalf("after cancel: %v", err)
	}
}
