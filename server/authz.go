package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server/auth"
)

// PutByMetadataKey is the chunk metadata entry that records which identity put a
// chunk through PutChunk (set by the server, whatever the client sent).
const PutByMetadataKey = "ragkv.put_by"

// DefaultMaxHandlesPerIdentity bounds the Prefill handles one identity holds at once
// when its auth entry sets no max_handles.
const DefaultMaxHandlesPerIdentity = 64

// AuthOptions configure WithAuth.
type AuthOptions struct {
	// RegistryExists tells whether a tool registry exists (replacing one is
	// admin-only; a writer may create one in its scope). Nil: every RegisterTools
	// needs admin.
	RegistryExists func(name string) bool
	// MaxHandlesPerIdentity is the default bound on live Prefill handles per identity
	// (0: DefaultMaxHandlesPerIdentity).
	MaxHandlesPerIdentity int
}

// WithAuth makes every RPC but the health service authenticate (a bearer token in the
// authorization metadata, or a client certificate whose subject names an identity)
// and authorizes it against the identity's role and scopes (see methodRoles and
// authorize). Requests outside an identity's namespaces, collections or registries
// get the answer a missing one gets, so that an identity never learns whether a name
// it may not use exists.
func WithAuth(st *auth.Store, ao AuthOptions) Option {
	if ao.MaxHandlesPerIdentity <= 0 {
		ao.MaxHandlesPerIdentity = DefaultMaxHandlesPerIdentity
	}
	a := &authz{st: st, o: ao, handles: map[string]handleOwner{}}
	return WithInterceptors(a.unary, a.stream)
}

type authz struct {
	st *auth.Store
	o  AuthOptions

	mu      sync.Mutex
	handles map[string]handleOwner // Prefill handle → owner
}

type handleOwner struct {
	identity string
	expires  time.Time
}

// Method roles. Methods missing from the table (new RPCs not yet classified) are
// admin-only; the health service needs no credentials.
var methodRoles = map[string]auth.Role{
	"/ragkv.v1.ChunkCache/PutChunk":    auth.Writer,
	"/ragkv.v1.ChunkCache/GetChunk":    auth.Reader,
	"/ragkv.v1.ChunkCache/Lookup":      auth.Reader,
	"/ragkv.v1.ChunkCache/DeleteChunk": auth.Admin,
	"/ragkv.v1.ChunkCache/Pin":         auth.Writer, // HARD: admin (authorize)
	"/ragkv.v1.ChunkCache/Unpin":       auth.Writer,
	"/ragkv.v1.ChunkCache/Stats":       auth.Reader,
	"/ragkv.v1.ChunkCache/GetPolicy":   auth.Reader,
	"/ragkv.v1.ChunkCache/SetPolicy":   auth.Admin,
	"/ragkv.v1.ChunkCache/WatchChunks": auth.Reader,
	"/ragkv.v1.ChunkCache/Locate":      auth.Reader,
	"/ragkv.v1.ChunkCache/RotateSalt":  auth.Admin, // all namespaces: an admin of every namespace (authorize)

	"/ragkv.v1.Inference/Prefill":              auth.Reader,
	"/ragkv.v1.Inference/Generate":             auth.Reader,
	"/ragkv.v1.Inference/PrecomputeChunks":     auth.Writer,
	"/ragkv.v1.Inference/PrecomputeCollection": auth.Writer,

	"/ragkv.v1.Retrieval/Ingest":             auth.Writer,
	"/ragkv.v1.Retrieval/Retrieve":           auth.Reader,
	"/ragkv.v1.Retrieval/RegisterTools":      auth.Writer, // replacing one: admin (authorize)
	"/ragkv.v1.Retrieval/RetrieveTools":      auth.Reader,
	"/ragkv.v1.Retrieval/FitFusion":          auth.Reader, // persist: writer (authorize)
	"/ragkv.v1.Retrieval/DescribeCollection": auth.Reader,
	"/ragkv.v1.Retrieval/RebuildCollection":  auth.Admin,
	"/ragkv.v1.Retrieval/DeleteCollection":   auth.Admin,
	"/ragkv.v1.Retrieval/CompactCollection":  auth.Writer,
	"/ragkv.v1.Retrieval/ListCollections":    auth.Reader, // answered with the caller's collections only

	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      auth.Reader,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": auth.Reader,
}

