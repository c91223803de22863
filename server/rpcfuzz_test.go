package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
	"github.com/ragkv/ragkv/server/auth"
)

// fuzzRPC is one RPC of the fuzz target: its method, a new request message, and
// whether the client streams (several request messages) or the server does.
type fuzzRPC struct {
	method         string
	req            func() proto.Message
	client, server bool
}

var fuzzRPCs = []fuzzRPC{
	{"/ragkv.v1.ChunkCache/PutChunk", func() proto.Message { return &ragkvv1.PutChunkRequest{} }, true, false},
	{"/ragkv.v1.ChunkCache/GetChunk", func() proto.Message { return &ragkvv1.GetChunkRequest{} }, false, true},
	{"/ragkv.v1.ChunkCache/Lookup", func() proto.Message { return &ragkvv1.ChunkLookupRequest{} }, false, false},
	{"/ragkv.v1.ChunkCache/DeleteChunk", func() proto.Message { return &ragkvv1.DeleteChunkRequest{} }, false, false},
	{"/ragkv.v1.ChunkCache/Pin", func() proto.Message { return &ragkvv1.PinChunkRequest{} }, false, false},
	{"/ragkv.v1.ChunkCache/Unpin", func() proto.Message { return &ragkvv1.UnpinChunkRequest{} }, false, false},
	{"/ragkv.v1.ChunkCache/Stats", func() proto.Message { return &ragkvv1.ChunkCacheStatsRequest{} }, false, false},
	{"/ragkv.v1.ChunkCache/GetPolicy", func() proto.Message { return &ragkvv1.GetChunkPolicyRequest{} }, false, false},
	{"/ragkv.v1.ChunkCache/SetPolicy", func() proto.Message { return &ragkvv1.SetChunkPolicyRequest{} }, false, false},
	{"/ragkv.v1.ChunkCache/Locate", func() proto.Message { return &ragkvv1.LocateRequest{} }, false, false},
	{"/ragkv.v1.Retrieval/Ingest", func() proto.Message { return &ragkvv1.IngestRequest{} }, true, false},
	{"/ragkv.v1.Retrieval/Retrieve", func() proto.Message { return &ragkvv1.RetrieveRequest{} }, false, false},
	{"/ragkv.v1.Retrieval/RegisterTools", func() proto.Message { return &ragkvv1.RegisterToolsRequest{} }, false, false},
	{"/ragkv.v1.Retrieval/RetrieveTools", func() proto.Message { return &ragkvv1.RetrieveToolsRequest{} }, false, false},
	{"/ragkv.v1.Retrieval/FitFusion", func() proto.Message { return &ragkvv1.FitFusionRequest{} }, false, false},
	{"/ragkv.v1.Retrieval/DescribeCollection", func() proto.Message { return &ragkvv1.DescribeCollectionRequest{} }, false, false},
	{"/ragkv.v1.Retrieval/RebuildCollection", func() proto.Message { return &ragkvv1.RebuildCollectionRequest{} }, false, false},
	{"/ragkv.v1.ChunkCache/RotateSalt", func() proto.Message { return &ragkvv1.RotateSaltRequest{} }, false, false},
	{"/ragkv.v1.Inference/Prefill", func() proto.Message { return &ragkvv1.PrefillRequest{} }, false, false},
	{"/ragkv.v1.Inference/Generate", func() proto.Message { return &ragkvv1.GenerateRequest{} }, false, true},
	{"/ragkv.v1.Inference/PrecomputeChunks", func() proto.Message { return &ragkvv1.PrecomputeChunksRequest{} }, false, true},
	{"/ragkv.v1.Inference/PrecomputeCollection", func() proto.Message { return &ragkvv1.PrecomputeCollectionRequest{} }, false, true},
}

