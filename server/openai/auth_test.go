package openai

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/server/auth"
)

// TestAuthBearerTokens serves the API with an auth store: no or a wrong key is 401
// (OpenAI's invalid_api_key), a foreign namespace or collection is answered as a
// missing one, /v1/models lists only the identity's collections, and the identity's
// rate limit gives 429.
func TestAuthBearerTokens(t *testing.T) {
	f := storiesFixture(t)
	file := filepath.Join(t.TempDir(), "auth.yaml")
	y := `identities:
  - name: tenant-a
    role: reader
    token_sha256: ` + auth.HashToken("tok-a") + `
    namespaces: ["a"]
    collections: ["other"]
  - name: tenant-kb
    role: reader
    token_sha256: ` + auth.HashToken("tok-kb") + `
    namespaces: ["*"]
    collections: ["kb"]
  - name: slow
    role: reader
    token_sha256: ` + auth.HashToken("tok-slow") + `
    namespaces: ["*"]
    rate_per_second: 0.001
    burst: 1
`
	if err := os.WriteFile(file, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := auth.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Engine: f.eng, Retrieval: f.ret, Logger: slog.New(slog.DiscardHandler), Auth: st})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, hs.URL+path, bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("GET", "/v1/models", "", ""); code != http.StatusUnauthorized || !strings.Contains(body, "invalid_api_key") {
		t.Fatalf("no key: %d %s", code, body)
	}
	if code, body := call("GET", "/v1/models", "wrong", ""); code != http.StatusUnauthorized || !strings.Contains(body, "invalid_api_key") {
		t.Fatalf("wrong key: %d %s", code, body)
	}
	code, body := call("GET", "/v1/models", "tok-a", "")
	if code != http.StatusOK || strings.Contains(body, `"kb"`) {
		t.Fatalf("tenant-a's model list: %d %s (must not list collection kb)", code, body)
	}
	if code, body := call("GET", "/v1/models", "tok-kb", ""); code != http.StatusOK || !strings.Contains(body, `"kb"`) {
		t.Fatalf("tenant-kb's model list: %d %s", code, body)
	}
	// kb exists but is not tenant-a's; "nope" does not exist: the same answer.
	chat := func(coll string) string {
		return `{"messages":[{"role":"user","content":"ball"}],"max_tokens":2,"namespace":"a","retrieval":{"collection":"` + coll + `"}}`
	}
	c1, foreign := call("POST", "/v1/chat/completions", "tok-a", chat("kb"))
	c2, missing := call("POST", "/v1/chat/completions", "tok-kb", chat("nope"))
	if c1 != http.StatusNotFound || c2 != http.StatusNotFound || strings.ReplaceAll(missing, "nope", "kb") != foreign {
		t.Fatalf("foreign collection: %d %s\nmissing collection: %d %s\nwant the same answer", c1, foreign, c2, missing)
	}
	if code, body := call("POST", "/v1/chat/completions", "tok-a", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"namespace":"b"}`); code != http.StatusNotFound {
		t.Fatalf("foreign namespace: %d %s", code, body)
	}
	if code, body := call("POST", "/v1/chat/completions", "tok-a", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":1,"namespace":"a"}`); code != http.StatusOK {
		t.Fatalf("own namespace: %d %s", code, body)
	}
	if code, _ := call("GET", "/v1/models", "tok-slow", ""); code != http.StatusOK {
		t.Fatalf("first request of the slow identity: %d", code)
	}
	if code, body := call("GET", "/v1/models", "tok-slow", ""); code != http.StatusTooManyRequests || !strings.Contains(body, "rate_limit_exceeded") {
		t.Fatalf("over the rate limit: %d %s", code, body)
	}
}
