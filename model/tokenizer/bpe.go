package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// Pre-tokenizer patterns (split regexes) of well-known byte-level BPE tokenizers.
const (
	// PatternGPT2 is GPT-2's pattern (also SmolLM's ByteLevel use_regex pre-tokenizer).
	PatternGPT2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// PatternLlama3 is Llama 3's pattern.
	PatternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// PatternSmolLM is GPT-2's pattern after a split into single digits (SmolLM's
	// Digits(individual_digits) + ByteLevel pre-tokenizers; llama.cpp's "smollm").
	PatternSmolLM = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// PatternQwen2 is Qwen2's pattern (single digits).
	PatternQwen2 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// PreTokenizerPattern maps a GGUF tokenizer.ggml.pre name to its split pattern.
func PreTokenizerPattern(pre string) (string, error) {
	switch pre {
	case "", "default", "gpt2", "gpt-2":
		return PatternGPT2, nil
	case "smollm":
		return PatternSmolLM, nil
	case "llama3", "llama-v3", "llama-bpe":
		return PatternLlama3, nil
	case "qwen2":
		return PatternQwen2, nil
	}
	return "", fmt.Errorf("%w: pre-tokenizer %q (supported: gpt2, smollm, llama-bpe, qwen2)", ErrUnsupported, pre)
}

// BPEOptions describes a byte-level BPE vocabulary.
type BPEOptions struct {
	Tokens []string    // vocabulary in byte-to-unicode form (GPT-2 mapping)
	Types  []int32     // optional token types (TypeControl marks special tokens)
	Merges [][2]string // merges in rank order
	// Pattern is the pre-tokenizer split regex (regexp2 syntax); empty: PatternGPT2.
	Pattern  string
	BOS, EOS int // -1 if none
	Unknown  int
	// IgnoreMerges: a pre-token that is itself in the vocabulary is emitted directly
	// (HF ignore_merges, used by Llama 3).
	IgnoreMerges bool
	// NFC normalizes text to Unicode NFC before encoding (Qwen2).
	NFC bool
	// AddPrefixSpace prepends a space to the text (HF ByteLevel add_prefix_space).
	AddPrefixSpace bool
	// Special marks tokens (by id) that decode to nothing, in addition to TypeControl.
	Special map[int]bool
}

// BPE is a byte-level BPE tokenizer.
type BPE struct {
	tokens  []string
	raw     [][]byte // decoded bytes per token (nil for special tokens)
	ids     map[string]int
	ranks   map[string]int // "a\x00b" → rank
	re      *regexp2.Regexp
	byteTok [256]int
	bos     int
	eos     int
	unk     int
	o       BPEOptions
	cache   sync.Map // pre-token → []int (bounded by cacheMax)
	cacheN  int64
	mu      sync.Mutex
}

const cacheMax = 1 << 16

var byteToRune, runeToByte = buildByteMap()

// buildByteMap is GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest
// to code points from 256 up.
func buildByteMap() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}

// ByteToUnicode returns the GPT-2 byte-to-unicode form of s.
func ByteToUnicode(s []byte) string {
	var sb strings.Builder
	for _, b := range s {
		sb.WriteRune(byteToRune[b])
	}
	return sb.String()
}

// unicodeToBytes inverts ByteToUnicode; ok is false if s has a code point outside the map.
func unicodeToBytes(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := runeToByte[r]
		if !ok {
			return nil, false
		}
		out = append(out, b)
	}
	return out, true
}

// splitMerges splits merges written "left right" (tokenizer.json, GGUF
// tokenizer.ggml.merges) at the first space after the first byte (a left part may
// itself be a space).
func splitMerges(ms []string) ([][2]string, error) {
	out := make([][2]string, len(ms))
	for i, m := range ms {
		k := -1
		if len(m) > 1 {
			k = strings.IndexByte(m[1:], ' ')
		}
		if k < 0 {
			return nil, fmt.Errorf("%w: merge %d %q has no separating space", ErrFormat, i, m)
		}
		out[i] = [2]string{m[:k+1], m[k+2:]}
	}
	return out, nil
}

// NewBPE builds a byte-level BPE tokenizer.
func NewBPE(o BPEOptions) (*BPE, error) {
	n := len(o.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("%w: empty vocabulary", ErrFormat)
	}
	if o.Types != nil && len(o.Types) != n {
		return nil, fmt.Errorf("%w: %d token types for %d tokens", ErrFormat, len(o.Types), n)
	}
	for _, id := range []int{o.BOS, o.EOS, o.Unknown} {
		if id >= n || id < -1 {
			return nil, fmt.Errorf("%w: special token id %d outside vocabulary of %d", ErrFormat, id, n)
		}
	}
	if o.Pattern == "" {
		o.Pattern = PatternGPT2
	}
	re, err := regexp2.Compile(o.Pattern, regexp2.Unicode)
	if err != nil {
		return nil, fmt.Errorf("%w: pre-tokenizer pattern: %v", ErrFormat, err)
	}
	t := &BPE{tokens: o.Tokens, raw: make([][]byte, n), ids: make(map[string]int, n), ranks: make(map[string]int, len(o.Merges)),
		re: re, bos: o.BOS, eos: o.EOS, unk: o.Unknown, o: o}
	for i, s := range o.Tokens {
		special := o.Special[i] || (o.Types != nil && (o.Types[i] == TypeControl || o.Types[i] == TypeUnknown))
		if !special {
			if b, ok := unicodeToBytes(s); ok {
				t.raw[i] = b
			} else {
				t.raw[i] = []byte(s) // user-defined token stored as plain text
			}
		}
		if _, dup := t.ids[s]; !dup && !special {
			t.ids[s] = i
		}
	}
	for b := 0; b < 256; b++ {
		t.byteTok[b] = -1
		if id, ok := t.ids[string(byteToRune[b])]; ok {
			t.byteTok[b] = id
		}
	}
	for r, m := range o.Merges {
		k := m[0] + "\x00" + m[1]
		if _, dup := t.ranks[k]; !dup {
			t.ranks[k] = r
		}
	}
	return t, nil
}

