package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/internal/llama2c"
	"github.com/ragkv/ragkv/model/internal/mmap"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// Options configures Open.
type Options struct {
	// Tokenizer is a tokenizer file to use instead of the model's own: a llama2.c
	// tokenizer (.bin) or a HuggingFace tokenizer.json. Empty: the GGUF metadata, the
	// tokenizer.json beside a safetensors model, or tokenizer.bin / tok<vocab>.bin beside
	// a llama2.c checkpoint.
	Tokenizer string
	// Threads for a Pool the model creates (≤ 0: GOMAXPROCS). Ignored when Pool is set.
	Threads int
	// Pool is a shared kernels pool; the model does not close it.
	Pool *kernels.Pool
}

// Model is a loaded transformer: configuration, weights, tokenizer and the kernels pool
// its computations run on.
type Model struct {
	Config Config
	Tok    tokenizer.Tokenizer
	// Path is the file the model was loaded from; Format is "gguf", "llama2c" or
	// "safetensors"; WeightType is the dominant weight type (of the Q projection).
	Path       string
	Format     string
	WeightType kernels.DType

	w       weights
	pool    *kernels.Pool
	ownPool bool
	closers []func() error
	rope    []float64 // per pair index i: theta^(-2i/headDim), scaled (Config.RopeFreqs)
	// ropeLocal are the windowed layers' frequencies when they have their own base
	// (Config.RopeFreqsLocal), else nil.
	ropeLocal []float64
}

type layerWeights struct {
	attnNorm, ffnNorm []float32
	wq, wk, wv, wo    kernels.Mat
	w1, w2, w3        kernels.Mat // gate, down, up
	bq, bk, bv        []float32   // nil without biases
	qNorm, kNorm      []float32   // per-head Q/K RMSNorm weights (HeadDim), nil without
	postAttn, postFFN []float32   // post-attention / post-feed-forward norms, nil without
}

type weights struct {
	embed  kernels.Mat // Vocab × Dim
	layers []layerWeights
	norm   []float32
	out    kernels.Mat // Vocab × Dim
}

// Pool returns the kernels pool the model runs on.
func (m *Model) Pool() *kernels.Pool { return m.pool }

// Close releases the weights (memory mappings) and the pool if the model created it.
func (m *Model) Close() error {
	var errs []error
	for _, c := range m.closers {
		errs = append(errs, c())
	}
	m.closers = nil
	if m.ownPool && m.pool != nil {
		m.pool.Close()
		m.pool = nil
	}
	return errors.Join(errs...)
}

// Open loads a model file: GGUF (by its magic), a safetensors file or a directory with
// HF config.json, or otherwise a llama2.c checkpoint.
func Open(path string, o Options) (*Model, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	switch {
	case st.IsDir() || strings.HasSuffix(path, ".safetensors"):
		return loadHF(path, o)
	case gguf.HasMagic(path):
		return loadGGUF(path, o)
	}
	return loadLlama2C(path, o)
}

func (m *Model) finish(o Options) error {
	if err := m.Config.Validate(); err != nil {
		return fmt.Errorf("model %s: %w", m.Path, err)
	}
	if o.Tokenizer != "" {
		tok, err := loadTokenizerFile(o.Tokenizer, m.Config.Vocab)
		if err != nil {
			return err
		}
		m.Tok = tok
	}
	if m.Tok == nil {
		return fmt.Errorf("model %s: %w: no tokenizer (give one with a tokenizer file)", m.Path, ErrFormat)
	}
	if m.Tok.VocabSize() > m.Config.Vocab {
		return fmt.Errorf("model %s: %w: tokenizer has %d tokens, the model %d", m.Path, ErrFormat, m.Tok.VocabSize(), m.Config.Vocab)
	}
	m.rope = m.Config.RopeFreqs()
	m.ropeLocal = m.Config.RopeFreqsLocal()
	if o.Pool != nil {
		m.pool = o.Pool
	} else {
		m.pool = kernels.NewPool(o.Threads)
		m.ownPool = true
	}
	m.WeightType = m.w.layers[0].wq.Type
	return nil
}

func loadTokenizerFile(path string, vocab int) (tokenizer.Tokenizer, error) {
	if strings.HasSuffix(path, ".json") {
		return tokenizer.LoadHF(path)
	}
	if gguf.HasMagic(path) {
		f, err := gguf.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return tokenizer.FromGGUF(f)
	}
	return tokenizer.LoadLlama2C(path, vocab)
}

