package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/internal/safetensors"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// hfConfig is the part of a HuggingFace config.json the engine reads.
type hfConfig struct {
	Architectures  []string        `json:"architectures"`
	ModelType      string          `json:"model_type"`
	Hidden         int             `json:"hidden_size"`
	Intermediate   int             `json:"intermediate_size"`
	Layers         int             `json:"num_hidden_layers"`
	Heads          int             `json:"num_attention_heads"`
	KVHeads        int             `json:"num_key_value_heads"`
	HeadDim        int             `json:"head_dim"`
	Vocab          int             `json:"vocab_size"`
	MaxPos         int             `json:"max_position_embeddings"`
	RopeTheta      float64         `json:"rope_theta"`
	RMSNormEps     float64         `json:"rms_norm_eps"`
	Tie            *bool           `json:"tie_word_embeddings"`
	RopeScaling    json.RawMessage `json:"rope_scaling"`
	AttentionBias  bool            `json:"attention_bias"`
	HiddenAct      string          `json:"hidden_act"`
	SlidingWindow  *int            `json:"sliding_window"`
	UseSlidingWind *bool           `json:"use_sliding_window"`
}

// parseHFRopeScaling reads config.json's rope_scaling: null, absent or rope_type
// "default" is no scaling; "llama3" (Llama 3.1: factor, low_freq_factor,
// high_freq_factor, original_max_position_embeddings) is returned without its divisors;
// every other kind (linear, dynamic, yarn, longrope, ...) is rejected naming the key.
// Older configs name the kind "type" instead of "rope_type".
func parseHFRopeScaling(raw json.RawMessage, cfgPath string) (*RopeScaling, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var rs struct {
		RopeType       string   `json:"rope_type"`
		Type           string   `json:"type"`
		Factor         *float64 `json:"factor"`
		LowFreqFactor  *float64 `json:"low_freq_factor"`
		HighFreqFactor *float64 `json:"high_freq_factor"`
		OrigMaxPos     *float64 `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil, fmt.Errorf("model %s: %w: rope_scaling: %v", cfgPath, ErrFormat, err)
	}
	key, typ := "rope_scaling.rope_type", rs.RopeType
	if typ == "" {
		key, typ = "rope_scaling.type", rs.Type
	}
	switch typ {
	case "default", "":
		if typ == "" && (rs.Factor != nil && *rs.Factor != 1) {
			return nil, fmt.Errorf("model %s: %w: rope_scaling has a factor but no rope_type", cfgPath, ErrFormat)
		}
		return nil, nil
	case "llama3":
	default:
		return nil, fmt.Errorf("model %s: %w: %s = %q: RoPE scaling not implemented (implemented: llama3)", cfgPath, ErrUnsupported, key, typ)
	}
	need := func(name string, v *float64, ok func(float64) bool, want string) (float64, error) {
		if v == nil {
			return 0, fmt.Errorf("model %s: %w: rope_scaling.%s missing (rope_type llama3)", cfgPath, ErrFormat, name)
		}
		if !ok(*v) || math.IsInf(*v, 0) {
			return 0, fmt.Errorf("model %s: %w: rope_scaling.%s = %g, want %s", cfgPath, ErrFormat, name, *v, want)
		}
		return *v, nil
	}
	out := &RopeScaling{Type: "llama3"}
	var err error
	if out.Factor, err = need("factor", rs.Factor, func(v float64) bool { return v >= 1 }, "≥ 1"); err != nil {
		return nil, err
	}
	if out.LowFreqFactor, err = need("low_freq_factor", rs.LowFreqFactor, func(v float64) bool { return v > 0 }, "> 0"); err != nil {
		return nil, err
	}
	if out.HighFreqFactor, err = need("high_freq_factor", rs.HighFreqFactor, func(v float64) bool { return v > out.LowFreqFactor }, "> low_freq_factor"); err != nil {
		return nil, err
	}
	orig, err := need("original_max_position_embeddings", rs.OrigMaxPos, func(v float64) bool { return v >= 1 && v <= 1<<30 && v == math.Trunc(v) }, "a positive integer")
	if err != nil {
		return nil, err
	}
	out.OriginalContext = int(orig)
	return out, nil
}

// loadHF loads a HuggingFace checkpoint: path is a .safetensors file or a directory
// holding model.safetensors or model.safetensors.index.json (shards), with config.json
// (and tokenizer.json) beside it. Llama, Mistral and Qwen2 architectures; RoPE in the
// rotate-half layout.
func loadHF(path string, o Options) (_ *Model, err error) {
	dir := path
	var files []string
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		dir = filepath.Dir(path)
		files = []string{path}
	} else if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		files = []string{filepath.Join(dir, "model.safetensors")}
	} else {
		idx := filepath.Join(dir, "model.safetensors.index.json")
		b, err := os.ReadFile(idx)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w: no model.safetensors or index: %v", path, ErrFormat, err)
		}
		var ix struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &ix); err != nil {
			return nil, fmt.Errorf("model %s: %w: %v", idx, ErrFormat, err)
		}
		seen := map[string]bool{}
		for _, f := range ix.WeightMap {
			if strings.Contains(f, "/") || strings.Contains(f, "..") {
				return nil, fmt.Errorf("model %s: %w: shard name %q", idx, ErrFormat, f)
			}
			if !seen[f] {
				seen[f] = true
				files = append(files, filepath.Join(dir, f))
			}
		}
		sort.Strings(files)
	}
	cfgPath := filepath.Join(dir, "config.json")
	cb, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	var hc hfConfig
	if err := json.Unmarshal(cb, &hc); err != nil {
		return nil, fmt.Errorf("model %s: %w: %v", cfgPath, ErrFormat, err)
	}
	m := &Model{Path: path, Format: "safetensors"}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	c := &m.Config
	switch hc.ModelType {
	case "llama", "mistral":
	case "qwen2":
		c.QKVBias = true
	default:
		return nil, fmt.Errorf("model %s: %w: model_type %q (supported: llama, mistral, qwen2)", cfgPath, ErrUnsupported, hc.ModelType)
	}
	if hc.AttentionBias {
		c.QKVBias = true
	}
	scaling, err := parseHFRopeScaling(hc.RopeScaling, cfgPath)
	if err != nil {
		return nil, err
	}
	if hc.HiddenAct != "" && hc.HiddenAct != "silu" {
		return nil, fmt.Errorf("model %s: %w: hidden_act %q", cfgPath, ErrUnsupported, hc.HiddenAct)
	}
	if hc.KVHeads == 0 {
		hc.KVHeads = hc.Heads
	}
	if hc.Heads <= 0 || hc.Hidden <= 0 {
		return nil, fmt.Errorf("model %s: %w: hidden_size %d, num_attention_heads %d", cfgPath, ErrFormat, hc.Hidden, hc.Heads)
	}
	if hc.HeadDim == 0 {
		hc.HeadDim = hc.Hidden / hc.Heads
	}
	if hc.RopeTheta == 0 {
		hc.RopeTheta = 10000
	}
	if hc.RMSNormEps == 0 {
		hc.RMSNormEps = 1e-6
	}
	*c = Config{Arch: hc.ModelType, Dim: hc.Hidden, Hidden: hc.Intermediate, Layers: hc.Layers, Heads: hc.Heads, KVHeads: hc.KVHeads,
		HeadDim: hc.HeadDim, Vocab: hc.Vocab, Ctx: hc.MaxPos, RopeTheta: hc.RopeTheta, NormEps: float32(hc.RMSNormEps), Rope: RopeHalf,
		QKVBias: c.QKVBias, Tied: hc.Tie != nil && *hc.Tie}
	if scaling != nil {
		if hc.HeadDim <= 0 || hc.HeadDim%2 != 0 {
			return nil, fmt.Errorf("model %s: %w: head_dim %d", cfgPath, ErrFormat, hc.HeadDim)
		}
		scaling.FreqFactors = Llama3FreqFactors(hc.RopeTheta, hc.HeadDim, scaling.Factor, scaling.LowFreqFactor, scaling.HighFreqFactor, scaling.OriginalContext)
		c.RopeScaling = scaling
	}
	// A sliding window changes nothing for contexts within it: cap the context there.
	if hc.SlidingWindow != nil && *hc.SlidingWindow > 0 && (hc.UseSlidingWind == nil || *hc.UseSlidingWind) && *hc.SlidingWindow < c.Ctx {
		c.Ctx = *hc.SlidingWindow
	}
	if c.HeadDim*c.Heads != c.Dim {
		return nil, fmt.Errorf("model %s: %w: head_dim %d × %d heads ≠ hidden_size %d", cfgPath, ErrUnsupported, c.HeadDim, c.Heads, c.Dim)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("model %s: %w", cfgPath, err)
	}
	tensors := map[string]safetensors.Tensor{}
	for _, p := range files {
		f, err := safetensors.Open(p)
		if err != nil {
			return nil, fmt.Errorf("model: %w: %w", ErrFormat, err)
		}
		m.closers = append(m.closers, f.Close)
		for k, t := range f.Tensors {
			tensors[k] = t
		}
	}
	dtypes := map[string]kernels.DType{"F32": kernels.F32, "F16": kernels.F16, "BF16": kernels.BF16}
	mat := func(name string, rows, cols int) (kernels.Mat, error) {
		t, ok := tensors[name]
		if !ok {
			return kernels.Mat{}, fmt.Errorf("model %s: %w: tensor %q missing", path, ErrFormat, name)
		}
		dt, ok := dtypes[t.DType]
		if !ok {
			return kernels.Mat{}, fmt.Errorf("model %s: %w: tensor %q has dtype %s", path, ErrUnsupported, name, t.DType)
		}
		if len(t.Shape) != 2 || t.Shape[0] != rows || t.Shape[1] != cols {
			return kernels.Mat{}, fmt.Errorf("model %s: %w: tensor %q has shape %v, want [%d %d]", path, ErrFormat, name, t.Shape, rows, cols)
		}
		return kernels.Mat{Type: dt, Rows: rows, Cols: cols, Data: t.Data}, nil
	}
	vec := func(name string, n int) ([]float32, error) {
		t, ok := tensors[name]
		if !ok {
			return nil, fmt.Errorf("model %s: %w: tensor %q missing", path, ErrFormat, name)
		}
		dt, ok := dtypes[t.DType]
		if !ok || len(t.Shape) != 1 || t.Shape[0] != n {
			return nil, fmt.Errorf("model %s: %w: tensor %q has dtype %s shape %v, want [%d]", path, ErrFormat, name, t.DType, t.Shape, n)
		}
		out := make([]float32, n)
		return out, kernels.Dequantize(out, t.Data, dt)
	}
	if m.w.embed, err = mat("model.embed_tokens.weight", c.Vocab, c.Dim); err != nil {
		return nil, err
	}
	if _, ok := tensors["lm_head.weight"]; ok && !c.Tied {
		if m.w.out, err = mat("lm_head.weight", c.Vocab, c.Dim); err != nil {
			return nil, err
		}
	} else {
		m.w.out, c.Tied = m.w.embed, true
	}
	if m.w.norm, err = vec("model.norm.weight", c.Dim); err != nil {
		return nil, err
	}
	kvDim := c.KVDim()
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		var lw layerWeights
		for _, s := range []struct {
			dst        *kernels.Mat
			name       string
			rows, cols int
		}{
			{&lw.wq, "self_attn.q_proj", c.QDim(), c.Dim}, {&lw.wk, "self_attn.k_proj", kvDim, c.Dim}, {&lw.wv, "self_attn.v_proj", kvDim, c.Dim},
			{&lw.wo, "self_attn.o_proj", c.Dim, c.QDim()}, {&lw.w1, "mlp.gate_proj", c.Hidden, c.Dim}, {&lw.w2, "mlp.down_proj", c.Dim, c.Hidden},
			{&lw.w3, "mlp.up_proj", c.Hidden, c.Dim},
		} {
			if *s.dst, err = mat(p+s.name+".weight", s.rows, s.cols); err != nil {
				return nil, err
			}
		}
		if lw.attnNorm, err = vec(p+"input_layernorm.weight", c.Dim); err != nil {
			return nil, err
		}
		if lw.ffnNorm, err = vec(p+"post_attention_layernorm.weight", c.Dim); err != nil {
			return nil, err
		}
		if c.QKVBias {
			if lw.bq, err = vec(p+"self_attn.q_proj.bias", c.QDim()); err != nil {
				return nil, err
			}
			if lw.bk, err = vec(p+"self_attn.k_proj.bias", kvDim); err != nil {
				return nil, err
			}
			if lw.bv, err = vec(p+"self_attn.v_proj.bias", kvDim); err != nil {
				return nil, err
			}
		}
		m.w.layers = append(m.w.layers, lw)
	}
	if o.Tokenizer == "" {
		tp := filepath.Join(dir, "tokenizer.json")
		if _, err := os.Stat(tp); err == nil {
			tok, err := tokenizer.LoadHF(tp)
			if err != nil {
				return nil, err
			}
			m.Tok = tok
		}
	}
	if err := m.finish(o); err != nil {
		return nil, err
	}
	return m, nil
}
