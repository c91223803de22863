package lexical

// An exact fast path for bleve's unicode tokenizer on ASCII text. The tokenizer runs
// the Unicode word segmentation of UAX #29 (blevesearch/segment, a Ragel scanner
// generated from Unicode 8.0's WordBreakProperty.txt) and keeps the segments that are
// words or numbers. It allocates a token and several slices per word and is ~40 % of
// ingest CPU. Restricted to ASCII, its grammar reduces to: a word is a longest run of
// letters (ALetter: A–Z, a–z), digits (Numeric) and '_' (ExtendNumLet), in which a
// MidLetter ':', MidNumLet '.' or Single_Quote '\'' may stand between two letters
// (WB6/WB7) and a MidNum ',' ';', MidNumLet '.' or Single_Quote '\'' between two
// digits (WB11/WB12); every other byte (spaces, CR, LF, punctuation, controls,
// '"' without Hebrew letters around it) is a non-word segment that the tokenizer drops.
// FuzzASCIIWordsMatchBleve and TestASCIIWordsMatchBleve compare the two on random and
// adversarial ASCII; non-ASCII text takes bleve's tokenizer.

// isASCII reports whether s has only bytes below 0x80.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

const (
	clsOther = iota
	clsLetter
	clsDigit
	clsUnder
	clsMidL  // ':' between letters only
	clsMidN  // ',' ';' between digits only
	clsMidLN // '.' '\'' between letters or between digits
)

var asciiClass = func() (t [128]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = clsLetter
		t[c-'a'+'A'] = clsLetter
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = clsDigit
	}
	t['_'] = clsUnder
	t[':'] = clsMidL
	t[','], t[';'] = clsMidN, clsMidN
	t['.'], t['\''] = clsMidLN, clsMidLN
	return t
}()

// nextASCIIWord returns the byte span [start, end) of the first word of the ASCII text
// s at or after i, as bleve's unicode tokenizer would cut it, or start = -1 when there
// is none.
func nextASCIIWord(s string, i int) (start, end int) {
	n := len(s)
	for i < n {
		if c := asciiClass[s[i]&0x7f]; c == clsLetter || c == clsDigit || c == clsUnder {
			break
		}
		i++
	}
	if i == n {
		return -1, -1
	}
	start = i
	for i++; i < n; i++ {
		c := asciiClass[s[i]&0x7f]
		if c == clsLetter || c == clsDigit || c == clsUnder {
			continue
		}
		if c == clsOther || i+1 == n {
			break
		}
		p, nx := asciiClass[s[i-1]&0x7f], asciiClass[s[i+1]&0x7f]
		if p == clsLetter && nx == clsLetter && (c == clsMidL || c == clsMidLN) ||
			p == clsDigit && nx == clsDigit && (c == clsMidN || c == clsMidLN) {
			i++ // the middle byte and the letter or digit after it
			continue
		}
		break
	}
	return start, i
}
