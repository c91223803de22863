package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// DefaultHealthInterval is how often component checks run while the server serves.
const DefaultHealthInterval = 5 * time.Second

// healthCheckTimeout bounds one component check.
const healthCheckTimeout = 3 * time.Second

// HealthCheck reports whether one component works (nil: it does): the chunk cache that
// its persistent tiers take writes, the engine that its model is loaded, retrieval that
// its store is open.
type HealthCheck func(ctx context.Context) error

// WithHealthCheck adds a component check under name (a gRPC service name such as
// ragkv.v1.ChunkCache, whose health status it then sets). Checks run when Serve starts,
// every WithHealthInterval, and on each /healthz and /readyz request; the gRPC health
// service reports the last result per name, and "" is SERVING only if all pass.
func WithHealthCheck(name string, check HealthCheck) Option {
	return optionFunc(func(o *options) {
		if o.healthChecks == nil {
			o.healthChecks = map[string]HealthCheck{}
		}
		o.healthChecks[name] = check
	})
}

// WithHealthInterval sets how often checks run in the background (default
// DefaultHealthInterval).
func WithHealthInterval(d time.Duration) Option {
	return optionFunc(func(o *options) { o.healthInterval = d })
}

// healthState runs the checks and keeps their last results. Its loop is started by
// the first Serve and stopped by Stop.
type healthState struct {
	s *Server

	mu       sync.Mutex
	results  map[string]string // name → "ok" or the error
	serving  bool              // Serve started and Stop not called
	stopping bool
	started  bool
	stop     chan struct{}
	done     chan struct{}
}

func newHealthState(s *Server) *healthState {
	return &healthState{s: s, results: map[string]string{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// start runs the checks once and then every interval, until halt.
func (h *healthState) start() {
	h.mu.Lock()
	if h.started || h.stopping {
		h.mu.Unlock()
		return
	}
	h.started, h.serving = true, true
	h.mu.Unlock()
	h.refresh(context.Background())
	iv := h.s.opts.healthInterval
	go func() {
		defer close(h.done)
		t := time.NewTicker(iv)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
				h.refresh(context.Background())
			}
		}
	}()
}

// halt stops the loop (the server is stopping: not ready any more).
func (h *healthState) halt() {
	h.mu.Lock()
	started := h.started
	h.serving, h.stopping = false, true
	h.mu.Unlock()
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	if started {
		<-h.done
	}
}

// refresh runs every check and sets the gRPC health statuses; it returns whether all
// passed and the results.
func (h *healthState) refresh(ctx context.Context) (bool, map[string]string) {
	checks := h.s.opts.healthChecks
	res := make(map[string]string, len(checks))
	all := true
	for name, check := range checks {
		cctx, cancel := context.WithTimeout(ctx, healthCheckTimeout)
		err := check(cctx)
		cancel()
		if err != nil {
			res[name] = err.Error()
			all = false
			h.s.log.Warn("health check failed", "component", name, "err", err)
		} else {
			res[name] = "ok"
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.results = res
	if h.stopping {
		return false, res
	}
	for name, r := range res {
		st := healthpb.HealthCheckResponse_SERVING
		if r != "ok" {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		h.s.health.SetServingStatus(name, st)
	}
	overall := healthpb.HealthCheckResponse_SERVING
	if !all {
		overall = healthpb.HealthCheckResponse_NOT_SERVING
	}
	h.s.health.SetServingStatus("", overall)
	return all, res
}

// healthBody is what /healthz and /readyz answer (JSON).
type healthBody struct {
	Status     string            `json:"status"` // "ok" or "unavailable"
	Ready      bool              `json:"ready"`
	Components map[string]string `json:"components"`
}

// serveHealth answers /healthz (ready=false: every component passes) or /readyz (also:
// the gRPC server is serving and not stopping).
func (h *healthState) serveHealth(w http.ResponseWriter, r *http.Request, needReady bool) {
	ok, res := h.refresh(r.Context())
	h.mu.Lock()
	ready := ok && h.serving && !h.stopping
	h.mu.Unlock()
	body := healthBody{Status: "ok", Ready: ready, Components: res}
	code := http.StatusOK
	if !ok || (needReady && !ready) {
		body.Status, code = "unavailable", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
