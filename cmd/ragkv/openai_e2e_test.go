package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ragkv/ragkv/internal/npmref"
	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
)

// startServe runs `ragkv serve args...` as a process and returns the addresses it
// prints (name → addr); the process is stopped (SIGTERM) at the end of the test.
func startServe(t *testing.T, args ...string) map[string]string {
	t.Helper()
	addrs, _ := startServeProc(t, args...)
	return addrs
}

// startServeProc is startServe that also returns the process (to signal it).
func startServeProc(t *testing.T, args ...string) (map[string]string, *os.Process) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), cliEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "ragkv serving ") {
				lines <- l
			}
		}
	}()
	select {
	case l := <-lines:
		addrs := map[string]string{}
		for _, f := range strings.Fields(strings.TrimPrefix(l, "ragkv serving ")) {
			k, v, _ := strings.Cut(f, "=")
			addrs[k] = v
		}
		return addrs, cmd.Process
	case err := <-exited:
		t.Fatalf("ragkv serve exited: %v\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("ragkv serve did not start\n%s", stderr.String())
	}
	return nil, nil
}

// TestOpenAIClient runs the official openai npm client against `ragkv serve` over
// loopback (stories260K, no chat template: the plain format): chat streamed and not,
// completions, embeddings of a collection, the model list and an error; at temperature 0
// the streamed text equals the non-streamed one and `ragkv generate` of the same
// rendered prompt with method full; with documents, the second identical request reads
// every document from the chunk cache and, at blend.ratio 1, starts with method full's
// first token.
func TestOpenAIClient(t *testing.T) {
	npmref.Module(t, "openai")
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	work := t.TempDir()
	glove, err := embedtest.WriteGloVe(work, false)
	if err != nil {
		t.Fatal(err)
	}
	addrs := startServe(t, "--model", filepath.Join(dir, "stories260K.bin"), "--tokenizer", filepath.Join(dir, "tok512.bin"),
		"--data-dir", filepath.Join(work, "data"), "--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", "127.0.0.1:0",
		"--retrieval-embeddings", glove)
	if addrs["openai"] == "" || addrs["grpc"] == "" {
		t.Fatalf("addresses %v", addrs)
	}
	corpus := filepath.Join(work, "corpus.jsonl")
	var cb strings.Builder
	for i, d := range []string{"the cat sat on the mat", "a fast boat on the water", "the dog ran in the park"} {
		fmt.Fprintf(&cb, `{"_id":"d%d","title":"","text":%q}`+"\n", i, d)
	}
	if err := os.WriteFile(corpus, []byte(cb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runFresh(t, "ingest", "--addr", addrs["grpc"], "--collection", "kb", "--corpus", corpus); err != nil {
		t.Fatal(err)
	}
	const maxTokens = 32
	in := map[string]any{
		"base_url": "http://" + addrs["openai"] + "/v1", "model": "stories260K", "collection": "kb", "max_tokens": maxTokens,
		"messages":  []map[string]string{{"role": "user", "content": "Once upon a time, Tom had a red ball."}},
		"documents": []string{"Tom had a big red ball.", "Lily saw a cat on the tree.", "The boat went on the water."},
	}
	type usage struct {
		PromptTokens        int `json:"prompt_tokens"`
		CompletionTokens    int `json:"completion_tokens"`
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	}
	type ragkv struct {
		FirstToken int `json:"first_token"`
		Segments   []struct {
			Kind         string `json:"kind"`
			CachedTokens int    `json:"cached_tokens"`
			Source       string `json:"source"`
		} `json:"segments"`
		Prompt struct {
			Prefix, Query, Format string
		} `json:"prompt"`
	}
	type reply struct {
		Text   string `json:"text"`
		Finish string `json:"finish"`
		Usage  usage  `json:"usage"`
		Ragkv  ragkv  `json:"ragkv"`
		Chunks int    `json:"chunks"`
	}
	var out struct {
		Chat, Stream, Completion reply
		Embeddings               struct {
			Count, Dim int
			Model      string
		}
		Models []string
		Error  struct {
			Status int
			Type   string
			Code   string
		}
		Rag struct{ First, Second, Full reply }
	}
	npmref.Run(t, filepath.Join("..", "..", "internal", "npmref", "openai_client.mjs"), in, &out)

	if out.Chat.Text == "" || out.Stream.Text != out.Chat.Text || out.Stream.Finish != out.Chat.Finish || out.Stream.Chunks < 3 ||
		out.Stream.Usage.CompletionTokens != out.Chat.Usage.CompletionTokens {
		t.Fatalf("streamed %+v, not streamed %+v", out.Stream, out.Chat)
	}
	p := out.Chat.Ragkv.Prompt
	if p.Format != "plain" || p.Query != "User: Once upon a time, Tom had a red ball.\n\nAssistant:" {
		t.Fatalf("rendered prompt %+v", p)
	}
	gen, err := runFresh(t, "generate", "--addr", addrs["grpc"], "--system", p.Prefix, "--query", p.Query, "--method", "full",
		"--temperature", "0", "--max-tokens", fmt.Sprint(maxTokens))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSuffix(gen, "\n") != out.Chat.Text {
		t.Fatalf("ragkv generate --method full: %q, the openai client: %q", gen, out.Chat.Text)
	}
	if out.Completion.Text == "" || out.Completion.Usage.CompletionTokens == 0 {
		t.Fatalf("completion %+v", out.Completion)
	}
	if out.Embeddings.Count != 2 || out.Embeddings.Dim != embedtest.Dim || out.Embeddings.Model != "kb" {
		t.Fatalf("embeddings %+v", out.Embeddings)
	}
	if strings.Join(out.Models, ",") != "stories260K,kb" {
		t.Fatalf("models %v", out.Models)
	}
	if out.Error.Status != 404 || out.Error.Code != "model_not_found" {
		t.Fatalf("error %+v", out.Error)
	}
	docs := 0
	for _, s := range out.Rag.Second.Ragkv.Segments {
		if s.Kind == "chunk" {
			docs++
			if s.CachedTokens <= 0 {
				t.Errorf("second request: a document with %d cached tokens (source %s)", s.CachedTokens, s.Source)
			}
		}
	}
	for _, s := range out.Rag.First.Ragkv.Segments {
		if s.Kind == "chunk" && s.CachedTokens != 0 {
			t.Errorf("first request: a document read from the cache (%s) before it was ever sent", s.Source)
		}
	}
	if docs != 3 || out.Rag.Second.Usage.PromptTokensDetails.CachedTokens <= out.Rag.First.Usage.PromptTokensDetails.CachedTokens {
		t.Fatalf("cached tokens: first %d, second %d, %d documents", out.Rag.First.Usage.PromptTokensDetails.CachedTokens,
			out.Rag.Second.Usage.PromptTokensDetails.CachedTokens, docs)
	}
	if out.Rag.Second.Ragkv.FirstToken != out.Rag.Full.Ragkv.FirstToken || out.Rag.Second.Text != out.Rag.Full.Text {
		t.Fatalf("ratio 1: first token %d %q; full %d %q", out.Rag.Second.Ragkv.FirstToken, out.Rag.Second.Text, out.Rag.Full.Ragkv.FirstToken, out.Rag.Full.Text)
	}
}
