package encoder

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/internal/safetensors"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// Open loads a BERT-family encoder: a GGUF file (architecture "bert"), or a HF
// safetensors file or directory (config.json model_type "bert").
func Open(path string, o Options) (*BERT, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("encoder: %w", err)
	}
	var b *BERT
	switch {
	case !st.IsDir() && gguf.HasMagic(path):
		b, err = openGGUF(path)
	case st.IsDir() || strings.HasSuffix(path, ".safetensors"):
		b, err = openHF(path)
	default:
		return nil, fmt.Errorf("encoder %s: %w: neither GGUF nor safetensors", path, model.ErrFormat)
	}
	if err != nil {
		return nil, err
	}
	if err := b.finish(o); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *BERT) finish(o Options) error {
	c := &b.Config
	if c.Pooling == PoolDefault {
		c.Pooling = PoolMean
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("encoder %s: %w", b.Path, err)
	}
	if b.Tok == nil {
		return fmt.Errorf("encoder %s: %w: no tokenizer", b.Path, model.ErrFormat)
	}
	if b.Tok.VocabSize() > c.Vocab {
		return fmt.Errorf("encoder %s: %w: tokenizer has %d tokens, the embeddings %d", b.Path, model.ErrFormat, b.Tok.VocabSize(), c.Vocab)
	}
	if b.Tok.BOS() < 0 || b.Tok.EOS() < 0 {
		return fmt.Errorf("encoder %s: %w: tokenizer without [CLS]/[SEP]", b.Path, model.ErrFormat)
	}
	if o.Pool != nil {
		b.pool = o.Pool
	} else {
		b.pool = kernels.NewPool(o.Threads)
		b.ownPool = true
	}
	return nil
}

// tensorSource abstracts the two file formats' tensor lookup: a matrix of rows×cols, or a
// vector of n values.
type tensorSource struct {
	path string
	mat  func(name string, rows, cols int) (kernels.Mat, error)
	vec  func(name string, n int) ([]float32, error)
	has  func(name string) bool
}

// bertNames are one format's tensor names: embeddings, then per layer (with %d).
type bertNames struct {
	tok, pos, typ, embNormW, embNormB                           string
	q, k, v, o, attnNorm, up, down, outNorm, weight, bias, norm string
}

var ggufNames = bertNames{tok: "token_embd.weight", pos: "position_embd.weight", typ: "token_types.weight",
	embNormW: "token_embd_norm.weight", embNormB: "token_embd_norm.bias",
	q: "blk.%d.attn_q", k: "blk.%d.attn_k", v: "blk.%d.attn_v", o: "blk.%d.attn_output", attnNorm: "blk.%d.attn_output_norm",
	up: "blk.%d.ffn_up", down: "blk.%d.ffn_down", outNorm: "blk.%d.layer_output_norm", weight: ".weight", bias: ".bias"}

var hfNames = bertNames{tok: "embeddings.word_embeddings.weight", pos: "embeddings.position_embeddings.weight",
	typ: "embeddings.token_type_embeddings.weight", embNormW: "embeddings.LayerNorm.weight", embNormB: "embeddings.LayerNorm.bias",
	q: "encoder.layer.%d.attention.self.query", k: "encoder.layer.%d.attention.self.key", v: "encoder.layer.%d.attention.self.value",
	o: "encoder.layer.%d.attention.output.dense", attnNorm: "encoder.layer.%d.attention.output.LayerNorm",
	up: "encoder.layer.%d.intermediate.dense", down: "encoder.layer.%d.output.dense", outNorm: "encoder.layer.%d.output.LayerNorm",
	weight: ".weight", bias: ".bias"}

