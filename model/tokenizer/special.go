package tokenizer

// Special-token parsing. Chat templates render to text in which the texts of control
// tokens ("<|im_start|>", "<start_of_turn>", "<|begin_of_text|>") stand for those tokens.
// HuggingFace tokenizers split every added token (special or not) out of the raw text
// before normalization, taking at each position the longest token that starts there,
// leftmost first (the AddedVocabulary's Aho-Corasick search with LeftmostLongest; the
// sorted regex alternation of transformers.js); llama.cpp does the same with
// parse_special. EncodeSpecial does that; Encode keeps the texts of control tokens as
// plain text (only user-defined tokens are split out), which is what documents and other
// untrusted text should get.

// SpecialEncoder is a Tokenizer that can parse the texts of special tokens.
type SpecialEncoder interface {
	// EncodeSpecial tokenizes text in which the text of every control and user-defined
	// token stands for that token (longest match, leftmost first); the rest is encoded as
	// Encode does. bos/eos as for Encode.
	EncodeSpecial(text string, bos, eos bool) []int
}

// TokenTexter is a Tokenizer that can name its tokens.
type TokenTexter interface {
	// TokenText returns the vocabulary text of a token (control tokens: their literal
	// text such as "<|eot_id|>"), or "" outside the vocabulary.
	TokenText(id int) string
}

// EncodeSpecial tokenizes text with special-token parsing when t supports it, and as
// Encode otherwise.
func EncodeSpecial(t Tokenizer, text string, bos, eos bool) []int {
	if s, ok := t.(SpecialEncoder); ok {
		return s.EncodeSpecial(text, bos, eos)
	}
	return t.Encode(text, bos, eos)
}

// TokenText returns the vocabulary text of token id ("" when t cannot name tokens or id is
// outside the vocabulary).
func TokenText(t Tokenizer, id int) string {
	if s, ok := t.(TokenTexter); ok {
		return s.TokenText(id)
	}
	return ""
}

// matcher finds token texts in a string: at each position the longest one that starts
// there (a byte trie).
type matcher struct {
	nodes []trieNode
	first [256]bool
}

type trieNode struct {
	next map[byte]int32
	id   int32 // token ending here, or -1
}

// newMatcher builds a matcher of texts[i] → ids[i]; empty texts are skipped, and of two
// equal texts the first is kept.
func newMatcher(texts []string, ids []int) *matcher {
	m := &matcher{nodes: []trieNode{{id: -1}}}
	for i, s := range texts {
		if s == "" {
			continue
		}
		m.first[s[0]] = true
		n := int32(0)
		for k := 0; k < len(s); k++ {
			c := s[k]
			nx, ok := m.nodes[n].next[c]
			if !ok {
				if m.nodes[n].next == nil {
					m.nodes[n].next = map[byte]int32{}
				}
				nx = int32(len(m.nodes))
				m.nodes[n].next[c] = nx
				m.nodes = append(m.nodes, trieNode{id: -1})
			}
			n = nx
		}
		if m.nodes[n].id < 0 {
			m.nodes[n].id = int32(ids[i])
		}
	}
	return m
}

// longest returns the length and id of the longest token text that s starts with (0, -1:
// none).
func (m *matcher) longest(s string) (int, int) {
	if m == nil || len(s) == 0 || !m.first[s[0]] {
		return 0, -1
	}
	best, id := 0, -1
	n := int32(0)
	for k := 0; k < len(s); k++ {
		nx, ok := m.nodes[n].next[s[k]]
		if !ok {
			break
		}
		n = nx
		if m.nodes[n].id >= 0 {
			best, id = k+1, int(m.nodes[n].id)
		}
	}
	return best, id
}

// split cuts text into raw fragments and token fragments, leftmost-longest.
func (m *matcher) split(text string) []fragment {
	if m == nil || len(m.nodes) == 1 {
		return []fragment{{text: text, id: -1}}
	}
	var out []fragment
	start := 0
	for i := 0; i < len(text); {
		n, id := m.longest(text[i:])
		if n == 0 {
			i++
			continue
		}
		if i > start {
			out = append(out, fragment{text: text[start:i], id: -1})
		}
		out = append(out, fragment{id: id})
		i += n
		start = i
	}
	if start < len(text) || len(out) == 0 {
		out = append(out, fragment{text: text[start:], id: -1})
	}
	return out
}
