package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model/gguf"
)

// bertVocab finds llama.cpp's ggml-vocab-bert-bge.gguf (BGE's uncased BERT vocabulary with
// its .inp/.out test vectors): in the shared test data, else in a llama.cpp checkout at
// $RAGKV_LLAMACPP or beside the module root (../llama.cpp). It skips the test where none
// is found.
func bertVocab(t *testing.T) string {
	t.Helper()
	const name = "ggml-vocab-bert-bge.gguf"
	var cands []string
	if d, err := shared.Dir(); err == nil {
		cands = append(cands, filepath.Join(d, "testdata", "tokenizers", name))
	}
	if d := os.Getenv("RAGKV_LLAMACPP"); d != "" {
		cands = append(cands, filepath.Join(d, "models", name))
	}
	if d, err := shared.Dir(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(d), "llama.cpp", "models", name))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				cands = append(cands, filepath.Join(filepath.Dir(dir), "llama.cpp", "models", name))
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, c := range cands {
		if _, err := os.Stat(c + ".out"); err == nil {
			return c
		}
	}
	t.Skipf("%s not found (looked in %s); fetch llama.cpp beside the project or set RAGKV_LLAMACPP", name, strings.Join(cands, ", "))
	return ""
}

// TestWordPieceBGEVectors: every test string of llama.cpp's BERT/BGE vocabulary test
// (expected ids written by HF tokenizers) encodes exactly, without [CLS]/[SEP].
func TestWordPieceBGEVectors(t *testing.T) {
	path := bertVocab(t)
	g, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	tok, err := FromGGUF(g)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Kind() != "wpm" || tok.VocabSize() != 30522 || tok.BOS() != 101 || tok.EOS() != 102 {
		t.Fatalf("kind %s, vocab %d, CLS %d, SEP %d", tok.Kind(), tok.VocabSize(), tok.BOS(), tok.EOS())
	}
	cases := readVocabTests(t, path+".inp", path+".out")
	bad := 0
	for i, c := range cases {
		got := tok.Encode(c.text, false, false)
		if !equalInts(got, c.ids) {
			bad++
			t.Errorf("case %d %q:\n got  %v\n want %v", i, c.text, got, c.ids)
		}
	}
	t.Logf("%d/%d cases exact", len(cases)-bad, len(cases))
	if got := tok.Encode("Hello world", true, true); !equalInts(got, []int{101, 7592, 2088, 102}) {
		t.Errorf("with CLS/SEP: %v", got)
	}
	if got := tok.Decode(tok.Encode("Hello, wonderful world!", true, true)); got != "hello , wonderful world !" {
		t.Errorf("decode: %q", got)
	}
}

// smallVocab is a hand-made uncased vocabulary (HF "##" form).
var smallVocab = []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "un", "##aff", "##able", "run", "##ning", "!", ",", "a", "##b",
	"cafe", "中", "##s", "s", "über", "uber", "$"}

