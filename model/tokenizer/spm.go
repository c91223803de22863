package tokenizer

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
)

// SPM is a SentencePiece-style BPE tokenizer with scores and byte fallback.
type SPM struct {
	pieces   []string // internal form: spaces are ' '
	raw      [][]byte // bytes Piece prints (byte tokens: the single byte)
	scores   []float32
	types    []int32
	lookup   map[string]int
	byteID   [256]int
	bos, eos int
	unk      int
	dummy    bool
	space    int // id of " " or -1
	llama2c  bool
	orig     []string         // pieces as given (U+2581 kept), for TokenText and token matching
	userDef  *matcher         // user-defined tokens, split out by Encode
	special  *matcher         // control and user-defined tokens, split out by EncodeSpecial
	ranks    map[uint64]int32 // HF BPE: (left id, right id) → merge rank (nil: merge by piece score)
	first    bool             // dummy prefix only before the first fragment of the text
}

// SPMOptions describes an SPM vocabulary.
type SPMOptions struct {
	Pieces []string  // pieces with spaces as ' ' (or U+2581 when SpaceMarker is set)
	Scores []float32 // one per piece
	Types  []int32   // optional token types (TypeByte marks <0xXX> pieces, TypeControl BOS/EOS)
	// SpaceMarker: pieces use U+2581 for spaces (GGUF/SentencePiece convention).
	SpaceMarker bool
	BOS, EOS    int // -1 if none
	Unknown     int // -1 if none
	// NoDummyPrefix disables the leading space added before non-empty text.
	NoDummyPrefix bool
	// Llama2C marks a llama2.c tokenizer: control pieces print as they are (e.g. "\n<s>\n")
	// as llama2.c's run does.
	Llama2C bool
	// Merges, if set, makes this a HuggingFace BPE model with byte fallback: adjacent
	// symbols are merged by the rank of the pair in this list (lowest first, leftmost on
	// ties) instead of by the score of the merged piece. Pieces as in Pieces.
	Merges [][2]string
	// PrefixFirstOnly adds the dummy prefix only before the text's first fragment (HF
	// Metaspace prepend_scheme "first"); otherwise every piece of text between split-out
	// tokens gets one (llama.cpp; HF's Prepend normalizer).
	PrefixFirstOnly bool
}

// NewSPM builds an SPM tokenizer.
func NewSPM(o SPMOptions) (*SPM, error) {
	n := len(o.Pieces)
	if n == 0 {
		return nil, fmt.Errorf("%w: empty vocabulary", ErrFormat)
	}
	if len(o.Scores) != n {
		return nil, fmt.Errorf("%w: %d scores for %d pieces", ErrFormat, len(o.Scores), n)
	}
	if o.Types != nil && len(o.Types) != n {
		return nil, fmt.Errorf("%w: %d token types for %d pieces", ErrFormat, len(o.Types), n)
	}
	for _, id := range []int{o.BOS, o.EOS, o.Unknown} {
		if id >= n || id < -1 {
			return nil, fmt.Errorf("%w: special token id %d outside vocabulary of %d", ErrFormat, id, n)
		}
	}
	t := &SPM{pieces: make([]string, n), raw: make([][]byte, n), scores: o.Scores, types: o.Types,
		lookup: make(map[string]int, n), bos: o.BOS, eos: o.EOS, unk: o.Unknown, dummy: !o.NoDummyPrefix, llama2c: o.Llama2C,
		orig: o.Pieces, first: o.PrefixFirstOnly}
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	for i, p := range o.Pieces {
		if o.SpaceMarker {
			p = strings.ReplaceAll(p, "\u2581", " ")
		}
		t.pieces[i] = p
		if _, dup := t.lookup[p]; !dup {
			t.lookup[p] = i
		}
		t.raw[i] = []byte(p)
		isByteType := o.Types != nil && o.Types[i] == TypeByte
		if b, ok := parseBytePiece(p); ok && (o.Types == nil || isByteType) {
			if t.byteID[b] < 0 {
				t.byteID[b] = i
			}
			t.raw[i] = []byte{b}
		}
		if o.Types != nil && !o.Llama2C && (o.Types[i] == TypeControl || o.Types[i] == TypeUnknown) {
			t.raw[i] = nil
		}
	}
	t.space = -1
	if id, ok := t.lookup[" "]; ok {
		t.space = id
	}
	var utexts, stexts []string
	var uids, sids []int
	for i := range o.Pieces {
		if o.Types == nil {
			break
		}
		switch o.Types[i] {
		case TypeUserDefined:
			utexts, uids = append(utexts, o.Pieces[i]), append(uids, i)
			stexts, sids = append(stexts, o.Pieces[i]), append(sids, i)
		case TypeControl:
			stexts, sids = append(stexts, o.Pieces[i]), append(sids, i)
		}
	}
	if len(uids) > 0 {
		t.userDef = newMatcher(utexts, uids)
	}
	t.special = newMatcher(stexts, sids)
	if len(o.Merges) > 0 {
		t.ranks = make(map[uint64]int32, len(o.Merges))
		conv := func(p string) string {
			if o.SpaceMarker {
				return strings.ReplaceAll(p, "\u2581", " ")
			}
			return p
		}
		for r, m := range o.Merges {
			l, lok := t.lookup[conv(m[0])]
			rr, rok := t.lookup[conv(m[1])]
			if _, mok := t.lookup[conv(m[0]+m[1])]; !lok || !rok || !mok {
				return nil, fmt.Errorf("%w: merge %d (%q %q) of pieces not in the vocabulary", ErrFormat, r, m[0], m[1])
			}
			k := uint64(l)<<32 | uint64(rr)
			if _, dup := t.ranks[k]; !dup {
				t.ranks[k] = int32(r)
			}
		}
	}
	return t, nil
}