// loadWeights reads every tensor of the configured shape.
func (b *BERT) loadWeights(src tensorSource, nm bertNames) error {
	c := &b.Config
	var err error
	if b.w.tok, err = src.mat(nm.tok, c.Vocab, c.Dim); err != nil {
		return err
	}
	if b.w.pos, err = src.mat(nm.pos, c.MaxPos, c.Dim); err != nil {
		return err
	}
	if b.w.typ, err = src.mat(nm.typ, c.TypeVocab, c.Dim); err != nil {
		return err
	}
	if b.w.embNormW, err = src.vec(nm.embNormW, c.Dim); err != nil {
		return err
	}
	if b.w.embNormB, err = src.vec(nm.embNormB, c.Dim); err != nil {
		return err
	}
	for l := 0; l < c.Layers; l++ {
		var w bertLayer
		f := func(s string) string { return fmt.Sprintf(s, l) }
		for _, m := range []struct {
			dst        *kernels.Mat
			bias       *[]float32
			name       string
			rows, cols int
		}{
			{&w.wq, &w.bq, nm.q, c.Dim, c.Dim}, {&w.wk, &w.bk, nm.k, c.Dim, c.Dim}, {&w.wv, &w.bv, nm.v, c.Dim, c.Dim},
			{&w.wo, &w.bo, nm.o, c.Dim, c.Dim}, {&w.up, &w.upB, nm.up, c.Hidden, c.Dim}, {&w.down, &w.downB, nm.down, c.Dim, c.Hidden},
		} {
			if *m.dst, err = src.mat(f(m.name)+nm.weight, m.rows, m.cols); err != nil {
				return err
			}
			if *m.bias, err = src.vec(f(m.name)+nm.bias, m.rows); err != nil {
				return err
			}
		}
		for _, n := range []struct {
			w, b *[]float32
			name string
		}{{&w.attnNormW, &w.attnNormB, nm.attnNorm}, {&w.outNormW, &w.outNormB, nm.outNorm}} {
			if *n.w, err = src.vec(f(n.name)+nm.weight, c.Dim); err != nil {
				return err
			}
			if *n.b, err = src.vec(f(n.name)+nm.bias, c.Dim); err != nil {
				return err
			}
		}
		b.w.layers = append(b.w.layers, w)
	}
	return nil
}

