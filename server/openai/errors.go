package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/chat"
	"github.com/ragkv/ragkv/retrieval"
)

// apiError is an OpenAI error: the HTTP status and the body's fields.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

func strp(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// invalid is a 400 invalid_request_error about param.
func invalid(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: strp(param), Message: fmt.Sprintf(format, args...)}
}

// notFound is a 404 invalid_request_error with a code.
func notFound(param, code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: strp(param), Code: strp(code), Message: fmt.Sprintf(format, args...)}
}

// errorRows map the sentinel errors of the packages behind the API to statuses.
var errorRows = []struct {
	err    error
	status int
	code   string
}{
	{blend.ErrTooLong, http.StatusBadRequest, "context_length_exceeded"},
	{blend.ErrChunkNotCached, http.StatusNotFound, "chunk_not_cached"},
	{blend.ErrInvalid, http.StatusBadRequest, ""},
	{model.ErrInvalid, http.StatusBadRequest, ""},
	{chat.ErrInvalid, http.StatusBadRequest, ""},
	{chunkcache.ErrInvalid, http.StatusBadRequest, ""},
	{retrieval.ErrCollectionNotFound, http.StatusNotFound, "collection_not_found"},
	{retrieval.ErrInvalidArgument, http.StatusBadRequest, ""},
	{retrieval.ErrInvalidK, http.StatusBadRequest, ""},
	{retrieval.ErrEmptyQuery, http.StatusBadRequest, ""},
	{retrieval.ErrNoDense, http.StatusBadRequest, "no_embedder"},
	{retrieval.ErrEmbedderUnavailable, http.StatusBadRequest, "no_embedder"},
	{retrieval.ErrDimension, http.StatusBadRequest, ""},
	{retrieval.ErrBusy, http.StatusServiceUnavailable, "busy"},
	{blend.ErrBusy, http.StatusTooManyRequests, "engine_busy"},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "timeout"},
}

// toAPIError converts a component error; param names the request field it concerns.
func toAPIError(err error, param string) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	for _, r := range errorRows {
		if errors.Is(err, r.err) {
			typ := "invalid_request_error"
			if r.status >= 500 {
				typ = "server_error"
			}
			return &apiError{Status: r.status, Type: typ, Param: strp(param), Code: strp(r.code), Message: err.Error()}
		}
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; nobody reads this.
		return &apiError{Status: 499, Type: "invalid_request_error", Message: err.Error()}
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: err.Error()}
}

// writeError writes an OpenAI error body.
func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}
