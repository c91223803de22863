package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/ragkv/ragkv/chunkcache"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
)

func init() {
	registerErrorCodes(
		errRow{chunkcache.ErrInvalid, codes.InvalidArgument},
		errRow{chunkcache.ErrNotFound, codes.NotFound},
		errRow{chunkcache.ErrUnknownNamespace, codes.NotFound},
		errRow{chunkcache.ErrTooLarge, codes.ResourceExhausted},
		errRow{chunkcache.ErrNoSpace, codes.ResourceExhausted},
		errRow{chunkcache.ErrUnknownPolicy, codes.InvalidArgument},
		errRow{chunkcache.ErrInvalidPolicy, codes.InvalidArgument},
		errRow{chunkcache.ErrUnknownTier, codes.InvalidArgument},
		errRow{chunkcache.ErrCorrupt, codes.DataLoss},
		errRow{chunkcache.ErrClosed, codes.Unavailable},
		errRow{chunkcache.ErrNoSecret, codes.FailedPrecondition},
	)
}

// ChunkCacheServiceName is the gRPC service name (also reported by health).
const ChunkCacheServiceName = "ragkv.v1.ChunkCache"

// WithChunkCache attaches the ChunkCache service backed by c (owned by the caller).
func WithChunkCache(c *chunkcache.Cache) Option {
	return withServiceOptions(ChunkCacheServiceName, func(s *grpc.Server, o *options) {
		svc := &chunkCacheService{c: c, log: o.logger}
		svc.initCluster(o)
		ragkvv1.RegisterChunkCacheServer(s, svc)
	})
}

type chunkCacheService struct {
	ragkvv1.UnimplementedChunkCacheServer
	c   *chunkcache.Cache
	log *slog.Logger
	cluster
}

func (s *chunkCacheService) PutChunk(stream grpc.ClientStreamingServer[ragkvv1.PutChunkRequest, ragkvv1.PutChunkResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return invalidArg("PutChunk: empty stream; the first message must be a header")
	}
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return invalidArg("PutChunk: the first message must be a header, got a layer frame")
	}
	spec, err := putSpecFromProto(h)
	if err != nil {
		return err
	}
	w, err := s.c.NewWriter(ctx, spec)
	if err != nil {
		return toStatus(fmt.Errorf("PutChunk: %w", err))
	}
	defer w.Abort()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err // the client went away or the message was too large: nothing stored
		}
		f := msg.GetLayer()
		if f == nil {
			return invalidArg("PutChunk: a second header after %d layer frames", w.NextLayer())
		}
		err = w.WriteLayerRaw(int(f.GetLayer()), chunkcache.LayerParts{K: f.GetK(), V: f.GetV(), KScales: f.GetKScales(), VScales: f.GetVScales()}, f.Crc32C)
		if err != nil {
			return toStatus(fmt.Errorf("PutChunk: frame %d: %w", w.NextLayer(), err))
		}
	}
	res, err := w.Commit(ctx)
	if err != nil {
		return toStatus(fmt.Errorf("PutChunk: %w", err))
	}
	return stream.SendAndClose(&ragkvv1.PutChunkResponse{
		Key: res.Key[:], Tiers: res.Tiers, Admitted: res.Admitted, StoredBytes: uint64(res.StoredBytes),
	})
}

