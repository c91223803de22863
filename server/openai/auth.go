package openai

import (
	"net/http"
	"strings"

	"github.com/ragkv/ragkv/server/auth"
)

// authenticate resolves the request's "Authorization: Bearer <token>" to an identity
// when the server has an auth store (Options.Auth), and takes one request from the
// identity's rate limit. Every identity may call the API (it reads: prefill and
// generation store only server-computed KV); its namespaces and collections bound the
// namespace and retrieval.collection fields and the collections /v1/models lists.
func (s *Server) authenticate(r *http.Request) (*http.Request, *apiError) {
	if s.o.Auth == nil {
		return r, nil
	}
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return nil, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: strp("invalid_api_key"),
			Message: "missing API key: send Authorization: Bearer <token>"}
	}
	id, err := s.o.Auth.Token(strings.TrimSpace(tok))
	if err != nil {
		return nil, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: strp("invalid_api_key"),
			Message: "incorrect API key provided"}
	}
	if !s.o.Auth.Allow(id) {
		return nil, &apiError{Status: http.StatusTooManyRequests, Type: "requests", Code: strp("rate_limit_exceeded"),
			Message: "rate limit of identity " + id.Name + " exceeded"}
	}
	return r.WithContext(auth.NewContext(r.Context(), id)), nil
}

// mayCollection says whether identity id (nil: authentication is off) may use
// collection c.
func mayCollection(id *auth.Identity, c string) bool { return id == nil || id.Collection(c) }
