package openai

import (
	"bytes"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
)

// FuzzRequests: no request body, however malformed, gets a 5xx or a non-JSON error from
// the chat, completion or embedding endpoints.
func FuzzRequests(f *testing.F) {
	for _, s := range []string{
		`{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2}`,
		`{"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}],"max_tokens":2,"documents":["a",{"text":"b"}]}`,
		`{"prompt":"Once","max_tokens":2,"logprobs":2,"stop":["x"]}`,
		`{"model":"kb","input":["a","b"],"encoding_format":"base64"}`,
		`{"messages":[{"role":"user","content":"x"}],"documents":[{"key":"00"}],"blend":{"method":"naive","ratio":0.5}}`,
		`{"messages":[{"role":"user"}],"retrieval":{"collection":"kb","k":1}}`,
		`{"messages":null,"stop":5}`, `[]`, `{`, `null`, `"x"`,
	} {
		f.Add(s)
	}
	dir := shared.Path(f, "models", "stories260K")
	h := newFixture(f, filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "tok512.bin"), nil)
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} {
			req := httptest.NewRequest("POST", path, bytes.NewReader([]byte(body)))
			rec := httptest.NewRecorder()
			h.handler.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %q: status %d: %s", path, body, rec.Code, rec.Body.String())
			}
			if rec.Code != 200 && !bytes.Contains(rec.Body.Bytes(), []byte(`"error"`)) {
				t.Fatalf("%s %q: status %d without an error body: %s", path, body, rec.Code, rec.Body.String())
			}
		}
	})
}
