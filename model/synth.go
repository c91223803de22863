package model

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// Shape is the architecture of a real model, for synthetic weights.
type Shape struct {
	Name   string
	Config Config
	Pre    string // GGUF tokenizer pre-tokenizer name
}

// Shapes lists the real-model shapes SynthGGUF can produce (exact dimensions, vocabulary,
// GQA layout, RoPE base and scaling, windows and soft-caps of the published models), and
// tiny-* shapes of each architecture for tests.
var Shapes = map[string]Shape{
	"smollm-135m": {Name: "smollm-135m", Pre: "smollm", Config: Config{Arch: "llama", Dim: 576, Hidden: 1536, Layers: 30, Heads: 9, KVHeads: 3,
		HeadDim: 64, Vocab: 49152, Ctx: 2048, RopeTheta: 10000, NormEps: 1e-5, Rope: RopeInterleaved, Tied: true}},
	"qwen2.5-0.5b": {Name: "qwen2.5-0.5b", Pre: "qwen2", Config: Config{Arch: "qwen2", Dim: 896, Hidden: 4864, Layers: 24, Heads: 14, KVHeads: 2,
		HeadDim: 64, Vocab: 151936, Ctx: 32768, RopeTheta: 1e6, NormEps: 1e-6, Rope: RopeHalf, QKVBias: true, Tied: true}},
	"llama-3.2-1b": {Name: "llama-3.2-1b", Pre: "llama-bpe", Config: Config{Arch: "llama", Dim: 2048, Hidden: 8192, Layers: 16, Heads: 32, KVHeads: 8,
		HeadDim: 64, Vocab: 128256, Ctx: 131072, RopeTheta: 500000, NormEps: 1e-5, Rope: RopeInterleaved, Tied: true,
		RopeScaling: llama3Scaling(500000, 64, 32, 1, 4, 8192)}},
	"llama-3-8b": {Name: "llama-3-8b", Pre: "llama-bpe", Config: Config{Arch: "llama", Dim: 4096, Hidden: 14336, Layers: 32, Heads: 32, KVHeads: 8,
		HeadDim: 128, Vocab: 128256, Ctx: 8192, RopeTheta: 500000, NormEps: 1e-5, Rope: RopeInterleaved, Tied: false}},
	"smollm2-135m": {Name: "smollm2-135m", Pre: "smollm", Config: Config{Arch: "llama", Dim: 576, Hidden: 1536, Layers: 30, Heads: 9, KVHeads: 3,
		HeadDim: 64, Vocab: 49152, Ctx: 8192, RopeTheta: 100000, NormEps: 1e-5, Rope: RopeInterleaved, Tied: true}},
	"qwen3-0.6b": {Name: "qwen3-0.6b", Pre: "qwen2", Config: Config{Arch: "qwen3", Dim: 1024, Hidden: 3072, Layers: 28, Heads: 16, KVHeads: 8,
		HeadDim: 128, Vocab: 151936, Ctx: 40960, RopeTheta: 1e6, NormEps: 1e-6, Rope: RopeHalf, QKNorm: true, Tied: true}},
	"mistral-7b-v0.1": {Name: "mistral-7b-v0.1", Pre: "gpt-2", Config: Config{Arch: "llama", Dim: 4096, Hidden: 14336, Layers: 32, Heads: 32, KVHeads: 8,
		HeadDim: 128, Vocab: 32000, Ctx: 32768, RopeTheta: 10000, NormEps: 1e-5, Rope: RopeInterleaved, SlidingWindow: 4096}},
	"gemma-2-2b": {Name: "gemma-2-2b", Pre: "gpt-2", Config: Config{Arch: "gemma2", Dim: 2304, Hidden: 9216, Layers: 26, Heads: 8, KVHeads: 4,
		HeadDim: 256, Vocab: 256000, Ctx: 8192, RopeTheta: 10000, NormEps: 1e-6, Rope: RopeHalf, Tied: true, SlidingWindow: 4096, SWAPattern: 2,
		PostNorms: true, Act: ActGELUTanh, AttnSoftcap: 50, FinalSoftcap: 30}},
	"gemma-3-1b": {Name: "gemma-3-1b", Pre: "gpt-2", Config: Config{Arch: "gemma3", Dim: 1152, Hidden: 6912, Layers: 26, Heads: 4, KVHeads: 1,
		HeadDim: 256, Vocab: 262144, Ctx: 32768, RopeTheta: 1e6, NormEps: 1e-6, Rope: RopeHalf, Tied: true, SlidingWindow: 512, SWAPattern: 6,
		RopeThetaLocal: 10000, QKNorm: true, PostNorms: true, Act: ActGELUTanh}},
	"gemma-3-4b": {Name: "gemma-3-4b", Pre: "gpt-2", Config: Config{Arch: "gemma3", Dim: 2560, Hidden: 10240, Layers: 34, Heads: 8, KVHeads: 4,
		HeadDim: 256, Vocab: 262208, Ctx: 131072, RopeTheta: 1e6, NormEps: 1e-6, Rope: RopeHalf, Tied: true, SlidingWindow: 1024, SWAPattern: 6,
		RopeThetaLocal: 10000, QKNorm: true, PostNorms: true, Act: ActGELUTanh, RopeScaling: LinearScaling(8, 256)}},

	// Tiny shapes of each architecture for tests (vocabulary 320, a few layers; heads
	// wider than embedding/heads where the architecture allows it, windows shorter than
	// the test sequences, soft-caps low enough to bend the scores).
	"tiny-llama3": {Name: "tiny-llama3", Pre: "llama-bpe", Config: Config{Arch: "llama", Dim: 96, Hidden: 256, Layers: 3, Heads: 4, KVHeads: 2,
		HeadDim: 24, Vocab: 320, Ctx: 4096, RopeTheta: 500000, NormEps: 1e-5, Rope: RopeInterleaved,
		RopeScaling: llama3Scaling(500000, 24, 32, 1, 4, 64)}},
	"tiny-qwen2": {Name: "tiny-qwen2", Pre: "qwen2", Config: Config{Arch: "qwen2", Dim: 96, Hidden: 256, Layers: 3, Heads: 4, KVHeads: 2,
		HeadDim: 24, Vocab: 320, Ctx: 4096, RopeTheta: 1e6, NormEps: 1e-6, Rope: RopeHalf, QKVBias: true, Tied: true}},
	"tiny-smollm2": {Name: "tiny-smollm2", Pre: "smollm", Config: Config{Arch: "llama", Dim: 96, Hidden: 256, Layers: 3, Heads: 6, KVHeads: 2,
		HeadDim: 16, Vocab: 320, Ctx: 2048, RopeTheta: 100000, NormEps: 1e-5, Rope: RopeInterleaved, Tied: true}},
	"tiny-qwen3": {Name: "tiny-qwen3", Pre: "qwen2", Config: Config{Arch: "qwen3", Dim: 96, Hidden: 256, Layers: 3, Heads: 4, KVHeads: 2,
		HeadDim: 32, Vocab: 320, Ctx: 4096, RopeTheta: 1e6, NormEps: 1e-6, Rope: RopeHalf, QKNorm: true, Tied: true}},
	"tiny-mistral": {Name: "tiny-mistral", Pre: "gpt-2", Config: Config{Arch: "llama", Dim: 96, Hidden: 256, Layers: 3, Heads: 4, KVHeads: 2,
		HeadDim: 24, Vocab: 320, Ctx: 4096, RopeTheta: 10000, NormEps: 1e-5, Rope: RopeInterleaved, SlidingWindow: 16}},
	"tiny-gemma2": {Name: "tiny-gemma2", Pre: "gpt-2", Config: Config{Arch: "gemma2", Dim: 96, Hidden: 256, Layers: 4, Heads: 4, KVHeads: 2,
		HeadDim: 32, Vocab: 320, Ctx: 4096, RopeTheta: 10000, NormEps: 1e-6, Rope: RopeHalf, Tied: true, SlidingWindow: 16, SWAPattern: 2,
		PostNorms: true, Act: ActGELUTanh, AttnSoftcap: 1.5, FinalSoftcap: 3}},
	"tiny-gemma3": {Name: "tiny-gemma3", Pre: "gpt-2", Config: Config{Arch: "gemma3", Dim: 96, Hidden: 256, Layers: 7, Heads: 4, KVHeads: 1,
		HeadDim: 32, Vocab: 320, Ctx: 4096, RopeTheta: 1e6, NormEps: 1e-6, Rope: RopeHalf, Tied: true, SlidingWindow: 16, SWAPattern: 6,
		RopeThetaLocal: 10000, QKNorm: true, PostNorms: true, Act: ActGELUTanh}},
	"tiny-gemma3-linear": {Name: "tiny-gemma3-linear", Pre: "gpt-2", Config: Config{Arch: "gemma3", Dim: 96, Hidden: 256, Layers: 7, Heads: 4, KVHeads: 1,
		HeadDim: 32, Vocab: 320, Ctx: 4096, RopeTheta: 1e6, NormEps: 1e-6, Rope: RopeHalf, Tied: true, SlidingWindow: 16, SWAPattern: 6,
		RopeThetaLocal: 10000, QKNorm: true, PostNorms: true, Act: ActGELUTanh, RopeScaling: LinearScaling(8, 32)}},
}

