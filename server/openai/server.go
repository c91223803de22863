package openai

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/model/chat"
	"github.com/ragkv/ragkv/model/tokenizer"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server/auth"
)

// Options configures a Server.
type Options struct {
	// Engine serves prefill and generation (required; owned by the caller).
	Engine *blend.Engine
	// Template formats chat messages (nil: the plain format).
	Template *chat.Template
	// ModelName is the model id of /v1/models and of requests (default: the model
	// file's name without its extension).
	ModelName string
	// Retrieval serves the retrieval field and /v1/embeddings (nil: both refused).
	Retrieval *retrieval.Store
	// MaxBodyBytes bounds a request body (default 8 MiB); MaxDocuments the documents
	// of one request (default 256, retrieved ones included).
	MaxBodyBytes int64
	MaxDocuments int
	Logger       *slog.Logger
	// Auth, when set, requires "Authorization: Bearer <token>" of an identity of the
	// store and bounds its namespaces and collections (auth.go).
	Auth *auth.Store
}

// EnsureDefaults fills in zero fields.
func (o *Options) EnsureDefaults() {
	if o.Template == nil {
		o.Template = chat.Plain()
	}
	if o.ModelName == "" && o.Engine != nil {
		base := filepath.Base(o.Engine.Model().Path)
		o.ModelName = strings.TrimSuffix(base, filepath.Ext(base))
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 8 << 20
	}
	if o.MaxDocuments == 0 {
		o.MaxDocuments = 256
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate checks the options.
func (o *Options) Validate() error {
	switch {
	case o.Engine == nil:
		return errors.New("openai: no engine")
	case o.MaxBodyBytes < 0 || o.MaxDocuments < 0:
		return errors.New("openai: negative body or document bound")
	}
	return nil
}

// Server is the OpenAI-compatible HTTP API. Create it with New, serve with Serve, stop
// with Shutdown. It is safe for concurrent use.
type Server struct {
	o       Options
	log     *slog.Logger
	stopIDs map[int]bool
	created int64

	mu       sync.Mutex
	srv      *http.Server
	inflight sync.WaitGroup // handlers running (Shutdown waits for them)
}

// New returns a Server.
func New(o Options) (*Server, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Server{o: o, log: o.Logger, stopIDs: map[int]bool{}, created: time.Now().Unix()}
	tok := o.Engine.Model().Tok
	for _, st := range o.Template.Stops {
		if ids := tokenizer.EncodeSpecial(tok, st, false, false); len(ids) == 1 {
			s.stopIDs[ids[0]] = true
		}
	}
	return s, nil
}

// ModelName is the served model id.
func (s *Server) ModelName() string { return s.o.ModelName }

// Handler returns the API's HTTP handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(path, method string, h http.HandlerFunc) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != method {
				w.Header().Set("Allow", method)
				writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error",
					Message: fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, method)})
				return
			}
			r, e := s.authenticate(r)
			if e != nil {
				writeError(w, e)
				return
			}
			h(w, r)
		})
	}
	route("/v1/models", http.MethodGet, s.models)
	route("/v1/models/{id...}", http.MethodGet, s.model)
	route("/v1/chat/completions", http.MethodPost, s.chatCompletions)
	route("/v1/completions", http.MethodPost, s.completions)
	route("/v1/embeddings", http.MethodPost, s.embeddings)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, notFound("", "unknown_url", "unknown URL %s %s (this server has /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings)", r.Method, r.URL.Path))
	})
	return mux
}

// Serve serves the API on lis until Shutdown; it returns nil after a shutdown.
func (s *Server) Serve(lis net.Listener) error {
	h := s.Handler()
	track := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		h.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: track, ReadHeaderTimeout: 10 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	s.log.Info("openai http listening", "addr", lis.Addr().String(), "model", s.o.ModelName)
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("openai: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting requests and waits for running ones until ctx is done, then
// closes their connections (which cancels their generation) and waits for their
// handlers to return, so that the engine may be closed after it.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		err = srv.Close()
	}
	s.inflight.Wait()
	return err
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

type modelCard struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// MaxModelLen is vLLM's field: the context length (generation models).
	MaxModelLen int `json:"max_model_len,omitempty"`
}

