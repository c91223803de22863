package server

import (
	"context"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/model"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
)

func init() {
	registerErrorCodes(
		errRow{blend.ErrInvalid, codes.InvalidArgument},
		errRow{blend.ErrTooLong, codes.InvalidArgument},
		errRow{blend.ErrHandleNotFound, codes.NotFound},
		errRow{blend.ErrChunkNotCached, codes.NotFound},
		errRow{blend.ErrCorrupt, codes.DataLoss},
		errRow{blend.ErrBusy, codes.ResourceExhausted},
		errRow{model.ErrInvalid, codes.InvalidArgument},
	)
}

// InferenceServiceName is the gRPC service name (also reported by health).
const InferenceServiceName = "ragkv.v1.Inference"

// WithInference attaches the Inference service (Prefill, Generate, PrecomputeChunks)
// backed by e (owned by the caller).
func WithInference(e *blend.Engine) Option {
	svc := withServiceOptions(InferenceServiceName, func(s *grpc.Server, o *options) {
		ragkvv1.RegisterInferenceServer(s, &inferenceService{e: e, ret: o.retrieval, log: o.logger})
	})
	return optionFunc(func(o *options) {
		svc.apply(o)
		o.promptKeys = e // Locate keys a prompt's chunks as Prefill does
	})
}

type inferenceService struct {
	ragkvv1.UnimplementedInferenceServer
	e   *blend.Engine
	ret *retrieval.Store // nil: no retrieval sources
	log *slog.Logger
	co  coRetrieval
}

// prompt is a validated prefill input and the passages its retrieval source fused.
type prompt struct {
	in       *blend.PrefillInput
	passages []RetrievedPassage
	first    int // index of the first retrieved chunk among in.Chunks
}

func (p *prompt) response(out *blend.PrefillOutput, logits bool) *ragkvv1.PrefillResponse {
	resp := prefillResponse(out, logits)
	if len(p.passages) > 0 {
		resp.Passages = promptPassagesToProto(PromptPassages(out, p.first, p.passages))
	}
	return resp
}

// prompt validates req and runs its retrieval source: the retrieved passages follow
// the request's chunks, in rank order.
func (s *inferenceService) prompt(ctx context.Context, req *ragkvv1.PrefillRequest) (*prompt, error) {
	in, err := prefillInput(req)
	if err != nil {
		return nil, err
	}
	p := &prompt{in: in, first: len(in.Chunks)}
	if r := req.GetRetrieval(); r != nil {
		src, err := retrievalSourceFromProto(r, req.GetQuery())
		if err != nil {
			return nil, err
		}
		if p.passages, err = RetrievePassages(ctx, s.ret, src, MaxRetrievalK); err != nil {
			return nil, toStatus(fmt.Errorf("prefill: %w", err))
		}
		if len(in.Chunks)+len(p.passages) > maxPrefillChunks {
			return nil, invalidArg("prefill: %d chunks and %d passages (at most %d)", len(in.Chunks), len(p.passages), maxPrefillChunks)
		}
		in.Chunks = append(in.Chunks, PassageChunks(p.passages)...)
		s.co.record(src.Collection, p.passages)
	}
	return p, nil
}

// maxPrefillChunks bounds the chunks of one request.
const maxPrefillChunks = 4096

