package encoder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/gguf"
)

// backend is what an Embedder runs: a BERT encoder or a decoder.
type backend interface {
	tokenize(text string, maxTokens int) []int
	// hidden returns the final hidden states of seqs, concatenated (see BERT.Hidden).
	hidden(ctx context.Context, seqs [][]int) ([]float32, []int, error)
	dim() int
	pooling() Pooling // the model's own
	maxTokens() int
	close() error
}

func (b *BERT) tokenize(text string, maxTokens int) []int { return b.Tokenize(text, maxTokens) }
func (b *BERT) hidden(ctx context.Context, seqs [][]int) ([]float32, []int, error) {
	return b.Hidden(ctx, seqs)
}
func (b *BERT) dim() int         { return b.Config.Dim }
func (b *BERT) pooling() Pooling { return b.Config.Pooling }
func (b *BERT) maxTokens() int   { return b.Config.MaxPos }
func (b *BERT) close() error     { return b.Close() }
func (d *Decoder) dim() int      { return d.M.Config.Dim }
func (d *Decoder) pooling() Pooling {
	if d.pool != PoolDefault {
		return d.pool
	}
	return PoolLast
}
func (d *Decoder) maxTokens() int { return d.M.Config.Ctx }
func (d *Decoder) close() error   { return d.Close() }

// EmbedderOptions configures NewEmbedder.
type EmbedderOptions struct {
	// Pooling overrides the model's (BERT: the file's pooling type, else mean; decoders:
	// the file's ARCH.pooling_type, else the last token).
	Pooling Pooling
	// MaxTokens truncates each text (≤ 0: the model's positions or context).
	MaxTokens int
	// Prefix is prepended to every text Embed encodes (E5's "passage: ", an instruction).
	Prefix string
	// QueryPrefix, when set, is prepended instead of Prefix to the search queries
	// EmbedQueries encodes (E5's "query: ", BGE's "Represent this sentence for searching
	// relevant passages: "): the store embeds passages with Embed and queries with
	// EmbedQueries (retrieval/embed.QueryEmbedder).
	QueryPrefix string
	// BatchTokens bounds the tokens encoded in one batch (≤ 0: 2048).
	BatchTokens int
	// AddEOS appends the EOS token on decoder models (e5-mistral, gte-Qwen expect it for
	// last-token pooling).
	AddEOS bool
	// Threads of a kernels pool the embedder creates (≤ 0: GOMAXPROCS); ignored with Pool.
	Threads int
	Pool    *kernels.Pool
}

// EnsureDefaults fills unset fields (BatchTokens 2048).
func (o *EmbedderOptions) EnsureDefaults() {
	if o.BatchTokens <= 0 {
		o.BatchTokens = 2048
	}
}

// Validate checks the options.
func (o *EmbedderOptions) Validate() error {
	if o.MaxTokens < 0 {
		return fmt.Errorf("%w: max tokens %d", model.ErrInvalid, o.MaxTokens)
	}
	switch o.Pooling {
	case PoolDefault, PoolMean, PoolCLS, PoolLast:
	default:
		return fmt.Errorf("%w: pooling %d", model.ErrInvalid, o.Pooling)
	}
	return nil
}

// Embedder is a retrieval embedder (retrieval/embed.Embedder) over an in-engine model:
// texts are tokenized, encoded, pooled and L2-normalized. Safe for concurrent use.
type Embedder struct {
	name string
	b    backend
	o    EmbedderOptions
	pool Pooling
}

// NewEmbedder opens path as an embedding model: a GGUF file of architecture "bert" or a
// HF BERT safetensors file/directory becomes a BERT encoder; a GGUF of a Llama-family
// architecture (or a HF directory with such a config) a decoder embedder.
func NewEmbedder(path string, o EmbedderOptions) (*Embedder, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var b backend
	var err error
	if isBERT(path) {
		b, err = Open(path, Options{Threads: o.Threads, Pool: o.Pool})
	} else {
		b, err = OpenDecoder(path, DecoderOptions{Threads: o.Threads, Pool: o.Pool, AddEOS: o.AddEOS})
	}
	if err != nil {
		return nil, err
	}
	e := &Embedder{b: b, o: o, pool: o.Pooling}
	if e.pool == PoolDefault {
		e.pool = b.pooling()
	}
	kind := "bert"
	if _, ok := b.(*Decoder); ok {
		kind = "decoder"
	}
	// The name identifies the model and everything that changes its vectors.
	e.name = kind + ":" + filepath.Base(filepath.Clean(path))
	if o.Pooling != PoolDefault {
		e.name += "+pool=" + o.Pooling.String()
	}
	if o.MaxTokens > 0 {
		e.name += fmt.Sprintf("+max=%d", o.MaxTokens)
	}
	if o.AddEOS {
		e.name += "+eos"
	}
	if o.Prefix != "" {
		h := sha256.Sum256([]byte(o.Prefix))
		e.name += "+prefix=" + hex.EncodeToString(h[:4])
	}
	if o.QueryPrefix != "" {
		h := sha256.Sum256([]byte(o.QueryPrefix))
		e.name += "+qprefix=" + hex.EncodeToString(h[:4])
	}
	return e, nil
}