func openGGUF(path string) (_ *BERT, err error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("encoder: %w: %w", model.ErrFormat, err)
	}
	b := &BERT{Path: path, Format: "gguf", closers: []func() error{f.Close}}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("encoder %s: %w: %s", path, model.ErrFormat, fmt.Sprintf(format, args...))
	}
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("encoder %s: %w: %w", path, model.ErrFormat, err)
	}
	if arch != "bert" {
		return nil, fmt.Errorf("encoder %s: %w: architecture %q (the BERT encoder reads \"bert\"; Llama-family models embed through NewDecoder)",
			path, model.ErrUnsupported, arch)
	}
	c := &b.Config
	u := func(key string, required bool) (int, error) {
		v, err := f.Uint("bert." + key)
		if errors.Is(err, gguf.ErrNotFound) && !required {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("encoder %s: %w: %w", path, model.ErrFormat, err)
		}
		if v > 1<<30 {
			return 0, bad("bert.%s = %d out of range", key, v)
		}
		return int(v), nil
	}
	for _, k := range []struct {
		dst *int
		key string
	}{{&c.Dim, "embedding_length"}, {&c.Hidden, "feed_forward_length"}, {&c.Layers, "block_count"}, {&c.Heads, "attention.head_count"}} {
		if *k.dst, err = u(k.key, true); err != nil {
			return nil, err
		}
	}
	if kv, err := u("attention.head_count_kv", false); err != nil {
		return nil, err
	} else if kv != 0 && kv != c.Heads {
		return nil, fmt.Errorf("encoder %s: %w: %d KV heads for %d heads", path, model.ErrUnsupported, kv, c.Heads)
	}
	if v, ok := f.Lookup("bert.attention.causal"); ok {
		if causal, isBool := v.V.(bool); isBool && causal {
			return nil, fmt.Errorf("encoder %s: %w: bert.attention.causal is true", path, model.ErrUnsupported)
		}
	}
	eps, err := f.Float("bert.attention.layer_norm_epsilon")
	if err != nil {
		return nil, fmt.Errorf("encoder %s: %w: %w", path, model.ErrFormat, err)
	}
	c.NormEps = float32(eps)
	p, err := u("pooling_type", false)
	if err != nil {
		return nil, err
	}
	switch Pooling(p) {
	case PoolDefault, PoolMean, PoolCLS, PoolLast:
		c.Pooling = Pooling(p)
	default:
		return nil, fmt.Errorf("encoder %s: %w: bert.pooling_type %d (implemented: 1 mean, 2 cls, 3 last)", path, model.ErrUnsupported, p)
	}
	if n, err := f.String("general.name"); err == nil {
		b.Name = n
	}
	dims := func(name string) ([]uint64, error) {
		ti, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("encoder %s: %w: tensor %q missing", path, model.ErrFormat, name)
		}
		return ti.Dims, nil
	}
	// Vocabulary, positions and token types come from the embedding tensors' shapes.
	for _, s := range []struct {
		dst  *int
		name string
	}{{&c.Vocab, ggufNames.tok}, {&c.MaxPos, ggufNames.pos}, {&c.TypeVocab, ggufNames.typ}} {
		d, err := dims(s.name)
		if err != nil {
			return nil, err
		}
		switch {
		case len(d) == 2 && d[1] <= 1<<24:
			*s.dst = int(d[1])
		case len(d) == 1:
			*s.dst = 1
		default:
			return nil, bad("tensor %q has shape %v", s.name, d)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("encoder %s: %w", path, err)
	}
	src := tensorSource{path: path,
		mat: func(name string, rows, cols int) (kernels.Mat, error) {
			ti, data, err := f.TensorData(name)
			if err != nil {
				return kernels.Mat{}, fmt.Errorf("encoder %s: %w: %w", path, model.ErrFormat, err)
			}
			ok := len(ti.Dims) == 2 && ti.Dims[0] == uint64(cols) && ti.Dims[1] == uint64(rows) ||
				len(ti.Dims) == 1 && rows == 1 && ti.Dims[0] == uint64(cols)
			if !ok {
				return kernels.Mat{}, bad("tensor %q has shape %v, want [%d %d]", name, ti.Dims, cols, rows)
			}
			m := kernels.Mat{Type: kernels.DType(ti.Type), Rows: rows, Cols: cols, Data: data}
			if err := m.Validate(); err != nil {
				return kernels.Mat{}, fmt.Errorf("encoder %s: tensor %q: %w: %w", path, name, model.ErrUnsupported, err)
			}
			return m, nil
		},
		vec: func(name string, n int) ([]float32, error) {
			ti, data, err := f.TensorData(name)
			if err != nil {
				return nil, fmt.Errorf("encoder %s: %w: %w", path, model.ErrFormat, err)
			}
			if len(ti.Dims) != 1 || ti.Dims[0] != uint64(n) {
				return nil, bad("tensor %q has shape %v, want [%d]", name, ti.Dims, n)
			}
			out := make([]float32, n)
			if err := kernels.Dequantize(out, data, kernels.DType(ti.Type)); err != nil {
				return nil, fmt.Errorf("encoder %s: tensor %q: %w: %w", path, name, model.ErrUnsupported, err)
			}
			return out, nil
		},
	}
	if err := b.loadWeights(src, ggufNames); err != nil {
		return nil, err
	}
	if b.Tok, err = tokenizer.FromGGUF(f); err != nil {
		return nil, fmt.Errorf("encoder %s: %w", path, err)
	}
	return b, nil
}

// hfBertConfig is the part of a HF BERT config.json the encoder reads.
type hfBertConfig struct {
	ModelType    string  `json:"model_type"`
	Hidden       int     `json:"hidden_size"`
	Intermediate int     `json:"intermediate_size"`
	Layers       int     `json:"num_hidden_layers"`
	Heads        int     `json:"num_attention_heads"`
	Vocab        int     `json:"vocab_size"`
	MaxPos       int     `json:"max_position_embeddings"`
	TypeVocab    int     `json:"type_vocab_size"`
	NormEps      float64 `json:"layer_norm_eps"`
	HiddenAct    string  `json:"hidden_act"`
	PosEmbType   string  `json:"position_embedding_type"`
}

