package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
)

// TestModelQuantizeJSON: `ragkv model quantize --json` writes llama-quantize's file and
// prints one JSON summary as the last stdout line.
func TestModelQuantizeJSON(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "oracle")
	out := filepath.Join(t.TempDir(), "q6.gguf")
	stdout, err := runRagkv(t, "model", "quantize", "--in", filepath.Join(dir, "tiny-qwen2-f32.gguf"), "--out", out, "--type", "Q6_K", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var r struct {
		Type     string         `json:"type"`
		FileType int            `json:"file_type"`
		Counts   map[string]int `json:"tensors_per_type"`
		BytesIn  int64          `json:"bytes_in"`
		BytesOut int64          `json:"bytes_out"`
		Seconds  float64        `json:"seconds"`
		Tensors  []any          `json:"tensors"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, stdout)
	}
	if r.Type != "q6_K" || r.FileType != 18 || r.Counts["q6_K"] != 29 || r.Counts["f32"] != 21 || r.BytesIn <= 3*r.BytesOut || r.Seconds <= 0 || r.Tensors != nil {
		t.Fatalf("summary %+v", r)
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(filepath.Join(dir, "tiny-qwen2-q6_k.gguf"))
	if !bytes.Equal(got, want) {
		t.Fatal("output differs from llama-quantize's tiny-qwen2-q6_k.gguf")
	}
}

func TestModelQuantizeFlags(t *testing.T) {
	in := filepath.Join(shared.Path(t), "models", "oracle", "tiny-llama-f32.gguf")
	dir := t.TempDir()
	out := filepath.Join(dir, "x.gguf")
	for _, c := range []struct {
		args []string
		flag string
	}{
		{[]string{"--out", out, "--type", "q8_0"}, "--in"},
		{[]string{"--in", filepath.Join(dir, "none.gguf"), "--out", out, "--type", "q8_0"}, "--in"},
		{[]string{"--in", in, "--type", "q8_0"}, "--out"},
		{[]string{"--in", in, "--out", filepath.Join(dir, "no", "x.gguf"), "--type", "q8_0"}, "--out"},
		{[]string{"--in", in, "--out", dir, "--type", "q8_0"}, "--out"},
		{[]string{"--in", in, "--out", out, "--type", "q3_K_M"}, "--type"},
		{[]string{"--in", in, "--out", out, "--type", "q8_0", "--threads", "-1"}, "--threads"},
	} {
		_, err := runRagkv(t, append([]string{"model", "quantize"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.flag) {
			t.Errorf("%v: %v (want an error naming %s)", c.args, err, c.flag)
		}
	}
	// A bad input file is named in the error.
	q8 := filepath.Join(shared.Path(t), "models", "oracle", "tiny-llama-q8_0.gguf")
	if _, err := runRagkv(t, "model", "quantize", "--in", q8, "--out", out, "--type", "q4_K_M"); err == nil || !strings.Contains(err.Error(), "tiny-llama-q8_0.gguf") {
		t.Errorf("requantize: %v", err)
	}
	if es, _ := os.ReadDir(dir); len(es) != 0 {
		t.Errorf("left behind: %v", es)
	}
}
