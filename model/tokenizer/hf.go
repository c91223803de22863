package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
)

// LoadHF reads a HuggingFace tokenizer.json (model type BPE, or WordPiece: see WordPiece). Byte-level models (a
// ByteLevel pre-tokenizer or decoder: Llama 3, Qwen2, SmolLM, GPT-2) become a BPE
// tokenizer with the file's split regex; SentencePiece-derived models (byte_fallback,
// U+2581 spaces: Llama 2, Mistral) become an SPM tokenizer whose piece scores follow
// the merge ranks.
func LoadHF(path string) (Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := ParseHF(b)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

type hfFile struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    *hfComponent `json:"normalizer"`
	PreTokenizer  *hfComponent `json:"pre_tokenizer"`
	PostProcessor *hfComponent `json:"post_processor"`
	Decoder       *hfComponent `json:"decoder"`
	Model         struct {
		Type         string          `json:"type"`
		Vocab        map[string]int  `json:"vocab"`
		Merges       json.RawMessage `json:"merges"`
		ByteFallback bool            `json:"byte_fallback"`
		IgnoreMerges bool            `json:"ignore_merges"`
		UnkToken     *string         `json:"unk_token"`
	} `json:"model"`
}

type hfComponent struct {
	Type           string          `json:"type"`
	Pattern        *hfPattern      `json:"pattern"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	Individual     bool            `json:"individual_digits"`
	Pretokenizers  []*hfComponent  `json:"pretokenizers"`
	Normalizers    []*hfComponent  `json:"normalizers"`
	Decoders       []*hfComponent  `json:"decoders"`
	Processors     []*hfComponent  `json:"processors"`
	Single         json.RawMessage `json:"single"`
	Prepend        string          `json:"prepend"`
	Content        string          `json:"content"`
	PrependScheme  string          `json:"prepend_scheme"`
	Split          *bool           `json:"split"`
	Replacement    string          `json:"replacement"`
}

type hfPattern struct {
	Regex  string `json:"Regex"`
	String string `json:"String"`
}

func (c *hfComponent) walk(fn func(*hfComponent)) {
	if c == nil {
		return
	}
	fn(c)
	for _, l := range [][]*hfComponent{c.Pretokenizers, c.Normalizers, c.Decoders, c.Processors} {
		for _, s := range l {
			s.walk(fn)
		}
	}
}

// ParseHF parses the bytes of a tokenizer.json (see LoadHF).
func ParseHF(b []byte) (Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if f.Model.Type == "WordPiece" {
		return parseHFWordPiece(b)
	}
	if f.Model.Type != "BPE" {
		return nil, fmt.Errorf("%w: model type %q (only BPE and WordPiece)", ErrUnsupported, f.Model.Type)
	}
	n := 0
	for _, id := range f.Model.Vocab {
		if id < 0 {
			return nil, fmt.Errorf("%w: negative token id %d", ErrFormat, id)
		}
		n = max(n, id+1)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("%w: negative added token id %d", ErrFormat, a.ID)
		}
		n = max(n, a.ID+1)
	}
	if n == 0 || n > 1<<24 {
		return nil, fmt.Errorf("%w: vocabulary size %d", ErrFormat, n)
	}
	tokens := make([]string, n)
	have := make([]bool, n)
	for s, id := range f.Model.Vocab {
		tokens[id], have[id] = s, true
	}
	special := map[int]bool{}
	types := make([]int32, n)
	for i := range types {
		types[i] = TypeNormal
	}
	for _, a := range f.AddedTokens {
		tokens[a.ID], have[a.ID] = a.Content, true
		if a.Special {
			special[a.ID] = true
			types[a.ID] = TypeControl
		} else {
			types[a.ID] = TypeUserDefined
		}
	}
	for i, ok := range have {
		if !ok {
			tokens[i] = fmt.Sprintf("<unused%d>", i)
			types[i] = TypeUnused
			special[i] = true
		}
	}
	merges, err := parseHFMerges(f.Model.Merges)
	if err != nil {
		return nil, err
	}
	id := func(s string) int {
		for _, a := range f.AddedTokens {
			if a.Content == s {
				return a.ID
			}
		}
		if v, ok := f.Model.Vocab[s]; ok {
			return v
		}
		return -1
	}
	unk := -1
	if f.Model.UnkToken != nil {
		unk = id(*f.Model.UnkToken)
	}
	// BOS: the first special token of the single-sequence template, if any.
	bos, eos := -1, -1
	f.PostProcessor.walk(func(c *hfComponent) {
		if c.Type != "TemplateProcessing" || len(c.Single) == 0 {
			return
		}
		var items []map[string]struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(c.Single, &items) != nil {
			return
		}
		if len(items) > 0 {
			if st, ok := items[0]["SpecialToken"]; ok && bos < 0 {
				bos = id(st.ID)
			}
		}
	})
	for _, s := range []string{"<|begin_of_text|>", "<s>"} {
		if bos < 0 {
			bos = id(s)
		}
	}
	for _, s := range []string{"<|end_of_text|>", "</s>", "<|endoftext|>", "<|im_end|>"} {
		if eos < 0 {
			eos = id(s)
		}
	}
	byteLevel, pattern, prefixSpace, nfc, digits := false, "", false, false, false
	f.PreTokenizer.walk(func(c *hfComponent) {
		switch c.Type {
		case "Digits":
			digits = c.Individual
		case "ByteLevel":
			byteLevel = true
			prefixSpace = c.AddPrefixSpace
			if (c.UseRegex == nil || *c.UseRegex) && pattern == "" {
				pattern = PatternGPT2
			}
		case "Split":
			if c.Pattern != nil && c.Pattern.Regex != "" {
				pattern = c.Pattern.Regex
			}
		}
	})
	if digits && pattern == PatternGPT2 {
		pattern = PatternSmolLM
	} else if digits {
		return nil, fmt.Errorf("%w: Digits pre-tokenizer with a custom split pattern", ErrUnsupported)
	}
	f.Decoder.walk(func(c *hfComponent) {
		if c.Type == "ByteLevel" {
			byteLevel = true
		}
	})
	f.Normalizer.walk(func(c *hfComponent) {
		if c.Type == "NFC" {
			nfc = true
		}
	})
	if byteLevel {
		return NewBPE(BPEOptions{Tokens: tokens, Types: types, Merges: merges, Pattern: pattern, BOS: bos, EOS: eos, Unknown: unk,
			IgnoreMerges: f.Model.IgnoreMerges, NFC: nfc, AddPrefixSpace: prefixSpace, Special: special})
	}
	if !f.Model.ByteFallback {
		return nil, fmt.Errorf("%w: BPE model that is neither byte-level nor byte-fallback", ErrUnsupported)
	}
	// SentencePiece-derived BPE with byte fallback (Llama 2, Mistral, Gemma): spaces are
	// U+2581 (a Replace normalizer or a Metaspace pre-tokenizer), merges by rank. The
	// dummy prefix comes from a Prepend normalizer (before every piece of text between
	// added tokens) or a Metaspace prepend_scheme ("always", or "first": only at the start).
	dummy, firstOnly := false, false
	var unsupported error
	f.Normalizer.walk(func(c *hfComponent) {
		switch c.Type {
		case "Prepend":
			dummy = c.Prepend == "\u2581"
		case "Replace", "Sequence":
		case "NFC":
			unsupported = fmt.Errorf("%w: NFC normalizer on a SentencePiece-style model", ErrUnsupported)
		default:
			unsupported = fmt.Errorf("%w: normalizer %q on a SentencePiece-style model", ErrUnsupported, c.Type)
		}
	})
	f.PreTokenizer.walk(func(c *hfComponent) {
		switch c.Type {
		case "Metaspace":
			if c.Split != nil && *c.Split {
				unsupported = fmt.Errorf("%w: Metaspace pre-tokenizer with split", ErrUnsupported)
			}
			switch c.PrependScheme {
			case "always":
				dummy = true
			case "first":
				dummy, firstOnly = true, true
			case "never":
				dummy = false
			case "":
				dummy = c.AddPrefixSpace
			}
		case "Split":
			// Gemma: a split at " " after the normalizer turned every space into U+2581
			// never matches.
			if c.Pattern == nil || c.Pattern.String != " " {
				unsupported = fmt.Errorf("%w: Split pre-tokenizer on a SentencePiece-style model", ErrUnsupported)
			}
		case "Sequence":
		default:
			unsupported = fmt.Errorf("%w: pre-tokenizer %q on a SentencePiece-style model", ErrUnsupported, c.Type)
		}
	})
	if unsupported != nil {
		return nil, unsupported
	}
	scores := make([]float32, n)
	for i, tok := range tokens {
		if _, ok := parseBytePiece(tok); ok && types[i] == TypeNormal {
			types[i] = TypeByte
		}
	}
	return NewSPM(SPMOptions{Pieces: tokens, Scores: scores, Types: types, SpaceMarker: true, BOS: bos, EOS: eos, Unknown: unk,
		Merges: merges, NoDummyPrefix: !dummy, PrefixFirstOnly: firstOnly})
}

func parseHFMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var asStrings []string
	if err := json.Unmarshal(raw, &asStrings); err == nil {
		return splitMerges(asStrings)
	}
	var asPairs [][]string
	if err := json.Unmarshal(raw, &asPairs); err != nil {
		return nil, fmt.Errorf("%w: merges: %v", ErrFormat, err)
	}
	out := make([][2]string, len(asPairs))
	for i, p := range asPairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("%w: merge %d has %d parts", ErrFormat, i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}