func openHF(path string) (_ *BERT, err error) {
	dir, file := path, filepath.Join(path, "model.safetensors")
	if !strings.HasSuffix(path, ".safetensors") {
		if _, err := os.Stat(file); err != nil {
			return nil, fmt.Errorf("encoder %s: %w: no model.safetensors (sharded encoders are not supported)", path, model.ErrFormat)
		}
	} else {
		dir, file = filepath.Dir(path), path
	}
	cfgPath := filepath.Join(dir, "config.json")
	cb, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("encoder %s: %w", path, err)
	}
	var hc hfBertConfig
	if err := json.Unmarshal(cb, &hc); err != nil {
		return nil, fmt.Errorf("encoder %s: %w: %v", cfgPath, model.ErrFormat, err)
	}
	if hc.ModelType != "bert" {
		return nil, fmt.Errorf("encoder %s: %w: model_type %q (the encoder reads bert)", cfgPath, model.ErrUnsupported, hc.ModelType)
	}
	if hc.PosEmbType != "" && hc.PosEmbType != "absolute" {
		return nil, fmt.Errorf("encoder %s: %w: position_embedding_type %q", cfgPath, model.ErrUnsupported, hc.PosEmbType)
	}
	if hc.TypeVocab == 0 {
		hc.TypeVocab = 2
	}
	if hc.NormEps == 0 {
		hc.NormEps = 1e-12
	}
	b := &BERT{Path: path, Format: "safetensors", Name: filepath.Base(dir)}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	b.Config = Config{Dim: hc.Hidden, Hidden: hc.Intermediate, Layers: hc.Layers, Heads: hc.Heads, Vocab: hc.Vocab, MaxPos: hc.MaxPos,
		TypeVocab: hc.TypeVocab, NormEps: float32(hc.NormEps)}
	switch hc.HiddenAct {
	case "", "gelu":
	case "gelu_new", "gelu_pytorch_tanh":
		b.Config.Act = ActGELUTanh
	default:
		return nil, fmt.Errorf("encoder %s: %w: hidden_act %q (gelu, gelu_new, gelu_pytorch_tanh)", cfgPath, model.ErrUnsupported, hc.HiddenAct)
	}
	if b.Config.Pooling, err = hfPooling(dir); err != nil {
		return nil, err
	}
	if sb, err := os.ReadFile(filepath.Join(dir, "sentence_bert_config.json")); err == nil {
		var sc struct {
			MaxSeq int `json:"max_seq_length"`
		}
		if err := json.Unmarshal(sb, &sc); err != nil || sc.MaxSeq < 0 {
			return nil, fmt.Errorf("encoder %s: %w: sentence_bert_config.json: max_seq_length %d %v", dir, model.ErrFormat, sc.MaxSeq, err)
		}
		b.MaxSeq = sc.MaxSeq
	}
	if err := b.Config.Validate(); err != nil {
		return nil, fmt.Errorf("encoder %s: %w", cfgPath, err)
	}
	sf, err := safetensors.Open(file)
	if err != nil {
		return nil, fmt.Errorf("encoder: %w: %w", model.ErrFormat, err)
	}
	b.closers = append(b.closers, sf.Close)
	// "bert." prefixed checkpoints (BertModel inside BertForPreTraining and the like).
	prefix := ""
	if _, ok := sf.Tensors[hfNames.tok]; !ok {
		if _, ok := sf.Tensors["bert."+hfNames.tok]; ok {
			prefix = "bert."
		}
	}
	get := func(name string) (safetensors.Tensor, bool) {
		t, ok := sf.Tensors[prefix+name]
		if !ok { // old checkpoints: LayerNorm.gamma / .beta
			r := strings.NewReplacer("LayerNorm.weight", "LayerNorm.gamma", "LayerNorm.bias", "LayerNorm.beta")
			t, ok = sf.Tensors[prefix+r.Replace(name)]
		}
		return t, ok
	}
	dtypes := map[string]kernels.DType{"F32": kernels.F32, "F16": kernels.F16, "BF16": kernels.BF16}
	src := tensorSource{path: path,
		mat: func(name string, rows, cols int) (kernels.Mat, error) {
			t, ok := get(name)
			if !ok {
				return kernels.Mat{}, fmt.Errorf("encoder %s: %w: tensor %q missing", path, model.ErrFormat, prefix+name)
			}
			dt, ok := dtypes[t.DType]
			if !ok {
				return kernels.Mat{}, fmt.Errorf("encoder %s: %w: tensor %q has dtype %s", path, model.ErrUnsupported, name, t.DType)
			}
			if len(t.Shape) != 2 || t.Shape[0] != rows || t.Shape[1] != cols {
				return kernels.Mat{}, fmt.Errorf("encoder %s: %w: tensor %q has shape %v, want [%d %d]", path, model.ErrFormat, name, t.Shape, rows, cols)
			}
			return kernels.Mat{Type: dt, Rows: rows, Cols: cols, Data: t.Data}, nil
		},
		vec: func(name string, n int) ([]float32, error) {
			t, ok := get(name)
			if !ok {
				return nil, fmt.Errorf("encoder %s: %w: tensor %q missing", path, model.ErrFormat, prefix+name)
			}
			dt, ok := dtypes[t.DType]
			if !ok || len(t.Shape) != 1 || t.Shape[0] != n {
				return nil, fmt.Errorf("encoder %s: %w: tensor %q has dtype %s shape %v, want [%d]", path, model.ErrFormat, name, t.DType, t.Shape, n)
			}
			out := make([]float32, n)
			return out, kernels.Dequantize(out, t.Data, dt)
		},
	}
	if err := b.loadWeights(src, hfNames); err != nil {
		return nil, err
	}
	if b.Tok, err = hfTokenizer(dir); err != nil {
		return nil, err
	}
	return b, nil
}