// isBERT reports whether path holds a BERT encoder (GGUF architecture "bert", or a HF
// config.json with model_type "bert").
func isBERT(path string) bool {
	if gguf.HasMagic(path) {
		f, err := gguf.Open(path)
		if err != nil {
			return false
		}
		defer f.Close()
		a, _ := f.String("general.architecture")
		return a == "bert"
	}
	_, err := hfModelType(path, "bert")
	return err == nil
}

// Name identifies the model (kind, file name and options that change the vectors).
func (e *Embedder) Name() string { return e.name }

// Dim is the vector dimension (the model's hidden size).
func (e *Embedder) Dim() int { return e.b.dim() }

// Pooling is the pooling in use.
func (e *Embedder) Pooling() Pooling { return e.pool }

// Close releases the model.
func (e *Embedder) Close() error { return e.b.close() }

// Tokens returns the ids a text is encoded as (prefix, specials and truncation applied).
func (e *Embedder) Tokens(text string) []int {
	return e.b.tokenize(e.o.Prefix+text, e.o.MaxTokens)
}

// QueryTokens returns the ids a search query is encoded as: with QueryPrefix where it
// is set, else as Tokens.
func (e *Embedder) QueryTokens(query string) []int {
	if e.o.QueryPrefix == "" {
		return e.Tokens(query)
	}
	return e.b.tokenize(e.o.QueryPrefix+query, e.o.MaxTokens)
}

// Embed returns one unit-length vector per text (a passage: Prefix applied).
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return e.embed(ctx, texts, e.Tokens)
}

// EmbedQueries returns one unit-length vector per search query (QueryPrefix applied
// where set, else exactly Embed).
func (e *Embedder) EmbedQueries(ctx context.Context, queries []string) ([][]float32, error) {
	return e.embed(ctx, queries, e.QueryTokens)
}

func (e *Embedder) embed(ctx context.Context, texts []string, tokenize func(string) []int) ([][]float32, error) {
	dim := e.b.dim()
	out := make([][]float32, len(texts))
	flat := make([]float32, len(texts)*dim)
	for i := range out {
		out[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	for lo := 0; lo < len(texts); {
		var seqs [][]int
		tokens := 0
		hi := lo
		for ; hi < len(texts); hi++ {
			ids := tokenize(texts[hi])
			if len(ids) == 0 {
				return nil, fmt.Errorf("%w: text %d encodes to no tokens", model.ErrInvalid, hi)
			}
			if len(seqs) > 0 && tokens+len(ids) > e.o.BatchTokens {
				break
			}
			seqs = append(seqs, ids)
			tokens += len(ids)
		}
		h, off, err := e.b.hidden(ctx, seqs)
		if err != nil {
			return nil, err
		}
		if err := Pool(flat[lo*dim:hi*dim], h, off, dim, e.pool); err != nil {
			return nil, err
		}
		lo = hi
	}
	return out, nil
}

// ParseSpec splits an --embeddings value of the form KIND:PATH[,key=value...] (KIND gguf
// or hf) into the path and options: pool=mean|cls|last, max=N, prefix=TEXT (passages;
// percent-escaped: %2C for a comma, %20 for a space), query-prefix=TEXT (queries; same
// escaping), eos=true. ok is false when spec has no such prefix (a GloVe file).
func ParseSpec(spec string) (path string, o EmbedderOptions, ok bool, err error) {
	var rest string
	switch {
	case strings.HasPrefix(spec, "gguf:"):
		rest = spec[len("gguf:"):]
	case strings.HasPrefix(spec, "hf:"):
		rest = spec[len("hf:"):]
	default:
		return "", o, false, nil
	}
	parts := strings.Split(rest, ",")
	path = parts[0]
	if path == "" {
		return "", o, true, fmt.Errorf("%w: %q names no file", model.ErrInvalid, spec)
	}
	for _, p := range parts[1:] {
		k, v, found := strings.Cut(p, "=")
		if !found {
			return "", o, true, fmt.Errorf("%w: option %q is not key=value", model.ErrInvalid, p)
		}
		switch k {
		case "pool":
			if o.Pooling, err = ParsePooling(v); err != nil {
				return "", o, true, err
			}
		case "max":
			var n int
			if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n <= 0 {
				return "", o, true, fmt.Errorf("%w: max=%q is not a positive number", model.ErrInvalid, v)
			}
			o.MaxTokens = n
		case "prefix":
			if o.Prefix, err = url.PathUnescape(v); err != nil {
				return "", o, true, fmt.Errorf("%w: prefix=%q: %v", model.ErrInvalid, v, err)
			}
		case "query-prefix":
			if o.QueryPrefix, err = url.PathUnescape(v); err != nil {
				return "", o, true, fmt.Errorf("%w: query-prefix=%q: %v", model.ErrInvalid, v, err)
			}
		case "eos":
			o.AddEOS = v == "true" || v == "1"
		default:
			return "", o, true, fmt.Errorf("%w: unknown option %q (pool, max, prefix, query-prefix, eos)", model.ErrInvalid, k)
		}
	}
	return path, o, true, nil
}

var errNotType = errors.New("not this model type")