func exempt(method string) bool { return strings.HasPrefix(method, "/grpc.health.v1.Health/") }

func rpcName(method string) string { return method[strings.LastIndexByte(method, '/')+1:] }

// authenticate finds the caller's identity: a bearer token first, else a verified
// client certificate's subject common name.
func (a *authz) authenticate(ctx context.Context) (*auth.Identity, error) {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			tok, found := strings.CutPrefix(v[0], "Bearer ")
			if !found {
				return nil, status.Error(codes.Unauthenticated, "authorization metadata must be \"Bearer <token>\"")
			}
			id, err := a.st.Token(strings.TrimSpace(tok))
			if err != nil {
				return nil, status.Error(codes.Unauthenticated, err.Error())
			}
			return id, nil
		}
	}
	if cn := peerCertSubject(ctx); cn != "" {
		id, err := a.st.CertSubject(cn)
		if err != nil {
			return nil, status.Error(codes.Unauthenticated, err.Error())
		}
		return id, nil
	}
	return nil, status.Error(codes.Unauthenticated, "no credentials: send authorization: Bearer <token> (ragkv --token or RAGKV_TOKEN) or a client certificate")
}

// peerCertSubject is the verified client certificate's subject CN ("" if none).
func peerCertSubject(ctx context.Context) string {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return ""
	}
	var leaf *x509.Certificate = ti.State.VerifiedChains[0][0]
	return leaf.Subject.CommonName
}

// admit authenticates, rate-limits and checks the method's role.
func (a *authz) admit(ctx context.Context, method string) (*auth.Identity, error) {
	id, err := a.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	if !a.st.Allow(id) {
		return nil, status.Errorf(codes.ResourceExhausted, "identity %s: rate limit of %g requests/s exceeded", id.Name, id.RatePerSecond)
	}
	need, ok := methodRoles[method]
	if !ok {
		need = auth.Admin
	}
	if !id.Allows(need) {
		return nil, status.Errorf(codes.PermissionDenied, "identity %s (%s) may not call %s (needs %s)", id.Name, id.Role, rpcName(method), need)
	}
	return id, nil
}

func (a *authz) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if exempt(info.FullMethod) {
		return h(ctx, req)
	}
	id, err := a.admit(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if err := a.authorize(id, info.FullMethod, req); err != nil {
		return nil, err
	}
	if r, ok := req.(*ragkvv1.PrefillRequest); ok && r.GetKeepHandle() {
		if err := a.handleRoom(id); err != nil {
			return nil, err
		}
	}
	resp, err := h(auth.NewContext(ctx, id), req)
	if err != nil {
		return resp, err
	}
	switch r := resp.(type) {
	case *ragkvv1.ChunkCacheStatsResponse:
		if !id.AllNamespaces() {
			var mine []string
			for _, ns := range r.Namespaces {
				if id.Namespace(ns) {
					mine = append(mine, ns)
				}
			}
			r.Namespaces = mine
			var stats []*ragkvv1.ChunkNamespaceStats
			for _, n := range r.NamespaceStats {
				if id.Namespace(n.GetNamespace()) {
					stats = append(stats, n)
				}
			}
			r.NamespaceStats = stats
		}
	case *ragkvv1.ListCollectionsResponse:
		var mine []*ragkvv1.RetrievalCollectionInfo
		for _, c := range r.GetCollections() {
			if id.Collection(c.GetName()) {
				mine = append(mine, c)
			}
		}
		r.Collections = mine
	case *ragkvv1.PrefillResponse:
		if r.GetHandle() != "" {
			a.mu.Lock()
			a.handles[r.GetHandle()] = handleOwner{identity: id.Name, expires: time.Unix(0, r.GetHandleExpiresUnixNanos())}
			a.mu.Unlock()
		}
	}
	return resp, nil
}

func (a *authz) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if exempt(info.FullMethod) {
		return h(srv, ss)
	}
	id, err := a.admit(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &authStream{ServerStream: ss, a: a, id: id, method: info.FullMethod, ctx: auth.NewContext(ss.Context(), id)})
}

// authStream authorizes every message the handler receives before the handler sees
// it, and stamps PutChunk headers with the identity.
type authStream struct {
	grpc.ServerStream
	a      *authz
	id     *auth.Identity
	method string
	ctx    context.Context
	// keepHandle: a Generate from a prefill request asked to keep its handle.
	keepHandle bool
}

