package chunkcache

import (
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strings"
)

// KeyVersion is the version of the content-key scheme, hashed into every key. Bump it
// (and the golden test) whenever the hashed encoding changes.
const KeyVersion = 1

// DefaultNamespace is used when a request names no namespace.
const DefaultNamespace = "default"

// Key is a chunk's content key: SHA-256 over the encoding described in the package
// doc. It is the chunk's identity in every tier and in the eviction trackers.
type Key [32]byte

// String is the lower-case hex form.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Short is the first 8 bytes in hex, for logs and messages.
func (k Key) Short() string { return hex.EncodeToString(k[:8]) }

// ParseKey parses the 64-digit hex form.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("%w: key %q is not 64 hex digits", ErrInvalid, s)
	}
	copy(k[:], b)
	return k, nil
}

// KeyFromBytes converts a 32-byte slice.
func KeyFromBytes(b []byte) (Key, error) {
	var k Key
	if len(b) != len(k) {
		return k, fmt.Errorf("%w: key is %d bytes, want 32", ErrInvalid, len(b))
	}
	copy(k[:], b)
	return k, nil
}

// RoPEConfig is the rotary position embedding configuration of a model: two models
// that differ here produce different K for the same tokens.
type RoPEConfig struct {
	// Theta is the base frequency (10000 for Llama 2, 500000 for Llama 3).
	Theta float64 `json:"theta" yaml:"theta"`
	// Dims is the number of rotated dimensions per head (0: the whole head).
	Dims int `json:"dims,omitempty" yaml:"dims"`
	// Style is how dimensions are paired: "interleaved" (llama2.c, GGUF llama) or
	// "half" (Hugging Face rotate_half / NeoX).
	Style string `json:"style,omitempty" yaml:"style"`
	// Scaling is the context-extension method ("", "linear", "dynamic", "yarn",
	// "llama3") with its Factor and the OriginalContext it extends.
	Scaling         string  `json:"scaling,omitempty" yaml:"scaling"`
	Factor          float64 `json:"factor,omitempty" yaml:"factor"`
	OriginalContext int     `json:"original_context,omitempty" yaml:"original_context"`
}

// Fingerprint identifies the model whose KV a chunk holds.
type Fingerprint struct {
	// Architecture is the model family ("llama").
	Architecture string `json:"architecture" yaml:"architecture"`
	// WeightsDigest identifies the weights (e.g. "sha256:…" of the weight file).
	WeightsDigest string `json:"weights_digest" yaml:"weights_digest"`
	// TokenizerDigest identifies the tokenizer (token ids mean nothing without it).
	TokenizerDigest string     `json:"tokenizer_digest" yaml:"tokenizer_digest"`
	RoPE            RoPEConfig `json:"rope" yaml:"rope"`
}

const maxFingerprintField = 1024

// Validate checks the fingerprint: architecture and weights digest are required.
func (f *Fingerprint) Validate() error {
	switch {
	case f.Architecture == "":
		return fmt.Errorf("%w: model fingerprint: architecture is empty", ErrInvalid)
	case f.WeightsDigest == "":
		return fmt.Errorf("%w: model fingerprint: weights digest is empty", ErrInvalid)
	case len(f.Architecture) > maxFingerprintField || len(f.WeightsDigest) > maxFingerprintField ||
		len(f.TokenizerDigest) > maxFingerprintField || len(f.RoPE.Style) > maxFingerprintField ||
		len(f.RoPE.Scaling) > maxFingerprintField:
		return fmt.Errorf("%w: model fingerprint: a field exceeds %d bytes", ErrInvalid, maxFingerprintField)
	case math.IsNaN(f.RoPE.Theta) || math.IsInf(f.RoPE.Theta, 0) || f.RoPE.Theta < 0:
		return fmt.Errorf("%w: model fingerprint: rope theta %v", ErrInvalid, f.RoPE.Theta)
	case math.IsNaN(f.RoPE.Factor) || math.IsInf(f.RoPE.Factor, 0) || f.RoPE.Factor < 0:
		return fmt.Errorf("%w: model fingerprint: rope factor %v", ErrInvalid, f.RoPE.Factor)
	case f.RoPE.Dims < 0 || f.RoPE.Dims > math.MaxInt32 || f.RoPE.OriginalContext < 0 || f.RoPE.OriginalContext > math.MaxInt32:
		return fmt.Errorf("%w: model fingerprint: rope dims %d / original context %d", ErrInvalid, f.RoPE.Dims, f.RoPE.OriginalContext)
	}
	return nil
}

var namespaceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// NormalizeNamespace maps "" to DefaultNamespace and checks the name: 1 to 128
// characters from [A-Za-z0-9._-], starting with a letter or digit.
func NormalizeNamespace(ns string) (string, error) {
	if ns == "" {
		return DefaultNamespace, nil
	}
	if !namespaceRE.MatchString(ns) {
		return "", fmt.Errorf("%w: namespace %q (want 1-128 characters [A-Za-z0-9._-], starting with a letter or digit)", ErrInvalid, ns)
	}
	return ns, nil
}

// ChunkID is everything a chunk's key is computed from.
type ChunkID struct {
	Namespace string
	Model     Fingerprint
	DType     DType
	Tokens    []uint32
}

// Validate checks the identity (the namespace must already be normalized or empty).
func (id *ChunkID) Validate() error {
	if _, err := NormalizeNamespace(id.Namespace); err != nil {
		return err
	}
	if err := id.Model.Validate(); err != nil {
		return err
	}
	if !id.DType.Valid() {
		return fmt.Errorf("%w: unknown dtype %d (want f32, f16, bf16, int8, q4, q2 or mixed)", ErrInvalid, uint8(id.DType))
	}
	if len(id.Tokens) == 0 {
		return fmt.Errorf("%w: empty token list", ErrInvalid)
	}
	if len(id.Tokens) > MaxTokens {
		return fmt.Errorf("%w: %d tokens (max %d)", ErrInvalid, len(id.Tokens), MaxTokens)
	}
	return nil
}
