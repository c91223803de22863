package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/redistest"
	"github.com/ragkv/ragkv/internal/shared"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
)

// replicaProc is a `ragkv serve` child process.
type replicaProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	addr  string
	resp  string
	conn  *grpc.ClientConn
	cache ragkvv1.ChunkCacheClient
	inf   ragkvv1.InferenceClient
	done  chan struct{}
}

// startReplica runs `ragkv serve args...` (this test binary as the CLI) and waits for
// the line announcing its gRPC address.
func startReplica(t *testing.T, args ...string) *replicaProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", "", "--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &replicaProc{t: t, cmd: cmd, done: make(chan struct{})}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { _ = cmd.Wait(); close(p.done) }()
	timeout := time.After(60 * time.Second)
	for p.addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("ragkv serve %v exited before serving", args)
			}
			if a, ok := strings.CutPrefix(l, "ragkv serving grpc="); ok {
				p.addr = a
			}
			if a, ok := strings.CutPrefix(l, "ragkv serving resp="); ok {
				p.resp = a
			}
		case <-timeout:
			_ = cmd.Process.Kill()
			t.Fatalf("ragkv serve %v did not start", args)
		}
	}
	go func() {
		for range lines {
		}
	}()
	p.conn, err = dialServer(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.cache, p.inf = ragkvv1.NewChunkCacheClient(p.conn), ragkvv1.NewInferenceClient(p.conn)
	t.Cleanup(func() { p.stop(syscall.SIGTERM) })
	return p
}

func (p *replicaProc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.conn.Close()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *replicaProc) prefill(ctx context.Context, chunks ...string) *ragkvv1.PrefillResponse {
	p.t.Helper()
	req := &ragkvv1.PrefillRequest{Query: "Where is the ball?", Method: "cacheblend", ReturnLogits: true}
	for _, c := range chunks {
		req.Chunks = append(req.Chunks, &ragkvv1.InferenceChunk{Chunk: &ragkvv1.InferenceChunk_Text{Text: c}})
	}
	resp, err := p.inf.Prefill(ctx, req)
	if err != nil {
		p.t.Fatalf("prefill via %s: %v", p.addr, err)
	}
	return resp
}

func sources(r *ragkvv1.PrefillResponse) []string {
	var out []string
	for _, s := range r.GetBreakdown().GetSegments() {
		out = append(out, s.GetSource())
	}
	return out
}

