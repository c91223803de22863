package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/ragkv/ragkv/model/gguf"
)

// WordPiece is BERT's tokenizer (Devlin et al., NAACL 2019; the algorithm of Schuster &
// Nakajima, ICASSP 2012): HuggingFace's BertNormalizer (clean text, space around CJK
// ideographs, optional NFD accent stripping and lowercasing), BertPreTokenizer (split on
// whitespace, each punctuation character a word of its own), then per word the greedy
// longest-match-first WordPiece split, continuation pieces marked "##" in HF vocabularies
// (in GGUF files, as llama.cpp's converter writes them, word-initial pieces carry a U+2581
// prefix instead and continuations are bare). A word longer than 100 characters, or one
// that cannot be covered by pieces, becomes the unknown token. Special tokens written in
// the text are not recognised (documents cannot inject [SEP]). Encode's bos and eos add
// [CLS] and [SEP].
type WordPiece struct {
	o       WordPieceOptions
	initial map[string]int // word-initial pieces
	cont    map[string]int // continuation pieces (without "##")
	maxLen  int            // longest piece in bytes
}

// WordPieceOptions configures NewWordPiece.
type WordPieceOptions struct {
	// Tokens in id order, as HF writes them (continuations with a "##" prefix), or with
	// Phantom, as llama.cpp's GGUF converter does (word-initial pieces prefixed U+2581,
	// [BRACKETED] tokens special and unchanged, continuations bare).
	Tokens  []string
	Phantom bool
	// Special token ids (-1: none). CLS is added by Encode's bos, SEP by its eos.
	CLS, SEP, Unknown, Pad int
	// Lowercase and StripAccents (NFD, then dropping nonspacing marks) as BertNormalizer;
	// HF's default for uncased models is both.
	Lowercase, StripAccents bool
	// KeepChinese disables the spaces around CJK ideographs (handle_chinese_chars false).
	KeepChinese bool
	// MaxWordChars: a longer word is the unknown token (0: 100, HF's default).
	MaxWordChars int
}

// NewWordPiece builds a WordPiece tokenizer.
func NewWordPiece(o WordPieceOptions) (*WordPiece, error) {
	n := len(o.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("%w: empty WordPiece vocabulary", ErrFormat)
	}
	for _, id := range []struct {
		name string
		v    int
	}{{"CLS", o.CLS}, {"SEP", o.SEP}, {"unknown", o.Unknown}, {"padding", o.Pad}} {
		if id.v < -1 || id.v >= n {
			return nil, fmt.Errorf("%w: %s token id %d outside vocabulary of %d", ErrFormat, id.name, id.v, n)
		}
	}
	if o.MaxWordChars <= 0 {
		o.MaxWordChars = 100
	}
	t := &WordPiece{o: o, initial: make(map[string]int, n), cont: make(map[string]int, n/4)}
	put := func(m map[string]int, s string, id int) {
		if _, dup := m[s]; !dup { // the first id wins, as in HF's vocab.txt loading
			m[s] = id
		}
		t.maxLen = max(t.maxLen, len(s))
	}
	for id, s := range o.Tokens {
		switch {
		case o.Phantom && strings.HasPrefix(s, "\u2581"):
			put(t.initial, s[len("\u2581"):], id)
		case o.Phantom && strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
			put(t.initial, s, id)
		case o.Phantom:
			put(t.cont, s, id)
		case strings.HasPrefix(s, "##") && len(s) > 2:
			put(t.cont, s[2:], id)
		default:
			put(t.initial, s, id)
		}
	}
	return t, nil
}

// Kind is "wpm" (llama.cpp's name for WordPiece).
func (t *WordPiece) Kind() string   { return "wpm" }
func (t *WordPiece) VocabSize() int { return len(t.o.Tokens) }

// BOS is the [CLS] id, EOS the [SEP] id (-1 if absent).
func (t *WordPiece) BOS() int { return t.o.CLS }
func (t *WordPiece) EOS() int { return t.o.SEP }

// Unknown and Pad are the [UNK] and [PAD] ids (-1 if absent).
func (t *WordPiece) Unknown() int { return t.o.Unknown }
func (t *WordPiece) Pad() int     { return t.o.Pad }

