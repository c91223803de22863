package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
)

func init() {
	registerErrorCodes(errRow{chunkcache.ErrEventsLost, codes.OutOfRange})
}

// ReplicaOptions say who this replica is among the replicas behind a router, for
// Locate and WatchChunks.
type ReplicaOptions struct {
	// ID names this replica in Locate answers and chunk events (`ragkv serve` uses
	// --replica-id, by default its gRPC address, which is what a router dials).
	ID string
	// Peers are the gRPC addresses of the other replicas that Locate asks (with
	// local_only) unless the request is local_only itself.
	Peers []string
	// PeerTimeout bounds each peer's answer (default 2s); a peer that does not answer
	// is reported in LocateResponse.unreachable, not as an error.
	PeerTimeout time.Duration
	// DialOptions connect to the peers (default: plaintext); `ragkv serve` passes its
	// client TLS flags (--tls-ca, ...). The caller's bearer token is forwarded.
	DialOptions []grpc.DialOption
}

// WithReplica sets this replica's identity and peers.
func WithReplica(r ReplicaOptions) Option {
	return optionFunc(func(o *options) { o.replica = r })
}

// PromptKeyer keys a prompt's chunks as Prefill does (blend.Engine; attached by
// WithInference).
type PromptKeyer interface {
	PromptKeys(ctx context.Context, ns, system string, chunks []string) ([]blend.PromptKey, error)
}

// maxLocateChunks bounds one Locate request.
const maxLocateChunks = 1 << 16

// cluster is the chunk-cache service's part that knows about other replicas.
type cluster struct {
	replica ReplicaOptions
	keyer   PromptKeyer
	peers   []peer
}

type peer struct {
	addr   string
	client ragkvv1.ChunkCacheClient
}

func (s *chunkCacheService) initCluster(o *options) {
	s.replica, s.keyer = o.replica, o.promptKeys
	if s.replica.PeerTimeout <= 0 {
		s.replica.PeerTimeout = 2 * time.Second
	}
	var conns []*grpc.ClientConn
	for _, addr := range o.replica.Peers {
		dopts := o.replica.DialOptions
		if len(dopts) == 0 {
			dopts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
		}
		conn, err := grpc.NewClient(addr, dopts...)
		if err != nil {
			// A bad peer address is reported by every Locate that would ask it.
			s.peers = append(s.peers, peer{addr: addr})
			s.log.Warn("locate: bad peer address", "peer", addr, "err", err)
			continue
		}
		conns = append(conns, conn)
		s.peers = append(s.peers, peer{addr: addr, client: ragkvv1.NewChunkCacheClient(conn)})
	}
	if len(conns) > 0 {
		o.stopHooks = append(o.stopHooks, func() {
			for _, c := range conns {
				_ = c.Close()
			}
		})
	}
}

func (s *chunkCacheService) sharedTiers() map[string]bool {
	out := map[string]bool{}
	for _, t := range s.c.Stats().Tiers {
		if t.Shared {
			out[t.Name] = true
		}
	}
	return out
}