func newSmall(t testing.TB, phantom bool, o WordPieceOptions) *WordPiece {
	t.Helper()
	toks := smallVocab
	if phantom {
		toks = make([]string, len(smallVocab))
		for i, s := range smallVocab {
			switch {
			case strings.HasPrefix(s, "["):
				toks[i] = s
			case strings.HasPrefix(s, "##"):
				toks[i] = s[2:]
			default:
				toks[i] = "\u2581" + s
			}
		}
	}
	o.Tokens, o.Phantom, o.CLS, o.SEP, o.Unknown, o.Pad = toks, phantom, 2, 3, 1, 0
	w, err := NewWordPiece(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWordPieceSmall(t *testing.T) {
	cases := []struct {
		text string
		want []int
	}{
		{"unaffable", []int{5, 6, 7}},
		{"UnAffable running!", []int{5, 6, 7, 8, 9, 10}},
		{"the,the", []int{4, 11, 4}},
		{"ab abc", []int{12, 13, 1}},        // "abc": a ##b, then no "##c": the whole word is UNK
		{"Café  über", []int{14, 19}},       // accents stripped (NFD, Mn dropped), lowercased
		{"中中s", []int{15, 15, 17}},          // CJK ideographs are words of their own
		{"\x00th\u200be\tthe", []int{4, 4}}, // NUL and U+200B (Cf) dropped; tab splits
		{"$the", []int{20, 4}},              // ASCII symbols split like punctuation
		{"xyz", []int{1}},
		{strings.Repeat("a", 101), []int{1}}, // longer than 100 characters
		{"", nil},
		{"   ", nil},
	}
	for _, phantom := range []bool{false, true} {
		w := newSmall(t, phantom, WordPieceOptions{Lowercase: true, StripAccents: true})
		for _, c := range cases {
			if got := w.Encode(c.text, false, false); !equalInts(got, c.want) {
				t.Errorf("phantom=%v %q: got %v want %v", phantom, c.text, got, c.want)
			}
		}
		if got := w.Encode("the", true, true); !equalInts(got, []int{2, 4, 3}) {
			t.Errorf("phantom=%v specials: %v", phantom, got)
		}
		if got := w.Decode([]int{2, 5, 6, 7, 8, 9, 10, 3, 0}); got != "unaffable running !" {
			t.Errorf("phantom=%v decode %q", phantom, got)
		}
		if got := string(w.Piece(2, 8)) + string(w.Piece(8, 9)) + string(w.Piece(9, 10)); got != "running !" {
			t.Errorf("phantom=%v pieces %q", phantom, got)
		}
	}
	// Cased: "Über" keeps its case and accent, so only the cased vocabulary entries match.
	cased := newSmall(t, false, WordPieceOptions{})
	if got := cased.Encode("über Über", false, false); !equalInts(got, []int{18, 1}) {
		t.Errorf("cased: %v", got)
	}
}

func TestWordPieceHF(t *testing.T) {
	js := `{"added_tokens":[{"id":0,"content":"[PAD]"},{"id":1,"content":"[UNK]"},{"id":2,"content":"[CLS]"},{"id":3,"content":"[SEP]"}],
	 "normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true},
	 "pre_tokenizer":{"type":"BertPreTokenizer"},
	 "model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,
	  "vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"hello":4,"wor":5,"##ld":6}}}`
	tok, err := ParseHF([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("Hello WORLD", true, true); !equalInts(got, []int{2, 4, 5, 6, 3}) {
		t.Errorf("got %v", got)
	}
	bad := strings.Replace(js, `"BertNormalizer"`, `"NFKC"`, 1)
	if _, err := ParseHF([]byte(bad)); err == nil {
		t.Error("NFKC normalizer accepted")
	}
	vt, err := LoadVocabTxt([]byte("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\nwor\n##ld\n"), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := vt.Encode("hello world", true, true); !equalInts(got, []int{2, 4, 5, 6, 3}) {
		t.Errorf("vocab.txt: %v", got)
	}
	if _, err := NewWordPiece(WordPieceOptions{Tokens: []string{"a"}, CLS: 5}); err == nil {
		t.Error("CLS outside the vocabulary accepted")
	}
}

// FuzzWordPiece: any text encodes to ids inside the vocabulary, without panicking, and
// the phantom (GGUF) and ## (HF) forms of one vocabulary agree.
func FuzzWordPiece(f *testing.F) {
	for _, s := range []string{"unaffable running!", "Café über 中中s", "\xff\xfe", strings.Repeat("ab", 80), "a\u0301\u0302b", "İstanbul"} {
		f.Add(s)
	}
	hf := newSmall(f, false, WordPieceOptions{Lowercase: true, StripAccents: true})
	ph := newSmall(f, true, WordPieceOptions{Lowercase: true, StripAccents: true})
	f.Fuzz(func(t *testing.T, s string) {
		a, b := hf.Encode(s, true, true), ph.Encode(s, true, true)
		if !equalInts(a, b) {
			t.Fatalf("%q: HF form %v, phantom form %v", s, a, b)
		}
		for _, id := range a {
			if id < 0 || id >= hf.VocabSize() {
				t.Fatalf("%q: id %d", s, id)
			}
		}
		_ = hf.Decode(a)
	})
}
