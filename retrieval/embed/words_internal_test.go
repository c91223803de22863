package embed

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestWordsASCIIMatchesUnicode: the ASCII fast path of Words tokenizes exactly as the
// general one.
func TestWordsASCIIMatchesUnicode(t *testing.T) {
	vocab := []string{"don't", "e-mail", "x", "it's", "a-b-c", "co-op", "rock'n'roll", "a", "b", "ab", "z9", "0", "email", "e", "mail", "don", "t", "it", "s", "rock", "n", "roll", "co", "op", "q", "y"}
	wv, err := NewWordVectors(vocab, 1, make([]float32, len(vocab)))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	alphabet := "aAbBzZ09 -'--''.,;!?\t\n"
	texts := []string{"", "-", "'", "--a--", "Don't e-mail IT'S A-B-C co-op rock'n'roll", "x-'y", "a'-'b", "-leading trailing- 'q'"}
	for _, w := range vocab {
		texts = append(texts, strings.ToUpper(w)+"-"+w+"'s "+w)
	}
	for i := 0; i < 5000; i++ {
		var b strings.Builder
		for j := 0; j < r.IntN(40); j++ {
			if r.IntN(3) == 0 {
				b.WriteString(vocab[r.IntN(len(vocab))])
			} else {
				b.WriteByte(alphabet[r.IntN(len(alphabet))])
			}
		}
		texts = append(texts, b.String())
	}
	hits := 0
	for _, tx := range texts {
		a, u := wv.wordsASCII(tx, nil), wv.wordsUnicode(tx, nil)
		if !slices.Equal(a, u) {
			t.Fatalf("%q: ASCII path %v, general %v", tx, a, u)
		}
		hits += len(a)
	}
	if hits < 1000 {
		t.Fatalf("only %d in-vocabulary tokens: the comparison is too weak", hits)
	}
}