func (s *chunkCacheService) GetChunk(req *ragkvv1.GetChunkRequest, stream grpc.ServerStreamingServer[ragkvv1.GetChunkResponse]) error {
	ctx := stream.Context()
	ns, key, err := s.resolveChunkRef(req.GetChunk())
	if err != nil {
		return err
	}
	r, err := s.c.Open(ctx, ns, key)
	if err != nil {
		return toStatus(fmt.Errorf("GetChunk: %w", err))
	}
	defer r.Close()
	info := r.Info()
	layers := req.GetLayers()
	for i, l := range layers {
		if int(l) >= info.Layout.Layers {
			return invalidArg("GetChunk: layer %d out of range (chunk has %d layers)", l, info.Layout.Layers)
		}
		if i > 0 && l <= layers[i-1] {
			return invalidArg("GetChunk: layers must be ascending without repeats (%d after %d)", l, layers[i-1])
		}
	}
	if len(layers) == 0 {
		layers = make([]uint32, info.Layout.Layers)
		for i := range layers {
			layers[i] = uint32(i)
		}
	}
	// as_dtype: decode each layer and re-encode it in a byte-sized dtype.
	var conv *chunkcache.Layout
	var convK, convV []float32
	if d := req.GetAsDtype(); d != ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_UNSPECIFIED {
		dt, err := dtypeFromProto(d)
		if err != nil {
			return toStatus(fmt.Errorf("GetChunk: as_dtype: %w", err))
		}
		if dt.Grouped() {
			return invalidArg("GetChunk: as_dtype %v: conversion is to F32, F16, BF16 or INT8 only", d)
		}
		if dt != info.Layout.DType || info.Layout.DType.Grouped() {
			l := chunkcache.Layout{Layers: info.Layout.Layers, KVHeads: info.Layout.KVHeads, HeadDim: info.Layout.HeadDim, DType: dt}
			l.EnsureDefaults()
			conv = &l
			n := l.Elems(len(info.Tokens))
			convK, convV = make([]float32, n), make([]float32, n)
		}
	}
	pinfo := chunkInfoToProto(info)
	if conv != nil {
		pinfo.Layout = LayoutToProto(*conv)
	}
	if err := stream.Send(&ragkvv1.GetChunkResponse{Msg: &ragkvv1.GetChunkResponse_Info{Info: pinfo}}); err != nil {
		return err
	}
	var sec []byte
	for _, l := range layers {
		if conv != nil {
			if err := r.ReadLayer(ctx, int(l), convK, convV); err != nil {
				return toStatus(fmt.Errorf("GetChunk: %w", err))
			}
			if sec, err = conv.AppendLayer(sec[:0], len(info.Tokens), convK, convV); err != nil {
				return toStatus(fmt.Errorf("GetChunk: convert layer %d to %v: %w", l, conv.DType, err))
			}
			p, err := conv.Split(sec, len(info.Tokens))
			if err != nil {
				return toStatus(fmt.Errorf("GetChunk: %w", err))
			}
			crc := chunkcache.Checksum(sec)
			frame := &ragkvv1.ChunkLayerFrame{Layer: l, K: p.K, V: p.V, KScales: p.KScales, VScales: p.VScales, Crc32C: &crc}
			if err := stream.Send(&ragkvv1.GetChunkResponse{Msg: &ragkvv1.GetChunkResponse_Layer{Layer: frame}}); err != nil {
				return err
			}
			continue
		}
		p, err := r.LayerParts(ctx, int(l))
		if err != nil {
			return toStatus(fmt.Errorf("GetChunk: %w", err))
		}
		crc := info.LayerCRC[l]
		frame := &ragkvv1.ChunkLayerFrame{Layer: l, K: p.K, V: p.V, KScales: p.KScales, VScales: p.VScales, Crc32C: &crc}
		if err := stream.Send(&ragkvv1.GetChunkResponse{Msg: &ragkvv1.GetChunkResponse_Layer{Layer: frame}}); err != nil {
			return err
		}
	}
	return nil
}

func (s *chunkCacheService) Lookup(ctx context.Context, req *ragkvv1.ChunkLookupRequest) (*ragkvv1.ChunkLookupResponse, error) {
	keys := make([]chunkcache.Key, 0, len(req.GetKeys())+len(req.GetSpecs()))
	for i, b := range req.GetKeys() {
		k, err := chunkcache.KeyFromBytes(b)
		if err != nil {
			return nil, invalidArg("Lookup: keys[%d]: key is %d bytes, want 32", i, len(b))
		}
		keys = append(keys, k)
	}
	for i, sp := range req.GetSpecs() {
		k, err := s.specKey(req.GetNamespace(), sp)
		if err != nil {
			return nil, toStatus(fmt.Errorf("Lookup: specs[%d]: %w", i, err))
		}
		keys = append(keys, k)
	}
	res, err := s.c.Lookup(ctx, req.GetNamespace(), keys)
	if err != nil {
		return nil, toStatus(fmt.Errorf("Lookup: %w", err))
	}
	out := &ragkvv1.ChunkLookupResponse{Results: make([]*ragkvv1.ChunkLookupResult, len(res))}
	for i, r := range res {
		out.Results[i] = &ragkvv1.ChunkLookupResult{
			Key: append([]byte(nil), r.Key[:]...), Present: r.Present, Tier: r.Tier, Tiers: r.Tiers,
			StoredBytes: uint64(r.StoredBytes), Pin: ragkvv1.ChunkPin(r.Pin), Tokens: uint32(r.Tokens),
		}
	}
	return out, nil
}

