package quantize

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/gguf"
)

// noOutput requires that dir holds only the files in keep (no output, no temporary).
func noOutput(t *testing.T, dir string, keep ...string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		ok := false
		for _, k := range keep {
			ok = ok || e.Name() == k
		}
		if !ok {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestRunErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	out := filepath.Join(dir, "out.gguf")
	in := filepath.Join(oracleDir(t), "tiny-llama-f32.gguf")
	if _, err := Run(ctx, in, out, Options{Type: FileType(99)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("type 99: %v", err)
	}
	if _, err := Run(ctx, filepath.Join(dir, "none.gguf"), out, Options{Type: Q8_0}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "none.gguf") {
		t.Errorf("missing input: %v", err)
	}
	if _, err := Run(ctx, in, in, Options{Type: Q8_0}); !errors.Is(err, ErrInvalid) {
		t.Errorf("output = input: %v", err)
	}
	// Requantizing is refused, as llama-quantize does without --allow-requantize.
	q8 := filepath.Join(oracleDir(t), "tiny-llama-q8_0.gguf")
	if _, err := Run(ctx, q8, out, Options{Type: Q4_K_M}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "requantiz") {
		t.Errorf("q8_0 → q4_K_M: %v", err)
	}
	// A truncated GGUF.
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.gguf")
	if err := os.WriteFile(bad, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, bad, out, Options{Type: Q8_0}); !errors.Is(err, ErrInvalid) || !errors.Is(err, gguf.ErrMalformed) {
		t.Errorf("truncated input: %v", err)
	}
	// Neither GGUF nor safetensors.
	txt := filepath.Join(dir, "model.txt")
	os.WriteFile(txt, []byte("hello"), 0o644)
	if _, err := Run(ctx, txt, out, Options{Type: Q8_0}); !errors.Is(err, ErrInvalid) {
		t.Errorf("text input: %v", err)
	}
	// An HF directory without config.json, and one with an unsupported model_type.
	hf := filepath.Join(dir, "hf")
	os.Mkdir(hf, 0o755)
	if _, err := Run(ctx, hf, out, Options{Type: Q8_0}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty HF directory: %v", err)
	}
	writeHFFromGGUF(t, in, hf, "F32", nil)
	cfg := filepath.Join(hf, "config.json")
	cb, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(cb, []byte(`"model_type":"llama"`), []byte(`"model_type":"gpt_neox"`), 1), 0o644)
	if _, err := Run(ctx, hf, out, Options{Type: Q8_0}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "gpt_neox") {
		t.Errorf("gpt_neox: %v", err)
	}
	os.WriteFile(cfg, bytes.Replace(cb, []byte(`"hidden_act"`), []byte(`"rope_scaling":{"type":"yarn","factor":4},"hidden_act"`), 1), 0o644)
	if _, err := Run(ctx, hf, out, Options{Type: Q8_0}); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "yarn") {
		t.Errorf("yarn rope scaling: %v", err)
	}
	noOutput(t, dir, "bad.gguf", "model.txt", "hf")
}

// TestRunNoPartialOutput: a run cancelled half way leaves neither the output nor a
// temporary file, and an existing output file is untouched until a run succeeds.
func TestRunNoPartialOutput(t *testing.T) {
	in := filepath.Join(oracleDir(t), "tiny-llama-f32.gguf")
	dir := t.TempDir()
	out := filepath.Join(dir, "out.gguf")
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := Run(ctx, in, out, Options{Type: Q4_K_M, Progress: func(done, total int64) {
		if calls++; done > total/2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || calls == 0 {
		t.Fatalf("cancelled run: %v after %d progress calls", err, calls)
	}
	noOutput(t, dir)

	if err := os.WriteFile(out, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, in, out, Options{Type: Q8_0}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "previous" {
		t.Fatal("existing output replaced by a failed run")
	}
	noOutput(t, dir, "out.gguf")
	res, err := Run(context.Background(), in, out, Options{Type: Q8_0, Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(filepath.Join(oracleDir(t), "tiny-llama-q8_0.gguf"))
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Error("3 threads: output differs from llama-quantize's")
	}
	if st, _ := os.Stat(out); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	// 4 layers × 7 matrices + token_embd + output; 4 × 2 norms + output_norm.
	if res.BytesIn <= res.BytesOut || res.TypeCounts["q8_0"] != 30 || res.TypeCounts["f32"] != 9 || len(res.Tensors) != 39 {
		t.Errorf("bytes %d → %d, types %v, %d tensors", res.BytesIn, res.BytesOut, res.TypeCounts, len(res.Tensors))
	}
}

// TestRunCopiesSameType: tensors already in their target type are copied (a q8_0 file
// "quantized" to q8_0 keeps every tensor's bytes), and the result loads.
func TestRunCopiesSameType(t *testing.T) {
	in := filepath.Join(oracleDir(t), "tiny-qwen2-q8_0.gguf")
	out := filepath.Join(t.TempDir(), "out.gguf")
	if _, err := Run(context.Background(), in, out, Options{Type: Q8_0}); err != nil {
		t.Fatal(err)
	}
	compareTensors(t, out, in)
	m, err := model.Open(out, model.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}