// hfPooling reads sentence-transformers' pooling mode (modules.json → the Pooling
// module's config.json); PoolDefault without one.
func hfPooling(dir string) (Pooling, error) {
	mb, err := os.ReadFile(filepath.Join(dir, "modules.json"))
	if err != nil {
		return PoolDefault, nil
	}
	var mods []struct {
		Type string `json:"type"`
		Path string `json:"path"`
	}
	if err := json.Unmarshal(mb, &mods); err != nil {
		return 0, fmt.Errorf("encoder %s: %w: modules.json: %v", dir, model.ErrFormat, err)
	}
	for _, m := range mods {
		if m.Type != "sentence_transformers.models.Pooling" {
			continue
		}
		if strings.Contains(m.Path, "..") || filepath.IsAbs(m.Path) {
			return 0, fmt.Errorf("encoder %s: %w: pooling module path %q", dir, model.ErrFormat, m.Path)
		}
		pb, err := os.ReadFile(filepath.Join(dir, m.Path, "config.json"))
		if err != nil {
			return 0, fmt.Errorf("encoder %s: %w: pooling config: %v", dir, model.ErrFormat, err)
		}
		var pc struct {
			CLS  bool `json:"pooling_mode_cls_token"`
			Mean bool `json:"pooling_mode_mean_tokens"`
			Last bool `json:"pooling_mode_lasttoken"`
			Max  bool `json:"pooling_mode_max_tokens"`
		}
		if err := json.Unmarshal(pb, &pc); err != nil {
			return 0, fmt.Errorf("encoder %s: %w: pooling config: %v", dir, model.ErrFormat, err)
		}
		switch {
		case pc.Mean:
			return PoolMean, nil
		case pc.CLS:
			return PoolCLS, nil
		case pc.Last:
			return PoolLast, nil
		}
		return 0, fmt.Errorf("encoder %s: %w: pooling mode (implemented: mean, cls, last)", dir, model.ErrUnsupported)
	}
	return PoolDefault, nil
}

// hfTokenizer loads tokenizer.json, else vocab.txt (lowercased unless
// tokenizer_config.json says do_lower_case false).
func hfTokenizer(dir string) (tokenizer.Tokenizer, error) {
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err == nil {
		return tokenizer.LoadHF(filepath.Join(dir, "tokenizer.json"))
	}
	vb, err := os.ReadFile(filepath.Join(dir, "vocab.txt"))
	if err != nil {
		return nil, fmt.Errorf("encoder %s: %w: no tokenizer.json or vocab.txt", dir, model.ErrFormat)
	}
	lower := true
	if cb, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		var tc struct {
			Lower *bool `json:"do_lower_case"`
		}
		if json.Unmarshal(cb, &tc) == nil && tc.Lower != nil {
			lower = *tc.Lower
		}
	}
	t, err := tokenizer.LoadVocabTxt(vb, lower)
	if err != nil {
		return nil, fmt.Errorf("encoder %s: %w", dir, err)
	}
	return t, nil
}
