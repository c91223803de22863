package tokenizer

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model/gguf"
)

// vocabCase is one test string of llama.cpp's tokenizer test vectors with its expected ids.
type vocabCase struct {
	text string
	ids  []int
}

// readVocabTests parses a ggml-vocab-NAME.gguf.inp/.out pair as llama.cpp's
// tests/test-tokenizer-0.cpp does: test strings separated by "\n__ggml_vocab_test__\n",
// one line of space-separated ids per string.
func readVocabTests(t *testing.T, inp, out string) []vocabCase {
	t.Helper()
	raw, err := os.ReadFile(inp)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	var texts []string
	s := string(raw)
	for pos := 0; pos < len(s); {
		next := strings.Index(s[pos:], sep)
		if next < 0 {
			texts = append(texts, s[pos:])
			break
		}
		texts = append(texts, s[pos:pos+next])
		pos += next + len(sep)
	}
	lines := strings.Split(strings.TrimSuffix(string(ob), "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%s: %d test strings, %s: %d lines", inp, len(texts), out, len(lines))
	}
	cases := make([]vocabCase, len(texts))
	for i, l := range lines {
		cases[i].text = texts[i]
		for _, f := range strings.Fields(l) {
			id, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s line %d: %v", out, i+1, err)
			}
			cases[i].ids = append(cases[i].ids, id)
		}
	}
	return cases
}

// TestVocabVectors: every test string of every llama.cpp vocabulary test file encodes to
// exactly the expected ids (no BOS, special tokens not parsed), and decodes back.
func TestVocabVectors(t *testing.T) {
	dir := shared.Path(t, "testdata", "tokenizers")
	files, err := filepath.Glob(filepath.Join(dir, "ggml-vocab-*.gguf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vocabulary files in %s (%v)", dir, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "ggml-vocab-"), ".gguf")
		t.Run(name, func(t *testing.T) {
			g, err := gguf.Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			tok, err := FromGGUF(g)
			if err != nil {
				t.Fatal(err)
			}
			cases := readVocabTests(t, f+".inp", f+".out")
			bad := 0
			for i, c := range cases {
				got := tok.Encode(c.text, false, false)
				if !equalInts(got, c.ids) {
					bad++
					if bad <= 5 {
						t.Errorf("case %d %q:\n got  %v\n want %v", i, c.text, got, c.ids)
					}
				}
			}
			t.Logf("%s: %d/%d cases exact", name, len(cases)-bad, len(cases))
		})
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
