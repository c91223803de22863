// Package server owns ragkv's network surface: the gRPC services (chunk cache, fused
// prefill, retrieval), the standard gRPC health and reflection services, graceful stop,
// and the admin HTTP listener (/metrics for Prometheus, /healthz).
//
// It is the only place where Go errors become gRPC statuses (see errors.go): the
// packages behind it return wrapped sentinel errors and never import grpc/status.
//
// Components are attached with functional options (WithChunkCache, ...); the server
// does not own them — whoever constructed a component closes it after Stop returns.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server/auth"
)

// DefaultMaxRecvMsgBytes bounds a single inbound gRPC message. Chunk KV frames are sent
// layer by layer, so one message holds one layer of one chunk.
const DefaultMaxRecvMsgBytes = 64 << 20

// Option configures a Server.
type Option interface{ apply(*options) }

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

type options struct {
	logger          *slog.Logger
	registerer      prometheus.Registerer
	gatherer        prometheus.Gatherer
	maxRecvMsgBytes int
	grpcOpts        []grpc.ServerOption
	// services registered on the gRPC server, in option order.
	services []func(*grpc.Server, *options)
	// serviceNames are reported SERVING by the health service.
	serviceNames []string
	// adminHandlers are extra admin HTTP endpoints (path -> handler).
	adminHandlers map[string]http.Handler
	// replica and promptKeys serve Locate and WatchChunks (cluster.go).
	replica    ReplicaOptions
	promptKeys PromptKeyer
	// retrieval is the store of WithRetrieval, for the retrieval sources of Prefill
	// and Generate (rag.go).
	retrieval *retrieval.Store
	// stopHooks run after the gRPC server stopped (closing peer connections).
	stopHooks []func()
	// healthChecks and healthInterval drive the health service (health.go).
	healthChecks   map[string]HealthCheck
	healthInterval time.Duration
	// unary and stream are interceptors of the trust boundary (auth, limits), run
	// after the metrics and guard interceptors, in option order.
	unary  []grpc.UnaryServerInterceptor
	stream []grpc.StreamServerInterceptor
	// tls is the gRPC listener's TLS configuration (transport.go; nil: plaintext).
	tls *tls.Config
	// adminAuth guards the admin listener (adminauth.go; nil: open).
	adminAuth *auth.Store
	// limits bound streams, keepalives, deadlines, staged bytes, SetPolicy (limits.go).
	limits Limits
}

// WithLogger sets the structured logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithMetrics sets where metrics are registered and gathered from. If reg also implements
// prometheus.Gatherer it is used for /metrics. Default: a fresh private registry.
func WithMetrics(reg prometheus.Registerer) Option {
	return optionFunc(func(o *options) {
		o.registerer = reg
		if g, ok := reg.(prometheus.Gatherer); ok {
			o.gatherer = g
		}
	})
}

// WithMaxRecvMsgBytes bounds the size of one inbound gRPC message.
func WithMaxRecvMsgBytes(n int) Option {
	return optionFunc(func(o *options) { o.maxRecvMsgBytes = n })
}

// WithGRPCOptions appends raw grpc.ServerOptions (e.g. for tests).
func WithGRPCOptions(opts ...grpc.ServerOption) Option {
	return optionFunc(func(o *options) { o.grpcOpts = append(o.grpcOpts, opts...) })
}

// WithAdminHandler mounts an extra handler on the admin HTTP listener.
func WithAdminHandler(path string, h http.Handler) Option {
	return optionFunc(func(o *options) {
		if o.adminHandlers == nil {
			o.adminHandlers = map[string]http.Handler{}
		}
		o.adminHandlers[path] = h
	})
}

// withService is how the per-service files (chunkcache.go, ...) attach a gRPC service.
func withService(name string, register func(*grpc.Server)) Option {
	return withServiceOptions(name, func(s *grpc.Server, _ *options) { register(s) })
}

// withServiceOptions attaches a service that reads the final options (all of them
// applied) when it is registered.
func withServiceOptions(name string, register func(*grpc.Server, *options)) Option {
	return optionFunc(func(o *options) {
		o.services = append(o.services, register)
		o.serviceNames = append(o.serviceNames, name)
	})
}