// llama3Scaling is Llama 3.1 RoPE scaling as GGUF files carry it (the divisors only, in
// rope_freqs.weight).
func llama3Scaling(theta float64, headDim int, factor, low, high float64, orig int) *RopeScaling {
	ff := Llama3FreqFactors(theta, headDim, factor, low, high, orig)
	for i := range ff {
		ff[i] = float64(float32(ff[i])) // as stored
	}
	return &RopeScaling{Type: "llama3", FreqFactors: ff}
}

// ShapeNames returns the shape names, sorted.
func ShapeNames() []string {
	var n []string
	for k := range Shapes {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// SynthOptions configures SynthGGUF.
type SynthOptions struct {
	Shape  string
	DType  kernels.DType // weight matrices: F32, F16, BF16, Q8_0 (norms and biases stay F32)
	Seed   uint64
	Layers int // > 0: override the layer count
	Ctx    int // > 0: override the declared context length
	// Progress, if not nil, is called with the bytes of tensor data written so far and
	// the total.
	Progress func(done, total int64)
}

// SynthTensor describes one tensor of a synthetic model.
type SynthTensor struct {
	Name string
	Rows int // 1 for vectors
	Cols int
	Type kernels.DType
	// Norm: filled with values near 1 (RMSNorm weights); otherwise uniform in ±Scale.
	Norm  bool
	Scale float32
	// Values, if set, is the tensor's content (one row): rope_freqs.weight.
	Values []float32
}

// SynthPlan returns the configuration and tensors of a synthetic model.
func SynthPlan(o SynthOptions) (Config, []SynthTensor, error) {
	sh, ok := Shapes[o.Shape]
	if !ok {
		return Config{}, nil, fmt.Errorf("%w: unknown shape %q (known: %s)", ErrInvalid, o.Shape, strings.Join(ShapeNames(), ", "))
	}
	switch o.DType {
	case kernels.F32, kernels.F16, kernels.BF16, kernels.Q8_0:
	default:
		return Config{}, nil, fmt.Errorf("%w: synthetic weights of type %s (f32, f16, bf16, q8_0)", ErrInvalid, o.DType)
	}
	c := sh.Config
	if o.Layers > 0 {
		c.Layers = o.Layers
	}
	if o.Ctx > 0 {
		c.Ctx = o.Ctx
	}
	if c.Arch == "gemma2" || c.Arch == "gemma3" {
		c.EmbedScale = float32(math.Sqrt(float64(c.Dim)))
	}
	kvDim := c.KVDim()
	mat := func(name string, rows, cols int) SynthTensor {
		return SynthTensor{Name: name, Rows: rows, Cols: cols, Type: o.DType, Scale: float32(1.7 / math.Sqrt(float64(cols)))}
	}
	vec := func(name string, n int, norm bool) SynthTensor {
		return SynthTensor{Name: name, Rows: 1, Cols: n, Type: kernels.F32, Norm: norm, Scale: 0.02}
	}
	ts := []SynthTensor{mat("token_embd.weight", c.Vocab, c.Dim)}
	ts[0].Scale = 1
	if rs := c.RopeScaling; rs != nil && rs.Type == "llama3" {
		v := make([]float32, len(rs.FreqFactors))
		for i, f := range rs.FreqFactors {
			v[i] = float32(f)
		}
		ts = append(ts, SynthTensor{Name: "rope_freqs.weight", Rows: 1, Cols: len(v), Type: kernels.F32, Values: v})
	}
	for l := 0; l < c.Layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		ts = append(ts, vec(p+"attn_norm.weight", c.Dim, true),
			mat(p+"attn_q.weight", c.QDim(), c.Dim), mat(p+"attn_k.weight", kvDim, c.Dim), mat(p+"attn_v.weight", kvDim, c.Dim))
		if c.QKVBias {
			ts = append(ts, vec(p+"attn_q.bias", c.QDim(), false), vec(p+"attn_k.bias", kvDim, false), vec(p+"attn_v.bias", kvDim, false))
		}
		if c.QKNorm {
			ts = append(ts, vec(p+"attn_q_norm.weight", c.HeadDim, true), vec(p+"attn_k_norm.weight", c.HeadDim, true))
		}
		ts = append(ts, mat(p+"attn_output.weight", c.Dim, c.QDim()))
		if c.PostNorms {
			ts = append(ts, vec(p+"post_attention_norm.weight", c.Dim, true))
		}
		ts = append(ts, vec(p+"ffn_norm.weight", c.Dim, true),
			mat(p+"ffn_gate.weight", c.Hidden, c.Dim), mat(p+"ffn_up.weight", c.Hidden, c.Dim), mat(p+"ffn_down.weight", c.Dim, c.Hidden))
		if c.PostNorms {
			ts = append(ts, vec(p+"post_ffw_norm.weight", c.Dim, true))
		}
	}
	ts = append(ts, vec("output_norm.weight", c.Dim, true))
	if !c.Tied {
		ts = append(ts, mat("output.weight", c.Vocab, c.Dim))
	}
	return c, ts, nil
}

// rowsData generates rows [lo, hi) of tensor t (deterministic in seed, t.Name and the
// row index) encoded as t.Type into dst; f is scratch of at least t.Cols floats.
func (t *SynthTensor) rowsData(dst []byte, f []float32, seed uint64, lo, hi int) error {
	h := fnv.New64a()
	h.Write([]byte(t.Name))
	base := h.Sum64() ^ seed*0x9E3779B97F4A7C15
	rb, err := kernels.RowBytes(t.Type, t.Cols)
	if err != nil {
		return err
	}
	for r := lo; r < hi; r++ {
		if t.Values != nil {
			if err := kernels.Quantize(dst[(r-lo)*rb:(r-lo+1)*rb], t.Values, t.Type); err != nil {
				return err
			}
			continue
		}
		s := base + uint64(r)*0xD1B54A32D192ED03
		for i := 0; i < t.Cols; i++ {
			s += 0x9E3779B97F4A7C15
			z := s
			z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
			z = (z ^ (z >> 27)) * 0x94D049BB133111EB
			z ^= z >> 31
			u := float32(z>>40)/float32(1<<24)*2 - 1 // [-1, 1)
			// The explicit conversions round before the add, so that no architecture
			// fuses the multiply-add (Go fuses on arm64): the same bytes everywhere.
			if t.Norm {
				f[i] = 1 + float32(0.1*u)
			} else {
				f[i] = t.Scale * u
			}
		}
		if err := kernels.Quantize(dst[(r-lo)*rb:(r-lo+1)*rb], f[:t.Cols], t.Type); err != nil {
			return err
		}
	}
	return nil
}

// SynthTensorData returns the bytes of a whole synthetic tensor (for tests).
func SynthTensorData(t SynthTensor, seed uint64) ([]byte, error) {
	rb, err := kernels.RowBytes(t.Type, t.Cols)
	if err != nil {
		return nil, err
	}
	b := make([]byte, rb*t.Rows)
	return b, t.rowsData(b, make([]float32, t.Cols), seed, 0, t.Rows)
}

func fileType(t kernels.DType) uint32 {
	switch t {
	case kernels.F16:
		return 1
	case kernels.Q8_0:
		return 7
	case kernels.BF16:
		return 32
	}
	return 0
}

// SynthGGUF writes a GGUF file with random weights of a real model's shape and a
// synthetic byte-level BPE vocabulary of the right size. The output is a deterministic
// function of the options.
func SynthGGUF(ctx context.Context, w io.Writer, o SynthOptions) error {
	c, ts, err := SynthPlan(o)
	if err != nil {
		return err
	}
	sh := Shapes[o.Shape]
	pat, err := tokenizer.PreTokenizerPattern(sh.Pre)
	if err != nil {
		return err
	}
	tok, err := tokenizer.Synthetic(c.Vocab, o.Seed, pat)
	if err != nil {
		return err
	}
	tkv, err := tokenizer.GGUFMetadata(tok, sh.Pre)
	if err != nil {
		return err
	}
	gw := gguf.NewWriter(w)
	a := c.Arch + "."
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.String(c.Arch)},
		{Key: "general.name", Value: gguf.String(fmt.Sprintf("synthetic %s (seed %d)", o.Shape, o.Seed))},
		{Key: "general.file_type", Value: gguf.Uint32(fileType(o.DType))},
		{Key: a + "vocab_size", Value: gguf.Uint32(uint32(c.Vocab))},
		{Key: a + "context_length", Value: gguf.Uint32(uint32(c.Ctx))},
		{Key: a + "embedding_length", Value: gguf.Uint32(uint32(c.Dim))},
		{Key: a + "feed_forward_length", Value: gguf.Uint32(uint32(c.Hidden))},
		{Key: a + "block_count", Value: gguf.Uint32(uint32(c.Layers))},
		{Key: a + "attention.head_count", Value: gguf.Uint32(uint32(c.Heads))},
		{Key: a + "attention.head_count_kv", Value: gguf.Uint32(uint32(c.KVHeads))},
		{Key: a + "rope.dimension_count", Value: gguf.Uint32(uint32(c.HeadDim))},
		{Key: a + "rope.freq_base", Value: gguf.Float32(float32(c.RopeTheta))},
		{Key: a + "attention.layer_norm_rms_epsilon", Value: gguf.Float32(c.NormEps)},
	}
	if c.HeadDim*c.Heads != c.Dim {
		kvs = append(kvs, gguf.KV{Key: a + "attention.key_length", Value: gguf.Uint32(uint32(c.HeadDim))},
			gguf.KV{Key: a + "attention.value_length", Value: gguf.Uint32(uint32(c.HeadDim))})
	}
	if c.SlidingWindow > 0 {
		kvs = append(kvs, gguf.KV{Key: a + "attention.sliding_window", Value: gguf.Uint32(uint32(c.SlidingWindow))})
	}
	if rs := c.RopeScaling; rs != nil && rs.Type == "linear" {
		kvs = append(kvs, gguf.KV{Key: a + "rope.scaling.type", Value: gguf.String("linear")},
			gguf.KV{Key: a + "rope.scaling.factor", Value: gguf.Float32(float32(rs.Factor))})
	}
	if c.Arch == "gemma2" {
		kvs = append(kvs, gguf.KV{Key: a + "attn_logit_softcapping", Value: gguf.Float32(c.AttnSoftcap)},
			gguf.KV{Key: a + "final_logit_softcapping", Value: gguf.Float32(c.FinalSoftcap)})
	}
	for _, kv := range append(kvs, tkv...) {
		if err := gw.AddKV(kv.Key, kv.Value); err != nil {
			return err
		}
	}
	var total int64
	for _, t := range ts {
		dims := []uint64{uint64(t.Cols), uint64(t.Rows)}
		if t.Rows == 1 { // vectors (norms, biases)
			dims = dims[:1]
		}
		if err := gw.AddTensor(t.Name, gguf.TensorType(t.Type), dims); err != nil {
			return err
		}
		rb, _ := kernels.RowBytes(t.Type, t.Cols)
		total += int64(rb * t.Rows)
	}
	if err := gw.WriteHeader(); err != nil {
		return err
	}
	var done int64
	var f []float32
	var buf []byte
	for _, t := range ts {
		rb, _ := kernels.RowBytes(t.Type, t.Cols)
		chunk := max(1, (1<<22)/rb)
		if cap(f) < t.Cols {
			f = make([]float32, t.Cols)
		}
		for lo := 0; lo < t.Rows; lo += chunk {
			if err := ctx.Err(); err != nil {
				return err
			}
			hi := min(lo+chunk, t.Rows)
			if need := (hi - lo) * rb; cap(buf) < need {
				buf = make([]byte, need)
			}
			b := buf[:(hi-lo)*rb]
			if err := t.rowsData(b, f, o.Seed, lo, hi); err != nil {
				return err
			}
			if _, err := gw.Write(b); err != nil {
				return err
			}
			done += int64(len(b))
			if o.Progress != nil {
				o.Progress(done, total)
			}
		}
	}
	return gw.Finish()
}