func (s *chunkCacheService) Locate(ctx context.Context, req *ragkvv1.LocateRequest) (*ragkvv1.LocateResponse, error) {
	n := len(req.GetKeys()) + len(req.GetSpecs()) + len(req.GetChunkTexts())
	if n == 0 {
		return nil, invalidArg("Locate: no keys, specs or chunk texts")
	}
	if n > maxLocateChunks {
		return nil, invalidArg("Locate: %d chunks (at most %d)", n, maxLocateChunks)
	}
	ns := req.GetNamespace()
	if _, err := chunkcache.NormalizeNamespace(ns); err != nil {
		return nil, toStatus(fmt.Errorf("Locate: %w", err))
	}
	out := &ragkvv1.LocateResponse{Replica: s.replica.ID}
	keys := make([]chunkcache.Key, 0, n)
	add := func(k chunkcache.Key, tokens int, kind string) {
		keys = append(keys, k)
		out.Chunks = append(out.Chunks, &ragkvv1.LocatedChunk{Key: append([]byte(nil), k[:]...), Tokens: uint32(tokens), Kind: kind})
	}
	for i, b := range req.GetKeys() {
		k, err := chunkcache.KeyFromBytes(b)
		if err != nil {
			return nil, invalidArg("Locate: keys[%d]: key is %d bytes, want 32", i, len(b))
		}
		add(k, 0, "")
	}
	for i, sp := range req.GetSpecs() {
		k, err := s.specKey(ns, sp)
		if err != nil {
			return nil, toStatus(fmt.Errorf("Locate: specs[%d]: %w", i, err))
		}
		add(k, len(sp.GetTokenIds()), "")
	}
	if len(req.GetChunkTexts()) > 0 {
		if s.keyer == nil {
			return nil, status.Error(codes.FailedPrecondition, "Locate: chunk_texts need the Inference service (start the replica with --model); give keys instead")
		}
		pks, err := s.keyer.PromptKeys(ctx, ns, req.GetSystem(), req.GetChunkTexts())
		if err != nil {
			return nil, toStatus(fmt.Errorf("Locate: %w", err))
		}
		for _, pk := range pks {
			add(pk.Key, pk.Tokens, pk.Kind)
		}
	}
	res, err := s.c.Lookup(ctx, ns, keys)
	if err != nil && !errors.Is(err, chunkcache.ErrUnknownNamespace) {
		return nil, toStatus(fmt.Errorf("Locate: %w", err))
	}
	shared := s.sharedTiers()
	for i, r := range res {
		lc := out.Chunks[i]
		var local []string
		for _, t := range r.Tiers {
			if shared[t] {
				lc.SharedTiers = append(lc.SharedTiers, t)
			} else {
				local = append(local, t)
			}
		}
		if len(local) > 0 {
			lc.Replicas = append(lc.Replicas, &ragkvv1.ChunkLocation{Replica: s.replica.ID, Tiers: local})
		}
		if r.Tokens > int(lc.Tokens) {
			lc.Tokens = uint32(r.Tokens)
		}
	}
	if req.GetLocalOnly() || len(s.peers) == 0 {
		return out, nil
	}
	peerReq := &ragkvv1.LocateRequest{Namespace: ns, LocalOnly: true}
	for _, c := range out.Chunks {
		peerReq.Keys = append(peerReq.Keys, c.Key)
	}
	answers := make([]*ragkvv1.LocateResponse, len(s.peers))
	errs := make([]error, len(s.peers))
	var wg sync.WaitGroup
	for i, p := range s.peers {
		if p.client == nil {
			errs[i] = fmt.Errorf("bad address")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(forwardAuth(ctx), s.replica.PeerTimeout)
			defer cancel()
			answers[i], errs[i] = p.client.Locate(pctx, peerReq)
			if errs[i] == nil && len(answers[i].GetChunks()) != len(out.Chunks) {
				errs[i] = fmt.Errorf("answered %d chunks for %d", len(answers[i].GetChunks()), len(out.Chunks))
			}
		}()
	}
	wg.Wait()
	for i, a := range answers {
		if errs[i] != nil {
			out.Unreachable = append(out.Unreachable, fmt.Sprintf("%s: %v", s.peers[i].addr, errs[i]))
			continue
		}
		for j, pc := range a.GetChunks() {
			lc := out.Chunks[j]
			lc.Replicas = append(lc.Replicas, pc.GetReplicas()...)
			for _, t := range pc.GetSharedTiers() {
				if !slices.Contains(lc.SharedTiers, t) {
					lc.SharedTiers = append(lc.SharedTiers, t)
				}
			}
			lc.Tokens = max(lc.Tokens, pc.GetTokens())
		}
	}
	return out, nil
}

