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
	// Gemma 2/3.
	HiddenActivation string   `json:"hidden_activation"`
	QueryPreAttn     *float64 `json:"query_pre_attn_scalar"`
	AttnSoftcap      *float64 `json:"attn_logit_softcapping"`
	FinalSoftcap     *float64 `json:"final_logit_softcapping"`
	RopeLocalBase    float64  `json:"rope_local_base_freq"`
	SWAPattern       int      `json:"sliding_window_pattern"`
	LayerTypes       []string `json:"layer_types"`
}

// hfWindowPattern reads which layers use the sliding window: layer_types
// ("sliding_attention" / "full_attention", transformers ≥ 4.53) when given, else def (a
// Config.SWAPattern). The layer types must follow a pattern the engine implements
// (every layer, or l mod n < n−1).
func hfWindowPattern(hc *hfConfig, def int, cfgPath string) (int, error) {
	if len(hc.LayerTypes) == 0 {
		return def, nil
	}
	if len(hc.LayerTypes) != hc.Layers {
		return 0, fmt.Errorf("model %s: %w: %d layer_types for %d layers", cfgPath, ErrFormat, len(hc.LayerTypes), hc.Layers)
	}
	for n := 0; n <= hc.Layers; n++ {
		if n == 1 {
			continue
		}
		ok := true
		c := Config{SlidingWindow: 1, SWAPattern: n}
		for l, t := range hc.LayerTypes {
			if t != "sliding_attention" && t != "full_attention" {
				return 0, fmt.Errorf("model %s: %w: layer_types[%d] = %q", cfgPath, ErrUnsupported, l, t)
			}
			if c.Windowed(l) != (t == "sliding_attention") {
				ok = false
				break
			}
		}
		if ok {
			return n, nil
		}
	}
	return 0, fmt.Errorf("model %s: %w: layer_types %v follow no sliding-window pattern the engine implements", cfgPath, ErrUnsupported, hc.LayerTypes)
}