// Encode tokenizes text; bos adds [CLS] first, eos [SEP] last.
func (t *WordPiece) Encode(text string, bos, eos bool) []int {
	var out []int
	if bos && t.o.CLS >= 0 {
		out = append(out, t.o.CLS)
	}
	for _, w := range t.words(text) {
		out = t.appendWord(out, w)
	}
	if eos && t.o.SEP >= 0 {
		out = append(out, t.o.SEP)
	}
	return out
}

// appendWord appends the pieces of one pre-tokenized word.
func (t *WordPiece) appendWord(out []int, w string) []int {
	if utf8.RuneCountInString(w) > t.o.MaxWordChars {
		return t.appendUnk(out)
	}
	mark := len(out)
	for start := 0; start < len(w); {
		m := t.initial
		if start > 0 {
			m = t.cont
		}
		end := min(len(w), start+t.maxLen)
		found := -1
		for ; end > start; end-- {
			if end < len(w) && !utf8.RuneStart(w[end]) {
				continue
			}
			if id, ok := m[w[start:end]]; ok {
				found = id
				break
			}
		}
		if found < 0 {
			return t.appendUnk(out[:mark])
		}
		out = append(out, found)
		start = end
	}
	return out
}

func (t *WordPiece) appendUnk(out []int) []int {
	if t.o.Unknown >= 0 {
		out = append(out, t.o.Unknown)
	}
	return out
}

