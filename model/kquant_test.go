package model

import (
	"bytes"
	"context"
	"math"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// kquantGGUF writes a small model (dim 256) whose matrices are of type t, or — with
// asF32 — the same weights dequantized to f32.
func kquantGGUF(tb testing.TB, t kernels.DType, asF32 bool) []byte {
	tok, err := tokenizer.LoadLlama2C(storiesPath(tb, "tok512.bin"), 512)
	if err != nil {
		tb.Fatal(err)
	}
	kvs, _ := tokenizer.GGUFMetadata(tok, "")
	var buf bytes.Buffer
	w := gguf.NewWriter(&buf)
	for _, kv := range append([]gguf.KV{
		{Key: "general.architecture", Value: gguf.String("llama")},
		{Key: "llama.context_length", Value: gguf.Uint32(128)},
		{Key: "llama.embedding_length", Value: gguf.Uint32(256)},
		{Key: "llama.feed_forward_length", Value: gguf.Uint32(512)},
		{Key: "llama.block_count", Value: gguf.Uint32(2)},
		{Key: "llama.attention.head_count", Value: gguf.Uint32(4)},
		{Key: "llama.attention.head_count_kv", Value: gguf.Uint32(2)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: gguf.Float32(1e-5)},
	}, kvs...) {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			tb.Fatal(err)
		}
	}
	type tensor struct {
		name string
		dims []uint64
		typ  gguf.TensorType
		data []byte
	}
	var ts []tensor
	seed := uint64(1)
	mat := func(name string, rows, cols int) {
		seed++
		m, err := kernels.RandomMat(t, rows, cols, 0.05, seed)
		if err != nil {
			tb.Fatal(err)
		}
		if name == "token_embd.weight" {
			m, _ = kernels.RandomMat(t, rows, cols, 1, seed)
		}
		if !asF32 {
			ts = append(ts, tensor{name, []uint64{uint64(cols), uint64(rows)}, gguf.TensorType(t), m.Data})
			return
		}
		f := make([]float32, rows*cols)
		if err := kernels.Dequantize(f, m.Data, t); err != nil {
			tb.Fatal(err)
		}
		ts = append(ts, tensor{name, []uint64{uint64(cols), uint64(rows)}, gguf.TensorF32, f32bytes(f)})
	}
	vec := func(name string, n int) {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1 + 0.1*float32(math.Sin(float64(i)))
		}
		ts = append(ts, tensor{name, []uint64{uint64(n)}, gguf.TensorF32, f32bytes(v)})
	}
	mat("token_embd.weight", 512, 256)
	vec("output_norm.weight", 256)
	for l := 0; l < 2; l++ {
		p := "blk." + itoa(l) + "."
		vec(p+"attn_norm.weight", 256)
		vec(p+"ffn_norm.weight", 256)
		mat(p+"attn_q.weight", 256, 256)
		mat(p+"attn_k.weight", 128, 256)
		mat(p+"attn_v.weight", 128, 256)
		mat(p+"attn_output.weight", 256, 256)
		mat(p+"ffn_gate.weight", 512, 256)
		mat(p+"ffn_up.weight", 512, 256)
		mat(p+"ffn_down.weight", 256, 512)
	}
	for _, x := range ts {
		if err := w.AddTensor(x.name, x.typ, x.dims); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.WriteHeader(); err != nil {
		tb.Fatal(err)
	}
	for _, x := range ts {
		if _, err := w.Write(x.data); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TestKQuantWeights: models with q4_K, q6_K, q8_0, f16 and bf16 weights run and agree
// with the same weights dequantized to f32 (the difference is the kernels' 8-bit
// activations for quantized types).
func TestKQuantWeights(t *testing.T) {
	for _, dt := range []kernels.DType{kernels.Q4_K, kernels.Q6_K, kernels.Q8_0, kernels.F16, kernels.BF16} {
		q, err := loadGGUFBytes("q.gguf", kquantGGUF(t, dt, false))
		if err != nil {
			t.Fatalf("%v: %v", dt, err)
		}
		f, err := loadGGUFBytes("f.gguf", kquantGGUF(t, dt, true))
		if err != nil {
			t.Fatal(err)
		}
		if q.WeightType != dt {
			t.Fatalf("weight type %v, want %v", q.WeightType, dt)
		}
		toks := q.Tok.Encode("Once upon a time, there was a little girl.", true, false)
		ctx := context.Background()
		_, a, err := q.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: []int{len(toks) - 1}})
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := f.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: []int{len(toks) - 1}})
		if err != nil {
			t.Fatal(err)
		}
		var num, den float64
		for i := range a.Logits {
			d := float64(a.Logits[i] - b.Logits[i])
			num += d * d
			den += float64(b.Logits[i]) * float64(b.Logits[i])
		}
		rel := math.Sqrt(num / den)
		t.Logf("%v: relative logit error vs dequantized f32 weights %.2g", dt, rel)
		if rel > 0.05 || den == 0 {
			t.Fatalf("%v: relative logit error %g", dt, rel)
		}
		q.Close()
		f.Close()
	}
}