var eventTypes = map[chunkcache.EventType]ragkvv1.ChunkEventType{
	chunkcache.EventStored:   ragkvv1.ChunkEventType_CHUNK_EVENT_STORED,
	chunkcache.EventEvicted:  ragkvv1.ChunkEventType_CHUNK_EVENT_EVICTED,
	chunkcache.EventPromoted: ragkvv1.ChunkEventType_CHUNK_EVENT_PROMOTED,
	chunkcache.EventDemoted:  ragkvv1.ChunkEventType_CHUNK_EVENT_DEMOTED,
	chunkcache.EventDeleted:  ragkvv1.ChunkEventType_CHUNK_EVENT_DELETED,
}

func (s *chunkCacheService) eventToProto(e *chunkcache.Event, epoch uint64) *ragkvv1.ChunkEvent {
	return &ragkvv1.ChunkEvent{
		Epoch: epoch, Seq: e.Seq, Type: eventTypes[e.Type], Tier: e.Tier, FromTier: e.From,
		Key: append([]byte(nil), e.Key[:]...), Namespace: e.Namespace, Kind: e.Kind, Bytes: uint64(e.Bytes),
		Tokens: uint32(e.Tokens), UnixNanos: e.UnixNanos, Replica: s.replica.ID,
	}
}

func (s *chunkCacheService) WatchChunks(req *ragkvv1.WatchChunksRequest, stream grpc.ServerStreamingServer[ragkvv1.ChunkEvent]) error {
	ctx := stream.Context()
	nsFilter := ""
	if req.GetNamespace() != "" {
		n, err := chunkcache.NormalizeNamespace(req.GetNamespace())
		if err != nil {
			return toStatus(fmt.Errorf("WatchChunks: %w", err))
		}
		nsFilter = n
	}
	cur := s.c.EventPosition()
	if cur.Epoch == 0 {
		return status.Error(codes.FailedPrecondition, "WatchChunks: the chunk cache runs without an event log")
	}
	pos := chunkcache.EventPosition{Epoch: req.GetEpoch(), Seq: req.GetAfterSeq()}
	resync := pos.Epoch == 0
	w := s.c.Watch(pos)
	for {
		if resync {
			var err error
			if pos, err = s.sendSnapshot(ctx, stream, nsFilter); err != nil {
				return err
			}
			w, resync = s.c.Watch(pos), false
		}
		evs, err := w.Next(ctx, 512)
		if errors.Is(err, chunkcache.ErrEventsLost) {
			resync = true
			continue
		}
		if err != nil {
			return toStatus(err)
		}
		for i := range evs {
			if nsFilter != "" && evs[i].Namespace != nsFilter {
				continue
			}
			if err := stream.Send(s.eventToProto(&evs[i], w.Position().Epoch)); err != nil {
				return err
			}
		}
	}
}

// sendSnapshot sends RESET, the snapshot and SNAPSHOT_DONE, and returns the position
// to watch from.
func (s *chunkCacheService) sendSnapshot(ctx context.Context, stream grpc.ServerStreamingServer[ragkvv1.ChunkEvent], nsFilter string) (chunkcache.EventPosition, error) {
	epoch := s.c.EventPosition().Epoch
	if err := stream.Send(&ragkvv1.ChunkEvent{Epoch: epoch, Type: ragkvv1.ChunkEventType_CHUNK_EVENT_RESET, Replica: s.replica.ID,
		UnixNanos: time.Now().UnixNano()}); err != nil {
		return chunkcache.EventPosition{}, err
	}
	pos, err := s.c.Snapshot(ctx, func(e chunkcache.Event) error {
		if nsFilter != "" && e.Namespace != nsFilter {
			return nil
		}
		pe := s.eventToProto(&e, epoch)
		pe.Snapshot = true
		return stream.Send(pe)
	})
	if err != nil {
		return pos, toStatus(err)
	}
	// The position of the snapshot is of the same epoch (the epoch changes only when
	// the cache restarts, i.e. never within this stream).
	err = stream.Send(&ragkvv1.ChunkEvent{Epoch: pos.Epoch, Seq: pos.Seq, Type: ragkvv1.ChunkEventType_CHUNK_EVENT_SNAPSHOT_DONE,
		Replica: s.replica.ID, UnixNanos: time.Now().UnixNano()})
	return pos, err
}
