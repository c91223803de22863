package embed

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// WordVectors is a read-only table of word vectors in frequency-rank order (GloVe files
// list the most frequent words first).
type WordVectors struct {
	dim   int
	index map[string]int32
	words []string
	vecs  []float32 // len(words) × dim
}

// LoadGloVe reads a GloVe text file (optionally gzip-compressed, detected from its magic
// bytes). limit > 0 keeps only the first limit words.
func LoadGloVe(path string, limit int) (*WordVectors, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("embed: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrFormat, path, err)
		}
		defer gz.Close()
		r = gz
	}
	return ReadGloVe(r, path, limit)
}

// ReadGloVe parses the GloVe text format from r; name labels errors.
func ReadGloVe(r io.Reader, name string, limit int) (*WordVectors, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	wv := &WordVectors{index: map[string]int32{}}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimRight(sc.Bytes(), " \r")
		if len(b) == 0 {
			continue
		}
		fields := bytes.Split(b, []byte{' '})
		if len(fields) < 2 {
			return nil, fmt.Errorf("%w: %s:%d: want a word and its vector", ErrFormat, name, line)
		}
		if wv.dim == 0 {
			wv.dim = len(fields) - 1
		} else if len(fields)-1 != wv.dim {
			return nil, fmt.Errorf("%w: %s:%d: %d values, want %d", ErrFormat, name, line, len(fields)-1, wv.dim)
		}
		word := string(fields[0])
		if _, dup := wv.index[word]; dup {
			continue // keep the more frequent (earlier) entry
		}
		for _, fb := range fields[1:] {
			x, err := strconv.ParseFloat(string(fb), 32)
			if err == nil && (math.IsNaN(x) || math.IsInf(x, 0)) {
				err = strconv.ErrRange
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %s:%d: %q is not a number", ErrFormat, name, line, fb)
			}
			wv.vecs = append(wv.vecs, float32(x))
		}
		wv.index[word] = int32(len(wv.words))
		wv.words = append(wv.words, word)
		if limit > 0 && len(wv.words) >= limit {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrFormat, name, err)
	}
	if len(wv.words) == 0 {
		return nil, fmt.Errorf("%w: %s: no word vectors", ErrFormat, name)
	}
	return wv, nil
}

// NewWordVectors builds a table from words (most frequent first) and their vectors
// (len(words) × dim values).
func NewWordVectors(words []string, dim int, vecs []float32) (*WordVectors, error) {
	if dim <= 0 || len(vecs) != len(words)*dim {
		return nil, fmt.Errorf("%w: %d words, dim %d, %d values", ErrFormat, len(words), dim, len(vecs))
	}
	wv := &WordVectors{dim: dim, index: make(map[string]int32, len(words)), vecs: vecs}
	for i, w := range words {
		if _, dup := wv.index[w]; dup {
			return nil, fmt.Errorf("%w: duplicate word %q", ErrFormat, w)
		}
		wv.index[w] = int32(i)
	}
	wv.words = words
	return wv, nil
}

// Dim is the vector dimension.
func (wv *WordVectors) Dim() int { return wv.dim }

// Word returns the word of rank i.
func (wv *WordVectors) Word(i int) string { return wv.words[i] }

// Len is the number of words.
func (wv *WordVectors) Len() int { return len(wv.words) }

// Lookup returns a word's rank (0 = most frequent) or -1.
func (wv *WordVectors) Lookup(w string) int {
	if i, ok := wv.index[w]; ok {
		return int(i)
	}
	return -1
}

// Vector returns the vector of the word of rank i (shared; do not modify).
func (wv *WordVectors) Vector(i int) []float32 { return wv.vecs[i*wv.dim : (i+1)*wv.dim] }

// Words splits text into GloVe-6B-style tokens: lower case, runs of letters and digits,
// keeping inner hyphens and apostrophes when the whole token is in the vocabulary, else
// its parts. It appends ranks of in-vocabulary tokens to dst.
func (wv *WordVectors) Words(text string, dst []int32) []int32 {
	if isASCII(text) {
		return wv.wordsASCII(text, dst)
	}
	return wv.wordsUnicode(text, dst)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isWordByte(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// wordsASCII is Words for ASCII text, without copying it (the ingest's hot path; the
// test checks it against wordsUnicode).
func (wv *WordVectors) wordsASCII(text string, dst []int32) []int32 {
	var arr [64]byte
	tok := arr[:0]
	in := false
	flush := func() {
		t := tok
		for len(t) > 0 && (t[len(t)-1] == '-' || t[len(t)-1] == '\'') {
			t = t[:len(t)-1]
		}
		if len(t) == 0 {
			return
		}
		if i, ok := wv.index[string(t)]; ok {
			dst = append(dst, i)
			return
		}
		for len(t) > 0 {
			j := 0
			for j < len(t) && isWordByte(t[j]) {
				j++
			}
			if j > 0 {
				if i, ok := wv.index[string(t[:j])]; ok {
					dst = append(dst, i)
				}
			}
			for j < len(t) && !isWordByte(t[j]) {
				j++
			}
			t = t[j:]
		}
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if isWordByte(c) || ((c == '-' || c == '\'') && in) {
			tok = append(tok, c)
			in = true
			continue
		}
		if in {
			flush()
			tok, in = tok[:0], false
		}
	}
	if in {
		flush()
	}
	return dst
}

func (wv *WordVectors) wordsUnicode(text string, dst []int32) []int32 {
	text = strings.ToLower(text)
	isWord := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	start := -1
	flush := func(end int) {
		if start < 0 {
			return
		}
		tok := strings.Trim(text[start:end], "-'")
		start = -1
		if tok == "" {
			return
		}
		if i, ok := wv.index[tok]; ok {
			dst = append(dst, i)
			return
		}
		for _, part := range strings.FieldsFunc(tok, func(r rune) bool { return !isWord(r) }) {
			if i, ok := wv.index[part]; ok {
				dst = append(dst, i)
			}
		}
	}
	for i, r := range text {
		if isWord(r) || ((r == '-' || r == '\'') && start >= 0) {
			if start < 0 {
				start = i
			}
			continue
		}
		flush(i)
	}
	flush(len(text))
	return dst
}