func prefillInput(req *ragkvv1.PrefillRequest) (*blend.PrefillInput, error) {
	if req == nil {
		return nil, invalidArg("prefill: missing request")
	}
	in := &blend.PrefillInput{Namespace: req.GetNamespace(), System: req.GetSystem(), Query: req.GetQuery(),
		Reserve: int(req.GetReserveTokens()), KeepHandle: req.GetKeepHandle()}
	m, err := blend.ParseMethod(req.GetMethod())
	if err != nil {
		return nil, invalidArg("prefill: method %q: want full, prefix, naive, cacheblend or cachecraft", req.GetMethod())
	}
	in.Method = m
	if req.Ratio != nil {
		r := req.GetRatio()
		if !(r >= 0 && r <= 1) {
			return nil, invalidArg("prefill: ratio %g: want a number in [0, 1]", r)
		}
		in.Ratio = &r
	}
	if len(req.GetChunks()) > maxPrefillChunks {
		return nil, invalidArg("prefill: %d chunks (at most %d)", len(req.GetChunks()), maxPrefillChunks)
	}
	for i, c := range req.GetChunks() {
		switch x := c.GetChunk().(type) {
		case *ragkvv1.InferenceChunk_Key:
			k, err := chunkcache.KeyFromBytes(x.Key)
			if err != nil {
				return nil, invalidArg("prefill: chunk %d: key is %d bytes, want 32", i, len(x.Key))
			}
			in.Chunks = append(in.Chunks, blend.ChunkRef{Key: &k})
		case *ragkvv1.InferenceChunk_Text:
			if x.Text == "" {
				return nil, invalidArg("prefill: chunk %d: empty text", i)
			}
			in.Chunks = append(in.Chunks, blend.ChunkRef{Text: x.Text})
		default:
			return nil, invalidArg("prefill: chunk %d: give a key or a text", i)
		}
	}
	return in, nil
}

func prefillResponse(out *blend.PrefillOutput, logits bool) *ragkvv1.PrefillResponse {
	s := &out.Stats
	b := &ragkvv1.PrefillBreakdown{
		Method: string(s.Method), Ratio: s.Ratio, QueryTokens: uint32(s.Query), TotalTokens: uint32(s.Tokens),
		RecomputedTokens: s.Recomputed, RecomputeFrac: s.RecomputeFrac,
		PrepareSeconds: out.Prepare.Seconds(), LoadSeconds: s.Load.Seconds(), RotateSeconds: s.Rotate.Seconds(),
		RecomputeSeconds: s.Compute.Seconds(), AttentionSeconds: s.Attention.Seconds(), SelectSeconds: s.Select.Seconds(),
		WaitSeconds: s.Wait.Seconds(), TotalSeconds: (out.Prepare + s.Total).Seconds(), LoadHiddenFrac: s.LoadHiddenFrac,
		CacheHits: map[string]uint32{}, Flops: s.FLOPs, FullFlops: s.FullFLOPs,
	}
	for src, n := range out.CacheHits {
		b.CacheHits[src] = uint32(n)
	}
	for _, seg := range out.Segments {
		b.Segments = append(b.Segments, &ragkvv1.PrefillSegment{
			Kind: seg.Kind, Key: append([]byte(nil), seg.Key[:]...), Tokens: uint32(seg.Tokens), Reused: uint32(seg.Reused),
			Recomputed: uint32(seg.Recomputed), Exact: seg.Exact, Source: seg.Source, Impact: seg.Impact, Stored: seg.Stored,
		})
	}
	resp := &ragkvv1.PrefillResponse{Handle: out.Handle, FirstToken: uint32(out.FirstToken), FirstText: out.FirstText, Breakdown: b}
	if !out.Expires.IsZero() {
		resp.HandleExpiresUnixNanos = out.Expires.UnixNano()
	}
	if logits {
		resp.Logits = out.Logits
	}
	return resp
}

func (s *inferenceService) Prefill(ctx context.Context, req *ragkvv1.PrefillRequest) (*ragkvv1.PrefillResponse, error) {
	p, err := s.prompt(ctx, req)
	if err != nil {
		return nil, err
	}
	out, err := s.e.Prefill(ctx, p.in)
	if err != nil {
		return nil, toStatus(err)
	}
	return p.response(out, req.GetReturnLogits()), nil
}