func tierStat(t *testing.T, p *replicaProc, name string) *ragkvv1.ChunkTierStats {
	t.Helper()
	st, err := p.cache.Stats(context.Background(), &ragkvv1.ChunkCacheStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range st.GetTiers() {
		if ts.GetName() == name {
			return ts
		}
	}
	t.Fatalf("no tier %s in %v", name, st)
	return nil
}

// TestTwoReplicasShareThroughRedis: two `ragkv serve` processes over one redis-server.
// Chunks precomputed through A are fused by B from the remote tier with A's first token
// and logits; a put cut off by SIGKILL never shows in B; with Redis restarted empty
// both keep serving.
func TestTwoReplicasShareThroughRedis(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	rs := redistest.Start(t, redistest.Options{})
	modelArgs := []string{"--model", filepath.Join(dir, "stories260K.bin"), "--tokenizer", filepath.Join(dir, "tok512.bin"),
		"--inference-threads", "1", "--sync-writes=false", "--remote", rs.URL()}
	dataA, dataB := t.TempDir(), t.TempDir()
	// Replicas sharing a remote tier share the salt secret (else their keys differ).
	saltFile := filepath.Join(t.TempDir(), "salt.secret")
	modelArgs = append(modelArgs, "--salt-secret-file", saltFile)
	a := startReplica(t, append([]string{"--data-dir", dataA, "--replica-id", "A"}, modelArgs...)...)
	b := startReplica(t, append([]string{"--data-dir", dataB, "--replica-id", "B", "--resp-listen", "127.0.0.1:0"}, modelArgs...)...)
	if b.resp == "" {
		t.Fatal("B did not announce its RESP address")
	}
	ctx := context.Background()
	texts := []string{"Tom had a big red ball.", "He played with it in the park every day.", "One day the ball rolled away."}
	pst, err := a.inf.PrecomputeChunks(ctx, &ragkvv1.PrecomputeChunksRequest{Chunks: []*ragkvv1.PrecomputeChunk{
		{Id: "0", Text: texts[0]}, {Id: "1", Text: texts[1]}, {Id: "2", Text: texts[2]}}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		ev, err := pst.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.GetStatus() != "computed" {
			t.Fatalf("precompute %v", ev)
		}
	}
	ra := a.prefill(ctx, texts...)
	if got := strings.Join(sources(ra), ","); got != "memory,memory,memory,memory" {
		t.Fatalf("A's sources %s", got)
	}
	rb := b.prefill(ctx, texts...)
	if got := strings.Join(sources(rb), ","); got != "remote,remote,remote,remote" {
		t.Fatalf("B's sources %s (want every segment from the remote tier)", got)
	}
	if rb.GetFirstToken() != ra.GetFirstToken() || len(rb.GetLogits()) != len(ra.GetLogits()) || len(ra.GetLogits()) == 0 {
		t.Fatalf("first token %d vs %d, %d vs %d logits", rb.GetFirstToken(), ra.GetFirstToken(), len(rb.GetLogits()), len(ra.GetLogits()))
	}
	maxDiff := 0.0
	for i := range ra.GetLogits() {
		maxDiff = math.Max(maxDiff, math.Abs(float64(ra.GetLogits()[i]-rb.GetLogits()[i])))
	}
	if maxDiff > 1e-6 {
		t.Fatalf("B's logits differ from A's by %g", maxDiff)
	}
	for i, s := range ra.GetBreakdown().GetSegments() {
		if string(s.GetKey()) != string(rb.GetBreakdown().GetSegments()[i].GetKey()) {
			t.Fatalf("segment %d: the replicas computed different keys", i)
		}
	}
	if st := tierStat(t, b, "remote"); st.GetHits() != 4 || !st.GetShared() {
		t.Fatalf("B's remote tier %v", st)
	}
	// Promoted: B's next prefill reads its own RAM.
	if got := strings.Join(sources(b.prefill(ctx, texts...)), ","); got != "memory,memory,memory,memory" {
		t.Fatalf("B's second prefill: %s", got)
	}

	// SIGKILL A in the middle of a put: B never sees a partial chunk.
	killMidPut(t, a, b, rs, saltFile)

	// Redis restarted empty: B keeps serving (its RAM copies, and misses computed).
	rs.Restart()
	if got := strings.Join(sources(b.prefill(ctx, texts...)), ","); got != "memory,memory,memory,memory" {
		t.Fatalf("B after the Redis restart: %s", got)
	}
	fresh := "A cat sat on the warm mat."
	if got := strings.Join(sources(b.prefill(ctx, fresh)), ","); got != "memory,computed" {
		t.Fatalf("B, a new chunk after the Redis restart: %s", got)
	}
	// A restarted over its disk: serves from disk; a chunk only the lost Redis had is a
	// miss, computed, not an error.
	a = startReplica(t, append([]string{"--data-dir", dataA, "--replica-id", "A"}, modelArgs...)...)
	if got := strings.Join(sources(a.prefill(ctx, texts...)), ","); got != "disk,disk,disk,disk" {
		t.Fatalf("A after its restart: %s", got)
	}
	if got := strings.Join(sources(a.prefill(ctx, fresh)), ","); got != "memory,remote" { // the prefix was promoted
		t.Fatalf("A, B's new chunk: %s (B wrote it to the new Redis)", got)
	}
	other := "The sun was hot and the sky was blue."
	if got := strings.Join(sources(a.prefill(ctx, other)), ","); got != "memory,computed" {
		t.Fatalf("A, a chunk nobody has: %s", got)
	}
	// Redis down: both still serve.
	rs.Kill()
	if got := strings.Join(sources(b.prefill(ctx, other)), ","); got != "memory,computed" {
		t.Fatalf("B with Redis down: %s", got)
	}
	if st := tierStat(t, b, "remote"); st.GetErrors() == 0 {
		t.Fatalf("B counted no remote errors with Redis down: %v", st)
	}
}

// killMidPut streams a large chunk into A and kills A with SIGKILL once some of its
// parts are in Redis but before its record is: B must not see the chunk, and the
// stray parts must expire.
func killMidPut(t *testing.T, a, b *replicaProc, rs *redistest.Server, saltFile string) {
	t.Helper()
	ctx := context.Background()
	const layers, tokens = 32, 4096 // 32 layers × 2 MiB (f32, 2 KV heads × 32)
	for attempt := 0; attempt < 5; attempt++ {
		seed := uint64(attempt + 1)
		h, frames := bigChunk(seed, layers, tokens)
		id := chunkcache.ChunkID{Namespace: "", Model: chunkcache.Fingerprint{Architecture: h.Model.Architecture, WeightsDigest: h.Model.WeightsDigest},
			DType: chunkcache.F32, Tokens: h.TokenIds}
		keyer, err := chunkcache.OpenKeyer(saltFile)
		if err != nil {
			t.Fatal(err)
		}
		key, err := keyer.ChunkKey(&id)
		if err != nil {
			t.Fatal(err)
		}
		record := "ragkv:{" + key.String() + "}"
		putErr := make(chan error, 1)
		go func() {
			st, err := a.cache.PutChunk(ctx)
			if err == nil {
				err = st.Send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Header{Header: h}})
			}
			for _, f := range frames {
				if err != nil {
					break
				}
				err = st.Send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Layer{Layer: f}})
			}
			if err == nil {
				_, err = st.CloseAndRecv()
			}
			putErr <- err
		}()
		killed := false
		deadline := time.Now().Add(30 * time.Second)
		for !killed && time.Now().Before(deadline) {
			parts, _ := redistest.Do(rs.Addr(), "EVAL", "return #redis.call('KEYS', ARGV[1])", "0", record+":*")
			if parts != "" && parts != "0" {
				if rec, _ := redistest.Do(rs.Addr(), "EXISTS", record); rec == "0" {
					_ = a.cmd.Process.Signal(syscall.SIGKILL)
					killed = true
					break
				}
			}
			select {
			case err := <-putErr:
				if err != nil {
					t.Fatalf("put: %v", err)
				}
				deadline = time.Time{} // committed before we caught it: next attempt
			default:
			}
			time.Sleep(200 * time.Microsecond)
		}
		if !killed {
			continue
		}
		<-a.done
		<-putErr
		// A streaming call's error arrives on its first Recv.
		st, _ := b.cache.GetChunk(ctx, &ragkvv1.GetChunkRequest{Chunk: &ragkvv1.ChunkRef{Ref: &ragkvv1.ChunkRef_Key{Key: key[:]}}})
		if _, err := st.Recv(); status.Code(err) != codes.NotFound {
			t.Fatalf("B's GetChunk of the killed put: %v (want NotFound)", err)
		}
		lr, err := b.cache.Lookup(ctx, &ragkvv1.ChunkLookupRequest{Keys: [][]byte{key[:]}})
		if err != nil || lr.GetResults()[0].GetPresent() {
			t.Fatalf("B's lookup of the killed put: %v %v", lr, err)
		}
		if rec, _ := redistest.Do(rs.Addr(), "EXISTS", record); rec != "0" {
			t.Fatal("the killed put's record is in Redis")
		}
		ttl, _ := redistest.Do(rs.Addr(), "EVAL", "local k = redis.call('KEYS', ARGV[1]); local m = -2; for _, n in ipairs(k) do local x = redis.call('PTTL', n); if x == -1 then return -1 end; m = x end; return m", "0", record+":*")
		if ttl == "-1" {
			t.Fatal("a stray part of the killed put never expires")
		}
		t.Logf("killed A mid-put on attempt %d; its stray segments expire (pttl %s ms)", attempt, ttl)
		return
	}
	t.Error("could not kill A between its first segment and its commit in 5 attempts")
}

func bigChunk(seed uint64, layers, tokens int) (*ragkvv1.ChunkPutHeader, []*ragkvv1.ChunkLayerFrame) {
	r := rand.New(rand.NewPCG(seed, 9))
	const heads, dim = 2, 32
	toks := make([]uint32, tokens)
	for i := range toks {
		toks[i] = uint32(r.IntN(500))
	}
	h := &ragkvv1.ChunkPutHeader{Model: &ragkvv1.ChunkModelFingerprint{Architecture: "llama", WeightsDigest: fmt.Sprintf("sha256:kill-%d", seed)},
		TokenIds: toks, Layout: &ragkvv1.ChunkKVLayout{Layers: uint32(layers), KvHeads: heads, HeadDim: dim, Dtype: ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F32}}
	n := tokens * heads * dim * 4
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(r.Uint32() & 0x3f) // small exponents: finite floats
	}
	var frames []*ragkvv1.ChunkLayerFrame
	for l := 0; l < layers; l++ {
		frames = append(frames, &ragkvv1.ChunkLayerFrame{Layer: uint32(l), K: buf, V: buf})
	}
	return h, frames
}