func (s *chunkCacheService) DeleteChunk(ctx context.Context, req *ragkvv1.DeleteChunkRequest) (*ragkvv1.DeleteChunkResponse, error) {
	ns, key, err := s.resolveChunkRef(req.GetChunk())
	if err != nil {
		return nil, err
	}
	freed, err := s.c.Delete(ctx, ns, key)
	if err != nil {
		return nil, toStatus(fmt.Errorf("DeleteChunk: %w", err))
	}
	return &ragkvv1.DeleteChunkResponse{FreedBytes: uint64(freed)}, nil
}

func (s *chunkCacheService) Pin(ctx context.Context, req *ragkvv1.PinChunkRequest) (*ragkvv1.PinChunkResponse, error) {
	ns, key, err := s.resolveChunkRef(req.GetChunk())
	if err != nil {
		return nil, err
	}
	p := chunkcache.HardPin
	switch req.GetPin() {
	case ragkvv1.ChunkPin_CHUNK_PIN_UNPINNED, ragkvv1.ChunkPin_CHUNK_PIN_HARD:
	case ragkvv1.ChunkPin_CHUNK_PIN_SOFT:
		p = chunkcache.SoftPin
	default:
		return nil, invalidArg("Pin: unknown pin %d (want SOFT or HARD)", req.GetPin())
	}
	if err := s.c.SetPin(ctx, ns, key, p); err != nil {
		return nil, toStatus(fmt.Errorf("Pin: %w", err))
	}
	return &ragkvv1.PinChunkResponse{Pin: ragkvv1.ChunkPin(p)}, nil
}

func (s *chunkCacheService) Unpin(ctx context.Context, req *ragkvv1.UnpinChunkRequest) (*ragkvv1.UnpinChunkResponse, error) {
	ns, key, err := s.resolveChunkRef(req.GetChunk())
	if err != nil {
		return nil, err
	}
	if err := s.c.SetPin(ctx, ns, key, chunkcache.Unpinned); err != nil {
		return nil, toStatus(fmt.Errorf("Unpin: %w", err))
	}
	return &ragkvv1.UnpinChunkResponse{}, nil
}

func (s *chunkCacheService) Stats(ctx context.Context, _ *ragkvv1.ChunkCacheStatsRequest) (*ragkvv1.ChunkCacheStatsResponse, error) {
	st := s.c.Stats()
	out := &ragkvv1.ChunkCacheStatsResponse{Namespaces: st.Namespaces, Chunks: uint64(st.Chunks)}
	for _, t := range st.Tiers {
		out.Tiers = append(out.Tiers, &ragkvv1.ChunkTierStats{
			Name: t.Name, Bytes: uint64(t.Bytes), CapacityBytes: uint64(t.Capacity), Entries: uint64(t.Entries),
			Hits: t.Hits, Misses: t.Misses, Evictions: t.Evictions, Admissions: t.Admissions, Rejections: t.Rejections,
			PinnedBytes: uint64(t.PinnedBytes), Promotions: t.Promotions, Demotions: t.Demotions, Persistent: t.Persistent,
			Shared: t.Shared, Errors: t.Errors, ChunkTokens: uint64(t.ChunkTokens), BytesPerToken: t.BytesPerToken,
		})
	}
	for _, n := range st.NamespaceStats {
		ns := &ragkvv1.ChunkNamespaceStats{Namespace: n.Name, SaltGeneration: n.SaltGeneration}
		for _, u := range n.Tiers {
			ns.Tiers = append(ns.Tiers, &ragkvv1.ChunkNamespaceTierUsage{Tier: u.Tier, Bytes: uint64(u.Bytes), QuotaBytes: uint64(u.Quota)})
		}
		out.NamespaceStats = append(out.NamespaceStats, ns)
	}
	return out, nil
}

func (s *chunkCacheService) GetPolicy(ctx context.Context, _ *ragkvv1.GetChunkPolicyRequest) (*ragkvv1.ChunkPolicy, error) {
	return policyToProto(s.c.Policy()), nil
}

func (s *chunkCacheService) SetPolicy(ctx context.Context, req *ragkvv1.SetChunkPolicyRequest) (*ragkvv1.ChunkPolicy, error) {
	if len(req.GetTiers()) == 0 {
		return nil, invalidArg("SetPolicy: no tier updates")
	}
	updates := make([]chunkcache.TierPolicyUpdate, len(req.GetTiers()))
	for i, u := range req.GetTiers() {
		updates[i] = chunkcache.TierPolicyUpdate{Tier: u.GetTier(), Policy: u.Policy, Admission: u.Admission,
			HighWatermark: u.HighWatermark, LowWatermark: u.LowWatermark}
		if u.CapacityBytes != nil {
			if *u.CapacityBytes > math.MaxInt64 {
				return nil, invalidArg("SetPolicy: tier %s: capacity %d bytes is too large", u.GetTier(), *u.CapacityBytes)
			}
			c := int64(*u.CapacityBytes)
			updates[i].Capacity = &c
		}
	}
	pol, err := s.c.SetPolicy(ctx, updates)
	if err != nil {
		return nil, toStatus(fmt.Errorf("SetPolicy: %w", err))
	}
	return policyToProto(pol), nil
}

