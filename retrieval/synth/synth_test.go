package synth

import (
	"fmt"
	"strings"
	"testing"
)

func vocab(n int) []string {
	v := make([]string, n)
	for i := range v {
		v[i] = fmt.Sprintf("w%d", i)
	}
	return v
}

func TestDeterministicAndZipfian(t *testing.T) {
	c, err := New(Options{Vocab: vocab(5000)})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := New(Options{Vocab: vocab(5000)})
	counts := map[string]int{}
	total, words := 0, 0
	for i := 0; i < 2000; i++ {
		id, title, text, _ := c.Doc(i)
		id2, title2, text2, _ := c2.Doc(i)
		if id != id2 || title != title2 || text != text2 {
			t.Fatalf("doc %d differs between two generators of the same seed", i)
		}
		ws := strings.Fields(text)
		if len(ws) < 12 || len(ws) > 250 {
			t.Fatalf("doc %d has %d words", i, len(ws))
		}
		words += len(ws)
		for _, w := range ws {
			counts[w]++
			total++
		}
	}
	if mean := float64(words) / 2000; mean < 70 || mean > 130 {
		t.Fatalf("mean length %.1f", mean)
	}
	// Zipf: the top word is far more frequent than the 100th.
	if counts["w0"] < 20*counts["w99"] && counts["w1"] < 10*counts["w99"] {
		t.Fatalf("not Zipfian: w0 %d w1 %d w99 %d", counts["w0"], counts["w1"], counts["w99"])
	}
	if _, err := New(Options{Vocab: vocab(10)}); err == nil {
		t.Fatal("tiny vocabulary accepted")
	}
	q, d := c.Query(3, 2000)
	if q == "" || d < 0 || d >= 2000 {
		t.Fatalf("query %q of doc %d", q, d)
	}
}