// Server is a ragkv gRPC server plus its admin HTTP endpoint. Create it with New, run it
// with Serve (and optionally ServeAdmin), stop it with Stop. It is safe for concurrent use.
type Server struct {
	opts   options
	log    *slog.Logger
	grpc   *grpc.Server
	health *health.Server
	hstate *healthState
	lim    *limiter

	mu    sync.Mutex
	admin *http.Server
}

// New builds a Server. It registers the health and reflection services and every
// service attached through options.
func New(opts ...Option) (*Server, error) {
	o := options{maxRecvMsgBytes: DefaultMaxRecvMsgBytes}
	for _, opt := range opts {
		opt.apply(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	if o.registerer == nil {
		reg := prometheus.NewRegistry()
		o.registerer, o.gatherer = reg, reg
	}
	if o.gatherer == nil {
		o.gatherer = prometheus.NewRegistry()
	}
	if o.maxRecvMsgBytes <= 0 {
		return nil, fmt.Errorf("server: max receive message size must be positive, got %d", o.maxRecvMsgBytes)
	}
	if o.healthInterval <= 0 {
		o.healthInterval = DefaultHealthInterval
	}
	m, err := newGRPCMetrics(o.registerer)
	if err != nil {
		return nil, err
	}
	g := guard{log: o.logger}
	o.limits.EnsureDefaults()
	lim := &limiter{l: o.limits}
	gopts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(o.maxRecvMsgBytes),
		grpc.MaxSendMsgSize(o.maxRecvMsgBytes),
		// Order: metrics, guard (recovery, error mapping), the trust boundary's
		// interceptors (auth) and then the limits, so that unauthenticated callers are
		// refused before they stage bytes.
		grpc.ChainUnaryInterceptor(append(append([]grpc.UnaryServerInterceptor{m.unary, g.unary}, o.unary...), lim.unary)...),
		grpc.ChainStreamInterceptor(append(append([]grpc.StreamServerInterceptor{m.stream, g.stream}, o.stream...), lim.stream)...),
	}, o.limits.serverOptions()...)
	gopts = append(gopts, o.grpcOpts...)
	gs := grpc.NewServer(gopts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	reflection.Register(gs)
	s := &Server{log: o.logger, grpc: gs, health: hs, lim: lim}
	s.hstate = newHealthState(s)
	for _, reg := range o.services {
		reg(gs, &o)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range o.serviceNames {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.opts = o
	return s, nil
}

// GRPC exposes the underlying grpc.Server (for tests that serve on a bufconn listener).
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Serve accepts gRPC connections on lis until Stop is called. It returns nil after a
// graceful stop.
func (s *Server) Serve(lis net.Listener) error {
	s.log.Info("grpc listening", "addr", lis.Addr().String())
	s.hstate.start()
	if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("server: grpc serve: %w", err)
	}
	return nil
}

// AdminHandler returns the admin HTTP handler: /metrics, /healthz (every component's
// check passes), /readyz (and the gRPC server is serving) and extra handlers. Both
// answer JSON {"status", "ready", "components"}, 200 or 503.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.opts.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { s.hstate.serveHealth(w, r, false) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { s.hstate.serveHealth(w, r, true) })
	for path, h := range s.opts.adminHandlers {
		mux.Handle(path, h)
	}
	return guardAdmin(s.opts.adminAuth, mux)
}

// ServeAdmin serves the admin HTTP endpoint on lis until Stop is called.
func (s *Server) ServeAdmin(lis net.Listener) error {
	srv := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.admin = srv
	s.mu.Unlock()
	s.log.Info("admin http listening", "addr", lis.Addr().String())
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: admin serve: %w", err)
	}
	return nil
}

// Stop marks the server NOT_SERVING, then stops gracefully: in-flight RPCs may finish
// until ctx is done, after which remaining connections are closed.
func (s *Server) Stop(ctx context.Context) {
	s.hstate.halt()
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("graceful stop timed out; closing connections")
		s.grpc.Stop()
		<-done
	}
	s.mu.Lock()
	admin := s.admin
	hooks := s.opts.stopHooks
	s.opts.stopHooks = nil
	s.mu.Unlock()
	if admin != nil {
		_ = admin.Shutdown(ctx)
	}
	for _, h := range hooks {
		h()
	}
}