func (s *authStream) Context() context.Context { return s.ctx }

func (s *authStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if g, ok := m.(*ragkvv1.GenerateRequest); ok && g.GetPrefill() != nil {
		s.keepHandle = g.GetKeepHandle()
	}
	return s.a.authorize(s.id, s.method, m)
}

// SendMsg records the owner of a handle that a Generate from a prefill request keeps.
func (s *authStream) SendMsg(m any) error {
	if g, ok := m.(*ragkvv1.GenerateResponse); ok && s.keepHandle && g.GetPrefill().GetHandle() != "" {
		p := g.GetPrefill()
		s.a.mu.Lock()
		s.a.handles[p.GetHandle()] = handleOwner{identity: s.id.Name, expires: time.Unix(0, p.GetHandleExpiresUnixNanos())}
		s.a.mu.Unlock()
	}
	return s.ServerStream.SendMsg(m)
}

// authorize checks one request message against the identity's scopes (and the
// role rules that depend on the request).
func (a *authz) authorize(id *auth.Identity, method string, msg any) error {
	rpc := rpcName(method)
	ns := func(name string) error {
		n, err := chunkcache.NormalizeNamespace(name)
		if err != nil {
			return nil // the handler reports the bad name as for anyone
		}
		if !id.Namespace(n) {
			return status.Error(codes.NotFound, fmt.Sprintf("%s: %v", rpc, fmt.Errorf("%w %q", chunkcache.ErrUnknownNamespace, n)))
		}
		return nil
	}
	coll := func(name string) error {
		if name != "" && !id.Collection(name) {
			return status.Error(codes.NotFound, fmt.Errorf("%w: %q", retrieval.ErrCollectionNotFound, name).Error())
		}
		return nil
	}
	reg := func(name string) error {
		if name != "" && !id.Registry(name) {
			return status.Error(codes.NotFound, fmt.Errorf("%w: %q", retrieval.ErrToolsNotFound, name).Error())
		}
		return nil
	}
	switch r := msg.(type) {
	case *ragkvv1.PutChunkRequest:
		h := r.GetHeader()
		if h == nil {
			return nil // layer frames: the header was checked
		}
		if err := ns(h.GetNamespace()); err != nil {
			return err
		}
		if n, err := chunkcache.NormalizeNamespace(h.GetNamespace()); err == nil && a.st.ServerComputedOnly(n) {
			return status.Errorf(codes.PermissionDenied, "PutChunk: namespace %q takes only KV the server computed", n)
		}
		if h.GetPin() == ragkvv1.ChunkPin_CHUNK_PIN_HARD && !id.Allows(auth.Admin) {
			return status.Errorf(codes.PermissionDenied, "identity %s (%s) may not hard-pin (needs admin)", id.Name, id.Role)
		}
		if h.Metadata == nil {
			h.Metadata = map[string][]byte{}
		}
		h.Metadata[PutByMetadataKey] = []byte(id.Name)
		return nil
	case *ragkvv1.GetChunkRequest:
		return ns(r.GetChunk().GetNamespace())
	case *ragkvv1.ChunkLookupRequest:
		return ns(r.GetNamespace())
	case *ragkvv1.DeleteChunkRequest:
		return ns(r.GetChunk().GetNamespace())
	case *ragkvv1.PinChunkRequest:
		if r.GetPin() == ragkvv1.ChunkPin_CHUNK_PIN_HARD || r.GetPin() == ragkvv1.ChunkPin_CHUNK_PIN_UNPINNED {
			if !id.Allows(auth.Admin) {
				return status.Errorf(codes.PermissionDenied, "identity %s (%s) may not hard-pin (needs admin)", id.Name, id.Role)
			}
		}
		return ns(r.GetChunk().GetNamespace())
	case *ragkvv1.UnpinChunkRequest:
		return ns(r.GetChunk().GetNamespace())
	case *ragkvv1.WatchChunksRequest:
		if r.GetNamespace() == "" {
			if !id.AllNamespaces() {
				return status.Errorf(codes.PermissionDenied, "WatchChunks: identity %s may watch only its namespaces; name one", id.Name)
			}
			return nil
		}
		return ns(r.GetNamespace())
	case *ragkvv1.LocateRequest:
		return ns(r.GetNamespace())
	case *ragkvv1.RotateSaltRequest:
		if r.GetNamespace() == "" && !id.AllNamespaces() {
			return status.Errorf(codes.PermissionDenied, "identity %s may not rotate every namespace's salt (its scope is not \"*\"); name a namespace", id.Name)
		}
		return ns(r.GetNamespace())
	case *ragkvv1.PrefillRequest:
		if err := coll(r.GetRetrieval().GetCollection()); err != nil {
			return err
		}
		return ns(r.GetNamespace())
	case *ragkvv1.GenerateRequest:
		if p := r.GetPrefill(); p != nil {
			if err := coll(p.GetRetrieval().GetCollection()); err != nil {
				return err
			}
			return ns(p.GetNamespace()) // Generate's own prefill keeps no handle
		}
		return a.useHandle(id, r.GetHandle(), r.GetKeepHandle())
	case *ragkvv1.PrecomputeChunksRequest:
		return ns(r.GetNamespace())
	case *ragkvv1.IngestRequest:
		return coll(r.GetCollection())
	case *ragkvv1.RetrieveRequest:
		if err := coll(r.GetCollection()); err != nil {
			return err
		}
		if r.GetWithKeys() { // chunk-cache keys and "cached" answer for that namespace
			return ns(r.GetNamespace())
		}
		return nil
	case *ragkvv1.PrecomputeCollectionRequest:
		if err := coll(r.GetCollection()); err != nil {
			return err
		}
		return ns(r.GetNamespace())
	case *ragkvv1.DeleteCollectionRequest:
		return coll(r.GetCollection())
	case *ragkvv1.CompactCollectionRequest:
		return coll(r.GetCollection())
	case *ragkvv1.DescribeCollectionRequest:
		return coll(r.GetCollection())
	case *ragkvv1.RebuildCollectionRequest:
		return coll(r.GetCollection())
	case *ragkvv1.FitFusionRequest:
		if r.GetPersist() && !id.Allows(auth.Writer) {
			return status.Errorf(codes.PermissionDenied, "identity %s (%s) may not persist a fusion weight (needs writer)", id.Name, id.Role)
		}
		return coll(r.GetCollection())
	case *ragkvv1.RetrieveToolsRequest:
		return reg(r.GetRegistry())
	case *ragkvv1.RegisterToolsRequest:
		if err := reg(r.GetRegistry()); err != nil {
			return err
		}
		if !id.Allows(auth.Admin) && (a.o.RegistryExists == nil || a.o.RegistryExists(r.GetRegistry())) {
			return status.Errorf(codes.PermissionDenied, "identity %s (%s) may not replace tool registry %q (needs admin)", id.Name, id.Role, r.GetRegistry())
		}
		return nil
	}
	return nil
}