// f32s converts little-endian float32 bytes.
func f32s(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func loadLlama2C(path string, o Options) (_ *Model, err error) {
	b, release, err := mmap.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m := &Model{Path: path, Format: "llama2c", closers: []func() error{release}}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	ck, err := llama2c.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w: %w", path, ErrFormat, err)
	}
	c := ck.Config
	m.Config = Config{Arch: "llama", Dim: c.Dim, Hidden: c.Hidden, Layers: c.Layers, Heads: c.Heads, KVHeads: c.KVHeads,
		HeadDim: c.Dim / c.Heads, Vocab: c.Vocab, Ctx: c.SeqLen, RopeTheta: 10000, NormEps: 1e-5, Rope: RopeInterleaved, Tied: c.Shared}
	mat := func(t llama2c.Tensor) kernels.Mat {
		return kernels.Mat{Type: kernels.F32, Rows: t.Rows, Cols: t.Cols, Data: t.Bytes(b)}
	}
	m.w.embed = mat(ck.Tensors["token_embedding"])
	m.w.out = m.w.embed
	if !c.Shared {
		m.w.out = mat(ck.Tensors["wcls"])
	}
	m.w.norm = f32s(ck.Tensors["rms_final"].Bytes(b))
	for l := 0; l < c.Layers; l++ {
		m.w.layers = append(m.w.layers, layerWeights{
			attnNorm: f32s(ck.Layer("rms_att", l).Bytes(b)),
			ffnNorm:  f32s(ck.Layer("rms_ffn", l).Bytes(b)),
			wq:       mat(ck.Layer("wq", l)), wk: mat(ck.Layer("wk", l)), wv: mat(ck.Layer("wv", l)), wo: mat(ck.Layer("wo", l)),
			w1: mat(ck.Layer("w1", l)), w2: mat(ck.Layer("w2", l)), w3: mat(ck.Layer("w3", l)),
		})
	}
	if o.Tokenizer == "" {
		dir := filepath.Dir(path)
		for _, name := range []string{"tokenizer.bin", fmt.Sprintf("tok%d.bin", c.Vocab)} {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err == nil {
				tok, err := tokenizer.LoadLlama2C(p, c.Vocab)
				if err != nil {
					return nil, err
				}
				m.Tok = tok
				break
			}
		}
	}
	if err := m.finish(o); err != nil {
		return nil, err
	}
	return m, nil
}

func loadGGUF(path string, o Options) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w: %w", ErrFormat, err)
	}
	m, err := fromGGUF(f, o)
	if err != nil {
		f.Close()
		return nil, err
	}
	m.closers = append(m.closers, f.Close)
	return m, nil
}