// TokenText implements TokenTexter (pieces as the vocabulary gives them).
func (t *SPM) TokenText(id int) string {
	if id < 0 || id >= len(t.orig) {
		return ""
	}
	return t.orig[id]
}

// parseBytePiece recognizes "<0xXX>" (hex digits, either case, as sscanf %02hhX does).
func parseBytePiece(p string) (byte, bool) {
	if len(p) != 6 || p[:3] != "<0x" || p[5] != '>' {
		return 0, false
	}
	v := 0
	for _, c := range []byte(p[3:5]) {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= int(c - '0')
		case c >= 'a' && c <= 'f':
			v |= int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v |= int(c-'A') + 10
		default:
			return 0, false
		}
	}
	return byte(v), true
}

// LoadLlama2C reads a llama2.c tokenizer file (tokenizer.bin / tok512.bin): int32
// max_token_length, then per token float32 score, int32 length, bytes. vocabSize is the
// number of tokens (it comes from the model checkpoint). Ids 1 and 2 are BOS and EOS.
func LoadLlama2C(path string, vocabSize int) (*SPM, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := ParseLlama2C(b, vocabSize)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// ParseLlama2C parses the bytes of a llama2.c tokenizer file (see LoadLlama2C).
func ParseLlama2C(b []byte, vocabSize int) (*SPM, error) {
	if vocabSize <= 0 {
		return nil, fmt.Errorf("%w: vocabulary size %d", ErrFormat, vocabSize)
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: truncated header (%d bytes)", ErrFormat, len(b))
	}
	maxLen := int32(binary.LittleEndian.Uint32(b))
	if maxLen <= 0 {
		return nil, fmt.Errorf("%w: max token length %d", ErrFormat, maxLen)
	}
	off := 4
	if vocabSize > (len(b)-off)/8 {
		return nil, fmt.Errorf("%w: file of %d bytes cannot hold %d tokens", ErrFormat, len(b), vocabSize)
	}
	pieces := make([]string, vocabSize)
	scores := make([]float32, vocabSize)
	for i := 0; i < vocabSize; i++ {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("%w: truncated at token %d of %d", ErrFormat, i, vocabSize)
		}
		scores[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[off:]))
		n := int32(binary.LittleEndian.Uint32(b[off+4:]))
		off += 8
		if n < 0 || int(n) > len(b)-off {
			return nil, fmt.Errorf("%w: token %d length %d beyond the end of the file", ErrFormat, i, n)
		}
		pieces[i] = string(b[off : off+int(n)])
		off += int(n)
	}
	if off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes after %d tokens", ErrFormat, len(b)-off, vocabSize)
	}
	bos, eos := 1, 2
	if vocabSize < 3 {
		bos, eos = -1, -1
	}
	return NewSPM(SPMOptions{Pieces: pieces, Scores: scores, BOS: bos, EOS: eos, Unknown: 0, Llama2C: true})
}

func (t *SPM) Kind() string   { return "spm" }
func (t *SPM) VocabSize() int { return len(t.pieces) }
func (t *SPM) BOS() int       { return t.bos }
func (t *SPM) EOS() int       { return t.eos }

// Pieces returns the vocabulary (spaces as ' '); the slice must not be modified.
func (t *SPM) Pieces() []string { return t.pieces }

// Scores returns the piece scores; the slice must not be modified.
func (t *SPM) Scores() []float32 { return t.scores }

// Encode implements Tokenizer with llama2.c's encode() semantics; user-defined tokens
// (if the vocabulary has types) are split out first, as llama.cpp does.
func (t *SPM) Encode(text string, bos, eos bool) []int {
	if t.userDef == nil {
		return t.encodeRaw(text, bos, eos)
	}
	return t.encodeFragments(t.userDef.split(text), bos, eos)
}

// EncodeSpecial implements SpecialEncoder.
func (t *SPM) EncodeSpecial(text string, bos, eos bool) []int {
	return t.encodeFragments(t.special.split(text), bos, eos)
}

