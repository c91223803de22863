package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/beir"
	"github.com/ragkv/ragkv/retrieval/embed"
)

func init() {
	registerErrorCodes(
		errRow{retrieval.ErrCollectionNotFound, codes.NotFound},
		errRow{retrieval.ErrToolsNotFound, codes.NotFound},
		errRow{retrieval.ErrInvalidArgument, codes.InvalidArgument},
		errRow{retrieval.ErrEmptyQuery, codes.InvalidArgument},
		errRow{retrieval.ErrInvalidK, codes.InvalidArgument},
		errRow{retrieval.ErrDimension, codes.InvalidArgument},
		errRow{beir.ErrMalformed, codes.InvalidArgument},
		errRow{retrieval.ErrNoDense, codes.FailedPrecondition},
		errRow{retrieval.ErrEmbedderUnavailable, codes.FailedPrecondition},
		errRow{retrieval.ErrBusy, codes.Unavailable},
		errRow{retrieval.ErrClosed, codes.Unavailable},
		errRow{embed.ErrRemote, codes.Unavailable},
		errRow{retrieval.ErrCorrupt, codes.DataLoss},
		errRow{retrieval.ErrNoSpace, codes.ResourceExhausted},
	)
}

// WithRetrieval attaches the Retrieval service backed by st (owned by the caller).
func WithRetrieval(st *retrieval.Store) Option {
	svc := withServiceOptions("ragkv.v1.Retrieval", func(s *grpc.Server, o *options) {
		kl, _ := o.promptKeys.(KeyLookup) // the engine, when WithInference is given too
		ragkvv1.RegisterRetrievalServer(s, &retrievalService{st: st, keys: kl})
	})
	return optionFunc(func(o *options) {
		svc.apply(o)
		o.retrieval = st
	})
}

type retrievalService struct {
	ragkvv1.UnimplementedRetrievalServer
	st   *retrieval.Store
	keys KeyLookup
}

