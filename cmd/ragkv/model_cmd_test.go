package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
)

func TestModelInspectJSON(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	out, err := runRagkv(t, "model", "inspect", filepath.Join(dir, "stories260K-q8_0.gguf"), "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r struct {
		Format     string         `json:"format"`
		WeightType string         `json:"weight_type"`
		Config     map[string]any `json:"config"`
		Metadata   map[string]any `json:"metadata"`
		Tensors    []any          `json:"tensors"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line is not JSON: %v\n%s", err, out)
	}
	if r.Format != "gguf" || r.WeightType != "q8_0" || r.Config["layers"] != float64(5) || r.Config["rope"] != "interleaved" || r.Metadata["general.architecture"] != "llama" || len(r.Tensors) != 47 {
		t.Fatalf("inspect: %+v", r)
	}
	if _, err := runRagkv(t, "model", "inspect", filepath.Join(t.TempDir(), "none.gguf")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestModelSynthFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "x.gguf")
	if _, err := runRagkv(t, "model", "synth", "--shape", "gpt-9", "--out", out); err == nil || !strings.Contains(err.Error(), "--shape") {
		t.Fatalf("bad shape: %v", err)
	}
	if _, err := runRagkv(t, "model", "synth", "--shape", "smollm-135m", "--dtype", "q4_K", "--out", out); err == nil || !strings.Contains(err.Error(), "--dtype") {
		t.Fatalf("bad dtype: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("output written on a flag error")
	}
}
