package quantize

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/internal/safetensors"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// hfConfig is the part of a HuggingFace config.json the conversion reads.
type hfConfig struct {
	ModelType    string   `json:"model_type"`
	Hidden       int      `json:"hidden_size"`
	Intermediate int      `json:"intermediate_size"`
	Layers       int      `json:"num_hidden_layers"`
	Heads        int      `json:"num_attention_heads"`
	KVHeads      *int     `json:"num_key_value_heads"`
	HeadDim      *int     `json:"head_dim"`
	Vocab        int      `json:"vocab_size"`
	MaxPos       *int     `json:"max_position_embeddings"`
	RopeTheta    *float64 `json:"rope_theta"`
	RMSNormEps   *float64 `json:"rms_norm_eps"`
	Tie          *bool    `json:"tie_word_embeddings"`
	OrigMaxPos   *int     `json:"original_max_position_embeddings"`
	RopeScaling  *struct {
		Type       string   `json:"type"`
		RopeType   string   `json:"rope_type"`
		Factor     *float64 `json:"factor"`
		LowFreq    *float64 `json:"low_freq_factor"`
		HighFreq   *float64 `json:"high_freq_factor"`
		OrigMaxPos *int     `json:"original_max_position_embeddings"`
	} `json:"rope_scaling"`
	HiddenAct     string `json:"hidden_act"`
	SlidingWindow *int   `json:"sliding_window"`
}

