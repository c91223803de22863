package quantize

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
)

// TestQuantizeSmolLMTypes quantizes a smollm-135m-shaped f32 file (576-wide rows, which
// 256 does not divide; 8 layers) to q4_K_M and requires llama.cpp's type for every tensor,
// derived here from llama_tensor_get_type: the tied token_embd takes the output rule
// (q8_0 since 256 does not divide 576), attn_v q6_K where use_more_bits picks it (layers
// 0, 3, 6, 7 of 8) and otherwise q4_K, ffn_down (1536 wide) likewise q6_K or q4_K, the
// other matrices q4_K; then the 576-wide fallbacks q4_K → q5_0 and q6_K → q8_0. The file
// then loads and its logits follow the f32 model's.
func TestQuantizeSmolLMTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("quantizes a 200 MB file")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "smollm-f32.gguf"), filepath.Join(dir, "smollm-q4_K_M.gguf")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := model.SynthGGUF(ctx, f, model.SynthOptions{Shape: "smollm-135m", DType: kernels.F32, Seed: 1, Layers: 8, Ctx: 256}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, in, out, Options{Type: Q4_K_M})
	if err != nil {
		t.Fatal(err)
	}
	moreBits := map[int]bool{0: true, 3: true, 6: true, 7: true}
	want := func(name string) string {
		var l int
		if _, err := fmt.Sscanf(name, "blk.%d.", &l); err != nil {
			switch name {
			case "token_embd.weight":
				return "q8_0"
			case "output.weight":
				t.Errorf("smollm has tied embeddings, but the file has output.weight")
			}
			return "f32" // output_norm
		}
		switch {
		case strings.HasSuffix(name, "_norm.weight"):
			return "f32"
		case strings.HasSuffix(name, "attn_v.weight") && moreBits[l]:
			return "q8_0" // q6_K, falling back
		case strings.HasSuffix(name, "ffn_down.weight") && moreBits[l]:
			return "q6_K"
		case strings.HasSuffix(name, "ffn_down.weight"):
			return "q4_K"
		}
		return "q5_0" // q4_K, falling back
	}
	if len(res.Tensors) != 2+8*9 {
		t.Fatalf("%d tensors, want %d", len(res.Tensors), 2+8*9)
	}
	fallbacks := 0
	for _, tr := range res.Tensors {
		if w := want(tr.Name); tr.To != w {
			t.Errorf("%s: %s, llama.cpp gives %s", tr.Name, tr.To, w)
		}
		if tr.Fallback != "" {
			fallbacks++
		}
	}
	if fallbacks != 8*6 || res.Fallbacks != fallbacks { // q, k, v, output, gate, up
		t.Errorf("%d fallbacks (%d reported), want %d", fallbacks, res.Fallbacks, 8*6)
	}
	// The quantized model runs, close to the f32 one.
	// q5_K_S: the 576-wide q5_K tensors fall back to q5_1 (ffn_down, 1536 wide, stays q5_K).
	out5 := filepath.Join(dir, "smollm-q5_K_S.gguf")
	res5, err := Run(ctx, in, out5, Options{Type: Q5_K_S})
	if err != nil {
		t.Fatal(err)
	}
	if c := res5.TypeCounts; c["q5_1"] != 8*6 || c["q5_K"] != 8 || c["q8_0"] != 1 {
		t.Errorf("q5_K_S types %v, want 48 q5_1, 8 q5_K and token_embd q8_0", c)
	}
	var logits [3][]float32
	for i, path := range []string{in, out, out5} {
		m, err := model.Open(path, model.Options{Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		_, r, err := m.Prefill(ctx, []int{1, 200, 3000, 45, 9}, 0, 0, model.ExtendOptions{Logits: []int{4}})
		if err != nil {
			t.Fatal(err)
		}
		logits[i] = append([]float32(nil), r.Logits...)
		m.Close()
	}
	for q, name := range []string{"q4_K_M", "q5_K_S"} {
		var dot, n0, n1 float64
		for i := range logits[0] {
			a, b := float64(logits[0][i]), float64(logits[q+1][i])
			dot, n0, n1 = dot+a*b, n0+a*a, n1+b*b
		}
		if c := dot / math.Sqrt(n0*n1); !(c > 0.95) {
			t.Errorf("%s logits' cosine with the f32 model's: %.4f", name, c)
		}
	}
}
