package model

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/gguf"
)

// TestSynthLoadsBack: a synthetic file holds exactly the generated tensors, loads as a
// model with the shape's configuration and runs.
func TestSynthLoadsBack(t *testing.T) {
	for _, tc := range []struct {
		shape string
		dt    kernels.DType
	}{{"smollm-135m", kernels.Q8_0}, {"qwen2.5-0.5b", kernels.F16}} {
		o := SynthOptions{Shape: tc.shape, DType: tc.dt, Seed: 5, Layers: 1, Ctx: 256}
		p := filepath.Join(t.TempDir(), "synth.gguf")
		fd, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := SynthGGUF(context.Background(), fd, o); err != nil {
			t.Fatal(err)
		}
		fd.Close()
		cfg, plan, err := SynthPlan(o)
		if err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Tensors) != len(plan) {
			t.Fatalf("%d tensors, plan has %d", len(f.Tensors), len(plan))
		}
		for _, st := range plan {
			want, err := SynthTensorData(st, o.Seed)
			if err != nil {
				t.Fatal(err)
			}
			_, got, err := f.TensorData(st.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: tensor %s differs from the generator", tc.shape, st.Name)
			}
		}
		f.Close()
		m, err := Open(p, Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		got := m.Config
		if got.Dim != cfg.Dim || got.Vocab != cfg.Vocab || got.KVHeads != cfg.KVHeads || got.Layers != 1 || got.Ctx != 256 ||
			got.RopeTheta != cfg.RopeTheta || got.Rope != cfg.Rope || got.QKVBias != cfg.QKVBias || got.Tied != cfg.Tied || m.WeightType != tc.dt {
			t.Fatalf("%s: loaded config %+v, want %+v", tc.shape, got, cfg)
		}
		if m.Tok.VocabSize() != cfg.Vocab {
			t.Fatalf("tokenizer vocab %d", m.Tok.VocabSize())
		}
		var out bytes.Buffer
		if _, err := m.Generate(context.Background(), &out, "Hello world", GenerateOptions{Steps: 12}); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(out.Bytes(), []byte("Hello world")) {
			t.Fatalf("generate output %q", out.String())
		}
		m.Close()
	}
}

func TestSynthErrors(t *testing.T) {
	if err := SynthGGUF(context.Background(), &bytes.Buffer{}, SynthOptions{Shape: "gpt-5", DType: kernels.F32}); err == nil {
		t.Fatal("unknown shape accepted")
	}
	if err := SynthGGUF(context.Background(), &bytes.Buffer{}, SynthOptions{Shape: "smollm-135m", DType: kernels.Q4_K}); err == nil {
		t.Fatal("q4_K synth accepted")
	}
}