// fuzzModel writes the tiny-llama3 synth model (vocabulary 320, 3 layers) with a
// 256-token context, so every prompt is cheap and length limits are easy to reach.
func fuzzModel(tb testing.TB) *model.Model {
	path := filepath.Join(tb.TempDir(), "tiny-llama3.gguf")
	fh, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := model.SynthGGUF(context.Background(), fh, model.SynthOptions{Shape: "tiny-llama3", DType: kernels.F32, Seed: 1, Ctx: 256}); err != nil {
		tb.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		tb.Fatal(err)
	}
	m, err := model.Open(path, model.Options{Threads: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

// FuzzRPC decodes arbitrary bytes as the request of any chunk-cache, retrieval or
// inference RPC (inference on the tiny-llama3 synth model)
// (several messages for client streams) and sends them, as one of three identities or
// none, to an in-process server with auth and limits on. Every answer must be a
// precise status: never Internal or Unknown (a server bug or leaked internals), and
// the server must keep serving.
func FuzzRPC(f *testing.F) {
	h, frames := rawChunk(1, "a", ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_F16, 2, 3)
	hb, _ := proto.Marshal(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Header{Header: h}})
	fb, _ := proto.Marshal(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Layer{Layer: frames[0]}})
	lb, _ := proto.Marshal(&ragkvv1.ChunkLookupRequest{Namespace: "a", Keys: [][]byte{make([]byte, 32)}})
	ib, _ := proto.Marshal(&ragkvv1.IngestRequest{Collection: "c", Documents: testDocs(3)})
	rb, _ := proto.Marshal(&ragkvv1.RetrieveRequest{Collection: "c", Query: "ball", K: 2})
	cap1 := uint64(1)
	sb, _ := proto.Marshal(&ragkvv1.SetChunkPolicyRequest{Tiers: []*ragkvv1.ChunkTierPolicyUpdate{{Tier: "memory", CapacityBytes: &cap1}}})
	f.Add(uint8(0), uint8(1), hb, fb)
	f.Add(uint8(2), uint8(0), lb, []byte(nil))
	f.Add(uint8(10), uint8(1), ib, []byte(nil))
	f.Add(uint8(11), uint8(2), rb, []byte(nil))
	f.Add(uint8(8), uint8(2), sb, []byte(nil))
	f.Add(uint8(1), uint8(3), []byte{0x0a, 0x02, 0x0a, 0x00}, []byte(nil))
	base := uint8(len(fuzzRPCs) - 5) // RotateSalt, then the inference RPCs
	rsb, _ := proto.Marshal(&ragkvv1.RotateSaltRequest{Namespace: "a"})
	pre := &ragkvv1.PrefillRequest{Namespace: "a", System: "A story.", Query: "The",
		Chunks: []*ragkvv1.InferenceChunk{{Chunk: &ragkvv1.InferenceChunk_Text{Text: "Tom had a ball."}}}, KeepHandle: true}
	pb, _ := proto.Marshal(pre)
	gb, _ := proto.Marshal(&ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Prefill{Prefill: pre}, MaxTokens: 3})
	hgb, _ := proto.Marshal(&ragkvv1.GenerateRequest{Source: &ragkvv1.GenerateRequest_Handle{Handle: "00"}, MaxTokens: 3})
	pcb, _ := proto.Marshal(&ragkvv1.PrecomputeChunksRequest{Namespace: "a", Chunks: []*ragkvv1.PrecomputeChunk{{Id: "1", Text: "The dog ran."}}})
	pcc, _ := proto.Marshal(&ragkvv1.PrecomputeCollectionRequest{Collection: "c", Namespace: "a"})
	f.Add(base, uint8(3), rsb, []byte(nil))
	f.Add(base+1, uint8(1), pb, []byte(nil))
	f.Add(base+2, uint8(1), gb, []byte(nil))
	f.Add(base+2, uint8(1), hgb, []byte(nil))
	f.Add(base+3, uint8(2), pcb, []byte(nil))
	f.Add(base+4, uint8(2), pcc, []byte(nil))

	file := writeAuthFile(f, authYAML())
	st, err := auth.Load(file)
	if err != nil {
		f.Fatal(err)
	}
	c, _ := newChunkCache(f, f.TempDir(), 1<<20, 1<<22)
	f.Cleanup(func() { c.Close() })
	sif, err := embed.NewSIF(embedtest.WordVectors(f), embed.SIFOptions{})
	if err != nil {
		f.Fatal(err)
	}
	ret, err := retrieval.Open(context.Background(), retrieval.Options{Dir: f.TempDir(), Embedders: []embed.Embedder{sif}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ret.Close() })
	m := fuzzModel(f)
	bs, err := blend.NewStore(m, c, blend.StoreOptions{DType: chunkcache.F16})
	if err != nil {
		f.Fatal(err)
	}
	eng, err := blend.NewEngine(bs, blend.EngineOptions{MaxHandles: 8, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(WithChunkCache(c), WithRetrieval(ret), WithInference(eng), WithLogger(slog.New(slog.DiscardHandler)),
		WithAuth(st, AuthOptions{}), WithLimits(Limits{MaxStagedBytes: 8 << 20, MinCapacityBytes: 1 << 16}))
	if err != nil {
		f.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close(); srv.Stop(context.Background()) })
	tokens := []string{"", tokReader, tokWriter, tokAdmin}

	f.Fuzz(func(t *testing.T, which, who uint8, first, second []byte) {
		rpc := fuzzRPCs[int(which)%len(fuzzRPCs)]
		var msgs []proto.Message
		for _, b := range [][]byte{first, second} {
			if b == nil {
				continue
			}
			m := rpc.req()
			if proto.Unmarshal(b, m) != nil {
				return
			}
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 || (!rpc.client && len(msgs) > 1) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if tok := tokens[int(who)%len(tokens)]; tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		}
		var callErr error
		switch {
		case !rpc.client && !rpc.server:
			callErr = conn.Invoke(ctx, rpc.method, msgs[0], &emptypb.Empty{})
		default:
			desc := &grpc.StreamDesc{ClientStreams: rpc.client, ServerStreams: rpc.server}
			cs, err := conn.NewStream(ctx, desc, rpc.method)
			if err != nil {
				callErr = err
				break
			}
			for _, m := range msgs {
				if err := cs.SendMsg(m); err != nil {
					break
				}
			}
			_ = cs.CloseSend()
			for {
				if err := cs.RecvMsg(&emptypb.Empty{}); err != nil {
					if !errors.Is(err, io.EOF) {
						callErr = err
					}
					break
				}
			}
		}
		switch status.Code(callErr) {
		case codes.Internal, codes.Unknown, codes.DataLoss:
			t.Fatalf("%s as %q: %v", rpc.method, tokens[int(who)%len(tokens)], callErr)
		}
		hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer hcancel()
		if _, err := healthpb.NewHealthClient(conn).Check(hctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("server gone after %s: %v", rpc.method, err)
		}
	})
}
