package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/shared"
)

// A data dir written with public salts (before salt secrets) is never emptied by a start
// that would create a secret: precompute (like serve) refuses, naming the flag, and keeps
// serving it with --salt-secret-file public.
func TestPublicSaltDataDirIsNotDropped(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	modelPath, tokPath := filepath.Join(dir, "stories260K.bin"), filepath.Join(dir, "tok512.bin")
	work := t.TempDir()
	chunks := filepath.Join(work, "chunks.jsonl")
	var b strings.Builder
	for i, tx := range []string{"Once upon a time there was a cat.", "The cat liked milk.", "One day it rained."} {
		l, _ := json.Marshal(map[string]string{"id": string(rune('a' + i)), "text": tx})
		b.Write(append(l, '\n'))
	}
	if err := os.WriteFile(chunks, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(work, "data")
	run := func(extra ...string) (string, error) {
		return runFresh(t, append([]string{"precompute", "--chunks", chunks, "--model", modelPath, "--tokenizer", tokPath,
			"--data-dir", data, "--sync-writes=false", "--json"}, extra...)...)
	}
	out, err := run("--salt-secret-file", publicSalts)
	if err != nil || !strings.Contains(out, `"computed":3`) {
		t.Fatalf("public-salt precompute: %v\n%s", err, out)
	}
	secret := filepath.Join(data, chunkcache.SaltSecretFile)
	if _, err := os.Stat(secret); !os.IsNotExist(err) {
		t.Fatalf("public salts created a secret file: %v", err)
	}
	if _, err := run(); err == nil || !strings.Contains(err.Error(), "--salt-secret-file") || !strings.Contains(err.Error(), "public salts") {
		t.Fatalf("a start that would drop the public-salt chunks: %v", err)
	}
	if _, err := os.Stat(secret); !os.IsNotExist(err) {
		t.Fatalf("the refused start created a secret file: %v", err)
	}
	out, err = run("--salt-secret-file", publicSalts)
	if err != nil || !strings.Contains(out, `"skipped":3`) {
		t.Fatalf("the chunks did not survive: %v\n%s", err, out)
	}
}
