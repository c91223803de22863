package retrieval

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Document is one input document.
type Document struct {
	ID    string
	Title string
	Text  string
	// Vector is the document's embedding in a ClientVectors collection (one passage per
	// document there).
	Vector []float32
}

// PassageID is the stable id of a document's i-th passage: "<doc id>#<i>".
func PassageID(docID string, i int) string { return docID + "#" + strconv.Itoa(i) }

// DocOfPassage returns the document id of a passage id.
func DocOfPassage(pid string) string {
	if i := strings.LastIndexByte(pid, '#'); i >= 0 {
		return pid[:i]
	}
	return pid
}

// ChunkID is the content id a Prefill uses for a passage: the lowercase hex SHA-256 of
// the passage text exactly as Retrieve returns it (UTF-8, no title). The same text gets
// the same id in every collection and process, so identical passages share one chunk
// KV cache.
func ChunkID(text string) string {
	h := sha256.Sum256([]byte(text))
	return hex.EncodeToString(h[:])
}

// Chunk splits text into windows of words words whose starts are words−overlap apart,
// returning the original substrings (whitespace inside a window is kept). The last
// window ends at the text's end; a window that would only repeat the previous one's
// overlap is not emitted. words ≤ 0 returns the whole (trimmed) text.
func Chunk(text string, words, overlap int) []string {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil
	}
	if words <= 0 {
		return []string{text}
	}
	// Count the words first: a text of at most words words (most passages) is one
	// chunk, and needs no word spans (no allocation).
	nw, inw := 0, false
	for _, r := range text {
		sp := unicode.IsSpace(r)
		if !sp && !inw {
			nw++
		}
		inw = !sp
	}
	if nw <= words {
		return []string{text}
	}
	type span struct{ start, end int }
	ws := make([]span, 0, nw)
	in := false
	for i, r := range text {
		sp := unicode.IsSpace(r)
		switch {
		case !sp && !in:
			ws = append(ws, span{start: i})
			in = true
		case sp && in:
			ws[len(ws)-1].end = i
			in = false
		}
	}
	if in {
		ws[len(ws)-1].end = len(text)
	}
	if len(ws) <= words {
		return []string{text}
	}
	stride := words - overlap
	var out []string
	for s := 0; ; s += stride {
		e := min(s+words, len(ws))
		out = append(out, text[ws[s].start:ws[e-1].end])
		if e == len(ws) {
			break
		}
	}
	return out
}

// normalizeForDedup lower-cases and collapses whitespace.
func normalizeForDedup(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range strings.ToLower(s) {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if r == utf8.RuneError {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