// words normalizes text and splits it into words (BertNormalizer + BertPreTokenizer).
func (t *WordPiece) words(text string) []string {
	var b strings.Builder
	b.Grow(len(text) + 8)
	for _, r := range text {
		// Clean text: drop NUL, U+FFFD and control characters; whitespace becomes ' '.
		if r == 0 || r == utf8.RuneError || isBertControl(r) {
			continue
		}
		if unicode.IsSpace(r) {
			b.WriteByte(' ')
			continue
		}
		if !t.o.KeepChinese && isCJK(r) {
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	s := b.String()
	if t.o.StripAccents {
		s = stripAccents(s)
	}
	if t.o.Lowercase {
		s = strings.ToLower(s)
	}
	var words []string
	start := -1
	for i, r := range s {
		switch {
		case unicode.IsSpace(r):
			if start >= 0 {
				words = append(words, s[start:i])
				start = -1
			}
		case isBertPunct(r):
			if start >= 0 {
				words = append(words, s[start:i])
				start = -1
			}
			words = append(words, s[i:i+utf8.RuneLen(r)])
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		words = append(words, s[start:])
	}
	return words
}

// stripAccents is NFD followed by removing nonspacing marks (category Mn).
func stripAccents(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isBertControl: HF's control test: categories Cc, Cf, Co, Cs and unassigned, except
// tab, newline and carriage return (which are whitespace).
func isBertControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	if r < 0x80 {
		return r < 0x20 || r == 0x7f
	}
	if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs) {
		return true
	}
	return !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// isBertPunct: ASCII punctuation and symbols, or Unicode category P.
func isBertPunct(r rune) bool {
	if r < 0x80 {
		return r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126
	}
	return unicode.IsPunct(r)
}

// isCJK reports the CJK Unified Ideographs blocks BERT surrounds with spaces (the ranges
// of HF tokenizers' BertNormalizer).
func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F || r >= 0x2B740 && r <= 0x2B81F || r >= 0x2B920 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F
}

// piece returns the text of a token and whether it starts a word; special tokens
// ([CLS], [SEP], [PAD], ...) return "" and false.
func (t *WordPiece) piece(id int) (string, bool) {
	if id < 0 || id >= len(t.o.Tokens) || id == t.o.CLS || id == t.o.SEP || id == t.o.Pad {
		return "", false
	}
	s := t.o.Tokens[id]
	switch {
	case t.o.Phantom && strings.HasPrefix(s, "\u2581"):
		return s[len("\u2581"):], true
	case t.o.Phantom:
		return s, strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")
	case strings.HasPrefix(s, "##") && len(s) > 2:
		return s[2:], false
	}
	return s, true
}

// Decode joins pieces: a word-initial piece after another piece gets a space, a
// continuation is appended. Normalization (case, accents, whitespace) is not undone.
func (t *WordPiece) Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		s, initial := t.piece(id)
		if s == "" {
			continue
		}
		if initial && b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	return b.String()
}

// Piece returns the text of id after prev (a space before a word-initial piece unless
// prev is [CLS] or nothing).
func (t *WordPiece) Piece(prev, id int) []byte {
	s, initial := t.piece(id)
	if s == "" {
		return nil
	}
	if p, _ := t.piece(prev); initial && p != "" {
		return []byte(" " + s)
	}
	return []byte(s)
}

// wordPieceFromGGUF builds the tokenizer of a GGUF file with tokenizer.ggml.model "bert".
func wordPieceFromGGUF(f *gguf.File, tokens []string, unk int) (*WordPiece, error) {
	// llama.cpp's defaults for "bert" vocabularies, overridden by the file's keys.
	o := WordPieceOptions{Tokens: tokens, Phantom: true, CLS: 101, SEP: 102, Unknown: 100, Pad: 0, Lowercase: true, StripAccents: true}
	if unk >= 0 {
		o.Unknown = unk
	}
	for _, k := range []struct {
		key string
		dst *int
	}{{"tokenizer.ggml.cls_token_id", &o.CLS}, {"tokenizer.ggml.bos_token_id", &o.CLS}, {"tokenizer.ggml.seperator_token_id", &o.SEP},
		{"tokenizer.ggml.padding_token_id", &o.Pad}} {
		if v, err := f.Uint(k.key); err == nil {
			if v >= uint64(len(tokens)) {
				return nil, fmt.Errorf("%w: %s = %d outside vocabulary of %d", ErrFormat, k.key, v, len(tokens))
			}
			*k.dst = int(v)
		}
	}
	for _, p := range []*int{&o.CLS, &o.SEP, &o.Unknown, &o.Pad} {
		if *p >= len(tokens) {
			*p = -1
		}
	}
	// Cased vocabularies: llama.cpp always lowercases; a file that says otherwise is
	// honoured.
	if v, ok := f.Lookup("tokenizer.ggml.lowercase"); ok {
		if b, isBool := v.V.(bool); isBool {
			o.Lowercase, o.StripAccents = b, b
		}
	}
	return NewWordPiece(o)
}

// hfWordPiece is the part of a tokenizer.json a WordPiece model needs.
type hfWordPiece struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
	} `json:"added_tokens"`
	Normalizer *struct {
		Type               string `json:"type"`
		Lowercase          *bool  `json:"lowercase"`
		StripAccents       *bool  `json:"strip_accents"`
		HandleChineseChars *bool  `json:"handle_chinese_chars"`
	} `json:"normalizer"`
	Model struct {
		Vocab                   map[string]int `json:"vocab"`
		UnkToken                string         `json:"unk_token"`
		ContinuingSubwordPrefix string         `json:"continuing_subword_prefix"`
		MaxInputCharsPerWord    int            `json:"max_input_chars_per_word"`
	} `json:"model"`
}