func (s *chunkCacheService) RotateSalt(ctx context.Context, req *ragkvv1.RotateSaltRequest) (*ragkvv1.RotateSaltResponse, error) {
	res, err := s.c.RotateSalt(ctx, req.GetNamespace())
	if err != nil && res.Generation == 0 {
		return nil, toStatus(fmt.Errorf("RotateSalt: %w", err))
	}
	if err != nil {
		// Rotated; some stale chunks could not be deleted now (unreachable; the next
		// start deletes them).
		s.log.Warn("RotateSalt: stale chunks left", "namespace", res.Namespace, "err", err)
	}
	return &ragkvv1.RotateSaltResponse{Namespace: res.Namespace, Generation: res.Generation,
		Deleted: uint64(res.Deleted), FreedBytes: uint64(res.FreedBytes)}, nil
}

func policyToProto(pol []chunkcache.TierPolicy) *ragkvv1.ChunkPolicy {
	out := &ragkvv1.ChunkPolicy{AvailablePolicies: chunkcache.Policies(), AvailableAdmissions: chunkcache.Admissions()}
	for _, p := range pol {
		out.Tiers = append(out.Tiers, &ragkvv1.ChunkTierPolicy{
			Tier: p.Tier, Policy: p.Policy, Admission: p.Admission, CapacityBytes: uint64(p.Capacity),
			HighWatermark: p.HighWatermark, LowWatermark: p.LowWatermark,
		})
	}
	return out
}

// resolveChunkRef turns a ChunkRef into a namespace and key.
func (s *chunkCacheService) resolveChunkRef(ref *ragkvv1.ChunkRef) (string, chunkcache.Key, error) {
	if ref == nil {
		return "", chunkcache.Key{}, invalidArg("chunk reference is missing")
	}
	switch r := ref.GetRef().(type) {
	case *ragkvv1.ChunkRef_Key:
		k, err := chunkcache.KeyFromBytes(r.Key)
		if err != nil {
			return "", k, invalidArg("chunk key is %d bytes, want 32", len(r.Key))
		}
		return ref.GetNamespace(), k, nil
	case *ragkvv1.ChunkRef_Spec:
		k, err := s.specKey(ref.GetNamespace(), r.Spec)
		if err != nil {
			return "", k, toStatus(err)
		}
		return ref.GetNamespace(), k, nil
	}
	return "", chunkcache.Key{}, invalidArg("chunk reference has neither a key nor a spec")
}

// specKey is the key of a chunk given by its identity, derived by the cache's keyer
// (with the server's salt secret): clients never compute keys themselves.
func (s *chunkCacheService) specKey(ns string, sp *ragkvv1.ChunkSpec) (chunkcache.Key, error) {
	dt, err := dtypeFromProto(sp.GetDtype())
	if err != nil {
		return chunkcache.Key{}, err
	}
	return s.c.Key(chunkcache.ChunkID{Namespace: ns, Model: fingerprintFromProto(sp.GetModel()), DType: dt, Tokens: sp.GetTokenIds()})
}

func dtypeFromProto(d ragkvv1.ChunkKVDType) (chunkcache.DType, error) {
	if d == ragkvv1.ChunkKVDType_CHUNK_KV_DTYPE_UNSPECIFIED {
		return 0, fmt.Errorf("%w: dtype is unspecified (want F32, F16, BF16, INT8, Q4, Q2 or MIXED)", chunkcache.ErrInvalid)
	}
	dt := chunkcache.DType(d)
	if !dt.Valid() || int32(d) > math.MaxUint8 {
		return 0, fmt.Errorf("%w: unknown dtype %d (want F32, F16, BF16, INT8, Q4, Q2 or MIXED)", chunkcache.ErrInvalid, d)
	}
	return dt, nil
}