// handleRoom refuses a prefill that would give the identity more live handles than
// its bound.
func (a *authz) handleRoom(id *auth.Identity) error {
	limit := id.MaxHandles
	if limit <= 0 {
		limit = a.o.MaxHandlesPerIdentity
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for h, o := range a.handles {
		if !o.expires.IsZero() && o.expires.Before(now) {
			delete(a.handles, h)
			continue
		}
		if o.identity == id.Name {
			n++
		}
	}
	if n >= limit {
		return status.Errorf(codes.ResourceExhausted, "identity %s holds %d prefill handles (max %d); generate from them or let them expire", id.Name, n, limit)
	}
	return nil
}

// useHandle lets only a handle's owner continue from it; another identity gets the
// answer a missing handle gets.
func (a *authz) useHandle(id *auth.Identity, handle string, keep bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	o, ok := a.handles[handle]
	if !ok || o.identity != id.Name {
		return status.Error(codes.NotFound, fmt.Errorf("%w: %q", blend.ErrHandleNotFound, handle).Error())
	}
	if !keep {
		delete(a.handles, handle)
	}
	return nil
}

// forwardAuth copies the caller's authorization metadata onto the outgoing context, so
// that a peer asked on the caller's behalf (Locate) authorizes the same identity.
func forwardAuth(ctx context.Context) context.Context {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	if v := md.Get("authorization"); len(v) > 0 {
		return metadata.AppendToOutgoingContext(ctx, "authorization", v[0])
	}
	return ctx
}
