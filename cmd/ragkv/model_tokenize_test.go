package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// TestModelTokenize: --json prints ids and pieces that are the tokenizer's; --chat
// renders the plain format for stories260K; missing or conflicting flags are named.
func TestModelTokenize(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	g := filepath.Join(dir, "stories260K-f32.gguf")
	out, err := runFresh(t, "model", "tokenize", "--model", g, "--text", "Tom had a ball.", "--bos", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var r tokenizeResult
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	tok, err := tokenizer.LoadLlama2C(filepath.Join(dir, "tok512.bin"), 512)
	if err != nil {
		t.Fatal(err)
	}
	want := tok.Encode("Tom had a ball.", true, false)
	if len(r.IDs) != len(want) || len(r.Pieces) != len(want) || r.IDs[0] != 1 || r.Pieces[1] != "▁T" || r.Pieces[0] != "<s>" {
		t.Fatalf("ids %v pieces %q, want ids %v", r.IDs, r.Pieces, want)
	}
	for i := range want {
		if r.IDs[i] != want[i] {
			t.Fatalf("ids %v, want %v", r.IDs, want)
		}
	}
	out, err = runFresh(t, "model", "tokenize", "--model", filepath.Join(dir, "stories260K.bin"), "--text", "Hi", "--chat", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil || r.Text != "User: Hi\n\nAssistant:" || r.Template != "plain" || r.IDs[0] != 1 {
		t.Fatalf("--chat: %+v %v", r, err)
	}
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--text", "x"}, "--model"},
		{[]string{"--model", g}, "--text"},
		{[]string{"--model", g, "--tokenizer", g, "--text", "x"}, "--model"},
		{[]string{"--tokenizer", filepath.Join(dir, "tok512.bin"), "--text", "x"}, "--tokenizer"},
		{[]string{"--model", "/nonexistent.gguf", "--text", "x"}, "--model"},
	} {
		if _, err := runFresh(t, append([]string{"model", "tokenize"}, c.args...)...); err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%v: %v (want an error naming %s)", c.args, err, c.flag)
		}
	}
}
