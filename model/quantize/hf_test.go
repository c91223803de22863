package quantize

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/internal/safetensors"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// writeHFFromGGUF writes the f32 GGUF model at src as the HF checkpoint
// convert_hf_to_gguf.py would have read: HF tensor names and shapes, Llama's Q/K rows in
// the rotate-half layout (the inverse of LlamaModel.permute), config.json, no
// rope_freqs.weight (Llama 3.1 scaling goes into config.json's rope_scaling). dtype is
// "F32", "F16" or "BF16"; tok, if not empty, is written as tokenizer.json.
func writeHFFromGGUF(t *testing.T, src, dir, dtype string, tok []byte) {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	arch, _ := f.String("general.architecture")
	u := func(k string) int { v, _ := f.Uint(arch + "." + k); return int(v) }
	heads, kvHeads, dim := u("attention.head_count"), u("attention.head_count_kv"), u("embedding_length")
	hd := dim / heads
	var ts []safetensors.Tensor
	_, hasOutput := f.Tensor("output.weight")
	for _, ti := range f.Tensors {
		if ti.Name == "rope_freqs.weight" {
			continue
		}
		_, data, err := f.TensorData(ti.Name)
		if err != nil || ti.Type != gguf.TensorF32 {
			t.Fatalf("%s: %v %v", ti.Name, err, ti.Type)
		}
		name := ""
		switch ti.Name {
		case "token_embd.weight":
			name = "model.embed_tokens.weight"
		case "output.weight":
			name = "lm_head.weight"
		case "output_norm.weight":
			name = "model.norm.weight"
		default:
			var l int
			var rest string
			if _, err := fmt.Sscanf(strings.Replace(ti.Name, ".", " ", 2), "blk %d %s", &l, &rest); err != nil {
				t.Fatalf("%s: %v", ti.Name, err)
			}
			m := map[string]string{"attn_norm.weight": "input_layernorm.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
				"attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight", "attn_v.weight": "self_attn.v_proj.weight",
				"attn_output.weight": "self_attn.o_proj.weight", "attn_q.bias": "self_attn.q_proj.bias", "attn_k.bias": "self_attn.k_proj.bias",
				"attn_v.bias": "self_attn.v_proj.bias", "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
				"ffn_down.weight": "mlp.down_proj.weight"}[rest]
			if m == "" {
				t.Fatalf("no HF name for %s", ti.Name)
			}
			name = fmt.Sprintf("model.layers.%d.%s", l, m)
			if arch == "llama" && (rest == "attn_q.weight" || rest == "attn_k.weight") {
				h := heads
				if rest == "attn_k.weight" {
					h = kvHeads
				}
				data = unpermute(data, int(ti.Dims[0])*4, h, hd)
			}
		}
		shape := []int{int(ti.Dims[0])}
		if len(ti.Dims) == 2 {
			shape = []int{int(ti.Dims[1]), int(ti.Dims[0])}
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: dtype, Shape: shape, Data: convertF32(t, data, dtype)})
	}
	// Two shards and an index, as large checkpoints come.
	half := len(ts) / 2
	index := map[string]string{}
	for i, shard := range [][]safetensors.Tensor{ts[:half], ts[half:]} {
		fn := fmt.Sprintf("model-%05d-of-00002.safetensors", i+1)
		for _, st := range shard {
			index[st.Name] = fn
		}
		w, err := os.Create(filepath.Join(dir, fn))
		if err != nil {
			t.Fatal(err)
		}
		if err := safetensors.Write(w, shard, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	ib, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": index})
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), ib, 0o644); err != nil {
		t.Fatal(err)
	}
	theta, _ := f.Float(arch + ".rope.freq_base")
	eps, _ := f.Float(arch + ".attention.layer_norm_rms_epsilon")
	cfg := map[string]any{"architectures": []string{"X"}, "model_type": arch, "hidden_size": dim, "intermediate_size": u("feed_forward_length"),
		"num_hidden_layers": u("block_count"), "num_attention_heads": heads, "num_key_value_heads": kvHeads, "vocab_size": 512,
		"max_position_embeddings": u("context_length"), "rope_theta": theta, "rms_norm_eps": eps, "tie_word_embeddings": !hasOutput,
		"hidden_act": "silu", "torch_dtype": "float32"}
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		cfg["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
			"original_max_position_embeddings": 8192}
	}
	cb, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cb, 0o644); err != nil {
		t.Fatal(err)
	}
	if tok != nil {
		if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tok, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// unpermute maps interleaved-RoPE rows (GGUF) to rotate-half rows (HF): HF row
// h·hd + j·hd/2 + i is GGUF row h·hd + 2i + j.
func unpermute(data []byte, rowBytes, heads, hd int) []byte {
	out := make([]byte, len(data))
	for h := range heads {
		for i := range hd / 2 {
			for j := range 2 {
				dst, src := h*hd+j*hd/2+i, h*hd+2*i+j
				copy(out[dst*rowBytes:(dst+1)*rowBytes], data[src*rowBytes:(src+1)*rowBytes])
			}
		}
	}
	return out
}

func convertF32(t *testing.T, data []byte, dtype string) []byte {
	if dtype == "F32" {
		return data
	}
	dt := map[string]kernels.DType{"F16": kernels.F16, "BF16": kernels.BF16}[dtype]
	f := make([]float32, len(data)/4)
	for i := range f {
		f[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	out := make([]byte, 2*len(f))
	if err := kernels.Quantize(out, f, dt); err != nil {
		t.Fatal(err)
	}
	return out
}

// byteLevelTokenizerJSON is a small GPT-2-style tokenizer.json: the 256 byte symbols, a
// few merges and an <|endoftext|> special token (fewer tokens than the model's 512, so
// the GGUF vocabulary gets padded).
func byteLevelTokenizerJSON(t *testing.T) []byte {
	vocab := map[string]int{}
	for b := range 256 {
		vocab[tokenizer.ByteToUnicode([]byte{byte(b)})] = b
	}
	var merges []string
	for i, m := range [][2]string{{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}} {
		merges = append(merges, m[0]+" "+m[1])
		vocab[m[0]+m[1]] = 256 + i
	}
	j := map[string]any{
		"added_tokens":   []map[string]any{{"id": 263, "content": "<|endoftext|>", "special": true}},
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"decoder":        map[string]any{"type": "ByteLevel"},
		"post_processor": nil,
		"model":          map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHFMatchesLlamaQuantize: each f32 oracle model written as a (sharded) HF checkpoint
// and quantized from there gives the tensors llama-quantize wrote from the GGUF (names,
// order, types, dims and bytes); the Llama 3.1 RoPE factors computed from config.json
// equal the oracle's rope_freqs.weight.
func TestHFMatchesLlamaQuantize(t *testing.T) {
	dir := oracleDir(t)
	for _, m := range oracleModels {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			hf := t.TempDir()
			writeHFFromGGUF(t, filepath.Join(dir, m+"-f32.gguf"), hf, "F32", nil)
			out := filepath.Join(t.TempDir(), "out.gguf")
			res, err := Run(context.Background(), hf, out, Options{Type: Q4_K_M, Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			if res.Format != "safetensors" || len(res.Warnings) != 1 {
				t.Errorf("format %s, warnings %q (want the missing-tokenizer one)", res.Format, res.Warnings)
			}
			compareTensors(t, out, filepath.Join(dir, m+"-q4_k_m.gguf"))
		})
	}
}

// compareTensors requires the same tensors (order, names, types, dims, bytes) in two
// GGUF files, whatever their metadata.
func compareTensors(t *testing.T, gotPath, wantPath string) {
	t.Helper()
	g, err := gguf.Open(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w, err := gguf.Open(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if len(g.Tensors) != len(w.Tensors) {
		t.Fatalf("%d tensors, want %d", len(g.Tensors), len(w.Tensors))
	}
	for i := range g.Tensors {
		gt, wt := g.Tensors[i], w.Tensors[i]
		if gt.Name != wt.Name || gt.Type != wt.Type || fmt.Sprint(gt.Dims) != fmt.Sprint(wt.Dims) {
			t.Errorf("tensor %d: %s %s %v, want %s %s %v", i, gt.Name, gt.Type, gt.Dims, wt.Name, wt.Type, wt.Dims)
			continue
		}
		_, gb, _ := g.TensorData(gt.Name)
		_, wb, _ := w.TensorData(wt.Name)
		if gt.Name == "rope_freqs.weight" {
			// Computed from float32 frequencies as convert_hf_to_gguf.py does with torch;
			// the oracle's generator used float64 frequencies, which moves the
			// interpolated factors by about 2e-7 relative.
			for k := 0; k < len(gb); k += 4 {
				a := math.Float32frombits(binary.LittleEndian.Uint32(gb[k:]))
				b := math.Float32frombits(binary.LittleEndian.Uint32(wb[k:]))
				if math.Abs(float64(a-b)) > 1e-6*math.Abs(float64(b)) {
					t.Errorf("rope_freqs[%d] = %g, want %g", k/4, a, b)
				}
			}
			continue
		}
		if !bytes.Equal(gb, wb) {
			t.Errorf("tensor %s (%s): data differs", gt.Name, gt.Type)
		}
	}
}

// TestHFHalfPrecisionLoadsBack: a BF16 (and an F16) Qwen2 checkpoint with a byte-level
// tokenizer.json quantizes to q8_0 with the same tensor bytes as the same weights
// quantized from a GGUF of that half type, and the result loads in ragkv with the
// tokenizer from its metadata (vocabulary padded to 512) and gives the logits of the
// GGUF-quantized file.
func TestHFHalfPrecisionLoadsBack(t *testing.T) {
	for _, dtype := range []string{"BF16", "F16"} {
		t.Run(dtype, func(t *testing.T) {
			t.Parallel()
			src := filepath.Join(oracleDir(t), "tiny-qwen2-f32.gguf")
			hf := t.TempDir()
			writeHFFromGGUF(t, src, hf, dtype, byteLevelTokenizerJSON(t))
			dt := map[string]gguf.TensorType{"BF16": gguf.TensorBF16, "F16": gguf.TensorF16}[dtype]
			half := filepath.Join(t.TempDir(), "half.gguf")
			writeHalfGGUF(t, src, half, dt)
			out, ref := filepath.Join(t.TempDir(), "hf.gguf"), filepath.Join(t.TempDir(), "gguf.gguf")
			res, err := Run(context.Background(), hf, out, Options{Type: Q8_0})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Warnings) != 0 || res.TypeCounts["q8_0"] != 4*7+1 {
				t.Errorf("warnings %q, types %v", res.Warnings, res.TypeCounts)
			}
			if _, err := Run(context.Background(), half, ref, Options{Type: Q8_0}); err != nil {
				t.Fatal(err)
			}
			compareTensors(t, out, ref)

			m, err := model.Open(out, model.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Tok.Kind() != "bpe" || m.Tok.VocabSize() != 512 || m.WeightType != kernels.Q8_0 || !m.Config.Tied {
				t.Fatalf("loaded %s tokenizer of %d, weights %v, tied %v", m.Tok.Kind(), m.Tok.VocabSize(), m.WeightType, m.Config.Tied)
			}
			if ids := m.Tok.Encode("hello world", false, false); fmt.Sprint(ids) != "[259 262 108 100]" {
				t.Errorf("tokens of %q: %v", "hello world", ids)
			}
			r, err := model.Open(ref, model.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			toks := []int{1, 17, 300, 42, 511, 7}
			_, a, err := m.Prefill(context.Background(), toks, 0, 0, model.ExtendOptions{Logits: []int{len(toks) - 1}})
			if err != nil {
				t.Fatal(err)
			}
			_, b, err := r.Prefill(context.Background(), toks, 0, 0, model.ExtendOptions{Logits: []int{len(toks) - 1}})
			if err != nil {
				t.Fatal(err)
			}
			for i := range a.Logits {
				if a.Logits[i] != b.Logits[i] {
					t.Fatalf("logit %d: %g, GGUF-quantized %g", i, a.Logits[i], b.Logits[i])
				}
			}
		})
	}
}

// writeHalfGGUF rewrites an f32 GGUF with its values rounded to type dt: 2-D tensors
// stored in dt, 1-D ones widened back to f32 (as convert_hf_to_gguf.py writes a half
// checkpoint's norms and biases).
func writeHalfGGUF(t *testing.T, src, dst string, dt gguf.TensorType) {
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	gw := gguf.NewWriter(w)
	for _, kv := range f.KVs {
		if err := gw.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	typ := func(ti gguf.TensorInfo) gguf.TensorType {
		if len(ti.Dims) == 2 {
			return dt
		}
		return gguf.TensorF32
	}
	for _, ti := range f.Tensors {
		if err := gw.AddTensor(ti.Name, typ(ti), ti.Dims); err != nil {
			t.Fatal(err)
		}
	}
	if err := gw.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	for _, ti := range f.Tensors {
		_, data, _ := f.TensorData(ti.Name)
		b := convertF32(t, data, map[gguf.TensorType]string{gguf.TensorBF16: "BF16", gguf.TensorF16: "F16"}[dt])
		if typ(ti) == gguf.TensorF32 { // the half values, widened
			v := make([]float32, len(b)/2)
			if err := kernels.Dequantize(v, b, kernels.DType(dt)); err != nil {
				t.Fatal(err)
			}
			b = make([]byte, 4*len(v))
			for i, x := range v {
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
			}
		}
		if _, err := gw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := gw.Finish(); err != nil {
		t.Fatal(err)
	}
}

// TestHFMistralSlidingWindow: a Mistral checkpoint's sliding_window becomes
// llama.attention.sliding_window, which the engine loads as the attention mask.
func TestHFMistralSlidingWindow(t *testing.T) {
	src := filepath.Join(oracleDir(t), "tiny-llama-f32.gguf")
	hf := t.TempDir()
	writeHFFromGGUF(t, src, hf, "F32", byteLevelTokenizerJSON(t))
	cfgPath := filepath.Join(hf, "config.json")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["model_type"], cfg["sliding_window"] = "mistral", 8
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "mistral.gguf")
	if _, err := Run(context.Background(), hf, out, Options{Type: Q8_0}); err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(out, model.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Config.SlidingWindow != 8 || m.Config.SWAPattern != 0 || m.Config.Ctx == 8 {
		t.Fatalf("window %d, pattern %d, context %d", m.Config.SlidingWindow, m.Config.SWAPattern, m.Config.Ctx)
	}
}
