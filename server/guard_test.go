package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/store"
)

func TestErrorTableHasNoConflicts(t *testing.T) {
	if len(errorCodeConflicts) != 0 {
		t.Fatalf("sentinels registered with two codes: %v", errorCodeConflicts)
	}
}

func TestToStatusHasNoOrderingTraps(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code codes.Code
	}{
		// retrieval wraps its busy sentinel around the context's error: busy must win.
		{"busy wrapping a deadline", fmt.Errorf("Ingest: %w", fmt.Errorf("%w: %q: %w", retrieval.ErrBusy, "c", context.DeadlineExceeded)), codes.Unavailable},
		{"busy wrapping a cancel", fmt.Errorf("%w: %w", retrieval.ErrBusy, context.Canceled), codes.Unavailable},
		{"deadline alone", fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		// A corrupt disk record is data loss, however the chunk cache wraps it.
		{"store corrupt", fmt.Errorf("chunkcache: open ab in disk: %w", store.ErrCorrupt), codes.DataLoss},
		{"chunkcache corrupt over store corrupt", fmt.Errorf("%w: open: %w", chunkcache.ErrCorrupt, store.ErrCorrupt), codes.DataLoss},
		{"retrieval corrupt", fmt.Errorf("load: %w", retrieval.ErrCorrupt), codes.DataLoss},
		{"retrieval disk full", fmt.Errorf("Ingest: %w", retrieval.ErrNoSpace), codes.ResourceExhausted},
		// The outer sentinel names what the request did wrong, the inner one its cause.
		{"not found over closed", fmt.Errorf("%w: %w", chunkcache.ErrNotFound, store.ErrClosed), codes.NotFound},
		{"closed over not found", fmt.Errorf("%w: %w", store.ErrClosed, chunkcache.ErrNotFound), codes.Unavailable},
		{"no space", fmt.Errorf("put: %w", store.ErrNoSpace), codes.ResourceExhausted},
		{"unknown", errors.New("open /var/lib/ragkv/badger/000001.vlog: input/output error"), codes.Internal},
	}
	for _, c := range cases {
		if got := status.Code(toStatus(c.err)); got != c.code {
			t.Errorf("%s: toStatus(%v) = %v, want %v", c.name, c.err, got, c.code)
		}
	}
}

// guardEnv serves only the health service, with an inner interceptor the test controls.
type guardEnv struct {
	conn *grpc.ClientConn
	logs *syncBuffer
	srv  *Server
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startGuardServer(t *testing.T, opts ...Option) *guardEnv {
	t.Helper()
	logs := &syncBuffer{}
	srv, err := New(append([]Option{WithLogger(slog.New(slog.NewJSONHandler(logs, nil)))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop(context.Background())
		<-done
	})
	return &guardEnv{conn: conn, logs: logs, srv: srv}
}

func TestPanicInUnaryHandlerIsRecovered(t *testing.T) {
	var panicking atomic.Bool
	panicking.Store(true)
	e := startGuardServer(t, WithInterceptors(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if panicking.Load() {
			var m map[string]int
			m["boom"] = 1 // a nil-map write: a real runtime panic
		}
		return h(ctx, req)
	}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(e.conn)
	_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	st := status.Convert(err)
	if st.Code() != codes.Internal || !strings.Contains(st.Message(), "error_id=") || strings.Contains(st.Message(), "nil map") {
		t.Fatalf("panicking RPC: %v; want Internal with an opaque id only", err)
	}
	id := st.Message()[strings.Index(st.Message(), "error_id=")+len("error_id="):]
	if logs := e.logs.String(); !strings.Contains(logs, id) || !strings.Contains(logs, "nil map") || !strings.Contains(logs, "goroutine") {
		t.Fatalf("log lacks the panic, its stack or id %s:\n%s", id, logs)
	}
	panicking.Store(false)
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("server after a recovered panic: %v", err)
	}
}

func TestPanicInStreamHandlerIsRecovered(t *testing.T) {
	e := startGuardServer(t, WithGRPCOptions(grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
		panic("stream handler exploded at /secret/path")
	})))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := e.conn.Invoke(ctx, "/ragkv.v1.Nothing/Explode", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	st := status.Convert(err)
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "secret") || !strings.Contains(st.Message(), "error_id=") {
		t.Fatalf("panicking stream: %v; want opaque Internal", err)
	}
	if !strings.Contains(e.logs.String(), "/secret/path") {
		t.Fatal("the panic's detail is not in the log")
	}
	if _, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("server after a recovered stream panic: %v", err)
	}
}

