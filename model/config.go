package model

import (
	"errors"
	"fmt"
	"math"
)

// RopeStyle selects how rotary embeddings pair the dimensions of a head.
type RopeStyle int

const (
	// RopeInterleaved rotates pairs (2i, 2i+1): llama2.c, GGUF "llama" (ggml NORM).
	RopeInterleaved RopeStyle = iota
	// RopeHalf rotates pairs (i, i+d/2): HuggingFace checkpoints, GGUF "qwen2" (NEOX).
	RopeHalf
)

// MarshalText encodes the style as its name.
func (s RopeStyle) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s RopeStyle) String() string {
	if s == RopeHalf {
		return "half"
	}
	return "interleaved"
}

// Config is a model's architecture.
type Config struct {
	Arch      string    `json:"arch"`       // "llama", "qwen2", "mistral", ...
	Dim       int       `json:"dim"`        // embedding width
	Hidden    int       `json:"hidden"`     // feed-forward width
	Layers    int       `json:"layers"`     // transformer blocks
	Heads     int       `json:"heads"`      // query heads
	KVHeads   int       `json:"kv_heads"`   // key/value heads (GQA)
	HeadDim   int       `json:"head_dim"`   // per head
	Vocab     int       `json:"vocab"`      // token ids
	Ctx       int       `json:"ctx"`        // context length the file declares
	RopeTheta float64   `json:"rope_theta"` // RoPE base
	NormEps   float32   `json:"norm_eps"`   // RMSNorm epsilon
	Rope      RopeStyle `json:"rope"`
	QKVBias   bool      `json:"qkv_bias"` // Q/K/V projections have biases (Qwen2)
	Tied      bool      `json:"tied"`     // classifier shares the token embedding
	// RopeScaling is the RoPE frequency scaling, nil for none.
	RopeScaling *RopeScaling `json:"rope_scaling,omitempty"`

	// QKNorm: per-head RMSNorm of Q and K (weights of HeadDim) before RoPE (Qwen3,
	// Gemma 3).
	QKNorm bool `json:"qk_norm,omitempty"`
	// SlidingWindow > 0: in the windowed layers (see SWAPattern) a query at position p
	// sees the keys at positions p−SlidingWindow < q ≤ p (Mistral, Gemma 2/3; the mask
	// of HF transformers and llama.cpp's LLAMA_SWA_TYPE_STANDARD). Not a context cap.
	SlidingWindow int `json:"sliding_window,omitempty"`
	// SWAPattern says which layers are windowed: 0 every layer (Mistral); n > 0 layer l
	// iff l mod n < n−1 (Gemma 2: 2, even layers; Gemma 3: 6, five local then one
	// global), llama.cpp's set_swa_pattern.
	SWAPattern int `json:"swa_pattern,omitempty"`
	// RopeThetaLocal, if > 0, is the RoPE base of the windowed layers (Gemma 3:
	// 10000, the global layers use RopeTheta); RopeScaling applies to the others only.
	RopeThetaLocal float64 `json:"rope_theta_local,omitempty"`
	// EmbedScale, if ≠ 0, multiplies the token embeddings (Gemma: √Dim).
	EmbedScale float32 `json:"embed_scale,omitempty"`
	// PostNorms: RMSNorm of the attention and feed-forward outputs before their
	// residual adds (Gemma 2/3: post_attention_layernorm, post_feedforward_layernorm).
	PostNorms bool `json:"post_norms,omitempty"`
	// Act is the gated feed-forward's activation: "" or "silu" (SwiGLU), "gelu_tanh"
	// (GeGLU with the tanh approximation of GELU, Gemma).
	Act string `json:"act,omitempty"`
	// AttnSoftcap > 0 caps attention scores: s ↦ c·tanh(s/c), after the 1/√d scale and
	// before the mask (Gemma 2). FinalSoftcap does the same to the logits.
	AttnSoftcap  float32 `json:"attn_softcap,omitempty"`
	FinalSoftcap float32 `json:"final_softcap,omitempty"`
	// QueryScale, if > 0, replaces 1/√HeadDim as the attention scale (Gemma's
	// query_pre_attn_scalar^−½).
	QueryScale float64 `json:"query_scale,omitempty"`
}

