package server

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
)

// Limits bound what clients can make the server hold. Zero fields take the defaults
// (Limits.EnsureDefaults); negative ones turn a bound off.
type Limits struct {
	// MaxConcurrentStreams per connection (HTTP/2 SETTINGS; default 256).
	MaxConcurrentStreams int
	// KeepaliveMinTime: clients pinging more often are disconnected (GOAWAY
	// too_many_pings; default 10s). KeepaliveTime/Timeout: the server pings idle
	// connections and closes dead ones (default 2m, 20s).
	KeepaliveMinTime, KeepaliveTime, KeepaliveTimeout time.Duration
	// UnaryTimeout is the server-side deadline of unary RPCs whose client set none or
	// a later one (default 10m).
	UnaryTimeout time.Duration
	// MaxStagedBytes caps the layer bytes that all PutChunk streams in flight hold
	// together before they commit (default 2 GiB): a put that would pass it fails
	// ResourceExhausted instead of growing the heap.
	MaxStagedBytes int64
	// MinCapacityBytes and MaxCapacityBytes bound the tier capacities SetPolicy may
	// set (default: no bound; MaxCapacityBytes per tier name, no bound for tiers
	// absent). `ragkv serve` sets 1 MiB and the host's memory for the memory tier.
	MinCapacityBytes int64
	MaxCapacityBytes map[string]int64
}

// Default limits.
const (
	DefaultMaxConcurrentStreams = 256
	DefaultUnaryTimeout         = 10 * time.Minute
	DefaultMaxStagedBytes       = 2 << 30
	// DefaultMinCapacityBytes is the SetPolicy minimum `ragkv serve` sets.
	DefaultMinCapacityBytes = 1 << 20
)

// EnsureDefaults fills zero fields.
func (l *Limits) EnsureDefaults() {
	if l.MaxConcurrentStreams == 0 {
		l.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if l.KeepaliveMinTime == 0 {
		l.KeepaliveMinTime = 10 * time.Second
	}
	if l.KeepaliveTime == 0 {
		l.KeepaliveTime = 2 * time.Minute
	}
	if l.KeepaliveTimeout == 0 {
		l.KeepaliveTimeout = 20 * time.Second
	}
	if l.UnaryTimeout == 0 {
		l.UnaryTimeout = DefaultUnaryTimeout
	}
	if l.MaxStagedBytes == 0 {
		l.MaxStagedBytes = DefaultMaxStagedBytes
	}
}

// WithLimits replaces the default limits (applied by every New).
func WithLimits(l Limits) Option {
	return optionFunc(func(o *options) { o.limits = l })
}

// limiter enforces Limits in interceptors.
type limiter struct {
	l      Limits
	staged atomic.Int64
}

// serverOptions are the grpc.ServerOptions of the limits.
func (l Limits) serverOptions() []grpc.ServerOption {
	var out []grpc.ServerOption
	if l.MaxConcurrentStreams > 0 {
		out = append(out, grpc.MaxConcurrentStreams(uint32(l.MaxConcurrentStreams)))
	}
	if l.KeepaliveMinTime > 0 {
		out = append(out, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.KeepaliveMinTime, PermitWithoutStream: true}))
	}
	if l.KeepaliveTime > 0 {
		out = append(out, grpc.KeepaliveParams(keepalive.ServerParameters{Time: l.KeepaliveTime, Timeout: l.KeepaliveTimeout}))
	}
	return out
}

func (lm *limiter) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := lm.checkPolicy(req); err != nil {
		return nil, err
	}
	if lm.l.UnaryTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lm.l.UnaryTimeout)
		defer cancel()
	}
	return h(ctx, req)
}

func (lm *limiter) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if lm.l.MaxStagedBytes <= 0 || info.FullMethod != "/ragkv.v1.ChunkCache/PutChunk" {
		return h(srv, ss)
	}
	ps := &stagedStream{ServerStream: ss, lm: lm}
	defer func() { lm.staged.Add(-ps.held) }()
	return h(srv, ps)
}

// stagedStream counts the layer bytes a PutChunk stream received (held until the
// handler returns: committed, or aborted).
type stagedStream struct {
	grpc.ServerStream
	lm   *limiter
	held int64
}

func (s *stagedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	r, ok := m.(*ragkvv1.PutChunkRequest)
	if !ok || r.GetLayer() == nil {
		return nil
	}
	f := r.GetLayer()
	n := int64(len(f.GetK()) + len(f.GetV()) + len(f.GetKScales()) + len(f.GetVScales()))
	if now := s.lm.staged.Add(n); now > s.lm.l.MaxStagedBytes {
		s.lm.staged.Add(-n)
		return status.Errorf(codes.ResourceExhausted, "PutChunk: puts in flight already stage %d bytes (max %d); retry later", now-n, s.lm.l.MaxStagedBytes)
	}
	s.held += n
	return nil
}

// Staged is the layer bytes PutChunk streams in flight hold now (tests, metrics).
func (s *Server) Staged() int64 { return s.lim.staged.Load() }

// checkPolicy bounds SetPolicy capacities.
func (lm *limiter) checkPolicy(req any) error {
	r, ok := req.(*ragkvv1.SetChunkPolicyRequest)
	if !ok {
		return nil
	}
	for _, u := range r.GetTiers() {
		if u.CapacityBytes == nil {
			continue
		}
		c := *u.CapacityBytes
		if lm.l.MinCapacityBytes > 0 && c < uint64(lm.l.MinCapacityBytes) {
			return status.Errorf(codes.InvalidArgument, "SetPolicy: tier %s: capacity %d bytes is below the minimum %d", u.GetTier(), c, lm.l.MinCapacityBytes)
		}
		if max, ok := lm.l.MaxCapacityBytes[u.GetTier()]; ok && max > 0 && c > uint64(max) {
			return status.Errorf(codes.InvalidArgument, "SetPolicy: tier %s: capacity %d bytes is above the maximum %d", u.GetTier(), c, max)
		}
	}
	return nil
}