// parseHFWordPiece reads a tokenizer.json whose model type is WordPiece (BERT, BGE, E5,
// MiniLM checkpoints) with a BertNormalizer (or none).
func parseHFWordPiece(b []byte) (*WordPiece, error) {
	var f hfWordPiece
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if p := f.Model.ContinuingSubwordPrefix; p != "" && p != "##" {
		return nil, fmt.Errorf("%w: WordPiece continuing_subword_prefix %q (only ##)", ErrUnsupported, p)
	}
	n := 0
	for _, id := range f.Model.Vocab {
		if id < 0 || id >= 1<<24 {
			return nil, fmt.Errorf("%w: token id %d", ErrFormat, id)
		}
		n = max(n, id+1)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 || a.ID >= 1<<24 {
			return nil, fmt.Errorf("%w: added token id %d", ErrFormat, a.ID)
		}
		n = max(n, a.ID+1)
	}
	tokens := make([]string, n)
	for s, id := range f.Model.Vocab {
		tokens[id] = s
	}
	for _, a := range f.AddedTokens {
		tokens[a.ID] = a.Content
	}
	for i, s := range tokens {
		if s == "" {
			tokens[i] = fmt.Sprintf("[unused-id-%d]", i)
		}
	}
	o := WordPieceOptions{Tokens: tokens, MaxWordChars: f.Model.MaxInputCharsPerWord, Lowercase: true, StripAccents: true}
	if nz := f.Normalizer; nz != nil {
		if nz.Type != "BertNormalizer" {
			return nil, fmt.Errorf("%w: WordPiece with normalizer %q (only BertNormalizer)", ErrUnsupported, nz.Type)
		}
		if nz.Lowercase != nil {
			o.Lowercase = *nz.Lowercase
		}
		o.StripAccents = o.Lowercase // HF: strip_accents null follows lowercase
		if nz.StripAccents != nil {
			o.StripAccents = *nz.StripAccents
		}
		o.KeepChinese = nz.HandleChineseChars != nil && !*nz.HandleChineseChars
	}
	o.CLS, o.SEP, o.Pad, o.Unknown = hfID(f.Model.Vocab, "[CLS]"), hfID(f.Model.Vocab, "[SEP]"), hfID(f.Model.Vocab, "[PAD]"), hfID(f.Model.Vocab, f.Model.UnkToken)
	return NewWordPiece(o)
}

func hfID(v map[string]int, s string) int {
	if id, ok := v[s]; ok && s != "" {
		return id
	}
	return -1
}

// LoadVocabTxt reads a BERT vocab.txt (one token per line, id = line number) as an
// uncased (lowercase) or cased tokenizer.
func LoadVocabTxt(b []byte, lowercase bool) (*WordPiece, error) {
	var tokens []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		tokens = append(tokens, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: vocab.txt: %v", ErrFormat, err)
	}
	v := map[string]int{}
	for i, s := range tokens {
		if _, ok := v[s]; !ok {
			v[s] = i
		}
	}
	return NewWordPiece(WordPieceOptions{Tokens: tokens, CLS: hfID(v, "[CLS]"), SEP: hfID(v, "[SEP]"), Pad: hfID(v, "[PAD]"),
		Unknown: hfID(v, "[UNK]"), Lowercase: lowercase, StripAccents: lowercase})
}

// ggufMetadata is the tokenizer.ggml.* metadata of t as llama.cpp's converter writes a
// BERT vocabulary: model "bert", phantom-space tokens, [BRACKETED] tokens control; the
// [CLS] id also as bos_token_id, which is what llama.cpp reads (defaulting to 101).
func (t *WordPiece) ggufMetadata() ([]gguf.KV, error) {
	toks := make([]string, len(t.o.Tokens))
	types := make([]int32, len(toks))
	for i, s := range t.o.Tokens {
		types[i] = TypeNormal
		switch p, initial := t.piece(i); {
		case i == t.o.CLS || i == t.o.SEP || i == t.o.Pad || strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]"):
			toks[i], types[i] = s, TypeControl
		case initial:
			toks[i] = "\u2581" + p
		default:
			toks[i] = p
		}
	}
	tv, err := gguf.ArrayOf(toks)
	if err != nil {
		return nil, err
	}
	yv, err := gguf.ArrayOf(types)
	if err != nil {
		return nil, err
	}
	kvs := []gguf.KV{{Key: "tokenizer.ggml.model", Value: gguf.String("bert")}, {Key: "tokenizer.ggml.tokens", Value: tv},
		{Key: "tokenizer.ggml.token_type", Value: yv}}
	for _, k := range []struct {
		key string
		id  int
	}{{"tokenizer.ggml.unknown_token_id", t.o.Unknown}, {"tokenizer.ggml.cls_token_id", t.o.CLS}, {"tokenizer.ggml.bos_token_id", t.o.CLS},
		{"tokenizer.ggml.seperator_token_id", t.o.SEP}, {"tokenizer.ggml.padding_token_id", t.o.Pad}} {
		if k.id >= 0 {
			kvs = append(kvs, gguf.KV{Key: k.key, Value: gguf.Uint32(uint32(k.id))})
		}
	}
	return kvs, nil
}
