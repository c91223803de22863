package tokenizer

import "fmt"

// Synthetic builds a deterministic byte-level BPE vocabulary of exactly vocabSize
// tokens for synthetic models: the 256 byte tokens, pseudo-random merges of existing
// tokens (biased towards short, early tokens; seeded by seed), then BOS and EOS as the
// last two (control) tokens. The result encodes and decodes any text; it has no
// linguistic meaning.
func Synthetic(vocabSize int, seed uint64, pattern string) (*BPE, error) {
	if vocabSize < 258 {
		return nil, fmt.Errorf("%w: synthetic vocabulary needs at least 258 tokens, got %d", ErrFormat, vocabSize)
	}
	tokens := make([]string, 0, vocabSize)
	have := make(map[string]bool, vocabSize)
	for b := 0; b < 256; b++ {
		s := string(byteToRune[b])
		tokens = append(tokens, s)
		have[s] = true
	}
	state := seed ^ 0x9E3779B97F4A7C15
	next := func() uint64 { // splitmix64
		state += 0x9E3779B97F4A7C15
		z := state
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		return z ^ (z >> 31)
	}
	// Frequent English bytes first so that text compresses somewhat.
	const common = " etaoinshrdlcumwfgypbvk.,\n"
	pick := func() string {
		if next()%3 == 0 {
			return string(byteToRune[common[next()%uint64(len(common))]])
		}
		u := float64(next()>>11) / float64(1<<53)
		return tokens[int(u*u*u*float64(len(tokens)))]
	}
	var merges [][2]string
	for len(tokens) < vocabSize-2 {
		a, b := pick(), pick()
		s := a + b
		if have[s] || len([]rune(s)) > 12 {
			continue
		}
		have[s] = true
		tokens = append(tokens, s)
		merges = append(merges, [2]string{a, b})
	}
	types := make([]int32, vocabSize)
	for i := range types {
		types[i] = TypeNormal
	}
	tokens = append(tokens, "<|begin_of_text|>", "<|end_of_text|>")
	types[vocabSize-2], types[vocabSize-1] = TypeControl, TypeControl
	return NewBPE(BPEOptions{Tokens: tokens, Types: types, Merges: merges, Pattern: pattern, BOS: vocabSize - 2, EOS: vocabSize - 1, Unknown: -1})
}