// cards lists the model and, for /v1/embeddings, each retrieval collection.
func (s *Server) cards(id *auth.Identity) []modelCard {
	out := []modelCard{{ID: s.o.ModelName, Object: "model", Created: s.created, OwnedBy: "ragkv", MaxModelLen: s.o.Engine.Model().Config.Ctx}}
	if s.o.Retrieval != nil {
		for _, c := range s.o.Retrieval.Collections() {
			if c.Name != s.o.ModelName && mayCollection(id, c.Name) {
				out = append(out, modelCard{ID: c.Name, Object: "model", Created: s.created, OwnedBy: "ragkv-collection"})
			}
		}
	}
	return out
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"object": "list", "data": s.cards(auth.FromContext(r.Context()))})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, c := range s.cards(auth.FromContext(r.Context())) {
		if c.ID == id {
			writeJSON(w, c)
			return
		}
	}
	writeError(w, notFound("model", "model_not_found", "The model %q does not exist", id))
}

// checkModel accepts the served model's id ("" too, as vLLM does).
func (s *Server) checkModel(m string) *apiError {
	if m == "" || m == s.o.ModelName {
		return nil
	}
	return notFound("model", "model_not_found", "The model %q does not exist (this server serves %q)", m, s.o.ModelName)
}

func newID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req embeddingRequest
	if e := decode(w, r, s.o.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	if s.o.Retrieval == nil {
		writeError(w, notFound("model", "model_not_found", "embeddings need a retrieval collection as the model, and this server serves no retrieval"))
		return
	}
	if req.Model == "" {
		writeError(w, invalid("model", "model is required: the name of a retrieval collection, whose embedder is used"))
		return
	}
	texts, e := stringOrList(req.Input, "input")
	if e != nil {
		writeError(w, invalid("input", "input: expected a string or a list of strings (token arrays are not supported)"))
		return
	}
	if len(texts) == 0 {
		writeError(w, invalid("input", "input is required"))
		return
	}
	if len(texts) > 2048 {
		writeError(w, invalid("input", "input has %d texts (at most 2048)", len(texts)))
		return
	}
	for i, t := range texts {
		if t == "" {
			writeError(w, invalid(fmt.Sprintf("input[%d]", i), "input[%d] is empty", i))
			return
		}
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		writeError(w, invalid("encoding_format", "encoding_format %q: want float or base64", req.EncodingFormat))
		return
	}
	info, err := s.o.Retrieval.Collection(req.Model)
	if errors.Is(err, retrieval.ErrCollectionNotFound) {
		writeError(w, notFound("model", "model_not_found", "The model %q does not exist (embeddings take a retrieval collection's name)", req.Model))
		return
	}
	if err != nil {
		writeError(w, toAPIError(err, "model"))
		return
	}
	if req.Dimensions != nil && *req.Dimensions != info.Dim {
		writeError(w, invalid("dimensions", "dimensions %d: collection %q embeds in %d dimensions", *req.Dimensions, req.Model, info.Dim))
		return
	}
	vecs, err := s.o.Retrieval.Embed(r.Context(), req.Model, texts)
	if err != nil {
		writeError(w, toAPIError(err, "model"))
		return
	}
	data := make([]map[string]any, len(vecs))
	words := 0
	for i, v := range vecs {
		var emb any = v
		if req.EncodingFormat == "base64" {
			b := make([]byte, 4*len(v))
			for k, x := range v {
				binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(x))
			}
			emb = base64.StdEncoding.EncodeToString(b)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
		words += len(strings.Fields(texts[i]))
	}
	writeJSON(w, map[string]any{"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int{"prompt_tokens": words, "total_tokens": words}})
}