func (s *inferenceService) Generate(req *ragkvv1.GenerateRequest, stream grpc.ServerStreamingServer[ragkvv1.GenerateResponse]) error {
	in := &blend.GenerateInput{MaxTokens: int(req.GetMaxTokens()), Temperature: req.GetTemperature(), TopP: req.GetTopP(),
		Seed: req.GetSeed(), IgnoreEOS: req.GetIgnoreEos(), KeepHandle: req.GetKeepHandle()}
	if req.GetTemperature() < 0 || req.GetTopP() < 0 || req.GetTopP() > 1 {
		return invalidArg("generate: temperature %g and top_p %g: want temperature ≥ 0 and top_p in [0, 1]", req.GetTemperature(), req.GetTopP())
	}
	var wantLogits bool
	pr := &prompt{}
	switch x := req.GetSource().(type) {
	case *ragkvv1.GenerateRequest_Handle:
		if x.Handle == "" {
			return invalidArg("generate: empty handle")
		}
		in.Handle = x.Handle
	case *ragkvv1.GenerateRequest_Prefill:
		p, err := s.prompt(stream.Context(), x.Prefill)
		if err != nil {
			return err
		}
		in.Prefill, pr = p.in, p
		wantLogits = x.Prefill.GetReturnLogits()
	default:
		return invalidArg("generate: give a prefill handle or a prefill request")
	}
	err := s.e.Generate(stream.Context(), in, func(ev blend.GenerateEvent) error {
		if ev.Prefill != nil {
			return stream.Send(&ragkvv1.GenerateResponse{Msg: &ragkvv1.GenerateResponse_Prefill{Prefill: pr.response(ev.Prefill, wantLogits)}})
		}
		return stream.Send(generateResponse(ev, wantLogits))
	})
	return toStatus(err)
}

// generateResponse is the stream message of one Generate event: the prefill (with its
// logits if asked), one token, or the end (with the rest of an incomplete UTF-8
// sequence, which must not read as a token).
func generateResponse(ev blend.GenerateEvent, logits bool) *ragkvv1.GenerateResponse {
	switch {
	case ev.Prefill != nil:
		return &ragkvv1.GenerateResponse{Msg: &ragkvv1.GenerateResponse_Prefill{Prefill: prefillResponse(ev.Prefill, logits)}}
	case ev.Done != nil:
		return &ragkvv1.GenerateResponse{Msg: &ragkvv1.GenerateResponse_Done{Done: &ragkvv1.GenerateDone{
			Reason: ev.Done.Reason, Tokens: uint32(ev.Done.Tokens), DecodeSeconds: ev.Done.Decode.Seconds(), Text: ev.Text}}}
	default:
		return &ragkvv1.GenerateResponse{Msg: &ragkvv1.GenerateResponse_Token{Token: &ragkvv1.GenerateToken{Id: uint32(ev.Token), Text: ev.Text}}}
	}
}

// maxPrecomputeChunks bounds one PrecomputeChunks request.
const maxPrecomputeChunks = 1 << 16

func (s *inferenceService) PrecomputeChunks(req *ragkvv1.PrecomputeChunksRequest, stream grpc.ServerStreamingServer[ragkvv1.PrecomputeChunksProgress]) error {
	if len(req.GetChunks()) == 0 {
		return invalidArg("precompute: no chunks")
	}
	if len(req.GetChunks()) > maxPrecomputeChunks {
		return invalidArg("precompute: %d chunks (at most %d per request)", len(req.GetChunks()), maxPrecomputeChunks)
	}
	chunks := make([]blend.PrecomputeChunk, len(req.GetChunks()))
	for i, c := range req.GetChunks() {
		if c.GetText() == "" {
			return invalidArg("precompute: chunk %d (id %q): empty text", i, c.GetId())
		}
		chunks[i] = blend.PrecomputeChunk{ID: c.GetId(), Text: c.GetText()}
	}
	_, err := s.e.Precompute(stream.Context(), req.GetNamespace(), req.GetSystem(), chunks, int(req.GetContextChunks()),
		func(ev blend.PrecomputeEvent) error {
			t := ev.Totals
			return stream.Send(&ragkvv1.PrecomputeChunksProgress{
				Id: ev.ID, Key: append([]byte(nil), ev.Key[:]...), Status: ev.Status, Tokens: uint32(ev.Tokens),
				Done: uint32(t.Computed + t.Skipped), Total: uint32(t.Chunks), Computed: uint32(t.Computed),
				Skipped: uint32(t.Skipped), Rejected: uint32(t.Rejected),
			})
		})
	return toStatus(err)
}
