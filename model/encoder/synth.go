package encoder

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// Shapes are BERT-family encoder shapes for synthetic (random-weight) GGUF files: a
// tiny one for tests and the published shapes of common sentence encoders (their
// vocabularies are synthetic WordPiece ones of the right size).
var Shapes = map[string]Config{
	"tiny-bert": {Dim: 64, Hidden: 128, Layers: 2, Heads: 4, Vocab: 512, MaxPos: 128, TypeVocab: 2, NormEps: 1e-12, Pooling: PoolMean},
	// Rows of 256 and 512: the k-quants (256-element super-blocks) apply without fallbacks.
	"tiny-bert-256": {Dim: 256, Hidden: 512, Layers: 2, Heads: 4, Vocab: 512, MaxPos: 128, TypeVocab: 2, NormEps: 1e-12, Pooling: PoolMean},
	"bge-small-en-v1.5": {Dim: 384, Hidden: 1536, Layers: 12, Heads: 12, Vocab: 30522, MaxPos: 512, TypeVocab: 2, NormEps: 1e-12,
		Pooling: PoolCLS},
	"all-MiniLM-L6-v2": {Dim: 384, Hidden: 1536, Layers: 6, Heads: 12, Vocab: 30522, MaxPos: 512, TypeVocab: 2, NormEps: 1e-12,
		Pooling: PoolMean},
	"bge-base-en-v1.5": {Dim: 768, Hidden: 3072, Layers: 12, Heads: 12, Vocab: 30522, MaxPos: 512, TypeVocab: 2, NormEps: 1e-12,
		Pooling: PoolCLS},
}

// ShapeNames returns the encoder shape names, sorted.
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
	Shape string
	DType kernels.DType // weight matrices: F32, F16, BF16, Q8_0 (embeddings, norms and biases stay F32)
	Seed  uint64
}

// synthWords are the whole words of the synthetic vocabulary (after the specials, the
// single characters and their continuations, and the suffixes).
var synthWords = strings.Fields(`the of and to in is was for on that with as by at from it an be this are or which his
 her they have had not but one were all their there been has who more will would can its also into when other some time
 two about first new after may only could these than people any most over such years most used city made world between
 school state many part during under well known high then however while both later those since year three film family
 found team each united number work series season group became where before began music music area including back called
 system government old national century play against university second main house general same large life south north
 day said took name american war ball park dog cat tom lily red big small happy went found cake mom dad tree sun water
 protein cell cells gene genes study patients treatment cancer disease risk effect effects increased expression human
 mice level levels role clinical analysis results data model models method retrieval query search document passage
 cache memory token tokens vector vectors dense sparse embedding embeddings sentence sentences encoder attention layer`)

var synthSuffixes = []string{"s", "es", "ed", "ing", "er", "est", "ly", "tion", "ment", "ness", "able", "al", "ic", "ive", "ous"}

// SynthVocab returns a deterministic uncased WordPiece vocabulary of n tokens (HF "##"
// form): [PAD] [UNK] [CLS] [SEP] [MASK], ASCII letters, digits and punctuation with
// their continuations, common suffixes, whole words, then [unusedK] fillers.
func SynthVocab(n int) ([]string, error) {
	v := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			v = append(v, s)
		}
	}
	for _, s := range v {
		seen[s] = true
	}
	chars := "abcdefghijklmnopqrstuvwxyz0123456789"
	for _, r := range chars {
		add(string(r))
	}
	for _, r := range `!"#$%&'()*+,-./:;<=>?@[\]^_{|}~` + "`" {
		add(string(r))
	}
	for _, r := range chars {
		add("##" + string(r))
	}
	for _, s := range synthSuffixes {
		add("##" + s)
	}
	for _, w := range synthWords {
		add(w)
	}
	if len(v) > n {
		return nil, fmt.Errorf("%w: synthetic vocabulary needs at least %d tokens, got %d", model.ErrInvalid, len(v), n)
	}
	for i := 0; len(v) < n; i++ {
		v = append(v, fmt.Sprintf("[unused%d]", i))
	}
	return v, nil
}