// fromGGUF builds a model over a parsed GGUF file (whose data must outlive the model).
func fromGGUF(f *gguf.File, o Options) (_ *Model, err error) {
	path := f.Path
	bad := func(format string, args ...any) error {
		return fmt.Errorf("model %s: %w: %s", path, ErrFormat, fmt.Sprintf(format, args...))
	}
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m := &Model{Path: path, Format: "gguf"}
	c := &m.Config
	c.Arch = arch
	// Per architecture, as llama.cpp's graph builders read these files.
	switch arch {
	case "llama", "mistral":
		c.Rope = RopeInterleaved
	case "qwen2":
		c.Rope = RopeHalf
		c.QKVBias = true
	case "qwen3":
		c.Rope = RopeHalf
		c.QKNorm = true
	case "gemma2":
		// Embeddings ×√d, pre and post norms (the converter adds Gemma's +1 to the
		// norm weights), GeGLU, soft-capped attention scores and logits, a sliding
		// window on the even layers.
		c.Rope, c.PostNorms, c.Act, c.SWAPattern = RopeHalf, true, ActGELUTanh, 2
		c.AttnSoftcap, c.FinalSoftcap, c.SlidingWindow = 50, 30, 4096 // llama.cpp's defaults
	case "gemma3":
		// As gemma2 with per-head Q/K norms, five windowed layers (RoPE base 10000)
		// per global one, and no soft-capping.
		c.Rope, c.PostNorms, c.Act, c.SWAPattern, c.QKNorm = RopeHalf, true, ActGELUTanh, 6, true
		c.RopeThetaLocal = 10000
	default:
		return nil, fmt.Errorf("model %s: %w: architecture %q (supported: llama, mistral, qwen2, qwen3, gemma2, gemma3)", path, ErrUnsupported, arch)
	}
	gemma := arch == "gemma2" || arch == "gemma3"
	u := func(key string, def int, required bool) (int, error) {
		v, err := f.Uint(arch + "." + key)
		if errors.Is(err, gguf.ErrNotFound) && !required {
			return def, nil
		}
		if err != nil {
			return 0, fmt.Errorf("model: %w", err)
		}
		if v > 1<<30 {
			return 0, bad("%s.%s = %d out of range", arch, key, v)
		}
		return int(v), nil
	}
	if c.Dim, err = u("embedding_length", 0, true); err != nil {
		return nil, err
	}
	if c.Hidden, err = u("feed_forward_length", 0, true); err != nil {
		return nil, err
	}
	if c.Layers, err = u("block_count", 0, true); err != nil {
		return nil, err
	}
	if c.Heads, err = u("attention.head_count", 0, true); err != nil {
		return nil, err
	}
	if c.KVHeads, err = u("attention.head_count_kv", c.Heads, false); err != nil {
		return nil, err
	}
	if c.Ctx, err = u("context_length", 2048, false); err != nil {
		return nil, err
	}
	if c.Heads == 0 {
		return nil, bad("no attention heads")
	}
	// The head size: attention.key_length (Qwen3 and Gemma heads are not
	// embedding/heads wide), else embedding/heads.
	if c.HeadDim, err = u("attention.key_length", 0, false); err != nil {
		return nil, err
	}
	if c.HeadDim == 0 {
		if c.Dim%c.Heads != 0 {
			return nil, bad("embedding length %d not divisible by %d heads", c.Dim, c.Heads)
		}
		c.HeadDim = c.Dim / c.Heads
	}
	if vl, err := u("attention.value_length", c.HeadDim, false); err != nil {
		return nil, err
	} else if vl != c.HeadDim {
		return nil, fmt.Errorf("model %s: %w: value length %d differs from key length %d", path, ErrUnsupported, vl, c.HeadDim)
	}
	switch arch {
	case "llama", "mistral", "gemma2", "gemma3":
		// Mistral's window (llama.attention.sliding_window); required by gemma3.
		if c.SlidingWindow, err = u("attention.sliding_window", c.SlidingWindow, arch == "gemma3"); err != nil {
			return nil, err
		}
	}
	if gemma {
		c.EmbedScale = float32(math.Sqrt(float64(c.Dim)))
		// llama.cpp: 1/√(embedding/heads) for the 27B models, else 1/√head size.
		if (arch == "gemma2" && c.Layers == 46) || (arch == "gemma3" && c.Layers == 62) {
			c.QueryScale = 1 / math.Sqrt(float64(c.Dim/c.Heads))
		}
	}
	if arch == "gemma2" {
		for _, sc := range []struct {
			key string
			dst *float32
		}{{"attn_logit_softcapping", &c.AttnSoftcap}, {"final_logit_softcapping", &c.FinalSoftcap}} {
			if v, err := f.Float(arch + "." + sc.key); err == nil {
				*sc.dst = float32(v)
			}
		}
	}
	if rd, err := u("rope.dimension_count", c.HeadDim, false); err != nil {
		return nil, err
	} else if rd != c.HeadDim {
		return nil, fmt.Errorf("model %s: %w: partial RoPE (%d of %d dimensions)", path, ErrUnsupported, rd, c.HeadDim)
	}
	c.RopeTheta = 10000
	if v, err := f.Float(arch + ".rope.freq_base"); err == nil {
		c.RopeTheta = v
	}
	linear, err := checkGGUFRopeScaling(f, arch)
	if err != nil {
		return nil, err
	}
	if linear > 0 {
		c.RopeScaling = LinearScaling(linear, c.HeadDim)
	}
	eps, err := f.Float(arch + ".attention.layer_norm_rms_epsilon")
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	c.NormEps = float32(eps)

	mat := func(name string, rows, cols int) (kernels.Mat, error) {
		ti, b, err := f.TensorData(name)
		if err != nil {
			return kernels.Mat{}, fmt.Errorf("model: %w", err)
		}
		if len(ti.Dims) != 2 || ti.Dims[0] != uint64(cols) || (rows >= 0 && ti.Dims[1] != uint64(rows)) {
			return kernels.Mat{}, bad("tensor %q has shape %v, want [%d %d]", name, ti.Dims, cols, rows)
		}
		mt := kernels.Mat{Type: kernels.DType(ti.Type), Rows: int(ti.Dims[1]), Cols: cols, Data: b}
		if err := mt.Validate(); err != nil {
			return kernels.Mat{}, fmt.Errorf("model %s: tensor %q: %w: %w", path, name, ErrUnsupported, err)
		}
		return mt, nil
	}
	vec := func(name string, n int) ([]float32, error) {
		ti, b, err := f.TensorData(name)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		if len(ti.Dims) != 1 || ti.Dims[0] != uint64(n) {
			return nil, bad("tensor %q has shape %v, want [%d]", name, ti.Dims, n)
		}
		out := make([]float32, n)
		if err := kernels.Dequantize(out, b, kernels.DType(ti.Type)); err != nil {
			return nil, fmt.Errorf("model %s: tensor %q: %w", path, name, err)
		}
		return out, nil
	}
	// Llama 3.1 frequency scaling: one divisor per rotary pair (llama.cpp's
	// LLM_TENSOR_ROPE_FREQS, passed to ggml_rope_ext as freq_factors).
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		if c.RopeScaling != nil {
			return nil, fmt.Errorf("model %s: %w: rope_freqs.weight together with linear RoPE scaling", path, ErrUnsupported)
		}
		ff, err := vec("rope_freqs.weight", c.HeadDim/2)
		if err != nil {
			return nil, err
		}
		rs := &RopeScaling{Type: "llama3", FreqFactors: make([]float64, len(ff))}
		for i, v := range ff {
			if !(v > 0) || math.IsInf(float64(v), 0) {
				return nil, bad("tensor \"rope_freqs.weight\": frequency factor %d is %g (must be positive and finite)", i, v)
			}
			rs.FreqFactors[i] = float64(v)
		}
		c.RopeScaling = rs
	}
	if m.w.embed, err = mat("token_embd.weight", -1, c.Dim); err != nil {
		return nil, err
	}
	c.Vocab = m.w.embed.Rows
	if _, ok := f.Tensor("output.weight"); ok {
		if m.w.out, err = mat("output.weight", c.Vocab, c.Dim); err != nil {
			return nil, err
		}
	} else {
		m.w.out, c.Tied = m.w.embed, true
	}
	if m.w.norm, err = vec("output_norm.weight", c.Dim); err != nil {
		return nil, err
	}
	kvDim := c.KVHeads * c.HeadDim
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		var lw layerWeights
		steps := []struct {
			dst        *kernels.Mat
			name       string
			rows, cols int
		}{
			{&lw.wq, "attn_q", c.QDim(), c.Dim}, {&lw.wk, "attn_k", kvDim, c.Dim}, {&lw.wv, "attn_v", kvDim, c.Dim},
			{&lw.wo, "attn_output", c.Dim, c.QDim()}, {&lw.w1, "ffn_gate", c.Hidden, c.Dim}, {&lw.w2, "ffn_down", c.Dim, c.Hidden},
			{&lw.w3, "ffn_up", c.Hidden, c.Dim},
		}
		for _, s := range steps {
			if *s.dst, err = mat(p+s.name+".weight", s.rows, s.cols); err != nil {
				return nil, err
			}
		}
		if lw.attnNorm, err = vec(p+"attn_norm.weight", c.Dim); err != nil {
			return nil, err
		}
		if lw.ffnNorm, err = vec(p+"ffn_norm.weight", c.Dim); err != nil {
			return nil, err
		}
		if c.QKNorm {
			if lw.qNorm, err = vec(p+"attn_q_norm.weight", c.HeadDim); err != nil {
				return nil, err
			}
			if lw.kNorm, err = vec(p+"attn_k_norm.weight", c.HeadDim); err != nil {
				return nil, err
			}
		}
		if c.PostNorms {
			if lw.postAttn, err = vec(p+"post_attention_norm.weight", c.Dim); err != nil {
				return nil, err
			}
			if lw.postFFN, err = vec(p+"post_ffw_norm.weight", c.Dim); err != nil {
				return nil, err
			}
		}
		if c.QKVBias {
			if lw.bq, err = vec(p+"attn_q.bias", c.QDim()); err != nil {
				return nil, err
			}
			if lw.bk, err = vec(p+"attn_k.bias", kvDim); err != nil {
				return nil, err
			}
			if lw.bv, err = vec(p+"attn_v.bias", kvDim); err != nil {
				return nil, err
			}
		}
		m.w.layers = append(m.w.layers, lw)
	}
	if o.Tokenizer == "" {
		if m.Tok, err = tokenizer.FromGGUF(f); err != nil {
			return nil, err
		}
	}
	if err := m.finish(o); err != nil {
		return nil, err
	}
	return m, nil
}

