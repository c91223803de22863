package openai

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/chat"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
	"github.com/ragkv/ragkv/store"
)

type fixture struct {
	url     string
	handler http.Handler
	eng     *blend.Engine
	ret     *retrieval.Store
}

// newFixture serves the OpenAI API over loopback for a model (stories260K by default)
// with a memory chunk cache and a retrieval store holding collection "kb" (GloVe-SIF on
// the test word vectors).
func newFixture(t testing.TB, modelPath, tokPath string, tmpl *chat.Template) *fixture {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	m, err := model.Open(modelPath, model.Options{Tokenizer: tokPath, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	cache, err := chunkcache.New(ctx, chunkcache.Options{Tiers: []chunkcache.TierConfig{
		{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 64 << 20}}}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cache.Close() })
	st, err := blend.NewStore(m, cache, blend.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := blend.NewEngine(st, blend.EngineOptions{Logger: quiet, MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	sif, err := embed.NewSIF(embedtest.WordVectors(t), embed.SIFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ret, err := retrieval.Open(ctx, retrieval.Options{Dir: t.TempDir(), Embedders: []embed.Embedder{sif}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ret.Close() })
	in, err := ret.BeginIngest(ctx, "kb", retrieval.IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	docs := []retrieval.Document{
		{ID: "d1", Text: "Tom had a big red ball. He played with the ball in the park."},
		{ID: "d2", Text: "Lily saw a cat on the tree. The cat was happy."},
		{ID: "d3", Text: "The boat went on the water. The boat was fast."},
	}
	if err := in.Add(ctx, docs...); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Engine: eng, Template: tmpl, Retrieval: ret, Logger: quiet, MaxBodyBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &fixture{url: hs.URL, handler: srv.Handler(), eng: eng, ret: ret}
}

func storiesFixture(t *testing.T) *fixture {
	dir := shared.Path(t, "models", "stories260K")
	return newFixture(t, filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "tok512.bin"), nil)
}

// post sends a JSON body (a string is sent as is) and returns the status and body.
func post(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

type completionResp struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
		Logprobs     *struct {
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []float64            `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
		} `json:"logprobs"`
	} `json:"choices"`
	Usage *usage       `json:"usage"`
	Ragkv *ragkvReport `json:"ragkv"`
}

// postOK posts and decodes a successful one-choice response.
func postOK(t *testing.T, url string, body any) completionResp {
	t.Helper()
	status, b := post(t, url, body)
	if status != 200 {
		t.Fatalf("status %d: %s", status, b)
	}
	var r completionResp
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if len(r.Choices) != 1 {
		t.Fatalf("%d choices: %s", len(r.Choices), b)
	}
	return r
}

// stream posts a streaming request and returns the concatenated text, the finish
// reason, the usage chunk and the number of data events; it checks the SSE framing.
func stream(t *testing.T, url string, body map[string]any) (string, string, *usage) {
	t.Helper()
	body["stream"] = true
	body["stream_options"] = map[string]any{"include_usage": true}
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		out, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), out)
	}
	var text strings.Builder
	var finish string
	var u *usage
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if done {
			t.Fatalf("data after [DONE]: %q", line)
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("not an SSE data line: %q", line)
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *usage `json:"usage"`
			Error any    `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil || c.Error != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content + ch.Text)
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			if len(c.Choices) != 0 {
				t.Fatalf("usage on a chunk with choices: %q", data)
			}
			u = c.Usage
		}
	}
	if !done || u == nil {
		t.Fatalf("stream without [DONE] (%v) or usage chunk (%v)", done, u)
	}
	return text.String(), finish, u
}

// TestBadInput: malformed, mistyped, unsupported and impossible requests get OpenAI
// error bodies with the right 4xx status and the field named, never a 500.
func TestBadInput(t *testing.T) {
	f := storiesFixture(t)
	user := []map[string]any{{"role": "user", "content": "Hi"}}
	long := strings.Repeat("Tom and Lily played with the ball in the park. ", 120)
	cases := []struct {
		name, path string
		body       any
		status     int
		param      string
		code       string
	}{
		{"malformed JSON", "/v1/chat/completions", `{"messages": [`, 400, "", ""},
		{"not an object", "/v1/chat/completions", `[1, 2]`, 400, "", ""},
		{"trailing data", "/v1/chat/completions", `{"messages": []} {}`, 400, "", ""},
		{"empty body", "/v1/chat/completions", ``, 400, "", ""},
		{"messages not a list", "/v1/chat/completions", map[string]any{"messages": "hi"}, 400, "messages", ""},
		{"temperature a string", "/v1/chat/completions", map[string]any{"messages": user, "temperature": "hot"}, 400, "temperature", ""},
		{"max_tokens a float", "/v1/chat/completions", map[string]any{"messages": user, "max_tokens": 1.5}, 400, "max_tokens", ""},
		{"no messages", "/v1/chat/completions", map[string]any{"messages": []any{}}, 400, "messages", ""},
		{"unknown role", "/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "tool", "content": "x"}}}, 400, "messages", ""},
		{"image content", "/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": []map[string]any{{"type": "image_url"}}}}}, 400, "messages[0].content[0].type", ""},
		{"unknown model", "/v1/chat/completions", map[string]any{"model": "gpt-4o", "messages": user}, 404, "model", "model_not_found"},
		{"n > 1", "/v1/chat/completions", map[string]any{"messages": user, "n": 3}, 400, "n", ""},
		{"max_tokens 0", "/v1/chat/completions", map[string]any{"messages": user, "max_tokens": 0}, 400, "max_tokens", ""},
		{"temperature 3", "/v1/chat/completions", map[string]any{"messages": user, "temperature": 3}, 400, "temperature", ""},
		{"top_p 0", "/v1/chat/completions", map[string]any{"messages": user, "top_p": 0}, 400, "top_p", ""},
		{"five stops", "/v1/chat/completions", map[string]any{"messages": user, "stop": []string{"a", "b", "c", "d", "e"}}, 400, "stop", ""},
		{"tools", "/v1/chat/completions", map[string]any{"messages": user, "tools": []map[string]any{{"type": "function"}}}, 400, "tools", ""},
		{"penalty", "/v1/chat/completions", map[string]any{"messages": user, "presence_penalty": 0.5}, 400, "presence_penalty", ""},
		{"chat logprobs", "/v1/chat/completions", map[string]any{"messages": user, "logprobs": true}, 400, "logprobs", ""},
		{"stream_options without stream", "/v1/chat/completions", map[string]any{"messages": user, "stream_options": map[string]any{"include_usage": true}}, 400, "stream_options", ""},
		{"prompt longer than the context", "/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": long}}}, 400, "messages", "context_length_exceeded"},
		{"max_tokens beyond the context", "/v1/chat/completions", map[string]any{"messages": user, "max_tokens": 600}, 400, "max_tokens", "context_length_exceeded"},
		{"long document", "/v1/chat/completions", map[string]any{"messages": user, "documents": []string{long}}, 400, "messages", "context_length_exceeded"},
		{"document a number", "/v1/chat/completions", map[string]any{"messages": user, "documents": []any{3}}, 400, "documents[0]", ""},
		{"document bad key", "/v1/chat/completions", map[string]any{"messages": user, "documents": []any{map[string]string{"key": "xyz"}}}, 400, "documents[0].key", ""},
		{"document unknown key", "/v1/chat/completions", map[string]any{"messages": user, "documents": []any{map[string]string{"key": strings.Repeat("ab", 32)}}}, 404, "", "chunk_not_cached"},
		{"documents without a user message", "/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "system", "content": "x"}}, "documents": []string{"a"}}, 400, "messages", ""},
		{"blend method", "/v1/chat/completions", map[string]any{"messages": user, "blend": map[string]any{"method": "magic"}}, 400, "blend.method", ""},
		{"blend ratio", "/v1/chat/completions", map[string]any{"messages": user, "blend": map[string]any{"ratio": 2}}, 400, "blend.ratio", ""},
		{"unknown collection", "/v1/chat/completions", map[string]any{"messages": user, "retrieval": map[string]any{"collection": "nope"}}, 404, "retrieval.collection", "collection_not_found"},
		{"retrieval k", "/v1/chat/completions", map[string]any{"messages": user, "retrieval": map[string]any{"collection": "kb", "k": 0}}, 400, "retrieval.k", ""},
		{"retrieval mode", "/v1/chat/completions", map[string]any{"messages": user, "retrieval": map[string]any{"collection": "kb", "mode": "psychic"}}, 400, "retrieval.mode", ""},
		{"namespace", "/v1/chat/completions", map[string]any{"messages": user, "namespace": "bad/ns\x00"}, 400, "namespace", ""},
		{"token-array prompt", "/v1/completions", map[string]any{"prompt": []int{1, 2, 3}}, 400, "prompt", ""},
		{"two prompts", "/v1/completions", map[string]any{"prompt": []string{"a", "b"}}, 400, "prompt", ""},
		{"completion logprobs 30", "/v1/completions", map[string]any{"prompt": "a", "logprobs": 30}, 400, "logprobs", ""},
		{"echo", "/v1/completions", map[string]any{"prompt": "a", "echo": true}, 400, "echo", ""},
		{"completion unknown model", "/v1/completions", map[string]any{"model": "davinci", "prompt": "a"}, 404, "model", "model_not_found"},
		{"embeddings unknown collection", "/v1/embeddings", map[string]any{"model": "nope", "input": "a"}, 404, "model", "model_not_found"},
		{"embeddings no input", "/v1/embeddings", map[string]any{"model": "kb"}, 400, "input", ""},
		{"embeddings token input", "/v1/embeddings", map[string]any{"model": "kb", "input": []int{1, 2}}, 400, "input", ""},
		{"embeddings dimensions", "/v1/embeddings", map[string]any{"model": "kb", "input": "a", "dimensions": 7}, 400, "dimensions", ""},
		{"embeddings format", "/v1/embeddings", map[string]any{"model": "kb", "input": "a", "encoding_format": "hex"}, 400, "encoding_format", ""},
		{"body too large", "/v1/chat/completions", `{"messages": [{"role": "user", "content": "` + strings.Repeat("x", 2<<20) + `"}]}`, 413, "", ""},
		{"unknown URL", "/v1/assistants", map[string]any{}, 404, "", "unknown_url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, b := post(t, f.url+c.path, c.body)
			var e struct {
				Error *apiError `json:"error"`
			}
			if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("status %d, not an OpenAI error body: %s", status, b)
			}
			if status != c.status {
				t.Fatalf("status %d, want %d: %s", status, c.status, b)
			}
			if c.param != "" && (e.Error.Param == nil || *e.Error.Param != c.param) {
				t.Errorf("param %v, want %q: %s", e.Error.Param, c.param, b)
			}
			if c.code != "" && (e.Error.Code == nil || *e.Error.Code != c.code) {
				t.Errorf("code %v, want %q: %s", e.Error.Code, c.code, b)
			}
		})
	}
	resp, err := http.Get(f.url + "/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/chat/completions: %d", resp.StatusCode)
	}
}

