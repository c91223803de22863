package encoder

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/gguf"
)

// DecoderOptions configures OpenDecoder.
type DecoderOptions struct {
	// AddEOS appends the tokenizer's EOS to every text (models trained with last-token
	// pooling over an EOS: e5-mistral-7b-instruct, gte-Qwen2).
	AddEOS  bool
	Threads int
	Pool    *kernels.Pool
}

// Decoder is a decoder-style embedding model: a Llama-family model (any architecture
// package model runs) whose final normalized hidden states are pooled (last token by
// default, or mean). Each text is one causal forward pass from position 0 with the
// tokenizer's BOS first where the vocabulary adds one, as llama.cpp's llama-embedding
// runs such models.
type Decoder struct {
	M              *model.Model
	addBOS, addEOS bool
	pool           Pooling // the file's ARCH.pooling_type (mean, cls, last), else last
}

// OpenDecoder loads a model file as package model does.
func OpenDecoder(path string, o DecoderOptions) (*Decoder, error) {
	m, err := model.Open(path, model.Options{Threads: o.Threads, Pool: o.Pool})
	if err != nil {
		return nil, fmt.Errorf("encoder: %w", err)
	}
	d := &Decoder{M: m, addBOS: m.Tok.BOS() >= 0, addEOS: o.AddEOS && m.Tok.EOS() >= 0}
	if gguf.HasMagic(path) {
		if err := d.ggufSpecials(path); err != nil {
			m.Close()
			return nil, err
		}
	}
	return d, nil
}

// ggufSpecials applies llama.cpp's rule for the BOS and EOS of a GGUF vocabulary: the
// keys tokenizer.ggml.add_bos_token / add_eos_token where present, else BOS for
// SentencePiece vocabularies ("llama") and for the BPE pre-tokenizers llama.cpp marks so
// (Llama 3, Falcon 3, Tekken, Chameleon), no EOS.
func (d *Decoder) ggufSpecials(path string) error {
	f, err := gguf.Open(path)
	if err != nil {
		return fmt.Errorf("encoder: %w: %w", model.ErrFormat, err)
	}
	defer f.Close()
	tm, _ := f.String("tokenizer.ggml.model")
	pre, _ := f.String("tokenizer.ggml.pre")
	bos := tm == "llama"
	switch pre {
	case "llama3", "llama-v3", "llama-bpe", "falcon3", "tekken", "chameleon":
		bos = true
	}
	flag := func(key string, def bool) bool {
		if v, ok := f.Lookup(key); ok {
			if b, isBool := v.V.(bool); isBool {
				return b
			}
		}
		return def
	}
	if a, err := f.String("general.architecture"); err == nil {
		if v, err := f.Uint(a + ".pooling_type"); err == nil {
			switch p := Pooling(v); p {
			case PoolMean, PoolCLS, PoolLast:
				d.pool = p
			}
		}
	}
	d.addBOS = flag("tokenizer.ggml.add_bos_token", bos) && d.M.Tok.BOS() >= 0
	d.addEOS = (d.addEOS || flag("tokenizer.ggml.add_eos_token", false)) && d.M.Tok.EOS() >= 0
	return nil
}

// Close releases the model.
func (d *Decoder) Close() error { return d.M.Close() }

func (d *Decoder) tokenize(text string, maxTokens int) []int {
	ctx := d.M.Config.Ctx
	if maxTokens <= 0 || maxTokens > ctx {
		maxTokens = ctx
	}
	eos := d.addEOS
	ids := d.M.Tok.Encode(text, d.addBOS, eos)
	if len(ids) > maxTokens {
		last := ids[len(ids)-1]
		ids = ids[:maxTokens]
		if eos {
			ids[maxTokens-1] = last
		}
	}
	return ids
}

// hidden runs each sequence alone (causal attention from position 0).
func (d *Decoder) hidden(ctx context.Context, seqs [][]int) ([]float32, []int, error) {
	dim := d.M.Config.Dim
	off := make([]int, len(seqs)+1)
	for s, q := range seqs {
		off[s+1] = off[s] + len(q)
	}
	h := make([]float32, off[len(seqs)]*dim)
	for s, q := range seqs {
		if err := d.M.HiddenStates(ctx, h[off[s]*dim:off[s+1]*dim], q); err != nil {
			return nil, nil, err
		}
	}
	return h, off, nil
}

// hfModelType reads the model_type of the config.json at path (a directory, or beside a
// .safetensors file) and reports an error unless it is want.
func hfModelType(path, want string) (string, error) {
	dir := path
	if strings.HasSuffix(path, ".safetensors") {
		dir = filepath.Dir(path)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return "", err
	}
	var c struct {
		ModelType string `json:"model_type"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", err
	}
	if c.ModelType != want {
		return c.ModelType, errNotType
	}
	return c.ModelType, nil
}
