package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
)

// TestAskAfterPrecomputeCollection: on a fresh `ragkv serve`, after `ragkv ingest` and
// `ragkv precompute --collection`, `ragkv ask` serves every retrieved passage from a
// tier; with --method full its answer equals `ragkv generate --model` of the same
// rendered prompt at temperature 0; a second precompute skips everything; bad flags
// name the flag.
func TestAskAfterPrecomputeCollection(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	modelPath, tokPath := filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "tok512.bin")
	work := t.TempDir()
	addrs := startServe(t, "--model", modelPath, "--tokenizer", tokPath, "--data-dir", filepath.Join(work, "data"),
		"--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", "")
	addr := addrs["grpc"]
	if addr == "" {
		t.Fatalf("addresses %v", addrs)
	}
	stories, err := os.ReadFile(filepath.Join(shared.Path(t), "data", "stories", "stories.dev.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var cb strings.Builder
	for _, l := range strings.SplitN(string(stories), "\n", 9)[:8] {
		var d struct{ ID, Text string }
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cb, `{"_id":%q,"title":"","text":%q}`+"\n", d.ID, d.Text)
	}
	corpus := filepath.Join(work, "corpus.jsonl")
	if err := os.WriteFile(corpus, []byte(cb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runFresh(t, "ingest", "--addr", addr, "--collection", "kb", "--corpus", corpus, "--chunk-words", "40",
		"--chunk-overlap", "0", "--embedder", "none"); err != nil {
		t.Fatal(err)
	}
	type precomputeJSON struct {
		Passages, Computed, Skipped, Rejected, TooLong int
	}
	precompute := func() precomputeJSON {
		t.Helper()
		out, err := runFresh(t, "precompute", "--collection", "kb", "--addr", addr, "--engine-share", "1", "--json")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var p struct {
			Passages, Computed, Skipped, Rejected int
			TooLong                               int `json:"too_long"`
		}
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &p); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		return precomputeJSON(p)
	}
	p := precompute()
	if p.Passages < 10 || p.Computed != p.Passages || p.Skipped != 0 || p.Rejected != 0 || p.TooLong != 0 {
		t.Fatalf("first precompute %+v", p)
	}
	if p2 := precompute(); p2.Skipped != p.Passages || p2.Computed != 0 {
		t.Fatalf("second precompute %+v", p2)
	}

	type askJSON struct {
		Answer   string `json:"answer"`
		Passages []struct {
			PassageID string  `json:"passage_id"`
			Score     float64 `json:"score"`
			Key       string  `json:"key"`
			Source    string  `json:"source"`
		} `json:"passages"`
		Breakdown struct {
			Method           string `json:"method"`
			PromptTokens     int    `json:"prompt_tokens"`
			PassagesFromTier int    `json:"passages_from_tier"`
			PassagesComputed int    `json:"passages_computed"`
			Tokens           int    `json:"tokens"`
		} `json:"breakdown"`
		Prompt struct {
			System string   `json:"system"`
			Chunks []string `json:"chunks"`
			Query  string   `json:"query"`
		} `json:"prompt"`
	}
	const question = "Tim saw a fox in the park."
	askRun := func(args ...string) askJSON {
		t.Helper()
		out, err := runFresh(t, append([]string{"ask", "--addr", addr, "--collection", "kb", "-q", question, "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var a askJSON
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 {
			t.Fatalf("ask --json printed %d lines: %q", len(lines), out)
		}
		if err := json.Unmarshal([]byte(lines[0]), &a); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		return a
	}
	a := askRun("--k", "3", "--max-tokens", "8")
	if len(a.Passages) != 3 || a.Breakdown.PassagesFromTier != 3 || a.Breakdown.PassagesComputed != 0 || a.Answer == "" {
		t.Fatalf("ask after precompute: %+v", a)
	}
	for _, ps := range a.Passages {
		if ps.Source != "memory" && ps.Source != "disk" {
			t.Fatalf("passage %s from %q, want a tier", ps.PassageID, ps.Source)
		}
	}

	// --method full against the local engine on the same rendered prompt.
	const maxTokens = 24
	full := askRun("--k", "2", "--method", "full", "--max-tokens", fmt.Sprint(maxTokens))
	if full.Breakdown.Method != "full" || len(full.Prompt.Chunks) != 2 || full.Breakdown.Tokens != maxTokens {
		t.Fatalf("ask --method full: %+v", full)
	}
	for _, ps := range full.Passages {
		if ps.Source != "none" {
			t.Fatalf("method full read passage %s from %q", ps.PassageID, ps.Source)
		}
	}
	args := []string{"generate", "--model", modelPath, "--tokenizer", tokPath, "--temperature", "0", "--threads", "1",
		"--system", full.Prompt.System, "--query", full.Prompt.Query,
		"--steps", fmt.Sprint(full.Breakdown.PromptTokens + maxTokens - 1)}
	for _, c := range full.Prompt.Chunks {
		args = append(args, "--chunk", c)
	}
	gen, err := runFresh(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(strings.TrimSuffix(gen, "\n"), full.Answer) || len(full.Answer) < 20 {
		t.Fatalf("ragkv generate --model: %q\nragkv ask --method full: %q", gen, full.Answer)
	}
	// Streaming (no --json): the answer, then the breakdown naming every passage.
	out, err := runFresh(t, "ask", "--addr", addr, "--collection", "kb", "-q", question, "--k", "2", "--method", "full", "--max-tokens", fmt.Sprint(maxTokens))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, full.Answer+"\n--\nfull ") || !strings.Contains(out, full.Passages[1].PassageID) {
		t.Fatalf("ask output %q", out)
	}

	// ingest --precompute: the new collection's passages are stored right away.
	if _, err := runFresh(t, "ingest", "--addr", addr, "--collection", "kb2", "--corpus", corpus, "--chunk-words", "30",
		"--chunk-overlap", "0", "--embedder", "none", "--precompute", "--engine-share", "1"); err != nil {
		t.Fatal(err)
	}
	out, err = runFresh(t, "precompute", "--collection", "kb2", "--addr", addr, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if l := strings.Split(strings.TrimSpace(out), "\n"); !strings.Contains(l[len(l)-1], `"computed":0,`) || strings.Contains(l[len(l)-1], `"skipped":0,`) {
		t.Fatalf("precompute after ingest --precompute: %s", out)
	}

	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"ingest", "--addr", addr, "--collection", "kb3", "--corpus", corpus, "--system", "x"}, "--system"},
		{[]string{"ask", "--addr", addr, "-q", "x"}, "--collection"},
		{[]string{"ask", "--addr", addr, "--collection", "kb"}, "--query"},
		{[]string{"ask", "--addr", addr, "--collection", "kb", "-q", "x", "--k", "0"}, "--k"},
		{[]string{"ask", "--addr", addr, "--collection", "kb", "-q", "x", "--method", "psychic"}, "--method"},
		{[]string{"ask", "--addr", addr, "--collection", "kb", "-q", "x", "--method", "full", "--ratio", "0.5"}, "--ratio"},
		{[]string{"ask", "--addr", addr, "--collection", "kb", "-q", "x", "--mode", "psychic"}, "--mode"},
		{[]string{"ask", "--addr", addr, "--collection", "nope", "-q", "x"}, "NotFound"},
		{[]string{"precompute", "--collection", "kb"}, "--collection"},
		{[]string{"precompute", "--collection", "kb", "--addr", addr, "--dtype", "f32"}, "--dtype"},
		{[]string{"precompute", "--collection", "kb", "--addr", addr, "--engine-share", "0"}, "--engine-share"},
		{[]string{"precompute", "--collection", "kb", "--addr", addr, "--chunks", corpus}, "--chunks"},
		{[]string{"generate", "--model", modelPath, "--method", "cacheblend", "--prompt", "x"}, "--method"},
		{[]string{"generate", "--model", modelPath, "--max-tokens", "3", "--prompt", "x"}, "--max-tokens"},
		{[]string{"generate", "--model", modelPath, "--query", "x", "--prompt", "x"}, "--prompt"},
		{[]string{"generate", "--addr", addr, "--model", modelPath, "--query", "x"}, "--model"},
		{[]string{"generate", "--addr", addr, "--steps", "9", "--query", "x"}, "--steps"},
	} {
		if _, err := runFresh(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("ragkv %s: error %v, want one naming %s", strings.Join(tc.args, " "), err, tc.flag)
		}
	}
}