// TestStreamEqualsNonStream: at temperature 0 the streamed chat and completion texts
// equal the non-streamed ones, and usage agrees; concurrent requests (sharing the
// engine) give the same text.
func TestStreamEqualsNonStream(t *testing.T) {
	f := storiesFixture(t)
	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		body := func() map[string]any {
			b := map[string]any{"model": "stories260K", "max_tokens": 40, "temperature": 0}
			if path == "/v1/completions" {
				b["prompt"] = "Once upon a time, Tom"
			} else {
				b["messages"] = []map[string]any{{"role": "system", "content": "Tell a story."}, {"role": "user", "content": "Once upon a time, Tom"}}
			}
			return b
		}
		r := postOK(t, f.url+path, body())
		text := r.Choices[0].Message.Content + r.Choices[0].Text
		if text == "" || r.Usage == nil || r.Usage.CompletionTokens == 0 || r.Usage.TotalTokens != r.Usage.PromptTokens+r.Usage.CompletionTokens {
			t.Fatalf("%s: text %q usage %+v", path, text, r.Usage)
		}
		st, finish, u := stream(t, f.url+path, body())
		if st != text || finish != r.Choices[0].FinishReason || u.CompletionTokens != r.Usage.CompletionTokens || u.PromptTokens != r.Usage.PromptTokens {
			t.Fatalf("%s: streamed %q (%s, %+v), not streamed %q (%s, %+v)", path, st, finish, u, text, r.Choices[0].FinishReason, r.Usage)
		}
		var wg sync.WaitGroup
		errs := make(chan string, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, b := post(t, f.url+path, body())
				var c completionResp
				if json.Unmarshal(b, &c) != nil || status != 200 || c.Choices[0].Message.Content+c.Choices[0].Text != text {
					errs <- fmt.Sprintf("concurrent %s: %d %s", path, status, b)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	}
	// Stop sequences cut the text before them, streamed or not.
	body := map[string]any{"prompt": "Once upon a time, Tom", "max_tokens": 40, "temperature": 0}
	full := postOK(t, f.url+"/v1/completions", body).Choices[0].Text
	words := strings.Fields(full)
	if len(words) < 4 {
		t.Fatalf("short completion %q", full)
	}
	stop := " " + words[3]
	body["stop"] = stop
	r := postOK(t, f.url+"/v1/completions", body)
	want := full[:strings.Index(full, stop)]
	if r.Choices[0].Text != want || r.Choices[0].FinishReason != "stop" {
		t.Fatalf("stop %q: %q (%s), want %q", stop, r.Choices[0].Text, r.Choices[0].FinishReason, want)
	}
	if st, finish, _ := stream(t, f.url+"/v1/completions", body); st != want || finish != "stop" {
		t.Fatalf("streamed stop %q: %q (%s), want %q", stop, st, finish, want)
	}
	// Logprobs: one entry per token, the chosen (greedy) token the most likely.
	body = map[string]any{"prompt": "Once upon a time", "max_tokens": 5, "temperature": 0, "logprobs": 3}
	r = postOK(t, f.url+"/v1/completions", body)
	lp := r.Choices[0].Logprobs
	if lp == nil || len(lp.Tokens) != 5 || len(lp.TopLogprobs) != 5 || strings.Join(lp.Tokens, "") != r.Choices[0].Text {
		t.Fatalf("logprobs %+v for %q", lp, r.Choices[0].Text)
	}
	for i, l := range lp.TokenLogprobs {
		best := -1e9
		for _, v := range lp.TopLogprobs[i] {
			best = max(best, v)
		}
		if l > 0 || l != best || len(lp.TopLogprobs[i]) == 0 {
			t.Fatalf("token %d: logprob %g, top %v", i, l, lp.TopLogprobs[i])
		}
	}
}

// TestDocumentsReuseChunkCache: a second identical request with documents reads every
// document's KV from the chunk cache (cached_tokens > 0 for each), and with
// blend.ratio 1 its first token and text equal method full's.
func TestDocumentsReuseChunkCache(t *testing.T) {
	f := storiesFixture(t)
	docs := []string{"Tom had a big red ball.", "Lily saw a cat on the tree.", "The boat went on the water."}
	req := func(method string, ratio float64) map[string]any {
		return map[string]any{"messages": []map[string]any{{"role": "user", "content": "What did Tom have?"}}, "max_tokens": 24, "temperature": 0,
			"documents": docs, "blend": map[string]any{"method": method, "ratio": ratio}}
	}
	first := postOK(t, f.url+"/v1/chat/completions", req("cacheblend", 1))
	if first.Usage.PromptTokensDetails.CachedTokens != 0 || first.Ragkv.CacheHits["computed"] != 4 {
		t.Fatalf("first request: cached %d, hits %v", first.Usage.PromptTokensDetails.CachedTokens, first.Ragkv.CacheHits)
	}
	second := postOK(t, f.url+"/v1/chat/completions", req("cacheblend", 1))
	full := postOK(t, f.url+"/v1/chat/completions", req("full", 0))
	n := 0
	for _, s := range second.Ragkv.Segments {
		if s.Kind == "chunk" {
			n++
			if s.CachedTokens <= 0 || s.Source != "memory" {
				t.Errorf("document %v: cached %d from %q", s.Document, s.CachedTokens, s.Source)
			}
		}
	}
	if n != len(docs) || second.Usage.PromptTokensDetails.CachedTokens <= 0 {
		t.Fatalf("%d document segments, cached %d", n, second.Usage.PromptTokensDetails.CachedTokens)
	}
	if second.Ragkv.FirstToken != full.Ragkv.FirstToken || second.Choices[0].Message.Content != full.Choices[0].Message.Content {
		t.Fatalf("ratio 1: first token %d %q, full %d %q", second.Ragkv.FirstToken, second.Choices[0].Message.Content, full.Ragkv.FirstToken, full.Choices[0].Message.Content)
	}
	if second.Usage.PromptTokens != full.Usage.PromptTokens || full.Usage.PromptTokensDetails.CachedTokens != 1 {
		t.Fatalf("prompt tokens %d vs full %d; full cached %d (only the BOS prefix)", second.Usage.PromptTokens, full.Usage.PromptTokens, full.Usage.PromptTokensDetails.CachedTokens)
	}
	// At the default ratio the cached tokens are mostly reused, not recomputed; a chunk
	// key from the report stands for its document.
	blended := postOK(t, f.url+"/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": "What did Tom have?"}},
		"max_tokens": 4, "documents": []any{map[string]string{"key": second.Ragkv.Segments[1].Key}, docs[1], docs[2]}})
	if blended.Ragkv.Method != "cacheblend" || blended.Ragkv.Ratio != 0.15 || blended.Ragkv.RecomputeFrac > 0.3 || blended.Ragkv.Segments[1].Reused == 0 || blended.Ragkv.Segments[1].Source != "memory" {
		t.Fatalf("default blend: %+v", blended.Ragkv)
	}
}

