package model

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/internal/safetensors"
)

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// toHalf permutes the rows of an interleaved-RoPE projection (heads×hd rows) into the
// rotate-half layout HF checkpoints use: row 2i → i, row 2i+1 → i+hd/2 within each head.
func toHalf(m kernels.Mat, heads, hd int) []byte {
	rb := m.RowBytes()
	out := make([]byte, len(m.Data))
	for h := 0; h < heads; h++ {
		for i := 0; i < hd/2; i++ {
			copy(out[(h*hd+i)*rb:(h*hd+i+1)*rb], m.Row(h*hd+2*i))
			copy(out[(h*hd+hd/2+i)*rb:(h*hd+hd/2+i+1)*rb], m.Row(h*hd+2*i+1))
		}
	}
	return out
}

func permuteVec(v []float32, heads, hd int) []float32 {
	out := make([]float32, len(v))
	for h := 0; h < heads; h++ {
		for i := 0; i < hd/2; i++ {
			out[h*hd+i] = v[h*hd+2*i]
			out[h*hd+hd/2+i] = v[h*hd+2*i+1]
		}
	}
	return out
}

// writeHF writes m's f32 weights as a HF checkpoint (rotate-half Q/K rows) into dir, with
// lm_head when the classifier is not tied. With biases, Q/K/V biases (given in the
// interleaved layout) are added. config.json has rope_scaling null.
func writeHF(t *testing.T, m *Model, dir, modelType string, bq, bk, bv [][]float32) {
	c := m.Config
	var ts []safetensors.Tensor
	add := func(name string, shape []int, data []byte) {
		ts = append(ts, safetensors.Tensor{Name: name, DType: "F32", Shape: shape, Data: data})
	}
	add("model.embed_tokens.weight", []int{c.Vocab, c.Dim}, m.w.embed.Data)
	if !c.Tied {
		add("lm_head.weight", []int{c.Vocab, c.Dim}, m.w.out.Data)
	}
	add("model.norm.weight", []int{c.Dim}, f32bytes(m.w.norm))
	for l, lw := range m.w.layers {
		p := "model.layers." + itoa(l) + "."
		add(p+"input_layernorm.weight", []int{c.Dim}, f32bytes(lw.attnNorm))
		add(p+"post_attention_layernorm.weight", []int{c.Dim}, f32bytes(lw.ffnNorm))
		add(p+"self_attn.q_proj.weight", []int{c.QDim(), c.Dim}, toHalf(lw.wq, c.Heads, c.HeadDim))
		add(p+"self_attn.k_proj.weight", []int{c.KVDim(), c.Dim}, toHalf(lw.wk, c.KVHeads, c.HeadDim))
		add(p+"self_attn.v_proj.weight", []int{c.KVDim(), c.Dim}, lw.wv.Data)
		add(p+"self_attn.o_proj.weight", []int{c.Dim, c.QDim()}, lw.wo.Data)
		add(p+"mlp.gate_proj.weight", []int{c.Hidden, c.Dim}, lw.w1.Data)
		add(p+"mlp.down_proj.weight", []int{c.Dim, c.Hidden}, lw.w2.Data)
		add(p+"mlp.up_proj.weight", []int{c.Hidden, c.Dim}, lw.w3.Data)
		if bq != nil {
			add(p+"self_attn.q_proj.bias", []int{c.QDim()}, f32bytes(permuteVec(bq[l], c.Heads, c.HeadDim)))
			add(p+"self_attn.k_proj.bias", []int{c.KVDim()}, f32bytes(permuteVec(bk[l], c.KVHeads, c.HeadDim)))
			add(p+"self_attn.v_proj.bias", []int{c.KVDim()}, f32bytes(bv[l]))
		}
	}
	f, err := os.Create(filepath.Join(dir, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if err := safetensors.Write(f, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg := map[string]any{"architectures": []string{"X"}, "model_type": modelType, "hidden_size": c.Dim, "intermediate_size": c.Hidden,
		"num_hidden_layers": c.Layers, "num_attention_heads": c.Heads, "num_key_value_heads": c.KVHeads, "vocab_size": c.Vocab,
		"max_position_embeddings": c.Ctx, "rope_theta": c.RopeTheta, "rms_norm_eps": c.NormEps, "tie_word_embeddings": c.Tied,
		"rope_scaling": nil, "hidden_act": "silu"}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestSafetensorsRotateHalf: the stories260K weights written as a HF checkpoint (Q/K
// rows permuted to the rotate-half layout) give the same logits as the llama2.c file.
func TestSafetensorsRotateHalf(t *testing.T) {
	ref := openStories(t, "stories260K.bin")
	dir := t.TempDir()
	writeHF(t, ref, dir, "llama", nil, nil, nil)
	hf, err := Open(dir, Options{Tokenizer: storiesPath(t, "tok512.bin"), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	if hf.Config.Rope != RopeHalf || hf.Format != "safetensors" {
		t.Fatalf("config %+v", hf.Config)
	}
	toks := storyTokens(ref)
	n := len(toks)
	ctx := context.Background()
	_, a, err := ref.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: []int{0, n / 2, n - 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := hf.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: []int{0, n / 2, n - 1}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(a.Logits, b.Logits); d > 1e-4 {
		t.Fatalf("rotate-half logits differ by %g", d)
	}
	// RoPE delta in the rotate-half layout.
	kvp, _, _ := hf.Prefill(ctx, toks[1:], 3, 0, ExtendOptions{})
	kvq, _, _ := hf.Prefill(ctx, toks[1:], 250, 0, ExtendOptions{})
	if err := hf.ShiftKV(kvp, kvq.Pos); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(kvp.K[0][:kvp.Len()*kvp.KVDim], kvq.K[0][:kvq.Len()*kvq.KVDim]); d > 1e-5 {
		t.Fatalf("rotate-half shift differs by %g", d)
	}
}

// TestSafetensorsQwen2Bias: a Qwen2 checkpoint with Q/K/V biases (rotate-half rows and
// bias entries) equals the interleaved model with the same biases set directly.
func TestSafetensorsQwen2Bias(t *testing.T) {
	ref := openStories(t, "stories260K.bin")
	c := ref.Config
	var bq, bk, bv [][]float32
	for l := 0; l < c.Layers; l++ {
		q, k, v := make([]float32, c.QDim()), make([]float32, c.KVDim()), make([]float32, c.KVDim())
		for i := range q {
			q[i] = float32(math.Sin(float64(i*7+l))) * 0.3
		}
		for i := range k {
			k[i] = float32(math.Cos(float64(i*5+l))) * 0.3
			v[i] = float32(math.Sin(float64(i*3-l))) * 0.3
		}
		bq, bk, bv = append(bq, q), append(bk, k), append(bv, v)
	}
	dir := t.TempDir()
	writeHF(t, ref, dir, "qwen2", bq, bk, bv)
	hf, err := Open(dir, Options{Tokenizer: storiesPath(t, "tok512.bin"), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	if !hf.Config.QKVBias {
		t.Fatal("qwen2 without biases")
	}
	toks := storyTokens(ref)
	ctx := context.Background()
	_, plain, _ := ref.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: []int{len(toks) - 1}})
	for l := range ref.w.layers { // the interleaved reference with the same biases
		ref.w.layers[l].bq, ref.w.layers[l].bk, ref.w.layers[l].bv = bq[l], bk[l], bv[l]
	}
	_, a, err := ref.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: []int{len(toks) - 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := hf.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: []int{len(toks) - 1}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(a.Logits, b.Logits); d > 1e-4 {
		t.Fatalf("qwen2 logits differ by %g", d)
	}
	if d := maxDiff(a.Logits, plain.Logits); d < 1e-2 {
		t.Fatalf("biases have no effect (%g)", d)
	}
}

func TestHFErrors(t *testing.T) {
	ref := openStories(t, "stories260K.bin")
	dir := t.TempDir()
	writeHF(t, ref, dir, "llama", nil, nil, nil)
	cfg, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var m map[string]any
	_ = json.Unmarshal(cfg, &m)
	m["rope_scaling"] = map[string]any{"type": "yarn", "factor": 2}
	b, _ := json.Marshal(m)
	_ = os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	if _, err := Open(dir, Options{Tokenizer: storiesPath(t, "tok512.bin")}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("rope scaling: %v", err)
	}
	st := filepath.Join(dir, "model.safetensors")
	data, _ := os.ReadFile(st)
	_ = os.WriteFile(st, data[:len(data)/2], 0o644)
	m["rope_scaling"] = nil
	b, _ = json.Marshal(m)
	_ = os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
	_, err := Open(dir, Options{Tokenizer: storiesPath(t, "tok512.bin")})
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "model.safetensors") {
		t.Fatalf("truncated safetensors: %v", err)
	}
}