func fingerprintFromProto(m *ragkvv1.ChunkModelFingerprint) chunkcache.Fingerprint {
	r := m.GetRope()
	return chunkcache.Fingerprint{
		Architecture: m.GetArchitecture(), WeightsDigest: m.GetWeightsDigest(), TokenizerDigest: m.GetTokenizerDigest(),
		RoPE: chunkcache.RoPEConfig{Theta: r.GetTheta(), Dims: int(r.GetDims()), Style: r.GetStyle(),
			Scaling: r.GetScaling(), Factor: r.GetFactor(), OriginalContext: int(r.GetOriginalContext())},
	}
}

func fingerprintToProto(f chunkcache.Fingerprint) *ragkvv1.ChunkModelFingerprint {
	return &ragkvv1.ChunkModelFingerprint{
		Architecture: f.Architecture, WeightsDigest: f.WeightsDigest, TokenizerDigest: f.TokenizerDigest,
		Rope: &ragkvv1.ChunkRoPEConfig{Theta: f.RoPE.Theta, Dims: uint32(f.RoPE.Dims), Style: f.RoPE.Style,
			Scaling: f.RoPE.Scaling, Factor: f.RoPE.Factor, OriginalContext: uint32(f.RoPE.OriginalContext)},
	}
}

func putSpecFromProto(h *ragkvv1.ChunkPutHeader) (chunkcache.PutSpec, error) {
	l := h.GetLayout()
	if l == nil {
		return chunkcache.PutSpec{}, invalidArg("PutChunk: header has no layout")
	}
	dt, err := dtypeFromProto(l.GetDtype())
	if err != nil {
		return chunkcache.PutSpec{}, toStatus(fmt.Errorf("PutChunk: layout: %w", err))
	}
	if h.GetPin() < ragkvv1.ChunkPin_CHUNK_PIN_UNPINNED || h.GetPin() > ragkvv1.ChunkPin_CHUNK_PIN_HARD {
		return chunkcache.PutSpec{}, invalidArg("PutChunk: unknown pin %d", h.GetPin())
	}
	if l.GetKScale() < 0 || l.GetKScale() > 2 || l.GetVScale() < 0 || l.GetVScale() > 2 {
		return chunkcache.PutSpec{}, invalidArg("PutChunk: layout: unknown scale mode (k %d, v %d)", l.GetKScale(), l.GetVScale())
	}
	return chunkcache.PutSpec{
		Namespace: h.GetNamespace(),
		Model:     fingerprintFromProto(h.GetModel()),
		Tokens:    h.GetTokenIds(),
		Layout: chunkcache.Layout{Layers: int(l.GetLayers()), KVHeads: int(l.GetKvHeads()), HeadDim: int(l.GetHeadDim()),
			DType: dt, KScale: chunkcache.ScaleMode(l.GetKScale()), VScale: chunkcache.ScaleMode(l.GetVScale()),
			Group: int(min(l.GetGroup(), math.MaxInt32)), Rotate: l.GetRotate(), HiBits: int(min(l.GetHiBits(), 255)), MixCentibits: int(min(l.GetMixCentibits(), math.MaxUint16))},
		PositionBase: h.GetPositionBase(),
		PreRoPE:      h.GetKPreRope(),
		Metadata:     h.GetMetadata(),
		Cost:         h.GetCost(),
		Pin:          chunkcache.Pin(h.GetPin()),
	}, nil
}

// LayoutToProto converts a layout (exported for the CLI).
func LayoutToProto(l chunkcache.Layout) *ragkvv1.ChunkKVLayout {
	return &ragkvv1.ChunkKVLayout{Layers: uint32(l.Layers), KvHeads: uint32(l.KVHeads), HeadDim: uint32(l.HeadDim),
		Dtype: ragkvv1.ChunkKVDType(l.DType), KScale: ragkvv1.ChunkKVScaleMode(l.KScale), VScale: ragkvv1.ChunkKVScaleMode(l.VScale),
		Group: uint32(l.Group), Rotate: l.Rotate, HiBits: uint32(l.HiBits), MixCentibits: uint32(l.MixCentibits)}
}

func chunkInfoToProto(in *chunkcache.ChunkInfo) *ragkvv1.ChunkInfo {
	return &ragkvv1.ChunkInfo{
		Key: append([]byte(nil), in.Key[:]...), Namespace: in.Namespace, Model: fingerprintToProto(in.Model),
		TokenIds: in.Tokens, Layout: LayoutToProto(in.Layout), PositionBase: in.PositionBase, Metadata: in.Metadata,
		Cost: in.Cost, Tier: in.Tier, Pin: ragkvv1.ChunkPin(in.Pin), StoredBytes: uint64(in.StoredBytes),
		CreatedUnixNanos: in.Created.UnixNano(), KPreRope: in.PreRoPE,
	}
}