// TestRetrievalAndEmbeddings: retrieval fuses the passages retrieved for the last user
// message and reports their ids; /v1/embeddings uses the collection's embedder; both
// collections and the model are listed.
func TestRetrievalAndEmbeddings(t *testing.T) {
	f := storiesFixture(t)
	r := postOK(t, f.url+"/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": "Where did the boat with the cat go?"}},
		"max_tokens": 4, "retrieval": map[string]any{"collection": "kb", "k": 2, "mode": "bm25"}})
	ids := map[string]bool{}
	for _, h := range r.Ragkv.Retrieved {
		ids[h.DocID] = true
	}
	if len(r.Ragkv.Retrieved) != 2 || !ids["d3"] || !ids["d2"] || len(r.Ragkv.Prompt.Documents) != 2 || r.Ragkv.Segments[1].Kind != "chunk" || len(r.Ragkv.Segments) != 3 {
		t.Fatalf("retrieved %+v, documents %q", r.Ragkv.Retrieved, r.Ragkv.Prompt.Documents)
	}
	status, b := post(t, f.url+"/v1/embeddings", map[string]any{"model": "kb", "input": []string{"the cat", "a boat"}})
	var e struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Model string `json:"model"`
	}
	if status != 200 || json.Unmarshal(b, &e) != nil || len(e.Data) != 2 || e.Model != "kb" {
		t.Fatalf("embeddings %d: %s", status, b)
	}
	want, err := f.ret.Embed(context.Background(), "kb", []string{"the cat", "a boat"})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range e.Data {
		if d.Index != i || len(d.Embedding) != len(want[i]) || d.Embedding[0] != want[i][0] {
			t.Fatalf("embedding %d differs from the collection's embedder", i)
		}
	}
	resp, err := http.Get(f.url + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ml struct {
		Object string      `json:"object"`
		Data   []modelCard `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&ml) != nil || ml.Object != "list" || len(ml.Data) != 2 || ml.Data[0].ID != "stories260K" || ml.Data[1].ID != "kb" {
		t.Fatalf("models %+v", ml)
	}
}

// TestTemplateModel: a GGUF model carrying a real chat template (stories260K's weights
// with Mistral Nemo's template: its <s> is the vocabulary's BOS) is served through its
// template; the prefix is tokenized with the special token parsed, once.
func TestTemplateModel(t *testing.T) {
	src := shared.Path(t, "models", "stories260K", "stories260K-f32.gguf")
	tmplSrc, err := os.ReadFile(filepath.Join("..", "..", "model", "chat", "testdata", "templates", "mistralai-Mistral-Nemo-Instruct-2407.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stories-nemo.gguf")
	if err := chat.WithTemplate(src, path, string(tmplSrc)); err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(path, model.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.Load(path, m.Tok)
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, path, "", tmpl)
	r := postOK(t, f.url+"/v1/chat/completions", map[string]any{"messages": []map[string]any{{"role": "user", "content": "Where is Tom?"}},
		"max_tokens": 8, "temperature": 0, "documents": []string{"Tom is in the park."}})
	p := r.Ragkv.Prompt
	if p.Format != "template" || p.Prefix != "<s>[INST]" || p.Query != "Where is Tom?[/INST]" {
		t.Fatalf("prompt %+v", p)
	}
	segs := r.Ragkv.Segments
	// "<s>[INST]": BOS then the text of "[INST]"; the template's <s> is not doubled.
	ids := f.eng.Model().Tok.Encode("[INST]", false, false)
	if len(segs) != 2 || segs[0].Kind != "system" || segs[0].Tokens != 1+len(ids) {
		t.Fatalf("segments %+v (want the prefix of %d tokens)", segs, 1+len(ids))
	}
}