// SynthTensors lists the tensors of a synthetic encoder of shape c (GGUF names), for
// SynthGGUF and tests. Matrices are uniform in ±1.7/√cols, embeddings in ±1 (tokens) and
// ±0.5 (positions, types), LayerNorm weights near 1 and biases in ±0.02.
func SynthTensors(c Config, dt kernels.DType) []model.SynthTensor {
	mat := func(name string, rows, cols int) model.SynthTensor {
		return model.SynthTensor{Name: name, Rows: rows, Cols: cols, Type: dt, Scale: float32(1.7 / math.Sqrt(float64(cols)))}
	}
	vec := func(name string, n int, norm bool) model.SynthTensor {
		return model.SynthTensor{Name: name, Rows: 1, Cols: n, Type: kernels.F32, Norm: norm, Scale: 0.02}
	}
	emb := func(name string, rows int, scale float32) model.SynthTensor {
		return model.SynthTensor{Name: name, Rows: rows, Cols: c.Dim, Type: kernels.F32, Scale: scale}
	}
	ts := []model.SynthTensor{emb(ggufNames.tok, c.Vocab, 1), emb(ggufNames.typ, c.TypeVocab, 0.5), emb(ggufNames.pos, c.MaxPos, 0.5),
		vec(ggufNames.embNormW, c.Dim, true), vec(ggufNames.embNormB, c.Dim, false)}
	for l := 0; l < c.Layers; l++ {
		f := func(s string) string { return fmt.Sprintf(s, l) }
		for _, m := range []struct {
			name       string
			rows, cols int
		}{{ggufNames.q, c.Dim, c.Dim}, {ggufNames.k, c.Dim, c.Dim}, {ggufNames.v, c.Dim, c.Dim}, {ggufNames.o, c.Dim, c.Dim}} {
			ts = append(ts, mat(f(m.name)+".weight", m.rows, m.cols), vec(f(m.name)+".bias", m.rows, false))
		}
		ts = append(ts, vec(f(ggufNames.attnNorm)+".weight", c.Dim, true), vec(f(ggufNames.attnNorm)+".bias", c.Dim, false),
			mat(f(ggufNames.up)+".weight", c.Hidden, c.Dim), vec(f(ggufNames.up)+".bias", c.Hidden, false),
			mat(f(ggufNames.down)+".weight", c.Dim, c.Hidden), vec(f(ggufNames.down)+".bias", c.Dim, false),
			vec(f(ggufNames.outNorm)+".weight", c.Dim, true), vec(f(ggufNames.outNorm)+".bias", c.Dim, false))
	}
	return ts
}

// SynthGGUF writes a GGUF file (architecture "bert", the layout of llama.cpp's converter)
// with random weights of an encoder shape and a synthetic WordPiece vocabulary. The
// output is a deterministic function of the options.
func SynthGGUF(ctx context.Context, w io.Writer, o SynthOptions) error {
	c, ok := Shapes[o.Shape]
	if !ok {
		return fmt.Errorf("%w: unknown encoder shape %q (known: %s)", model.ErrInvalid, o.Shape, strings.Join(ShapeNames(), ", "))
	}
	switch o.DType {
	case kernels.F32, kernels.F16, kernels.BF16, kernels.Q8_0:
	default:
		return fmt.Errorf("%w: synthetic weights of type %s (f32, f16, bf16, q8_0)", model.ErrInvalid, o.DType)
	}
	vocab, err := SynthVocab(c.Vocab)
	if err != nil {
		return err
	}
	tok, err := tokenizer.NewWordPiece(tokenizer.WordPieceOptions{Tokens: vocab, CLS: 2, SEP: 3, Unknown: 1, Pad: 0, Lowercase: true, StripAccents: true})
	if err != nil {
		return err
	}
	tkv, err := tokenizer.GGUFMetadata(tok, "")
	if err != nil {
		return err
	}
	ft := map[kernels.DType]uint32{kernels.F32: 0, kernels.F16: 1, kernels.Q8_0: 7, kernels.BF16: 32}[o.DType]
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.String("bert")},
		{Key: "general.name", Value: gguf.String(fmt.Sprintf("synthetic %s (seed %d)", o.Shape, o.Seed))},
		{Key: "general.file_type", Value: gguf.Uint32(ft)},
		{Key: "bert.context_length", Value: gguf.Uint32(uint32(c.MaxPos))},
		{Key: "bert.embedding_length", Value: gguf.Uint32(uint32(c.Dim))},
		{Key: "bert.feed_forward_length", Value: gguf.Uint32(uint32(c.Hidden))},
		{Key: "bert.block_count", Value: gguf.Uint32(uint32(c.Layers))},
		{Key: "bert.attention.head_count", Value: gguf.Uint32(uint32(c.Heads))},
		{Key: "bert.attention.layer_norm_epsilon", Value: gguf.Float32(c.NormEps)},
		{Key: "bert.attention.causal", Value: gguf.Bool(false)},
		{Key: "bert.pooling_type", Value: gguf.Uint32(uint32(c.Pooling))},
		{Key: "tokenizer.ggml.token_type_count", Value: gguf.Uint32(uint32(c.TypeVocab))},
		{Key: "tokenizer.ggml.pre", Value: gguf.String("bert")},
	}
	gw := gguf.NewWriter(w)
	for _, kv := range append(kvs, tkv...) {
		if err := gw.AddKV(kv.Key, kv.Value); err != nil {
			return err
		}
	}
	ts := SynthTensors(c, o.DType)
	for _, t := range ts {
		dims := []uint64{uint64(t.Cols), uint64(t.Rows)}
		if t.Rows == 1 && !strings.HasPrefix(t.Name, "token_types") {
			dims = dims[:1]
		}
		if err := gw.AddTensor(t.Name, gguf.TensorType(t.Type), dims); err != nil {
			return err
		}
	}
	if err := gw.WriteHeader(); err != nil {
		return err
	}
	for _, t := range ts {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := model.SynthTensorData(t, o.Seed)
		if err != nil {
			return err
		}
		if _, err := gw.Write(b); err != nil {
			return err
		}
	}
	return gw.Finish()
}