func (t *BPE) Kind() string   { return "bpe" }
func (t *BPE) VocabSize() int { return len(t.tokens) }
func (t *BPE) BOS() int       { return t.bos }
func (t *BPE) EOS() int       { return t.eos }

// Encode implements Tokenizer.
func (t *BPE) Encode(text string, bos, eos bool) []int {
	var out []int
	if bos && t.bos >= 0 {
		out = append(out, t.bos)
	}
	if t.o.NFC && utf8.ValidString(text) {
		text = norm.NFC.String(text)
	}
	if t.o.AddPrefixSpace && text != "" && text[0] != ' ' {
		text = " " + text
	}
	for _, pt := range t.preTokenize(text) {
		out = t.encodeWord(out, pt)
	}
	if eos && t.eos >= 0 {
		out = append(out, t.eos)
	}
	return out
}

// preTokenize splits text by the pattern; text between matches (and invalid UTF-8) is
// kept as its own pieces, so that no byte is lost.
func (t *BPE) preTokenize(text string) []string {
	if text == "" {
		return nil
	}
	// Byte offset of each rune index, as regexp2 decodes the string (one rune per invalid byte).
	offs := make([]int, 0, len(text)+1)
	for i := range text {
		offs = append(offs, i)
	}
	offs = append(offs, len(text))
	var parts []string
	prev := 0
	m, err := t.re.FindStringMatch(text)
	for err == nil && m != nil {
		lo, hi := m.Index, m.Index+m.Length
		if lo > prev {
			parts = append(parts, text[offs[prev]:offs[lo]])
		}
		if hi > lo {
			parts = append(parts, text[offs[lo]:offs[hi]])
		}
		prev = hi
		m, err = t.re.FindNextMatch(m)
	}
	if prev < len(offs)-1 {
		parts = append(parts, text[offs[prev]:])
	}
	return parts
}

func (t *BPE) encodeWord(out []int, word string) []int {
	if v, ok := t.cache.Load(word); ok {
		return append(out, v.([]int)...)
	}
	start := len(out)
	out = t.bpeWord(out, word)
	t.mu.Lock()
	if t.cacheN < cacheMax {
		t.cacheN++
		t.cache.Store(word, append([]int(nil), out[start:]...))
	}
	t.mu.Unlock()
	return out
}

func (t *BPE) bpeWord(out []int, word string) []int {
	u := ByteToUnicode([]byte(word))
	if t.o.IgnoreMerges {
		if id, ok := t.ids[u]; ok {
			return append(out, id)
		}
	}
	// Symbols: one per byte (as its mapped rune).
	syms := make([]string, 0, len(word))
	for _, r := range u {
		syms = append(syms, string(r))
	}
	for len(syms) > 1 {
		best, bestRank := -1, int(^uint(0)>>1)
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := t.ranks[syms[i]+"\x00"+syms[i+1]]; ok && r < bestRank {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			break
		}
		syms[best] += syms[best+1]
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	for _, s := range syms {
		if id, ok := t.ids[s]; ok {
			out = append(out, id)
			continue
		}
		b, _ := unicodeToBytes(s)
		for _, c := range b {
			if id := t.byteTok[c]; id >= 0 {
				out = append(out, id)
			} else if t.unk >= 0 {
				out = append(out, t.unk)
			}
		}
	}
	return out
}

// Piece implements Tokenizer (special tokens print nothing).
func (t *BPE) Piece(prev, id int) []byte {
	if id < 0 || id >= len(t.raw) {
		return nil
	}
	return t.raw[id]
}

// Decode implements Tokenizer.
func (t *BPE) Decode(ids []int) string {
	var b []byte
	for _, id := range ids {
		if id >= 0 && id < len(t.raw) {
			b = append(b, t.raw[id]...)
		}
	}
	s := string(b)
	if t.o.AddPrefixSpace && strings.HasPrefix(s, " ") {
		s = s[1:]
	}
	return s
}

// Tokens returns the vocabulary (byte-to-unicode form); it must not be modified.
func (t *BPE) Tokens() []string { return t.tokens }

// Pattern returns the pre-tokenizer split regex in use (PatternGPT2 when none was given).
func (t *BPE) Pattern() string { return t.o.Pattern }
