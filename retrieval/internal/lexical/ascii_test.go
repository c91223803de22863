package lexical

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
)

// bleveWords returns the raw tokens bleve's unicode tokenizer cuts from s.
func bleveWords(s string) []string {
	var out []string
	for _, t := range unicode.NewUnicodeTokenizer().Tokenize([]byte(s)) {
		out = append(out, string(t.Term))
	}
	return out
}

// fastWords returns the raw tokens nextASCIIWord cuts from the ASCII text s.
func fastWords(s string) []string {
	var out []string
	for i := 0; ; {
		start, end := nextASCIIWord(s, i)
		if start < 0 {
			return out
		}
		out = append(out, s[start:end])
		i = end
	}
}

func checkASCIIWords(t *testing.T, s string) {
	t.Helper()
	if got, want := fastWords(s), bleveWords(s); !slices.Equal(got, want) {
		t.Fatalf("text %q:\nfast  %q\nbleve %q", s, got, want)
	}
}

// TestASCIIWordsMatchBleve compares the ASCII fast path with bleve's tokenizer on the
// word-break cases of UAX #29 and on random strings over the bytes that matter.
func TestASCIIWordsMatchBleve(t *testing.T) {
	for _, s := range []string{
		"", " ", "a", "_", "__", "a_b", "_a_", "1_2", "a1b2", "can't", "o'clock'", "'a'", "a''b",
		"a.b", "a.b.", ".a.b", "a..b", "a:b", "a::b", "1:2", "1.5", "1,000.50", "1;2", "a,b", "a;b",
		"1.a", "a.1", "a1.2", "1a.b", "a_.b", "a._b", "1_.2", "e.g. U.S.A.", "x\r\ny", "x\vy\fz",
		"tab\there", "quote\"d", "a\"b", "hyphen-ated", "3.14159", "10'000", "a'1", "1'a",
		"end.", "end'", "end:", "end,", "x\x00y", "del\x7fz", "The quick brown fox's den.",
	} {
		checkASCIIWords(t, s)
	}
	alphabet := []byte("aZ09_.:,;'\" \t\r\n\v\f-!?\x00\x7f")
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		checkASCIIWords(t, string(b))
	}
}

// TestASCIIPathMatchesAnalyzer checks the terms the Builder indexes from ASCII text
// through the fast path against bleve's full "en" analysis of the same text.
func TestASCIIPathMatchesAnalyzer(t *testing.T) {
	tc, err := newTermCache()
	if err != nil {
		t.Fatal(err)
	}
	var terms []string
	intern := func(s string) uint32 { terms = append(terms, s); return uint32(len(terms) - 1) }
	for _, s := range []string{"The fox's running dogs jumped over 1,000.5 U.S.A. can't won't_ it's", "Ökonomie naïve café"} {
		var got []string
		for _, id := range tc.ids(s, intern, nil) {
			got = append(got, terms[id])
		}
		want, err := Tokens(s)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("text %q:\nids   %q\nbleve %q", s, got, want)
		}
	}
}

// FuzzASCIIWordsMatchBleve: on any ASCII input the fast path cuts the same tokens as
// bleve's unicode tokenizer.
func FuzzASCIIWordsMatchBleve(f *testing.F) {
	for _, s := range []string{"a.b", "1,000.5", "can't", "a_.b", "x\r\ny"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !isASCII(s) {
			return
		}
		checkASCIIWords(t, s)
	})
}