// hfGemmaDefaults fills the fields Gemma configs may leave out with the defaults of
// transformers' Gemma2Config / Gemma3TextConfig (the official Gemma 3 4B+ text_config
// gives only a few fields).
func hfGemmaDefaults(hc *hfConfig) {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	f64 := func(v **float64, d float64) {
		if *v == nil {
			*v = &d
		}
	}
	switch hc.ModelType {
	case "gemma2":
		def(&hc.Heads, 8)
		def(&hc.KVHeads, 4)
		def(&hc.HeadDim, 256)
		def(&hc.Vocab, 256000)
		def(&hc.MaxPos, 8192)
		f64(&hc.AttnSoftcap, 50)
		f64(&hc.FinalSoftcap, 30)
	case "gemma3_text":
		def(&hc.Heads, 8)
		def(&hc.KVHeads, 4)
		def(&hc.HeadDim, 256)
		def(&hc.Vocab, 262208)
		def(&hc.MaxPos, 131072)
		if hc.RopeTheta == 0 {
			hc.RopeTheta = 1e6
		}
	default:
		return
	}
	if hc.SlidingWindow == nil {
		w := 4096
		hc.SlidingWindow = &w
	}
	f64(&hc.QueryPreAttn, 256)
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
	case "linear":
		if rs.Factor == nil || !(*rs.Factor > 0) || math.IsInf(*rs.Factor, 0) {
			return nil, fmt.Errorf("model %s: %w: rope_scaling.factor missing or not positive (linear)", cfgPath, ErrFormat)
		}
		return &RopeScaling{Type: "linear", Factor: *rs.Factor}, nil
	default:
		return nil, fmt.Errorf("model %s: %w: %s = %q: RoPE scaling not implemented (implemented: llama3, linear)", cfgPath, ErrUnsupported, key, typ)
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
	// Gemma 3 4B+ are multimodal checkpoints (Gemma3ForConditionalGeneration): the text
	// model's configuration is text_config, its weights are under language_model.
	multimodal := false
	if hc.ModelType == "gemma3" {
		var outer struct {
			TextConfig json.RawMessage `json:"text_config"`
		}
		if err := json.Unmarshal(cb, &outer); err != nil || len(outer.TextConfig) == 0 || string(outer.TextConfig) == "null" {
			return nil, fmt.Errorf("model %s: %w: model_type gemma3 without text_config", cfgPath, ErrFormat)
		}
		hc = hfConfig{}
		if err := json.Unmarshal(outer.TextConfig, &hc); err != nil {
			return nil, fmt.Errorf("model %s: %w: text_config: %v", cfgPath, ErrFormat, err)
		}
		hc.ModelType, multimodal = "gemma3_text", true
	}
	hfGemmaDefaults(&hc)
	m := &Model{Path: path, Format: "safetensors"}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	c := &m.Config
	gemma := false
	switch hc.ModelType {
	case "llama", "mistral":
	case "qwen2":
		c.QKVBias = true
	case "qwen3":
		c.QKNorm = true
	case "gemma2", "gemma3_text":
		gemma = true
	default:
		return nil, fmt.Errorf("model %s: %w: model_type %q (supported: llama, mistral, qwen2, qwen3, gemma2, gemma3_text)", cfgPath, ErrUnsupported, hc.ModelType)
	}
	if hc.AttentionBias {
		c.QKVBias = true
	}
	scaling, err := parseHFRopeScaling(hc.RopeScaling, cfgPath)
	if err != nil {
		return nil, err
	}
	act := ActSiLU
	if gemma {
		// Gemma 2/3 name the activation hidden_activation (hidden_act is legacy).
		a := hc.HiddenActivation
		if a == "" {
			a = hc.HiddenAct
		}
		if a != "" && a != "gelu_pytorch_tanh" && a != "gelu" {
			return nil, fmt.Errorf("model %s: %w: hidden_activation %q", cfgPath, ErrUnsupported, a)
		}
		act = ActGELUTanh // HF Gemma runs "gelu" as the tanh approximation too
	} else if hc.HiddenAct != "" && hc.HiddenAct != "silu" {
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
	tied := hc.Tie != nil && *hc.Tie
	if gemma && hc.Tie == nil {
		tied = true // Gemma's default
	}
	*c = Config{Arch: hc.ModelType, Dim: hc.Hidden, Hidden: hc.Intermediate, Layers: hc.Layers, Heads: hc.Heads, KVHeads: hc.KVHeads,
		HeadDim: hc.HeadDim, Vocab: hc.Vocab, Ctx: hc.MaxPos, RopeTheta: hc.RopeTheta, NormEps: float32(hc.RMSNormEps), Rope: RopeHalf,
		QKVBias: c.QKVBias, QKNorm: c.QKNorm, Tied: tied}
	if act != ActSiLU {
		c.Act = act
	}
	if scaling != nil {
		if hc.HeadDim <= 0 || hc.HeadDim%2 != 0 {
			return nil, fmt.Errorf("model %s: %w: head_dim %d", cfgPath, ErrFormat, hc.HeadDim)
		}
		if scaling.Type == "linear" {
			scaling.FreqFactors = LinearScaling(scaling.Factor, hc.HeadDim).FreqFactors
		} else {
			scaling.FreqFactors = Llama3FreqFactors(hc.RopeTheta, hc.HeadDim, scaling.Factor, scaling.LowFreqFactor, scaling.HighFreqFactor, scaling.OriginalContext)
		}
		c.RopeScaling = scaling
	}
	// The sliding window is an attention mask (Config.SlidingWindow), not a context cap.
	// Qwen2/Qwen3 configs carry a sliding_window that applies only with
	// use_sliding_window (and then from max_window_layers on): not implemented.
	switch {
	case hc.ModelType == "qwen2" || hc.ModelType == "qwen3":
		if hc.UseSlidingWind != nil && *hc.UseSlidingWind {
			return nil, fmt.Errorf("model %s: %w: use_sliding_window (Qwen's windowed upper layers) is not implemented", cfgPath, ErrUnsupported)
		}
	case hc.SlidingWindow != nil && *hc.SlidingWindow > 0 && (hc.UseSlidingWind == nil || *hc.UseSlidingWind):
		c.SlidingWindow = *hc.SlidingWindow
		def := 0 // Mistral: every layer
		switch hc.ModelType {
		case "gemma2":
			def = 2 // even layers
		case "gemma3_text":
			def = 6
			if hc.SWAPattern > 0 {
				def = hc.SWAPattern
			}
		}
		if c.SWAPattern, err = hfWindowPattern(&hc, def, cfgPath); err != nil {
			return nil, err
		}
	}
	if gemma {
		c.PostNorms = true
		c.EmbedScale = float32(math.Sqrt(float64(c.Dim)))
		if hc.QueryPreAttn != nil {
			if !(*hc.QueryPreAttn > 0) || math.IsInf(*hc.QueryPreAttn, 0) {
				return nil, fmt.Errorf("model %s: %w: query_pre_attn_scalar %g", cfgPath, ErrFormat, *hc.QueryPreAttn)
			}
			if qs := 1 / math.Sqrt(*hc.QueryPreAttn); math.Abs(qs*math.Sqrt(float64(c.HeadDim))-1) > 1e-12 {
				c.QueryScale = qs
			}
		}
		for _, sc := range []struct {
			v   *float64
			dst *float32
		}{{hc.AttnSoftcap, &c.AttnSoftcap}, {hc.FinalSoftcap, &c.FinalSoftcap}} {
			if sc.v != nil {
				*sc.dst = float32(*sc.v)
			}
		}
		if hc.ModelType == "gemma3_text" {
			c.QKNorm = true
			c.RopeThetaLocal = hc.RopeLocalBase
			if c.RopeThetaLocal == 0 {
				c.RopeThetaLocal = 10000
			}
			if scaling != nil && scaling.Type != "linear" {
				return nil, fmt.Errorf("model %s: %w: rope_scaling %q on gemma3 (implemented: linear, of the global layers)", cfgPath, ErrUnsupported, scaling.Type)
			}
		}
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
	// The text model's tensor prefix: model., or for multimodal Gemma 3
	// language_model.model. (transformers < 4.52) or model.language_model.
	pre := "model."
	if multimodal {
		pre = ""
		for _, p := range []string{"language_model.model.", "model.language_model."} {
			if _, ok := tensors[p+"embed_tokens.weight"]; ok {
				pre = p
			}
		}
		if pre == "" {
			return nil, fmt.Errorf("model %s: %w: no language_model embed_tokens.weight in a multimodal gemma3 checkpoint", path, ErrFormat)
		}
	}
	if m.w.embed, err = mat(pre+"embed_tokens.weight", c.Vocab, c.Dim); err != nil {
		return nil, err
	}
	head := "lm_head.weight"
	if multimodal {
		head = "language_model." + head
	}
	if _, ok := tensors[head]; ok && !c.Tied {
		if m.w.out, err = mat(head, c.Vocab, c.Dim); err != nil {
			return nil, err
		}
	} else {
		m.w.out, c.Tied = m.w.embed, true
	}
	// Gemma's RMSNorm multiplies by (1 + weight): fold the 1 in (as llama.cpp's
	// converter does), Q/K norms of Gemma 3 included.
	norm := func(name string, n int) ([]float32, error) {
		v, err := vec(name, n)
		if err == nil && gemma {
			for i := range v {
				v[i]++
			}
		}
		return v, err
	}
	if m.w.norm, err = norm(pre+"norm.weight", c.Dim); err != nil {
		return nil, err
	}
	kvDim := c.KVDim()
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("%slayers.%d.", pre, l)
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
		if lw.attnNorm, err = norm(p+"input_layernorm.weight", c.Dim); err != nil {
			return nil, err
		}
		if gemma {
			// Gemma: post_attention_layernorm is the attention output's norm; the
			// feed-forward has a pre and a post norm.
			for _, s := range []struct {
				dst  *[]float32
				name string
			}{{&lw.postAttn, "post_attention_layernorm"}, {&lw.ffnNorm, "pre_feedforward_layernorm"}, {&lw.postFFN, "post_feedforward_layernorm"}} {
				if *s.dst, err = norm(p+s.name+".weight", c.Dim); err != nil {
					return nil, err
				}
			}
		} else if lw.ffnNorm, err = vec(p+"post_attention_layernorm.weight", c.Dim); err != nil {
			return nil, err
		}
		if c.QKNorm {
			if lw.qNorm, err = norm(p+"self_attn.q_norm.weight", c.HeadDim); err != nil {
				return nil, err
			}
			if lw.kNorm, err = norm(p+"self_attn.k_norm.weight", c.HeadDim); err != nil {
				return nil, err
			}
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
