package model

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
)

// TestHiddenStates: the classifier applied to HiddenStates gives Prefill's logits at every
// position (so HiddenStates are the normalized final states), and bad calls are errors.
func TestHiddenStates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := SynthGGUF(context.Background(), f, SynthOptions{Shape: "tiny-qwen2", DType: kernels.F32, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m, err := Open(path, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	toks := []int{5, 77, 123, 9, 250, 31, 8}
	c := &m.Config
	h := make([]float32, len(toks)*c.Dim)
	if err := m.HiddenStates(context.Background(), h, toks); err != nil {
		t.Fatal(err)
	}
	idx := make([]int, len(toks))
	for i := range idx {
		idx[i] = i
	}
	_, res, err := m.Prefill(context.Background(), toks, 0, 0, ExtendOptions{Logits: idx})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, len(toks)*c.Vocab)
	cls := m.Classifier()
	if err := m.Pool().MatMul(got, h, len(toks), &cls); err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if d := math.Abs(float64(v - res.Logits[i])); d > 1e-4*math.Max(1, math.Abs(float64(v))) {
			t.Fatalf("logit %d: classifier(hidden) %g, Prefill %g", i, v, res.Logits[i])
		}
	}
	if err := m.HiddenStates(context.Background(), h[:3], toks); err == nil {
		t.Error("short buffer accepted")
	}
	if err := m.HiddenStates(context.Background(), h, nil); err == nil {
		t.Error("no tokens accepted")
	}
}