// Windowed reports whether layer l uses the sliding window.
func (c *Config) Windowed(l int) bool {
	if c.SlidingWindow <= 0 {
		return false
	}
	return c.SWAPattern <= 0 || l%c.SWAPattern < c.SWAPattern-1
}

// Window returns layer l's sliding window (0: full causal attention).
func (c *Config) Window(l int) int {
	if c.Windowed(l) {
		return c.SlidingWindow
	}
	return 0
}

// LocalRope reports whether layer l rotates with RopeThetaLocal (its own frequencies).
func (c *Config) LocalRope(l int) bool { return c.RopeThetaLocal > 0 && c.Windowed(l) }

// Activations.
const (
	ActSiLU     = "silu"
	ActGELUTanh = "gelu_tanh"
)

// RopeScaling is a RoPE frequency scaling (context extension) the engine implements:
// Llama 3.1's per-pair frequency divisors ("llama3"; Meta's Llama 3.1 reference code
// apply_scaling, HF transformers _compute_llama3_parameters, llama.cpp's rope_freqs
// tensor) or linear position interpolation ("linear", Chen et al. 2023: every pair's
// frequency divided by Factor; GGUF rope.scaling.type linear, HF rope_type "linear";
// Gemma 3 4B+ scales its global layers so). Pair i rotates by
// pos·θ^(−2i/HeadDim)/FreqFactors[i] — in the forward pass, in decode and in RotateK
// alike, so a re-rotated K equals a K computed at the new position. With a local RoPE
// base (Config.RopeThetaLocal) the windowed layers are not scaled.
type RopeScaling struct {
	// Type is "llama3" or "linear".
	Type string `json:"type"`
	// Factor, LowFreqFactor, HighFreqFactor and OriginalContext are the llama3
	// parameters as HF config.json gives them; zero when the file gives only the
	// divisors (GGUF rope_freqs.weight).
	Factor          float64 `json:"factor,omitempty"`
	LowFreqFactor   float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor  float64 `json:"high_freq_factor,omitempty"`
	OriginalContext int     `json:"original_context,omitempty"`
	// FreqFactors holds one divisor per rotary pair (HeadDim/2 values).
	FreqFactors []float64 `json:"freq_factors"`
}

// Llama3FreqFactors returns the per-pair divisors of Llama 3.1 RoPE scaling for a head of
// headDim dimensions with base theta, computed as HF transformers'
// _compute_llama3_parameters and llama.cpp's converter do (in float64): with the pair's
// wavelength λ = 2π/θ^(−2i/headDim), high-frequency pairs (λ < orig/high) keep their
// frequency (divisor 1), low-frequency pairs (λ > orig/low) are divided by factor, and
// those between are interpolated: s = (orig/λ − low)/(high − low), divisor
// 1/((1−s)/factor + s).
func Llama3FreqFactors(theta float64, headDim int, factor, low, high float64, orig int) []float64 {
	out := make([]float64, headDim/2)
	lowWave, highWave := float64(orig)/low, float64(orig)/high
	for i := range out {
		freq := math.Pow(theta, -float64(2*i)/float64(headDim))
		wave := 2 * math.Pi / freq
		switch {
		case wave < highWave:
			out[i] = 1
		case wave > lowWave:
			out[i] = factor
		default:
			s := (float64(orig)/wave - low) / (high - low)
			out[i] = 1 / ((1-s)/factor + s)
		}
	}
	return out
}

// LinearScaling is linear RoPE scaling by factor for heads of headDim dimensions.
func LinearScaling(factor float64, headDim int) *RopeScaling {
	rs := &RopeScaling{Type: "linear", Factor: factor, FreqFactors: make([]float64, headDim/2)}
	for i := range rs.FreqFactors {
		rs.FreqFactors[i] = factor
	}
	return rs
}