// checkGGUFRopeScaling reads the RoPE scaling keys with llama.cpp's reading of them and
// returns the factor of linear scaling (0 for none), rejecting the kinds the engine does
// not implement, naming the key: rope.scaling.type "none" turns scaling off whatever the
// factor; absent or "linear", a factor (rope.scaling.factor, or the older
// rope.scale_linear) other than 0 or 1 is linear position interpolation; "yarn" and
// "longrope" are other methods. Llama 3.1 scaling is not a key but the tensor
// rope_freqs.weight (read by fromGGUF).
func checkGGUFRopeScaling(f *gguf.File, arch string) (float64, error) {
	typ := "linear"
	key := arch + ".rope.scaling.type"
	if v, ok := f.Lookup(key); ok {
		s, isStr := v.V.(string)
		if !isStr {
			return 0, fmt.Errorf("model %s: %w: %s is a %s, want a string", f.Path, ErrFormat, key, v.Type)
		}
		typ = s
	}
	switch typ {
	case "none":
		return 0, nil
	case "linear", "":
		for _, k := range []string{arch + ".rope.scaling.factor", arch + ".rope.scale_linear"} {
			if v, err := f.Float(k); err == nil && v != 0 && v != 1 {
				if !(v > 0) || math.IsInf(v, 0) {
					return 0, fmt.Errorf("model %s: %w: %s = %g", f.Path, ErrFormat, k, v)
				}
				return v, nil
			}
		}
		return 0, nil
	}
	return 0, fmt.Errorf("model %s: %w: %s = %q: RoPE scaling not implemented (implemented: linear, Llama 3.1 frequency factors, tensor rope_freqs.weight)",
		f.Path, ErrUnsupported, key, typ)
}

