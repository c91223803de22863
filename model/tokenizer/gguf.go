package tokenizer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ragkv/ragkv/model/gguf"
)

// FromGGUF builds the tokenizer described by a GGUF file's tokenizer.ggml.* metadata
// (model "llama": SPM; model "gpt2": byte-level BPE; model "bert": WordPiece).
func FromGGUF(f *gguf.File) (Tokenizer, error) {
	wrap := func(err error) error { return fmt.Errorf("tokenizer in %s: %w", f.Path, err) }
	model, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, wrap(err)
	}
	toksA, err := f.Array("tokenizer.ggml.tokens")
	if err != nil {
		return nil, wrap(err)
	}
	tokens, ok := toksA.V.([]string)
	if !ok {
		return nil, wrap(fmt.Errorf("%w: tokenizer.ggml.tokens is not a string array", ErrFormat))
	}
	var types []int32
	if a, err := f.Array("tokenizer.ggml.token_type"); err == nil {
		if types, ok = a.V.([]int32); !ok || len(types) != len(tokens) {
			return nil, wrap(fmt.Errorf("%w: tokenizer.ggml.token_type must be %d int32 values", ErrFormat, len(tokens)))
		}
	}
	special := func(key string) (int, error) {
		v, err := f.Uint(key)
		if errors.Is(err, gguf.ErrNotFound) {
			return -1, nil
		}
		if err != nil {
			return 0, err
		}
		if v >= uint64(len(tokens)) {
			return 0, fmt.Errorf("%w: %s = %d outside vocabulary of %d", ErrFormat, key, v, len(tokens))
		}
		return int(v), nil
	}
	bos, err := special("tokenizer.ggml.bos_token_id")
	if err != nil {
		return nil, wrap(err)
	}
	eos, err := special("tokenizer.ggml.eos_token_id")
	if err != nil {
		return nil, wrap(err)
	}
	unk, err := special("tokenizer.ggml.unknown_token_id")
	if err != nil {
		return nil, wrap(err)
	}
	switch model {
	case "bert":
		t, err := wordPieceFromGGUF(f, tokens, unk)
		if err != nil {
			return nil, wrap(err)
		}
		return t, nil
	case "llama":
		a, err := f.Array("tokenizer.ggml.scores")
		if err != nil {
			return nil, wrap(err)
		}
		scores, ok := a.V.([]float32)
		if !ok {
			return nil, wrap(fmt.Errorf("%w: tokenizer.ggml.scores is not a float32 array", ErrFormat))
		}
		noDummy := false
		if v, ok := f.Lookup("tokenizer.ggml.add_space_prefix"); ok {
			if b, isBool := v.V.(bool); isBool {
				noDummy = !b
			}
		}
		t, err := NewSPM(SPMOptions{Pieces: tokens, Scores: scores, Types: types, SpaceMarker: true, BOS: bos, EOS: eos, Unknown: unk, NoDummyPrefix: noDummy})
		if err != nil {
			return nil, wrap(err)
		}
		return t, nil
	case "gpt2":
		a, err := f.Array("tokenizer.ggml.merges")
		if err != nil {
			return nil, wrap(err)
		}
		ms, ok := a.V.([]string)
		if !ok {
			return nil, wrap(fmt.Errorf("%w: tokenizer.ggml.merges is not a string array", ErrFormat))
		}
		merges, err := splitMerges(ms)
		if err != nil {
			return nil, wrap(err)
		}
		pre := ""
		if v, err := f.String("tokenizer.ggml.pre"); err == nil {
			pre = v
		}
		pats, err := PreTokenizerPatterns(pre)
		if err != nil {
			return nil, wrap(err)
		}
		t, err := NewBPE(BPEOptions{Tokens: tokens, Types: types, Merges: merges, Patterns: pats, BOS: bos, EOS: eos, Unknown: unk,
			IgnoreMerges: pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3", NFC: pre == "qwen2"})
		if err != nil {
			return nil, wrap(err)
		}
		return t, nil
	}
	return nil, wrap(fmt.Errorf("%w: tokenizer.ggml.model %q (supported: llama, gpt2, bert)", ErrUnsupported, model))
}

// GGUFMetadata returns the tokenizer.ggml.* metadata that describes t, for writing a
// GGUF file (model "llama" with U+2581 spaces, or "gpt2" with merges). pre names the
// pre-tokenizer of a BPE tokenizer.
func GGUFMetadata(t Tokenizer, pre string) ([]gguf.KV, error) {
	var kvs []gguf.KV
	add := func(k string, v gguf.Value) { kvs = append(kvs, gguf.KV{Key: k, Value: v}) }
	arr := func(k string, s any) error {
		v, err := gguf.ArrayOf(s)
		if err != nil {
			return err
		}
		add(k, v)
		return nil
	}
	switch tt := t.(type) {
	case *SPM:
		add("tokenizer.ggml.model", gguf.String("llama"))
		pieces := make([]string, len(tt.pieces))
		types := make([]int32, len(tt.pieces))
		for i, p := range tt.pieces {
			pieces[i] = strings.ReplaceAll(p, " ", "\u2581")
			types[i] = TypeNormal
			if tt.types != nil {
				types[i] = tt.types[i]
			} else if _, ok := parseBytePiece(p); ok {
				types[i] = TypeByte
			} else if i == tt.bos || i == tt.eos {
				types[i] = TypeControl
			} else if i == tt.unk {
				types[i] = TypeUnknown
			}
		}
		if err := arr("tokenizer.ggml.tokens", pieces); err != nil {
			return nil, err
		}
		if err := arr("tokenizer.ggml.scores", append([]float32(nil), tt.scores...)); err != nil {
			return nil, err
		}
		if err := arr("tokenizer.ggml.token_type", types); err != nil {
			return nil, err
		}
	case *BPE:
		add("tokenizer.ggml.model", gguf.String("gpt2"))
		add("tokenizer.ggml.pre", gguf.String(pre))
		if err := arr("tokenizer.ggml.tokens", append([]string(nil), tt.tokens...)); err != nil {
			return nil, err
		}
		types := make([]int32, len(tt.tokens))
		for i := range types {
			types[i] = TypeNormal
			if tt.o.Types != nil {
				types[i] = tt.o.Types[i]
			} else if tt.raw[i] == nil {
				types[i] = TypeControl
			}
		}
		if err := arr("tokenizer.ggml.token_type", types); err != nil {
			return nil, err
		}
		ms := make([]string, len(tt.o.Merges))
		for i, m := range tt.o.Merges {
			ms[i] = m[0] + " " + m[1]
		}
		if err := arr("tokenizer.ggml.merges", ms); err != nil {
			return nil, err
		}
	case *WordPiece:
		return tt.ggufMetadata()
	default:
		return nil, fmt.Errorf("%w: tokenizer %T", ErrUnsupported, t)
	}
	if b := t.BOS(); b >= 0 {
		add("tokenizer.ggml.bos_token_id", gguf.Uint32(uint32(b)))
	}
	if e := t.EOS(); e >= 0 {
		add("tokenizer.ggml.eos_token_id", gguf.Uint32(uint32(e)))
	}
	return kvs, nil
}
