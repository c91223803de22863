package embed

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HTTPOptions configure a client of an OpenAI-compatible embeddings endpoint.
type HTTPOptions struct {
	// URL is the server's base URL (e.g. http://127.0.0.1:8000); "/v1/embeddings" is
	// appended unless the URL already ends with "/embeddings".
	URL string
	// Model is sent as "model" and names the embedder ("http:<model>").
	Model string
	// APIKey, when set, is sent as a bearer token.
	APIKey string
	// Dim is the expected dimension; 0 discovers it with one request at construction.
	Dim int
	// BatchSize bounds the inputs per request (default 64).
	BatchSize int
	// Timeout bounds one request (default 60s).
	Timeout time.Duration
	// Client is the HTTP client (default: a new client).
	Client *http.Client
}

// EnsureDefaults fills zero fields.
func (o *HTTPOptions) EnsureDefaults() {
	if o.BatchSize == 0 {
		o.BatchSize = 64
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
}

// Validate reports invalid options.
func (o *HTTPOptions) Validate() error {
	if o.URL == "" || !(strings.HasPrefix(o.URL, "http://") || strings.HasPrefix(o.URL, "https://")) {
		return fmt.Errorf("embed: HTTP embedder URL must start with http:// or https://, got %q", o.URL)
	}
	if o.Model == "" {
		return errors.New("embed: HTTP embedder needs a model name")
	}
	if o.Dim < 0 || o.BatchSize < 1 || o.Timeout < 0 {
		return fmt.Errorf("embed: HTTP embedder: bad dim %d, batch size %d or timeout %v", o.Dim, o.BatchSize, o.Timeout)
	}
	return nil
}

// HTTP embeds texts by calling an OpenAI-compatible /v1/embeddings endpoint.
type HTTP struct {
	opts     HTTPOptions
	endpoint string
	dim      int
}

// NewHTTP returns an HTTP embedder. When opts.Dim is 0 it asks the server once for the
// dimension.
func NewHTTP(ctx context.Context, opts HTTPOptions) (*HTTP, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ep := strings.TrimRight(opts.URL, "/")
	if !strings.HasSuffix(ep, "/embeddings") {
		ep += "/v1/embeddings"
	}
	h := &HTTP{opts: opts, endpoint: ep, dim: opts.Dim}
	if h.dim == 0 {
		v, err := h.call(ctx, []string{"dimension probe"})
		if err != nil {
			return nil, err
		}
		h.dim = len(v[0])
		if h.dim == 0 {
			return nil, fmt.Errorf("%w: server returned an empty embedding", ErrRemote)
		}
	}
	return h, nil
}

// Name implements Embedder.
func (h *HTTP) Name() string { return "http:" + h.opts.Model }

// Dim implements Embedder.
func (h *HTTP) Dim() int { return h.dim }

// Embed implements Embedder: batches of BatchSize texts, vectors normalized to unit
// length (servers differ on whether they normalize).
func (h *HTTP) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += h.opts.BatchSize {
		end := min(start+h.opts.BatchSize, len(texts))
		vs, err := h.call(ctx, texts[start:end])
		if err != nil {
			return nil, err
		}
		for i, v := range vs {
			if len(v) != h.dim {
				return nil, fmt.Errorf("%w: server returned %d values for input %d, want %d", ErrDimension, len(v), start+i, h.dim)
			}
			Normalize(v)
		}
		out = append(out, vs...)
	}
	return out, nil
}

type embRequest struct {
	Model          string   `json:"model"`
	Input          []string `json:"input"`
	EncodingFormat string   `json:"encoding_format"`
}

type embResponse struct {
	Data []struct {
		Index     *int      `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"data"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func (h *HTTP) call(ctx context.Context, texts []string) ([][]float32, error) {
	body, err := json.Marshal(embRequest{Model: h.opts.Model, Input: texts, EncodingFormat: "float"})
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	if h.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.opts.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if h.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+h.opts.APIKey)
	}
	resp, err := h.opts.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("embed: POST %s: %w", h.endpoint, ctx.Err())
		}
		return nil, fmt.Errorf("%w: POST %s: %v", ErrRemote, h.endpoint, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: read response: %v", ErrRemote, err)
	}
	var er embResponse
	jsonErr := json.Unmarshal(rb, &er)
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(rb))
		if jsonErr == nil && er.Error != nil {
			msg = er.Error.Message
		}
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return nil, fmt.Errorf("%w: POST %s: %s: %s", ErrRemote, h.endpoint, resp.Status, msg)
	}
	if jsonErr != nil {
		return nil, fmt.Errorf("%w: POST %s: bad JSON: %v", ErrRemote, h.endpoint, jsonErr)
	}
	if len(er.Data) != len(texts) {
		return nil, fmt.Errorf("%w: sent %d inputs, got %d embeddings", ErrRemote, len(texts), len(er.Data))
	}
	out := make([][]float32, len(texts))
	for i, d := range er.Data {
		j := i
		if d.Index != nil {
			j = *d.Index
		}
		if j < 0 || j >= len(out) || out[j] != nil {
			return nil, fmt.Errorf("%w: bad or repeated embedding index %d", ErrRemote, j)
		}
		out[j] = d.Embedding
	}
	return out, nil
}

var _ Embedder = (*HTTP)(nil)
