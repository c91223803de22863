package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
)

func retrievalClient(t *testing.T) ragkvv1.RetrievalClient {
	t.Helper()
	sif, err := embed.NewSIF(embedtest.WordVectors(t), embed.SIFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := retrieval.Open(context.Background(), retrieval.Options{Dir: t.TempDir(), Embedders: []embed.Embedder{sif}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(WithRetrieval(st), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Stop(ctx)
		_ = st.Close()
	})
	return ragkvv1.NewRetrievalClient(conn)
}

func testDocs(n int) []*ragkvv1.RetrievalDocument {
	topics := []string{"animals", "vehicles", "food", "science"}
	var out []*ragkvv1.RetrievalDocument
	for i := 0; i < n; i++ {
		ws := embedtest.Topics[topics[i%4]]
		var b strings.Builder
		x := uint32(i*2654435761 + 1)
		for j := 0; j < 30+i%7*5; j++ {
			x = x*1664525 + 1013904223
			b.WriteString(ws[(x>>16)%uint32(len(ws))])
			b.WriteString(" the ")
			if x%3 == 0 {
				fmt.Fprintf(&b, "w%d ", x%50)
			}
		}
		out = append(out, &ragkvv1.RetrievalDocument{Id: fmt.Sprintf("doc%02d", i), Title: topics[i%4], Text: b.String()})
	}
	return out
}

func ingestStream(t *testing.T, c ragkvv1.RetrievalClient, msgs ...*ragkvv1.IngestRequest) (*ragkvv1.IngestResponse, error) {
	t.Helper()
	stream, err := c.Ingest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			break // the server ended the stream; CloseAndRecv has its status
		}
	}
	return stream.CloseAndRecv()
}

func wantCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || !strings.Contains(st.Message(), substr) {
		t.Fatalf("got %v (%q), want %v containing %q", st.Code(), st.Message(), code, substr)
	}
}

func TestRetrievalOverGRPC(t *testing.T) {
	ctx := context.Background()
	c := retrievalClient(t)
	docs := testDocs(40)
	res, err := ingestStream(t, c,
		&ragkvv1.IngestRequest{Collection: "kb", Shards: 2, Options: &ragkvv1.RetrievalCollectionOptions{ChunkWords: 20, ChunkOverlap: 4}, Documents: docs[:25]},
		&ragkvv1.IngestRequest{Documents: docs[25:]})
	if err != nil {
		t.Fatal(err)
	}
	if !res.GetCreated() || res.GetDocs() != 40 || res.GetShards() != 2 || res.GetGeneration() != 1 || res.GetPassages() < 80 {
		t.Fatalf("ingest: %v", res)
	}
	for _, mode := range []ragkvv1.RetrievalMode{ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25, ragkvv1.RetrievalMode_RETRIEVAL_MODE_DENSE, ragkvv1.RetrievalMode_RETRIEVAL_MODE_UNSPECIFIED} {
		r, err := c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: "engine fuel for the truck", K: 5, Mode: mode})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.GetPassages()) != 5 || len(r.GetChunkIds()) != 5 || r.GetShards() != 2 {
			t.Fatalf("%v: %v", mode, r)
		}
		if mode == ragkvv1.RetrievalMode_RETRIEVAL_MODE_UNSPECIFIED && r.GetMode() != ragkvv1.RetrievalMode_RETRIEVAL_MODE_HYBRID {
			t.Fatalf("default mode %v, want hybrid", r.GetMode())
		}
		for i, p := range r.GetPassages() {
			h := sha256.Sum256([]byte(p.GetText()))
			if p.GetChunkId() != hex.EncodeToString(h[:]) || r.GetChunkIds()[i] != p.GetChunkId() {
				t.Fatalf("passage %s: chunk id %s is not the SHA-256 of its text", p.GetPassageId(), p.GetChunkId())
			}
			if p.GetTitle() != "vehicles" {
				t.Errorf("%v: passage %s about %q ranks %d for a vehicle query", mode, p.GetPassageId(), p.GetTitle(), i)
			}
		}
	}

	// Bad requests get precise statuses.
	_, err = c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "nope", Query: "x", K: 1})
	wantCode(t, err, codes.NotFound, `collection not found: "nope"`)
	_, err = c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: " ", K: 1})
	wantCode(t, err, codes.InvalidArgument, "empty query")
	_, err = c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: "x", K: 0})
	wantCode(t, err, codes.InvalidArgument, "k = 0")
	_, err = c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: "x", K: 1 << 30})
	wantCode(t, err, codes.InvalidArgument, "must be in [1, 1000]")
	_, err = c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: "x", K: 1, QueryVector: []float32{1, 2, 3}})
	wantCode(t, err, codes.InvalidArgument, "query vector has 3 values, collection \"kb\" has dimension 16")
	_, err = c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: "x", K: 1, Mode: 99})
	wantCode(t, err, codes.InvalidArgument, "unknown mode")

	// Ingest errors change nothing.
	_, err = ingestStream(t, c)
	wantCode(t, err, codes.InvalidArgument, "first message must name the collection")
	extra := testDocs(44)[40:]
	_, err = ingestStream(t, c, &ragkvv1.IngestRequest{Collection: "kb", Documents: extra[:2]}, &ragkvv1.IngestRequest{Collection: "other", Documents: extra[2:]})
	wantCode(t, err, codes.InvalidArgument, `message 1 names collection "other"`)
	_, err = ingestStream(t, c, &ragkvv1.IngestRequest{Collection: "kb", Documents: extra[:2]}, &ragkvv1.IngestRequest{Documents: []*ragkvv1.RetrievalDocument{{Id: "", Text: "x"}}})
	wantCode(t, err, codes.InvalidArgument, "ingest message 1")
	_, err = ingestStream(t, c, &ragkvv1.IngestRequest{Collection: "kb", Documents: []*ragkvv1.RetrievalDocument{{Id: "v", Text: "x", Vector: []float32{1}}}})
	wantCode(t, err, codes.InvalidArgument, "carries a vector")
	// A client that goes away mid-stream commits nothing.
	cctx, cancel := context.WithCancel(ctx)
	stream, err := c.Ingest(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&ragkvv1.IngestRequest{Collection: "kb", Documents: extra}); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, _ = stream.CloseAndRecv()
	time.Sleep(50 * time.Millisecond)
	info, err := c.DescribeCollection(ctx, &ragkvv1.DescribeCollectionRequest{Collection: "kb"})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetGeneration() != 1 || info.GetDocs() != 40 || info.GetShards() != 2 || info.GetDim() != embedtest.Dim || info.GetPcaDims() != 0 {
		t.Fatalf("collection changed by failed ingests: %v", info)
	}

	// Fusion weights fitted through the API are kept and used.
	fit := &ragkvv1.FitFusionRequest{Collection: "kb", Persist: true, K: 20}
	for i, q := range []string{"dog and cat", "truck engine", "bread and soup", "gene study", "vet fur", "road traffic"} {
		lq := &ragkvv1.RetrievalLabeledQuery{Id: fmt.Sprint(i), Text: q, Relevant: map[string]int32{}}
		for j := i % 4; j < 40; j += 4 {
			lq.Relevant[docs[j].GetId()] = 1
		}
		fit.Queries = append(fit.Queries, lq)
	}
	fr, err := c.FitFusion(ctx, fit)
	if err != nil {
		t.Fatal(err)
	}
	info, _ = c.DescribeCollection(ctx, &ragkvv1.DescribeCollectionRequest{Collection: "kb"})
	if info.FusionWeight == nil || info.GetFusionWeight() != fr.GetWeight() || len(fr.GetGrid()) != 21 {
		t.Fatalf("fit %v, info %v", fr, info)
	}
	hr, err := c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: "bread", K: 3, Mode: ragkvv1.RetrievalMode_RETRIEVAL_MODE_HYBRID})
	if err != nil || hr.GetFusionWeight() != fr.GetWeight() || hr.GetFusion() != ragkvv1.RetrievalFusion_RETRIEVAL_FUSION_WEIGHTED {
		t.Fatalf("hybrid after fit: %v, %v", hr, err)
	}

	// Rebuilding into 3 shards keeps the results.
	before, _ := c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: "cheese recipe", K: 8})
	rb, err := c.RebuildCollection(ctx, &ragkvv1.RebuildCollectionRequest{Collection: "kb", Shards: 3})
	if err != nil || rb.GetShards() != 3 {
		t.Fatalf("rebuild: %v, %v", rb, err)
	}
	after, _ := c.Retrieve(ctx, &ragkvv1.RetrieveRequest{Collection: "kb", Query: "cheese recipe", K: 8})
	before.Generation, before.Shards = after.Generation, after.Shards
	if !proto.Equal(before, after) {
		t.Fatalf("rebuild changed results:\n%v\n%v", before, after)
	}
}