func (t *SPM) encodeFragments(frags []fragment, bos, eos bool) []int {
	var toks []int
	if bos && t.bos >= 0 {
		toks = append(toks, t.bos)
	}
	for i, f := range frags {
		if f.id >= 0 {
			toks = append(toks, f.id)
			continue
		}
		toks = t.appendText(toks, f.text, t.dummy && (i == 0 || !t.first))
	}
	if eos && t.eos >= 0 {
		toks = append(toks, t.eos)
	}
	return toks
}

func (t *SPM) encodeRaw(text string, bos, eos bool) []int {
	toks := make([]int, 0, len(text)+3)
	if bos && t.bos >= 0 {
		toks = append(toks, t.bos)
	}
	toks = t.appendText(toks, text, t.dummy)
	if eos && t.eos >= 0 {
		toks = append(toks, t.eos)
	}
	return toks
}

// appendText appends the tokens of text (with the dummy-prefix space if dummy).
func (t *SPM) appendText(out []int, text string, dummy bool) []int {
	start := len(out)
	toks := out
	if text != "" && dummy {
		if t.space >= 0 {
			toks = append(toks, t.space)
		} else {
			toks = t.appendBytes(toks, " ")
		}
	}
	// One symbol per UTF-8 character: a leading byte plus at most three continuation
	// bytes (llama2.c's grouping, which also applies to invalid UTF-8).
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.lookup[text[i:j]]; ok {
			toks = append(toks, id)
		} else {
			toks = t.appendBytes(toks, text[i:j])
		}
		i = j
	}
	merged := t.merge(toks[start:])
	return append(toks[:start], merged...)
}

func (t *SPM) appendBytes(toks []int, s string) []int {
	for k := 0; k < len(s); k++ {
		id := t.byteID[s[k]]
		if id < 0 {
			id = t.unk
		}
		if id >= 0 {
			toks = append(toks, id)
		}
	}
	return toks
}

type spmSym struct {
	id         int
	prev, next int
	alive      bool
}

type spmCand struct {
	score float32
	left  int // symbol index of the left element (original order = sequence order)
	right int
	id    int
	lid   int // ids at push time, to detect stale entries
	rid   int
}

type spmHeap []spmCand

func (h spmHeap) Len() int { return len(h) }
func (h spmHeap) Less(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].left < h[j].left
}
func (h spmHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *spmHeap) Push(x any)   { *h = append(*h, x.(spmCand)) }
func (h *spmHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merge applies llama2.c's merge loop: repeatedly merge the adjacent pair whose
// concatenation is a piece with the highest score (> -1e10), leftmost on ties.
func (t *SPM) merge(toks []int) []int {
	if len(toks) < 2 {
		return toks
	}
	syms := make([]spmSym, len(toks))
	for i, id := range toks {
		syms[i] = spmSym{id: id, prev: i - 1, next: i + 1, alive: true}
	}
	syms[len(syms)-1].next = -1
	h := make(spmHeap, 0, len(toks))
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		s := t.pieces[syms[l].id] + t.pieces[syms[r].id]
		id, ok := t.lookup[s]
		if !ok {
			return
		}
		score := t.scores[id]
		if t.ranks != nil {
			rank, ok := t.ranks[uint64(syms[l].id)<<32|uint64(syms[r].id)]
			if !ok {
				return
			}
			score = -float32(rank)
		} else if !(score > -1e10) {
			return
		}
		heap.Push(&h, spmCand{score: score, left: l, right: r, id: id, lid: syms[l].id, rid: syms[r].id})
	}
	for i := 0; i+1 < len(syms); i++ {
		try(i, i+1)
	}
	for h.Len() > 0 {
		c := heap.Pop(&h).(spmCand)
		l, r := &syms[c.left], &syms[c.right]
		if !l.alive || !r.alive || l.next != c.right || l.id != c.lid || r.id != c.rid {
			continue
		}
		l.id = c.id
		r.alive = false
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = c.left
		}
		try(l.prev, c.left)
		try(c.left, l.next)
	}
	out := toks[:0]
	for i := 0; i >= 0; i = syms[i].next {
		out = append(out, syms[i].id)
	}
	return out
}

// Piece implements Tokenizer.
func (t *SPM) Piece(prev, id int) []byte {
	if id < 0 || id >= len(t.raw) {
		return nil
	}
	p := t.raw[id]
	if prev == t.bos && t.bos >= 0 && len(p) > 0 && p[0] == ' ' && strings.HasPrefix(t.pieces[id], " ") {
		p = p[1:]
	}
	return p
}

// Decode implements Tokenizer: the bytes of all tokens, control tokens dropped, and the
// dummy-prefix space removed from the start.
func (t *SPM) Decode(ids []int) string {
	var sb []byte
	first := true
	for _, id := range ids {
		if id < 0 || id >= len(t.raw) || id == t.bos || id == t.eos {
			continue
		}
		if t.types != nil && (t.types[id] == TypeControl || t.types[id] == TypeUnknown) {
			continue
		}
		p := t.raw[id]
		if first && t.dummy && len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		if len(t.raw[id]) > 0 {
			first = false
		}
		sb = append(sb, p...)
	}
	return string(sb)
}
