package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
)

func runRagkv(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	defer rootCmd.SetOut(nil)
	err := executeRoot(args...)
	return out.String(), err
}

// TestGenerateGolden: `ragkv generate --temperature 0` prints exactly llama2.c run's
// output for every golden line, from the .bin checkpoint and from the f32 GGUF.
func TestGenerateGolden(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	f, err := os.Open(filepath.Join(dir, "golden_greedy.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var c struct {
			Prompt string `json:"prompt"`
			Steps  int    `json:"steps"`
			Output string `json:"output"`
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"--model", filepath.Join(dir, "stories260K.bin"), "--tokenizer", filepath.Join(dir, "tok512.bin")},
			{"--model", filepath.Join(dir, "stories260K-f32.gguf"), "--tokenizer", ""}, // flags persist between runs: reset
		} {
			out, err := runRagkv(t, append(append([]string{"generate"}, args...), "--prompt", c.Prompt, "--steps", strconv.Itoa(c.Steps), "--temperature", "0", "--threads", "1")...)
			if err != nil {
				t.Fatal(err)
			}
			if out != c.Output+"\n" {
				t.Fatalf("%v %q:\n got %q\nwant %q", args, c.Prompt, out, c.Output)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no golden lines")
	}
}

func TestGenerateFlagErrors(t *testing.T) {
	if _, err := runRagkv(t, "generate", "--model", "/nonexistent/model.gguf", "--prompt", "x"); err == nil || !strings.Contains(err.Error(), "--model") {
		t.Fatalf("missing model: %v", err)
	}
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	if _, err := runRagkv(t, "generate", "--model", filepath.Join(dir, "stories260K-f32.gguf"), "--top-p", "2"); err == nil || !strings.Contains(err.Error(), "--top-p") {
		t.Fatalf("bad top-p: %v", err)
	}
}
