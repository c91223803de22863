package model

import (
	"errors"
	"fmt"
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
	return nil
}