func (r *retrievalService) Ingest(stream grpc.ClientStreamingServer[ragkvv1.IngestRequest, ragkvv1.IngestResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return invalidArg("ingest: empty stream; the first message must name the collection")
	}
	if err != nil {
		return err
	}
	name := first.GetCollection()
	if name == "" {
		return invalidArg("ingest: the first message must name the collection")
	}
	if first.GetShards() < 0 {
		return invalidArg("ingest: shards = %d must be positive", first.GetShards())
	}
	opts := retrieval.IngestOptions{Shards: int(first.GetShards()), Upsert: first.GetUpsert()}
	if o := first.GetOptions(); o != nil {
		co, err := collectionOptionsFromProto(o)
		if err != nil {
			return err
		}
		opts.Create = &co
	}
	in, err := r.st.BeginIngest(ctx, name, opts)
	if err != nil {
		return toStatus(err)
	}
	defer in.Abort()
	msg, n := first, 0
	for {
		if n > 0 {
			if c := msg.GetCollection(); c != "" && c != name {
				return invalidArg("ingest: message %d names collection %q, the stream is for %q", n, c, name)
			}
			if msg.GetOptions() != nil || msg.GetShards() != 0 || msg.GetUpsert() {
				return invalidArg("ingest: message %d: options, shards and upsert belong in the first message only", n)
			}
		}
		docs := make([]retrieval.Document, len(msg.GetDocuments()))
		for i, d := range msg.GetDocuments() {
			docs[i] = retrieval.Document{ID: d.GetId(), Title: d.GetTitle(), Text: d.GetText(), Vector: d.GetVector()}
		}
		if err := in.Add(ctx, docs...); err != nil {
			return toStatus(fmt.Errorf("ingest message %d: %w", n, err))
		}
		if ids := msg.GetDeleteIds(); len(ids) > 0 {
			if err := in.Delete(ctx, ids...); err != nil {
				return toStatus(fmt.Errorf("ingest message %d: %w", n, err))
			}
		}
		n++
		msg, err = stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	res, err := in.Commit(ctx)
	if err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(ingestResultToProto(res))
}

func ingestResultToProto(res retrieval.IngestResult) *ragkvv1.IngestResponse {
	return &ragkvv1.IngestResponse{
		Collection: res.Collection, Generation: res.Generation, Created: res.Created,
		Docs: int64(res.Docs), DocsSkipped: int64(res.DocsSkipped), Passages: int64(res.Passages),
		Duplicates: int64(res.Duplicates), Shards: int32(res.Shards), TotalDocs: res.TotalDocs,
		TotalPassages: res.TotalPass, Seconds: res.Seconds,
		Replaced: int64(res.Replaced), Deleted: int64(res.Deleted), DeleteMissing: int64(res.DeleteMissing),
	}
}

func collectionOptionsFromProto(o *ragkvv1.RetrievalCollectionOptions) (retrieval.CollectionOptions, error) {
	co := retrieval.CollectionOptions{
		ChunkWords: int(o.GetChunkWords()), ChunkOverlap: int(o.GetChunkOverlap()),
		MinHashThreshold: o.GetMinhashThreshold(), Embedder: o.GetEmbedder(), Dim: int(o.GetDim()),
		PCADims: int(o.GetPcaDims()), Int8: o.GetInt8(), ANNThreshold: int(o.GetAnnThreshold()),
		Rescore: int(o.GetRescore()),
	}
	switch o.GetDedup() {
	case ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_UNSPECIFIED:
	case ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_EXACT:
		co.Dedup = retrieval.DedupExact
	case ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_MINHASH:
		co.Dedup = retrieval.DedupMinHash
	case ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_NONE:
		co.Dedup = retrieval.DedupNone
	default:
		return co, invalidArg("unknown dedup %v", o.GetDedup())
	}
	var err error
	if co.DenseIndex, err = denseIndexFromProto(o.GetDenseIndex()); err != nil {
		return co, err
	}
	if co.DefaultMode, err = modeFromProto(o.GetDefaultMode()); err != nil {
		return co, err
	}
	return co, nil
}

func collectionOptionsToProto(o retrieval.CollectionOptions) *ragkvv1.RetrievalCollectionOptions {
	p := &ragkvv1.RetrievalCollectionOptions{
		ChunkWords: int32(o.ChunkWords), ChunkOverlap: int32(o.ChunkOverlap), MinhashThreshold: o.MinHashThreshold,
		Embedder: o.Embedder, Dim: int32(o.Dim), PcaDims: int32(o.PCADims), Int8: o.Int8,
		AnnThreshold: int32(o.ANNThreshold), Rescore: int32(o.Rescore), DefaultMode: ModeToProto(o.DefaultMode),
	}
	switch o.Dedup {
	case retrieval.DedupExact:
		p.Dedup = ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_EXACT
	case retrieval.DedupMinHash:
		p.Dedup = ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_MINHASH
	case retrieval.DedupNone:
		p.Dedup = ragkvv1.RetrievalDedup_RETRIEVAL_DEDUP_NONE
	}
	switch o.DenseIndex {
	case retrieval.DenseExact:
		p.DenseIndex = ragkvv1.RetrievalDenseIndex_RETRIEVAL_DENSE_INDEX_EXACT
	case retrieval.DenseANN:
		p.DenseIndex = ragkvv1.RetrievalDenseIndex_RETRIEVAL_DENSE_INDEX_ANN
	}
	return p
}

func denseIndexFromProto(d ragkvv1.RetrievalDenseIndex) (retrieval.DenseIndex, error) {
	switch d {
	case ragkvv1.RetrievalDenseIndex_RETRIEVAL_DENSE_INDEX_AUTO:
		return retrieval.DenseAuto, nil
	case ragkvv1.RetrievalDenseIndex_RETRIEVAL_DENSE_INDEX_EXACT:
		return retrieval.DenseExact, nil
	case ragkvv1.RetrievalDenseIndex_RETRIEVAL_DENSE_INDEX_ANN:
		return retrieval.DenseANN, nil
	}
	return "", invalidArg("unknown dense index %v", d)
}

func modeFromProto(m ragkvv1.RetrievalMode) (retrieval.Mode, error) {
	switch m {
	case ragkvv1.RetrievalMode_RETRIEVAL_MODE_UNSPECIFIED:
		return retrieval.ModeDefault, nil
	case ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25:
		return retrieval.ModeBM25, nil
	case ragkvv1.RetrievalMode_RETRIEVAL_MODE_DENSE:
		return retrieval.ModeDense, nil
	case ragkvv1.RetrievalMode_RETRIEVAL_MODE_HYBRID:
		return retrieval.ModeHybrid, nil
	}
	return "", invalidArg("unknown mode %v", m)
}

// ModeToProto is the wire form of a retrieval mode (UNSPECIFIED for one it does not know).
func ModeToProto(m retrieval.Mode) ragkvv1.RetrievalMode {
	switch m {
	case retrieval.ModeBM25:
		return ragkvv1.RetrievalMode_RETRIEVAL_MODE_BM25
	case retrieval.ModeDense:
		return ragkvv1.RetrievalMode_RETRIEVAL_MODE_DENSE
	case retrieval.ModeHybrid:
		return ragkvv1.RetrievalMode_RETRIEVAL_MODE_HYBRID
	}
	return ragkvv1.RetrievalMode_RETRIEVAL_MODE_UNSPECIFIED
}

func (r *retrievalService) Retrieve(ctx context.Context, req *ragkvv1.RetrieveRequest) (*ragkvv1.RetrieveResponse, error) {
	mode, err := modeFromProto(req.GetMode())
	if err != nil {
		return nil, err
	}
	var fusion retrieval.Fusion
	switch req.GetFusion() {
	case ragkvv1.RetrievalFusion_RETRIEVAL_FUSION_UNSPECIFIED:
	case ragkvv1.RetrievalFusion_RETRIEVAL_FUSION_WEIGHTED:
		fusion = retrieval.FusionWeighted
	case ragkvv1.RetrievalFusion_RETRIEVAL_FUSION_RRF:
		fusion = retrieval.FusionRRF
	default:
		return nil, invalidArg("unknown fusion %v", req.GetFusion())
	}
	di, err := denseIndexFromProto(req.GetDenseIndex())
	if err != nil {
		return nil, err
	}
	if req.GetCollection() == "" {
		return nil, invalidArg("retrieve: collection is empty")
	}
	sr := retrieval.SearchRequest{
		Collection: req.GetCollection(), Query: req.GetQuery(), Vector: req.GetQueryVector(), K: int(req.GetK()),
		Mode: mode, Fusion: fusion, FusionWeight: req.FusionWeight, Depth: int(req.GetDepth()), DenseIndex: di,
		DocIDs: req.GetDocIds(), ExcludeDocIDs: req.GetExcludeDocIds(), GroupByDoc: req.GetGroupByDoc(),
		NoText: req.GetOmitText() && !req.GetWithKeys(), // keys are of the texts
	}
	res, err := r.st.Search(ctx, sr)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &ragkvv1.RetrieveResponse{
		Mode: ModeToProto(res.Mode), FusionWeight: res.FusionWeight, Generation: res.Generation,
		Shards: int32(res.Shards), ChunkIds: res.ChunkIDs(),
	}
	switch res.Fusion {
	case retrieval.FusionWeighted:
		out.Fusion = ragkvv1.RetrievalFusion_RETRIEVAL_FUSION_WEIGHTED
	case retrieval.FusionRRF:
		out.Fusion = ragkvv1.RetrievalFusion_RETRIEVAL_FUSION_RRF
	}
	texts := make([]string, len(res.Hits))
	for i, h := range res.Hits {
		texts[i] = h.Text
		out.Passages = append(out.Passages, &ragkvv1.RetrievedPassage{
			PassageId: h.PassageID, DocId: h.DocID, Title: h.Title, Text: h.Text, ChunkId: h.ChunkID,
			Score: h.Score, Bm25Score: h.BM25, DenseScore: h.Dense,
		})
	}
	if req.GetWithKeys() {
		if err := passageKeys(ctx, r.keys, req.GetNamespace(), req.GetSystem(), out.Passages, texts); err != nil {
			return nil, toStatus(fmt.Errorf("retrieve: chunk keys: %w", err))
		}
		if req.GetOmitText() {
			for _, p := range out.Passages {
				p.Title, p.Text = "", ""
			}
		}
	}
	return out, nil
}

func toolMethodFromProto(m ragkvv1.ToolVectorMethod) (retrieval.ToolMethod, error) {
	switch m {
	case ragkvv1.ToolVectorMethod_TOOL_VECTOR_METHOD_UNSPECIFIED, ragkvv1.ToolVectorMethod_TOOL_VECTOR_METHOD_TOOL2VEC:
		return retrieval.ToolMethodTool2Vec, nil
	case ragkvv1.ToolVectorMethod_TOOL_VECTOR_METHOD_DESCRIPTION:
		return retrieval.ToolMethodDescription, nil
	}
	return "", invalidArg("unknown tool vector method %v", m)
}

func (r *retrievalService) RegisterTools(ctx context.Context, req *ragkvv1.RegisterToolsRequest) (*ragkvv1.RegisterToolsResponse, error) {
	m, err := toolMethodFromProto(req.GetMethod())
	if err != nil {
		return nil, err
	}
	tools := make([]retrieval.Tool, len(req.GetTools()))
	for i, t := range req.GetTools() {
		tools[i] = retrieval.Tool{Name: t.GetName(), Description: t.GetDescription()}
	}
	usage := make([]retrieval.ToolUsage, len(req.GetUsage()))
	for i, u := range req.GetUsage() {
		usage[i] = retrieval.ToolUsage{Query: u.GetQuery(), Tool: u.GetTool()}
	}
	info, err := r.st.RegisterTools(ctx, req.GetRegistry(), tools, usage, retrieval.RegisterToolsOptions{Embedder: req.GetEmbedder(), Method: m})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &ragkvv1.RegisterToolsResponse{
		Registry: info.Name, Tools: int32(info.Tools), ToolsWithUsage: int32(info.WithUsage),
		UsageQueries: int64(info.Usages), Embedder: info.Embedder, Method: ragkvv1.ToolVectorMethod_TOOL_VECTOR_METHOD_TOOL2VEC,
	}
	if info.Method == retrieval.ToolMethodDescription {
		out.Method = ragkvv1.ToolVectorMethod_TOOL_VECTOR_METHOD_DESCRIPTION
	}
	return out, nil
}

func (r *retrievalService) RetrieveTools(ctx context.Context, req *ragkvv1.RetrieveToolsRequest) (*ragkvv1.RetrieveToolsResponse, error) {
	if req.GetRegistry() == "" {
		return nil, invalidArg("retrieve tools: registry is empty")
	}
	hits, err := r.st.RetrieveTools(ctx, req.GetRegistry(), req.GetQuery(), int(req.GetK()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &ragkvv1.RetrieveToolsResponse{}
	for _, h := range hits {
		out.Tools = append(out.Tools, &ragkvv1.RetrievedTool{Name: h.Name, Description: h.Description, Score: h.Score})
	}
	return out, nil
}

func (r *retrievalService) FitFusion(ctx context.Context, req *ragkvv1.FitFusionRequest) (*ragkvv1.FitFusionResponse, error) {
	qs := make([]retrieval.LabeledQuery, len(req.GetQueries()))
	for i, q := range req.GetQueries() {
		rel := make(map[string]int, len(q.GetRelevant()))
		for d, g := range q.GetRelevant() {
			rel[d] = int(g)
		}
		id := q.GetId()
		if id == "" {
			id = fmt.Sprintf("query-%d", i)
		}
		qs[i] = retrieval.LabeledQuery{ID: id, Text: q.GetText(), Vector: q.GetVector(), Relevant: rel}
	}
	res, err := r.st.FitFusion(ctx, req.GetCollection(), qs, retrieval.FitOptions{
		Folds: int(req.GetFolds()), Step: req.GetStep(), K: int(req.GetK()), Persist: req.GetPersist(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &ragkvv1.FitFusionResponse{Weight: res.Weight, NdcgAt_10: res.NDCG10, CvNdcgAt_10: res.CVNDCG10, Queries: int32(res.Queries)}
	for _, g := range res.Grid {
		out.Grid = append(out.Grid, &ragkvv1.FusionGridPoint{Weight: g.Weight, NdcgAt_10: g.NDCG10})
	}
	return out, nil
}

func (r *retrievalService) DescribeCollection(_ context.Context, req *ragkvv1.DescribeCollectionRequest) (*ragkvv1.RetrievalCollectionInfo, error) {
	info, err := r.st.Collection(req.GetCollection())
	if err != nil {
		return nil, toStatus(err)
	}
	return collectionInfoToProto(info), nil
}

func collectionInfoToProto(info retrieval.CollectionInfo) *ragkvv1.RetrievalCollectionInfo {
	out := &ragkvv1.RetrievalCollectionInfo{
		Name: info.Name, Generation: info.Generation, Docs: info.Docs, Passages: info.Passages, Shards: int32(info.Shards),
		Embedder: info.Embedder, Dim: int32(info.Dim), PcaDims: int32(info.PCADims), Int8: info.Int8,
		BytesPerVector: info.BytesPerVector, Options: collectionOptionsToProto(info.Options),
	}
	if info.Fusion != nil {
		w := info.Fusion.BM25
		out.FusionWeight = &w
		out.FusionCvNdcgAt_10 = info.Fusion.CVNDCG10
	}
	return out
}

func (r *retrievalService) DeleteCollection(ctx context.Context, req *ragkvv1.DeleteCollectionRequest) (*ragkvv1.DeleteCollectionResponse, error) {
	if req.GetCollection() == "" {
		return nil, invalidArg("delete collection: collection is required")
	}
	if err := r.st.DeleteCollection(ctx, req.GetCollection()); err != nil {
		return nil, toStatus(err)
	}
	return &ragkvv1.DeleteCollectionResponse{}, nil
}

func (r *retrievalService) ListCollections(_ context.Context, _ *ragkvv1.ListCollectionsRequest) (*ragkvv1.ListCollectionsResponse, error) {
	infos := r.st.Collections()
	slices.SortFunc(infos, func(a, b retrieval.CollectionInfo) int { return strings.Compare(a.Name, b.Name) })
	out := &ragkvv1.ListCollectionsResponse{}
	for _, info := range infos {
		out.Collections = append(out.Collections, collectionInfoToProto(info))
	}
	return out, nil
}

func (r *retrievalService) CompactCollection(ctx context.Context, req *ragkvv1.CompactCollectionRequest) (*ragkvv1.CompactCollectionResponse, error) {
	res, err := r.st.Compact(ctx, req.GetCollection())
	if err != nil {
		return nil, toStatus(err)
	}
	return &ragkvv1.CompactCollectionResponse{
		Collection: res.Collection, Generation: res.Generation, Merges: int32(res.Merges),
		ShardsBefore: int32(res.ShardsBefore), ShardsAfter: int32(res.ShardsAfter),
		TombstonesDropped: int64(res.Dropped), Seconds: res.Seconds,
	}, nil
}

func (r *retrievalService) RebuildCollection(ctx context.Context, req *ragkvv1.RebuildCollectionRequest) (*ragkvv1.IngestResponse, error) {
	shards := int(req.GetShards())
	if shards == 0 {
		shards = 1
	}
	res, err := r.st.RebuildWith(ctx, req.GetCollection(), retrieval.RebuildOptions{Shards: shards, Refit: req.GetRefit()})
	if err != nil {
		return nil, toStatus(err)
	}
	return ingestResultToProto(res), nil
}