// LayerMatrices returns layer l's weight matrices by GGUF short name (attn_q, attn_k,
// attn_v, attn_output, ffn_gate, ffn_down, ffn_up), for benchmarks. They alias the model.
func (m *Model) LayerMatrices(l int) map[string]kernels.Mat {
	w := &m.w.layers[l]
	return map[string]kernels.Mat{"attn_q": w.wq, "attn_k": w.wk, "attn_v": w.wv, "attn_output": w.wo,
		"ffn_gate": w.w1, "ffn_down": w.w2, "ffn_up": w.w3}
}

// Classifier returns the output matrix (Vocab × Dim; the token embedding when tied).
func (m *Model) Classifier() kernels.Mat { return m.w.out }

// PrefillFLOPs is the floating-point operation count of prefilling n tokens after past
// cached ones with logits for one position: 2 per multiply-add in the projections, the
// feed-forward, attention scores and weighted sums (causal, within the sliding window of
// windowed layers), and the classifier.
func (c *Config) PrefillFLOPs(past, n int) float64 {
	proj := 2 * float64(c.Dim*c.QDim()+2*c.Dim*c.KVDim()+c.QDim()*c.Dim+3*c.Dim*c.Hidden)
	var total float64
	for l := 0; l < c.Layers; l++ {
		var keys float64 // Σ over new tokens of the keys each attends to (at most the window)
		w := c.Window(l)
		for i := 0; i < n; i++ {
			k := past + i + 1
			if w > 0 {
				k = min(k, w)
			}
			keys += float64(k)
		}
		total += proj*float64(n) + 2*2*float64(c.QDim())*keys
	}
	return total + 2*float64(c.Dim*c.Vocab)
}