// RopeFreqs returns the rotation frequency of each pair i of a head (HeadDim/2 values):
// RopeTheta^(−2i/HeadDim), divided by the scaling's divisor if there is one.
func (c *Config) RopeFreqs() []float64 {
	f := make([]float64, c.HeadDim/2)
	for i := range f {
		f[i] = math.Pow(c.RopeTheta, -float64(2*i)/float64(c.HeadDim))
		if c.RopeScaling != nil {
			f[i] /= c.RopeScaling.FreqFactors[i]
		}
	}
	return f
}

// RopeFreqsLocal returns the frequencies of the windowed layers when they have their own
// base (RopeThetaLocal^(−2i/HeadDim), unscaled), else nil.
func (c *Config) RopeFreqsLocal() []float64 {
	if c.RopeThetaLocal <= 0 {
		return nil
	}
	f := make([]float64, c.HeadDim/2)
	for i := range f {
		f[i] = math.Pow(c.RopeThetaLocal, -float64(2*i)/float64(c.HeadDim))
	}
	return f
}

// QDim is Heads×HeadDim; KVDim is KVHeads×HeadDim.
func (c *Config) QDim() int  { return c.Heads * c.HeadDim }
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }

// Errors.
var (
	// ErrFormat: a model file is malformed.
	ErrFormat = errors.New("malformed model file")
	// ErrUnsupported: a valid model uses something the engine does not implement.
	ErrUnsupported = errors.New("unsupported model")
	// ErrInvalid: bad arguments to an engine call (shapes, positions, token ids).
	ErrInvalid = errors.New("invalid model call")
)

// Validate checks the shape parameters.
func (c *Config) Validate() error {
	if c.Dim <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.HeadDim <= 0 || c.Vocab <= 0 {
		return fmt.Errorf("%w: non-positive dimension in %+v", ErrFormat, *c)
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("%w: %d heads not a multiple of %d KV heads", ErrFormat, c.Heads, c.KVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("%w: odd head dimension %d", ErrFormat, c.HeadDim)
	}
	if c.RopeTheta <= 0 {
		return fmt.Errorf("%w: RoPE base %g", ErrFormat, c.RopeTheta)
	}
	if c.NormEps <= 0 {
		return fmt.Errorf("%w: RMSNorm epsilon %g", ErrFormat, c.NormEps)
	}
	if c.SlidingWindow < 0 || c.SWAPattern < 0 || c.RopeThetaLocal < 0 || c.AttnSoftcap < 0 || c.FinalSoftcap < 0 || c.QueryScale < 0 ||
		math.IsNaN(c.RopeThetaLocal) || math.IsNaN(float64(c.AttnSoftcap)) || math.IsNaN(float64(c.FinalSoftcap)) || math.IsNaN(c.QueryScale) {
		return fmt.Errorf("%w: negative sliding window, pattern, local RoPE base, soft-cap or query scale in %+v", ErrFormat, *c)
	}
	switch c.Act {
	case "", ActSiLU, ActGELUTanh:
	default:
		return fmt.Errorf("%w: activation %q (implemented: silu, gelu_tanh)", ErrUnsupported, c.Act)
	}
	if rs := c.RopeScaling; rs != nil {
		if rs.Type != "llama3" && rs.Type != "linear" {
			return fmt.Errorf("%w: RoPE scaling %q", ErrUnsupported, rs.Type)
		}
		if len(rs.FreqFactors) != c.HeadDim/2 {
			return fmt.Errorf("%w: %d RoPE frequency factors for %d rotary pairs", ErrFormat, len(rs.FreqFactors), c.HeadDim/2)
		}
		for i, v := range rs.FreqFactors {
			if !(v > 0) || math.IsInf(v, 0) {
				return fmt.Errorf("%w: RoPE frequency factor %d is %g", ErrFormat, i, v)
			}
		}
	}
	return nil
}