func TestToolsOverGRPC(t *testing.T) {
	ctx := context.Background()
	c := retrievalClient(t)
	req := &ragkvv1.RegisterToolsRequest{
		Registry: "agents",
		Tools: []*ragkvv1.RetrievalTool{
			{Name: "Garage", Description: "a place"}, {Name: "Bakery", Description: "a shop"}, {Name: "Clinic", Description: "clinical study of a tumor"},
		},
		Usage: []*ragkvv1.ToolUsageQuery{
			{Query: "my car engine needs a brake", Tool: "Garage"}, {Query: "truck wheel and fuel", Tool: "Garage"},
			{Query: "bake bread and cheese", Tool: "Bakery"},
		},
	}
	res, err := c.RegisterTools(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetTools() != 3 || res.GetToolsWithUsage() != 2 || res.GetUsageQueries() != 3 || res.GetMethod() != ragkvv1.ToolVectorMethod_TOOL_VECTOR_METHOD_TOOL2VEC {
		t.Fatalf("register: %v", res)
	}
	for q, want := range map[string]string{"the road and traffic for my vehicle": "Garage", "a soup recipe": "Bakery", "gene protein": "Clinic"} {
		r, err := c.RetrieveTools(ctx, &ragkvv1.RetrieveToolsRequest{Registry: "agents", Query: q, K: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.GetTools()) != 2 || r.GetTools()[0].GetName() != want {
			t.Errorf("%q: %v, want %s first", q, r.GetTools(), want)
		}
	}
	_, err = c.RetrieveTools(ctx, &ragkvv1.RetrieveToolsRequest{Registry: "none", Query: "x", K: 1})
	wantCode(t, err, codes.NotFound, "tool registry not found")
	_, err = c.RetrieveTools(ctx, &ragkvv1.RetrieveToolsRequest{Registry: "agents", Query: "", K: 1})
	wantCode(t, err, codes.InvalidArgument, "empty query")
	req.Usage = append(req.Usage, &ragkvv1.ToolUsageQuery{Query: "x", Tool: "Ghost"})
	_, err = c.RegisterTools(ctx, req)
	wantCode(t, err, codes.InvalidArgument, `unknown tool "Ghost"`)
}
