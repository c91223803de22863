package console

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/ragkv/ragkv/chunkcache"
)

//go:embed web
var webFS embed.FS

// ControlHeader must be sent, with the value "1", on every control request.
const ControlHeader = "X-Ragkv-Console"

// maxBody bounds a control request's body.
const maxBody = 64 << 10

// Handler serves the page, its assets, the JSON API and the controls. Mount it at the
// root of the admin listener (server.WithAdminHandler("/", h)); unknown paths are 404.
func (c *Console) Handler() http.Handler {
	sub := c.web
	files := http.FileServerFS(sub)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, sub, "index.html")
	})
	for _, f := range []string{"console.js", "console.css"} {
		mux.Handle("GET /"+f, files)
	}
	mux.HandleFunc("GET /api/v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Snapshot(r.Context()))
	})
	mux.HandleFunc("GET /api/v1/history", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"interval_seconds": c.o.Interval.Seconds(), "samples": c.History()})
	})
	mux.HandleFunc("/api/v1/policy", c.control(c.setPolicy))
	mux.HandleFunc("/api/v1/pin", c.control(c.setPin))
	return secure(mux)
}

// secure sets the headers every console response carries.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

type apiError struct {
	Error string `json:"error"`
}

// checkControl enforces the CSRF rules of the package doc; it writes the refusal and
// returns false when a request breaks one.
func checkControl(w http.ResponseWriter, r *http.Request) bool {
	fail := func(code int, msg string) bool {
		writeJSON(w, code, apiError{msg})
		return false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return fail(http.StatusMethodNotAllowed, "controls accept POST only")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fail(http.StatusUnsupportedMediaType, "controls accept Content-Type: application/json only")
	}
	if r.Header.Get(ControlHeader) != "1" {
		return fail(http.StatusForbidden, "missing header "+ControlHeader+": 1")
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !sameHost(u.Host, r.Host) {
			return fail(http.StatusForbidden, fmt.Sprintf("cross-origin request from %q refused", o))
		}
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return fail(http.StatusForbidden, "cross-site request refused (Sec-Fetch-Site: "+s+")")
	}
	return true
}

func sameHost(a, b string) bool {
	return strings.EqualFold(a, b) || strings.EqualFold(stripDefaultPort(a), stripDefaultPort(b))
}

func stripDefaultPort(h string) string {
	if host, port, err := net.SplitHostPort(h); err == nil && (port == "80" || port == "443") {
		return host
	}
	return h
}

// decode reads one strict JSON object into v.
func decode(r *http.Request, w http.ResponseWriter, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request body: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("bad request body: trailing data after the JSON object")
	}
	return nil
}

func (c *Console) control(h func(w http.ResponseWriter, r *http.Request) (any, int, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !checkControl(w, r) {
			return
		}
		v, code, err := h(w, r)
		if err != nil {
			writeJSON(w, code, apiError{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// PolicyRequest is the body of POST api/v1/policy; absent fields are unchanged.
type PolicyRequest struct {
	Tier          string   `json:"tier"`
	Policy        *string  `json:"policy,omitempty"`
	Admission     *string  `json:"admission,omitempty"`
	CapacityBytes *int64   `json:"capacity_bytes,omitempty"`
	HighWatermark *float64 `json:"high_watermark,omitempty"`
	LowWatermark  *float64 `json:"low_watermark,omitempty"`
}

// statusOf maps cache errors to HTTP codes.
func statusOf(err error) int {
	switch {
	case errors.Is(err, chunkcache.ErrNotFound), errors.Is(err, chunkcache.ErrUnknownNamespace):
		return http.StatusNotFound
	case errors.Is(err, chunkcache.ErrNoSpace):
		return http.StatusConflict
	case errors.Is(err, chunkcache.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, chunkcache.ErrInvalid), errors.Is(err, chunkcache.ErrUnknownPolicy),
		errors.Is(err, chunkcache.ErrInvalidPolicy), errors.Is(err, chunkcache.ErrUnknownTier):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func (c *Console) setPolicy(w http.ResponseWriter, r *http.Request) (any, int, error) {
	var req PolicyRequest
	if err := decode(r, w, &req); err != nil {
		return nil, http.StatusBadRequest, err
	}
	if req.Tier == "" {
		return nil, http.StatusBadRequest, errors.New("tier is required")
	}
	if req.Policy == nil && req.Admission == nil && req.CapacityBytes == nil && req.HighWatermark == nil && req.LowWatermark == nil {
		return nil, http.StatusBadRequest, errors.New("nothing to change")
	}
	u := chunkcache.TierPolicyUpdate{Tier: req.Tier, Policy: req.Policy, Admission: req.Admission,
		Capacity: req.CapacityBytes, HighWatermark: req.HighWatermark, LowWatermark: req.LowWatermark}
	pol, err := c.o.Cache.SetPolicy(r.Context(), []chunkcache.TierPolicyUpdate{u})
	if err != nil {
		return nil, statusOf(err), err
	}
	c.log.Info("console: tier policy changed", "tier", req.Tier, "remote", r.RemoteAddr, "policy", pol)
	return map[string]any{"tiers": pol}, 0, nil
}

// PinRequest is the body of POST api/v1/pin.
type PinRequest struct {
	Namespace string `json:"namespace"`
	Key       string `json:"key"` // 64 hex digits
	Pin       string `json:"pin"` // "hard", "soft" or "unpinned"
}

func (c *Console) setPin(w http.ResponseWriter, r *http.Request) (any, int, error) {
	var req PinRequest
	if err := decode(r, w, &req); err != nil {
		return nil, http.StatusBadRequest, err
	}
	k, err := chunkcache.ParseKey(req.Key)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	var p chunkcache.Pin
	switch req.Pin {
	case "hard":
		p = chunkcache.HardPin
	case "soft":
		p = chunkcache.SoftPin
	case "unpinned", "none":
		p = chunkcache.Unpinned
	default:
		return nil, http.StatusBadRequest, fmt.Errorf("pin %q: want hard, soft or unpinned", req.Pin)
	}
	if err := c.o.Cache.SetPin(r.Context(), req.Namespace, k, p); err != nil {
		return nil, statusOf(err), err
	}
	c.log.Info("console: pin changed", "namespace", req.Namespace, "key", k.String(), "pin", p.String(), "remote", r.RemoteAddr)
	return map[string]any{"key": k.String(), "namespace": req.Namespace, "pin": p.String()}, 0, nil
}