// hfFiles lists the safetensors files of a HF model at path (a directory or one
// .safetensors file) and the directory holding config.json.
func hfFiles(path string) (dir string, files []string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", nil, err
	}
	if !st.IsDir() {
		return filepath.Dir(path), []string{path}, nil
	}
	dir = path
	idx := filepath.Join(dir, "model.safetensors.index.json")
	if b, err := os.ReadFile(idx); err == nil {
		var ix struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(b, &ix); err != nil {
			return "", nil, fmt.Errorf("%w: %s: %v", ErrInvalid, idx, err)
		}
		seen := map[string]bool{}
		for _, f := range ix.WeightMap {
			if f == "" || strings.ContainsAny(f, `/\`) || f == ".." {
				return "", nil, fmt.Errorf("%w: %s: shard name %q", ErrInvalid, idx, f)
			}
			if !seen[f] {
				seen[f] = true
				files = append(files, filepath.Join(dir, f))
			}
		}
	} else {
		files, _ = filepath.Glob(filepath.Join(dir, "*.safetensors"))
	}
	sort.Strings(files)
	if len(files) == 0 {
		return "", nil, fmt.Errorf("%w: %s has no *.safetensors files", ErrInvalid, path)
	}
	return dir, files, nil
}

// hfName maps a HF tensor name of the Llama/Qwen2 families to its GGUF name (as
// convert_hf_to_gguf.py's tensor map does); skip reports tensors that are dropped.
func hfName(n string) (name string, skip bool, err error) {
	switch n {
	case "model.embed_tokens.weight":
		return "token_embd.weight", false, nil
	case "model.norm.weight":
		return "output_norm.weight", false, nil
	case "lm_head.weight":
		return "output.weight", false, nil
	}
	rest, ok := strings.CutPrefix(n, "model.layers.")
	if ok {
		i := strings.IndexByte(rest, '.')
		if i > 0 {
			if l, err := strconv.Atoi(rest[:i]); err == nil && l >= 0 {
				sub := rest[i+1:]
				if strings.HasSuffix(sub, "rotary_emb.inv_freq") {
					return "", true, nil
				}
				for _, m := range [][2]string{
					{"input_layernorm.weight", "attn_norm.weight"}, {"post_attention_layernorm.weight", "ffn_norm.weight"},
					{"self_attn.q_proj.weight", "attn_q.weight"}, {"self_attn.k_proj.weight", "attn_k.weight"},
					{"self_attn.v_proj.weight", "attn_v.weight"}, {"self_attn.o_proj.weight", "attn_output.weight"},
					{"self_attn.q_proj.bias", "attn_q.bias"}, {"self_attn.k_proj.bias", "attn_k.bias"},
					{"self_attn.v_proj.bias", "attn_v.bias"}, {"self_attn.o_proj.bias", "attn_output.bias"},
					{"mlp.gate_proj.weight", "ffn_gate.weight"}, {"mlp.up_proj.weight", "ffn_up.weight"},
					{"mlp.down_proj.weight", "ffn_down.weight"},
				} {
					if sub == m[0] {
						return fmt.Sprintf("blk.%d.%s", l, m[1]), false, nil
					}
				}
			}
		}
	}
	return "", false, fmt.Errorf("%w: tensor %q has no GGUF name (Llama, Mistral and Qwen2 checkpoints are supported)", ErrUnsupported, n)
}

var hfDTypes = map[string]gguf.TensorType{"F32": gguf.TensorF32, "F16": gguf.TensorF16, "BF16": gguf.TensorBF16}

// openHF reads a HF safetensors model and presents it as the GGUF file
// convert_hf_to_gguf.py would write (before quantization).
func openHF(path string) (_ *source, err error) {
	dir, files, err := hfFiles(path)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "config.json")
	cb, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var hc hfConfig
	if err := json.Unmarshal(cb, &hc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, cfgPath, err)
	}
	var arch string
	switch hc.ModelType {
	case "llama", "mistral":
		arch = "llama"
	case "qwen2":
		arch = "qwen2"
	default:
		return nil, fmt.Errorf("%w: %s: model_type %q (supported: llama, mistral, qwen2)", ErrUnsupported, cfgPath, hc.ModelType)
	}
	if hc.Hidden <= 0 || hc.Heads <= 0 || hc.Layers <= 0 || hc.Intermediate <= 0 || hc.Vocab <= 0 || hc.Hidden > 1<<20 || hc.Heads > 1<<12 || hc.Layers > 1<<12 {
		return nil, fmt.Errorf("%w: %s: hidden_size %d, intermediate_size %d, num_hidden_layers %d, num_attention_heads %d, vocab_size %d",
			ErrInvalid, cfgPath, hc.Hidden, hc.Intermediate, hc.Layers, hc.Heads, hc.Vocab)
	}
	kvHeads := hc.Heads
	if hc.KVHeads != nil {
		kvHeads = *hc.KVHeads
	}
	headDim := hc.Hidden / hc.Heads
	if hc.HeadDim != nil {
		headDim = *hc.HeadDim
	}
	if kvHeads <= 0 || hc.Heads%kvHeads != 0 || headDim <= 0 || headDim%2 != 0 {
		return nil, fmt.Errorf("%w: %s: %d heads, %d KV heads, head_dim %d", ErrInvalid, cfgPath, hc.Heads, kvHeads, headDim)
	}
	tied := hc.Tie != nil && *hc.Tie

	s := &source{format: "safetensors"}
	var closers []func() error
	s.close = func() error {
		var errs []error
		for _, c := range closers {
			errs = append(errs, c())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	// Metadata in convert_hf_to_gguf.py's order.
	a := arch + "."
	add := func(k string, v gguf.Value) { s.kvs = append(s.kvs, gguf.KV{Key: k, Value: v}) }
	add("general.architecture", gguf.String(arch))
	add("general.name", gguf.String(filepath.Base(filepath.Clean(dir))))
	add(a+"block_count", gguf.Uint32(uint32(hc.Layers)))
	if hc.MaxPos != nil {
		add(a+"context_length", gguf.Uint32(uint32(*hc.MaxPos)))
	}
	add(a+"embedding_length", gguf.Uint32(uint32(hc.Hidden)))
	add(a+"feed_forward_length", gguf.Uint32(uint32(hc.Intermediate)))
	add(a+"attention.head_count", gguf.Uint32(uint32(hc.Heads)))
	if hc.KVHeads != nil {
		add(a+"attention.head_count_kv", gguf.Uint32(uint32(kvHeads)))
	}
	if hc.RopeTheta != nil {
		add(a+"rope.freq_base", gguf.Float32(float32(*hc.RopeTheta)))
	}
	if hc.RMSNormEps != nil {
		add(a+"attention.layer_norm_rms_epsilon", gguf.Float32(float32(*hc.RMSNormEps)))
	}
	if hc.HeadDim != nil {
		add(a+"attention.key_length", gguf.Uint32(uint32(headDim)))
		add(a+"attention.value_length", gguf.Uint32(uint32(headDim)))
	}
	if arch == "llama" {
		add(a+"vocab_size", gguf.Uint32(uint32(hc.Vocab)))
		add(a+"rope.dimension_count", gguf.Uint32(uint32(headDim)))
	}
	// Mistral's sliding window (every layer), which the engine reads back as a mask.
	if w := hc.SlidingWindow; hc.ModelType == "mistral" && w != nil && *w > 0 {
		add(a+"attention.sliding_window", gguf.Uint32(uint32(min(*w, 1<<30))))
	}
	var ropeFreqs []float32
	if rs := hc.RopeScaling; rs != nil {
		kind := strings.ToLower(rs.RopeType)
		if kind == "" {
			kind = strings.ToLower(rs.Type)
		}
		switch {
		case kind == "llama3" && arch == "llama":
			ropeFreqs = llama3RopeFactors(hc, headDim)
		case kind == "linear" && arch == "llama" && rs.Factor != nil:
			add(a+"rope.scaling.type", gguf.String("linear"))
			add(a+"rope.scaling.factor", gguf.Float32(float32(*rs.Factor)))
		default:
			return nil, fmt.Errorf("%w: %s: rope_scaling type %q for %s (supported: llama3, linear for llama)", ErrUnsupported, cfgPath, kind, hc.ModelType)
		}
	}
	if err := addHFTokenizer(s, dir, hc.Vocab, add); err != nil {
		return nil, err
	}
	s.info = modelInfo{arch: arch, layers: hc.Layers, heads: hc.Heads, kvHeads: kvHeads, vocab: hc.Vocab}

	// Tensors.
	seen := map[string]string{}
	for _, p := range files {
		f, err := safetensors.Open(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		closers = append(closers, f.Close)
		names := make([]string, 0, len(f.Tensors))
		for k := range f.Tensors {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, hn := range names {
			st := f.Tensors[hn]
			name, skip, err := hfName(hn)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if skip || (name == "output.weight" && tied) {
				continue
			}
			if prev, dup := seen[name]; dup {
				return nil, fmt.Errorf("%w: tensor %q in both %s and %s", ErrInvalid, hn, prev, p)
			}
			seen[name] = p
			typ, ok := hfDTypes[st.DType]
			if !ok {
				return nil, fmt.Errorf("%w: %s: tensor %q has dtype %s (supported: F32, F16, BF16)", ErrUnsupported, p, hn, st.DType)
			}
			if len(st.Shape) < 1 || len(st.Shape) > 2 {
				return nil, fmt.Errorf("%w: %s: tensor %q has shape %v", ErrUnsupported, p, hn, st.Shape)
			}
			dims := make([]uint64, len(st.Shape))
			for i, d := range st.Shape {
				if d <= 0 {
					return nil, fmt.Errorf("%w: %s: tensor %q has shape %v", ErrInvalid, p, hn, st.Shape)
				}
				dims[len(st.Shape)-1-i] = uint64(d)
			}
			var perm func(int) int
			if arch == "llama" {
				// LlamaModel.permute: rotate-half rows (per head: first halves, then second
				// halves) to interleaved pairs.
				switch {
				case strings.HasSuffix(hn, "q_proj.weight"), strings.HasSuffix(hn, "q_proj.bias"):
					perm, err = ropePerm(hn, st.Shape[0], hc.Heads)
				case strings.HasSuffix(hn, "k_proj.weight"), strings.HasSuffix(hn, "k_proj.bias"):
					perm, err = ropePerm(hn, st.Shape[0], kvHeads)
				}
				if err != nil {
					return nil, err
				}
			}
			cols := int(dims[0])
			if len(dims) == 1 {
				cols = 1 // 1-D: each element is a row, so a permutation applies element-wise
			}
			rows, err := floatRows(hn, st.Data, typ, cols, perm)
			if err != nil {
				return nil, err
			}
			t := &tensor{name: name, dims: dims, typ: typ, keep: gguf.TensorF32, inBytes: int64(len(st.Data))}
			if len(dims) == 1 {
				t.rows = func(dst []float32, r int) error { // dst holds whole tensor rows (dims[0] elements each)
					return rows(dst, r*int(dims[0]))
				}
			} else {
				t.rows = rows
				t.keep = typ
			}
			if name == "output.weight" {
				s.info.hasOutput = true
			}
			s.tensors = append(s.tensors, t)
		}
	}
	if ropeFreqs != nil {
		b := make([]byte, 4*len(ropeFreqs))
		for i, v := range ropeFreqs {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		rows, _ := floatRows("rope_freqs.weight", b, gguf.TensorF32, 1, nil)
		n := len(ropeFreqs)
		s.tensors = append(s.tensors, &tensor{name: "rope_freqs.weight", dims: []uint64{uint64(n)}, typ: gguf.TensorF32, keep: gguf.TensorF32,
			rows: func(dst []float32, r int) error { return rows(dst, r*n) }})
	}
	if _, ok := seen["token_embd.weight"]; !ok {
		return nil, fmt.Errorf("%w: %s: no model.embed_tokens.weight", ErrInvalid, path)
	}
	sortTensors(s.tensors, func(t *tensor) string { return t.name })
	return s, nil
}

// ropePerm returns the row map of LlamaModel.permute for a tensor of rows rows and
// heads heads: output row h·hd + 2i + j comes from stored row h·hd + j·hd/2 + i.
func ropePerm(name string, rows, heads int) (func(int) int, error) {
	if heads <= 0 || rows%heads != 0 || (rows/heads)%2 != 0 {
		return nil, fmt.Errorf("%w: tensor %q: %d rows do not split into %d heads of even size", ErrInvalid, name, rows, heads)
	}
	hd := rows / heads
	return func(r int) int {
		h, k := r/hd, r%hd
		return h*hd + (k%2)*(hd/2) + k/2
	}, nil
}

// llama3RopeFactors computes rope_freqs.weight for Llama 3.1 RoPE scaling as
// LlamaModel.generate_extra_tensors does: one divisor per rotary pair.
func llama3RopeFactors(hc hfConfig, headDim int) []float32 {
	rs := hc.RopeScaling
	base := 10000.0
	if hc.RopeTheta != nil {
		base = *hc.RopeTheta
	}
	get := func(p *float64, def float64) float64 {
		if p != nil {
			return *p
		}
		return def
	}
	factor, low, high := get(rs.Factor, 8), get(rs.LowFreq, 1), get(rs.HighFreq, 4)
	// convert_hf_to_gguf.py reads original_max_position_embeddings from the top level of
	// config.json (default 8192); Transformers reads it from rope_scaling. Both are 8192
	// for the published Llama 3.1/3.2 models; rope_scaling's value wins here.
	old := 8192.0
	if rs.OrigMaxPos != nil {
		old = float64(*rs.OrigMaxPos)
	} else if hc.OrigMaxPos != nil {
		old = float64(*hc.OrigMaxPos)
	}
	lowWave, highWave := old/low, old/high
	out := make([]float32, headDim/2)
	for i := range out {
		// torch: 1 / base ** (arange(0, dim, 2, float32) / dim), in float32.
		freq := float32(1 / float32(math.Pow(base, float64(float32(2*i)/float32(headDim)))))
		wave := 2 * math.Pi / float64(freq)
		switch {
		case wave < highWave:
			out[i] = 1
		case wave > lowWave:
			out[i] = float32(factor)
		default:
			smooth := (old/wave - low) / (high - low)
			out[i] = float32(1 / ((1-smooth)/factor + smooth))
		}
	}
	return out
}

// addHFTokenizer adds the tokenizer.ggml.* metadata of dir/tokenizer.json (if present),
// its vocabulary padded to the model's vocab_size with unused "[PADn]" tokens as
// convert_hf_to_gguf.py does.
func addHFTokenizer(s *source, dir string, vocab int, add func(string, gguf.Value)) error {
	tp := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(tp); err != nil {
		return nil
	}
	tok, err := tokenizer.LoadHF(tp)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if tok.VocabSize() > vocab {
		return fmt.Errorf("%w: %s has %d tokens, config.json vocab_size %d", ErrInvalid, tp, tok.VocabSize(), vocab)
	}
	pre := ""
	if b, ok := tok.(*tokenizer.BPE); ok {
		switch b.Pattern() {
		case tokenizer.PatternLlama3:
			pre = "llama-bpe"
		case tokenizer.PatternQwen2:
			pre = "qwen2"
		case tokenizer.PatternSmolLM:
			pre = "smollm"
		case tokenizer.PatternGPT2:
			pre = "gpt2"
		default:
			return fmt.Errorf("%w: %s: pre-tokenizer pattern %q has no GGUF name", ErrUnsupported, tp, b.Pattern())
		}
	}
	kvs, err := tokenizer.GGUFMetadata(tok, pre)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnsupported, tp, err)
	}
	n := tok.VocabSize()
	for _, kv := range kvs {
		if a, ok := kv.Value.V.(gguf.Array); ok && n < vocab {
			switch v := a.V.(type) {
			case []string:
				if kv.Key == "tokenizer.ggml.tokens" {
					for i := n; i < vocab; i++ {
						v = append(v, fmt.Sprintf("[PAD%d]", i))
					}
					kv.Value, _ = gguf.ArrayOf(v)
				}
			case []int32:
				for i := n; i < vocab; i++ {
					v = append(v, tokenizer.TypeUnused)
				}
				kv.Value, _ = gguf.ArrayOf(v)
			case []float32:
				for i := n; i < vocab; i++ {
					v = append(v, -1000)
				}
				kv.Value, _ = gguf.ArrayOf(v)
			}
		}
		add(kv.Key, kv.Value)
	}
	return nil
}
