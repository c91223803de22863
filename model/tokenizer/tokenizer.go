package tokenizer

import "errors"

// Tokenizer encodes text to token ids and decodes ids to text. Implementations are
// immutable after construction and safe for concurrent use.
type Tokenizer interface {
	// Encode tokenizes text, with a BOS token first and/or an EOS token last if asked
	// (and if the vocabulary has one).
	Encode(text string, bos, eos bool) []int
	// Decode returns the text of a token sequence; it inverts Encode (control tokens such
	// as BOS/EOS decode to nothing).
	Decode(ids []int) string
	// Piece returns the bytes to print for token id following token prev, with llama2.c's
	// decode() semantics (see the package doc). The result must not be modified.
	Piece(prev, id int) []byte
	// VocabSize is the number of token ids.
	VocabSize() int
	// BOS and EOS return the special token ids, or -1.
	BOS() int
	EOS() int
	// Kind is "spm", "bpe" or "wpm" (WordPiece).
	Kind() string
}

// Errors.
var (
	// ErrFormat: a tokenizer file or metadata is malformed.
	ErrFormat = errors.New("malformed tokenizer")
	// ErrUnsupported: a tokenizer type or feature this package does not implement.
	ErrUnsupported = errors.New("unsupported tokenizer")
)

// Token types as GGUF stores them in tokenizer.ggml.token_type (llama.cpp's
// llama_token_type).
const (
	TypeUndefined   = 0
	TypeNormal      = 1
	TypeUnknown     = 2
	TypeControl     = 3
	TypeUserDefined = 4
	TypeUnused      = 5
	TypeByte        = 6
)
