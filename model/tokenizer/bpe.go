package tokenizer

import (
	"fmt"
	"sort"
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

// Multi-stage pre-tokenizers as llama.cpp runs them (src/llama-vocab.cpp,
// llm_tokenizer_bpe): each pattern splits the pieces the previous one produced, and text
// between matches stays a piece of its own.
var (
	// patternsFalcon: punctuation runs, then GPT-2's pattern, then runs of three digits.
	patternsFalcon = []string{`[\p{P}\$\+<=>\^~\|` + "`" + `]+`, PatternGPT2, `[0-9][0-9][0-9]`}
	// patternsStarCoder (also refact): single digits, then GPT-2's pattern.
	patternsStarCoder = []string{`\p{N}`, PatternGPT2}
	// patternsDeepSeekLLM: line breaks, Latin/Greek/Cyrillic/... letter runs with an
	// optional leading space, ASCII and full-width punctuation runs, trailing spaces, CJK
	// runs, digit runs. The letter class is DeepSeek's explicit list of code-point ranges
	// (written as \x{...} escapes: Unicode normalization of the source must not change it).
	patternsDeepSeekLLM = []string{
		`[\r\n]`,
		`\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+`,
		`\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+`,
		`\s+$`,
		`[\x{4E00}-\x{9FA5}\x{800}-\x{4E00}\x{AC00}-\x{D7FF}]+`,
		`\p{N}+`,
	}
)

// PreTokenizerPatterns maps a GGUF tokenizer.ggml.pre name to its split patterns (applied
// in sequence).
func PreTokenizerPatterns(pre string) ([]string, error) {
	switch pre {
	case "", "default", "gpt2", "gpt-2", "mpt", "olmo", "jais":
		return []string{PatternGPT2}, nil
	case "smollm":
		return []string{PatternSmolLM}, nil
	case "llama3", "llama-v3", "llama-bpe", "dbrx", "smaug-bpe":
		return []string{PatternLlama3}, nil
	case "qwen2", "stablelm2":
		return []string{PatternQwen2}, nil
	case "falcon":
		return patternsFalcon, nil
	case "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b":
		return patternsStarCoder, nil
	case "deepseek-llm":
		return patternsDeepSeekLLM, nil
	}
	return nil, fmt.Errorf("%w: pre-tokenizer %q (supported: gpt2, mpt, smollm, llama-bpe, qwen2, falcon, starcoder, refact, deepseek-llm)", ErrUnsupported, pre)
}

// PreTokenizerPattern is PreTokenizerPatterns for pre-tokenizers with one pattern.
func PreTokenizerPattern(pre string) (string, error) {
	ps, err := PreTokenizerPatterns(pre)
	if err != nil {
		return "", err
	}
	if len(ps) != 1 {
		return "", fmt.Errorf("%w: pre-tokenizer %q has %d stages", ErrUnsupported, pre, len(ps))
	}
	return ps[0], nil
}

// BPEOptions describes a byte-level BPE vocabulary.
type BPEOptions struct {
	Tokens []string    // vocabulary in byte-to-unicode form (GPT-2 mapping)
	Types  []int32     // optional token types (TypeControl marks special tokens)
	Merges [][2]string // merges in rank order
	// Pattern is the pre-tokenizer split regex (regexp2 syntax); empty: PatternGPT2.
	Pattern string
	// Patterns, if set, replaces Pattern: split regexes applied in sequence, each to the
	// pieces of the previous one (llama.cpp's multi-stage pre-tokenizers).
	Patterns []string
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
	res     []*regexp2.Regexp
	userDef []int    // user-defined tokens (TypeUserDefined), longest text first
	special *matcher // control and user-defined tokens, for EncodeSpecial
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
	pats := o.Patterns
	if len(pats) == 0 {
		pats = []string{o.Pattern}
	}
	var res []*regexp2.Regexp
	for _, p := range pats {
		re, err := regexp2.Compile(p, regexp2.Unicode)
		if err != nil {
			return nil, fmt.Errorf("%w: pre-tokenizer pattern: %v", ErrFormat, err)
		}
		res = append(res, re)
	}
	t := &BPE{tokens: o.Tokens, raw: make([][]byte, n), ids: make(map[string]int, n), ranks: make(map[string]int, len(o.Merges)),
		res: res, bos: o.BOS, eos: o.EOS, unk: o.Unknown, o: o}
	for i, s := range o.Tokens {
		special := o.Special[i] || (o.Types != nil && (o.Types[i] == TypeControl || o.Types[i] == TypeUnknown))
		userDef := o.Types != nil && o.Types[i] == TypeUserDefined
		if !special {
			if b, ok := unicodeToBytes(s); ok && !userDef { // user-defined tokens are plain UTF-8 text
				t.raw[i] = b
			} else {
				t.raw[i] = []byte(s) // user-defined token stored as plain text
			}
		}
		if _, dup := t.ids[s]; !dup && !special {
			t.ids[s] = i
		}
	}
	for i := range o.Tokens {
		if o.Types != nil && o.Types[i] == TypeUserDefined && len(t.raw[i]) > 0 {
			t.userDef = append(t.userDef, i)
		}
	}
	sort.SliceStable(t.userDef, func(a, b int) bool { return len(t.raw[t.userDef[a]]) > len(t.raw[t.userDef[b]]) })
	var stexts []string
	var sids []int
	for i, s := range o.Tokens {
		switch {
		case o.Types != nil && o.Types[i] == TypeUserDefined:
			stexts, sids = append(stexts, string(t.raw[i])), append(sids, i)
		case o.Types != nil && o.Types[i] == TypeUnused:
		case o.Special[i] || (o.Types != nil && o.Types[i] == TypeControl):
			stexts, sids = append(stexts, s), append(sids, i)
		}
	}
	t.special = newMatcher(stexts, sids)
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
	out = t.encodeFragments(out, t.partition(text))
	if eos && t.eos >= 0 {
		out = append(out, t.eos)
	}
	return out
}

// EncodeSpecial implements SpecialEncoder: control and user-defined token texts are
// split out of the raw text first (leftmost-longest, as HF tokenizers do), then each
// piece between them is normalized and encoded.
func (t *BPE) EncodeSpecial(text string, bos, eos bool) []int {
	var out []int
	if bos && t.bos >= 0 {
		out = append(out, t.bos)
	}
	frags := t.special.split(text)
	for i := range frags {
		if frags[i].id >= 0 {
			continue
		}
		s := frags[i].text
		if t.o.NFC && utf8.ValidString(s) {
			s = norm.NFC.String(s)
		}
		if t.o.AddPrefixSpace && i == 0 && s != "" && s[0] != ' ' {
			s = " " + s
		}
		frags[i].text = s
	}
	out = t.encodeFragments(out, frags)
	if eos && t.eos >= 0 {
		out = append(out, t.eos)
	}
	return out
}

func (t *BPE) encodeFragments(out []int, frags []fragment) []int {
	for _, f := range frags {
		if f.id >= 0 {
			out = append(out, f.id)
			continue
		}
		for _, pt := range t.preTokenize(f.text) {
			out = t.encodeWord(out, pt)
		}
	}
	return out
}

// TokenText implements TokenTexter (normal tokens in their byte-to-unicode form).
func (t *BPE) TokenText(id int) string {
	if id < 0 || id >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// fragment is a piece of the text to encode: a user-defined token (id ≥ 0) or raw text.
type fragment struct {
	text string
	id   int
}

// partition splits text at occurrences of user-defined tokens before pre-tokenization, as
// llama.cpp's tokenizer_st_partition does with special-token parsing off: tokens are
// taken longest first, each splitting every raw fragment at its occurrences, left to right.
func (t *BPE) partition(text string) []fragment {
	frags := []fragment{{text: text, id: -1}}
	for _, id := range t.userDef {
		tok := string(t.raw[id])
		var next []fragment
		for _, f := range frags {
			if f.id >= 0 || !strings.Contains(f.text, tok) {
				next = append(next, f)
				continue
			}
			rest := f.text
			for {
				i := strings.Index(rest, tok)
				if i < 0 {
					break
				}
				if i > 0 {
					next = append(next, fragment{text: rest[:i], id: -1})
				}
				next = append(next, fragment{id: id})
				rest = rest[i+len(tok):]
			}
			if rest != "" {
				next = append(next, fragment{text: rest, id: -1})
			}
		}
		frags = next
	}
	return frags
}

// preTokenize splits text by the patterns in turn; text between matches (and invalid
// UTF-8) is kept as its own pieces, so that no byte is lost.
func (t *BPE) preTokenize(text string) []string {
	if text == "" {
		return nil
	}
	parts := splitBy(t.res[0], text, nil)
	for _, re := range t.res[1:] {
		var next []string
		for _, p := range parts {
			next = splitBy(re, p, next)
		}
		parts = next
	}
	return parts
}

// splitBy appends to parts the pieces of text split by re: each match, and each run of
// text between matches.
func splitBy(re *regexp2.Regexp, text string, parts []string) []string {
	// Byte offset of each rune index, as regexp2 decodes the string (one rune per invalid byte).
	offs := make([]int, 0, len(text)+1)
	for i := range text {
		offs = append(offs, i)
	}
	offs = append(offs, len(text))
	prev := 0
	m, err := re.FindStringMatch(text)
	for err == nil && m != nil {
		lo, hi := m.Index, m.Index+m.Length
		if lo > prev {
			parts = append(parts, text[offs[prev]:offs[lo]])
		}
		if hi > lo {
			parts = append(parts, text[offs[lo]:offs[hi]])
		}
		prev = hi
		m, err = re.FindNextMatch(m)
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