func TestInternalErrorsAreOpaque(t *testing.T) {
	detail := "open /var/lib/ragkv/badger/000042.vlog: badger: value log truncated"
	e := startGuardServer(t, WithInterceptors(func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
		return nil, errors.New(detail)
	}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	st := status.Convert(err)
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "badger") || strings.Contains(st.Message(), "/var/lib") {
		t.Fatalf("internal error reached the client as %v", err)
	}
	id := st.Message()[strings.Index(st.Message(), "error_id=")+len("error_id="):]
	if len(id) != 16 {
		t.Fatalf("error id %q, want 16 hex digits", id)
	}
	var found bool
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, id) && strings.Contains(line, detail) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no log line holds both id %s and the detail:\n%s", id, e.logs.String())
	}
}

func TestSentinelErrorsKeepTheirCodeAndMessage(t *testing.T) {
	e := startGuardServer(t, WithInterceptors(func(context.Context, any, *grpc.UnaryServerInfo, grpc.UnaryHandler) (any, error) {
		return nil, fmt.Errorf("GetChunk: %w: chunk ab12 is gone", chunkcache.ErrNotFound)
	}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if st := status.Convert(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), "ab12") {
		t.Fatalf("got %v, want NotFound with the message", err)
	}
}

func TestHealthReflectsComponents(t *testing.T) {
	var broken atomic.Bool
	check := func(context.Context) error {
		if broken.Load() {
			return errors.New("disk tier does not take writes: no space left on device")
		}
		return nil
	}
	srv, err := New(WithLogger(slog.New(slog.DiscardHandler)), WithHealthCheck(ChunkCacheServiceName, check),
		WithHealthCheck(InferenceServiceName, func(context.Context) error { return nil }), WithHealthInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	alis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminDone := make(chan error, 1)
	go func() { adminDone <- srv.ServeAdmin(alis) }()
	base := "http://" + alis.Addr().String()
	// Before Serve: healthy but not ready.
	httpGet(t, base+"/healthz", http.StatusOK)
	body := httpGet(t, base+"/readyz", http.StatusServiceUnavailable)
	if !strings.Contains(body, `"ready":false`) {
		t.Fatalf("/readyz before Serve: %s", body)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(conn)
	waitHealth := func(name string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			r, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: name})
			if err == nil && r.GetStatus() == want {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("health %q: %v, %v; want %v", name, r.GetStatus(), err, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitHealth("", healthpb.HealthCheckResponse_SERVING)
	httpGet(t, base+"/readyz", http.StatusOK)

	broken.Store(true)
	body = httpGet(t, base+"/healthz", http.StatusServiceUnavailable)
	var hb healthBody
	if err := json.Unmarshal([]byte(body), &hb); err != nil {
		t.Fatal(err)
	}
	if hb.Components[ChunkCacheServiceName] == "ok" || hb.Components[InferenceServiceName] != "ok" || hb.Ready {
		t.Fatalf("/healthz with a broken cache: %+v", hb)
	}
	httpGet(t, base+"/readyz", http.StatusServiceUnavailable)
	// /healthz refreshed the gRPC health statuses too.
	waitHealth(ChunkCacheServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(InferenceServiceName, healthpb.HealthCheckResponse_SERVING)
	waitHealth("", healthpb.HealthCheckResponse_NOT_SERVING)

	broken.Store(false)
	httpGet(t, base+"/healthz", http.StatusOK)
	waitHealth(ChunkCacheServiceName, healthpb.HealthCheckResponse_SERVING)
	srv.Stop(ctx)
	<-served
	<-adminDone
}

func TestMetricsRegistrationErrorsAreReturned(t *testing.T) {
	reg := newTestRegistry()
	if _, err := New(WithMetrics(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(WithMetrics(reg)); err == nil || !strings.Contains(err.Error(), "register") {
		t.Fatalf("second server on the same registry: %v, want a registration error", err)
	}
}

func newTestRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
