package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ragkv/ragkv/internal/shared"

	"github.com/ragkv/ragkv/model/gguf"
)

type goldenLogits struct {
	Prompt string `json:"prompt"`
	Tokens []int  `json:"tokens"`
}

func loadGolden(t *testing.T) []goldenLogits {
	b, err := os.ReadFile(filepath.Join(shared.Path(t), "models/stories260K/golden_logits.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g []goldenLogits
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func llama2c(t testing.TB) *SPM {
	tok, err := LoadLlama2C(filepath.Join(shared.Path(t), "models/stories260K/tok512.bin"), 512)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func ggufTok(t testing.TB) Tokenizer {
	f, err := gguf.Open(filepath.Join(shared.Path(t), "models/stories260K/stories260K-f32.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestGoldenEncode: the reference C implementation's token ids for the golden prompts.
func TestGoldenEncode(t *testing.T) {
	g := loadGolden(t)
	for _, tok := range []Tokenizer{llama2c(t), ggufTok(t)} {
		for _, c := range g {
			got := tok.Encode(c.Prompt, true, false)
			if !reflect.DeepEqual(got, c.Tokens) {
				t.Fatalf("%s: encode %q = %v, want %v", tok.Kind(), c.Prompt, got, c.Tokens)
			}
			if d := tok.Decode(got); d != c.Prompt {
				t.Fatalf("decode = %q, want %q", d, c.Prompt)
			}
		}
	}
}

// naiveEncode is llama2.c's quadratic merge loop, to check the heap version against.
func naiveEncode(t *SPM, text string) []int {
	toks := t.Encode(text, true, false)
	// re-split into the pre-merge symbols
	var syms []int
	syms = append(syms, t.bos)
	if text != "" {
		syms = append(syms, t.space)
	}
	for i := 0; i < len(text); {
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.lookup[text[i:j]]; ok {
			syms = append(syms, id)
		} else {
			syms = t.appendBytes(syms, text[i:j])
		}
		i = j
	}
	for {
		best, bestID, bestScore := -1, -1, float32(-1e10)
		for i := 0; i+1 < len(syms); i++ {
			if id, ok := t.lookup[t.pieces[syms[i]]+t.pieces[syms[i+1]]]; ok && t.scores[id] > bestScore {
				best, bestID, bestScore = i, id, t.scores[id]
			}
		}
		if best < 0 {
			break
		}
		syms[best] = bestID
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	_ = toks
	return syms
}

func TestSPMMatchesNaive(t *testing.T) {
	tok := llama2c(t)
	for _, s := range []string{"Once upon a time", "héllo wörld ∑ 😀", "a  b\n\nc", "\xff\xfe bad utf8 \xc3", "the the the the"} {
		if got, want := tok.Encode(s, true, false), naiveEncode(tok, s); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: heap %v, naive %v", s, got, want)
		}
	}
}

func TestSPMPiece(t *testing.T) {
	tok := llama2c(t)
	ids := tok.Encode("Hi é", true, false)
	var out []byte
	prev := ids[0]
	for _, id := range ids[1:] {
		out = append(out, tok.Piece(prev, id)...)
		prev = id
	}
	if string(out) != "Hi é" {
		t.Fatalf("pieces %q", out)
	}
	if string(tok.Piece(0, 2)) != "\n</s>\n" {
		t.Fatalf("llama2.c EOS piece %q", tok.Piece(0, 2))
	}
}

func TestParseLlama2CErrors(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(shared.Path(t), "models/stories260K/tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 3, 4, 100, len(b) - 1} {
		if _, err := ParseLlama2C(b[:n], 512); err == nil {
			t.Fatalf("truncated to %d accepted", n)
		}
	}
	if _, err := ParseLlama2C(b, 600); err == nil {
		t.Fatal("wrong vocab size accepted")
	}
}

func TestPreTokenizeLlama3(t *testing.T) {
	tok, err := Synthetic(1000, 1, PatternLlama3)
	if err != nil {
		t.Fatal(err)
	}
	got := tok.preTokenize("Hello world's 12345 test\n\n  x")
	want := []string{"Hello", " world", "'s", " ", "123", "45", " test", "\n\n", " ", " x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("llama3 split %q, want %q", got, want)
	}
	q, _ := Synthetic(1000, 1, PatternQwen2)
	if got := q.preTokenize("x 123"); !reflect.DeepEqual(got, []string{"x", " ", "1", "2", "3"}) {
		t.Fatalf("qwen2 split %q", got)
	}
	sm, _ := Synthetic(1000, 1, PatternSmolLM)
	if got := sm.preTokenize("I have 42 cats"); !reflect.DeepEqual(got, []string{"I", " have", " ", "4", "2", " cats"}) {
		t.Fatalf("smollm split %q", got)
	}
	g, _ := Synthetic(1000, 1, PatternGPT2)
	if got := g.preTokenize("I'm 42 ok!!"); !reflect.DeepEqual(got, []string{"I", "'m", " 42", " ok", "!!"}) {
		t.Fatalf("gpt2 split %q", got)
	}
}

func TestBPEMerges(t *testing.T) {
	// Tiny hand-made vocabulary: merges by rank, not by order of appearance.
	var tokens []string
	for b := 0; b < 256; b++ {
		tokens = append(tokens, string(byteToRune[b]))
	}
	tokens = append(tokens, "ab", "bc", "abc", "Ġa")
	merges := [][2]string{{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"Ġ", "a"}}
	tok, err := NewBPE(BPEOptions{Tokens: tokens, Merges: merges, BOS: -1, EOS: -1, Unknown: -1})
	if err != nil {
		t.Fatal(err)
	}
	got := tok.Encode("abc ab", false, false)
	want := []int{258, 32, 256} // "abc" (b+c first, then a+bc); " ab": a+b (rank 1) beats Ġ+a (rank 3)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("encode %v, want %v", got, want)
	}
	if tok.Decode(got) != "abc ab" {
		t.Fatalf("decode %q", tok.Decode(got))
	}
}

func TestSyntheticGGUFRoundTrip(t *testing.T) {
	syn, err := Synthetic(5000, 7, PatternLlama3)
	if err != nil {
		t.Fatal(err)
	}
	if syn.VocabSize() != 5000 {
		t.Fatalf("vocab %d", syn.VocabSize())
	}
	text := "Once upon a time, there was a little girl named Lily. 123 ümlaut"
	ids := syn.Encode(text, true, true)
	if len(ids) >= len(text) {
		t.Fatalf("no compression: %d tokens for %d bytes", len(ids), len(text))
	}
	if syn.Decode(ids) != text {
		t.Fatalf("decode %q", syn.Decode(ids))
	}
	kvs, err := GGUFMetadata(syn, "llama-bpe")
	if err != nil {
		t.Fatal(err)
	}
	f := writeGGUF(t, kvs)
	back, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Encode(text, true, true); !reflect.DeepEqual(got, ids) {
		t.Fatalf("gguf tokenizer differs: %v vs %v", got, ids)
	}
	// SPM metadata round trip.
	spm := llama2c(t)
	kvs, err = GGUFMetadata(spm, "")
	if err != nil {
		t.Fatal(err)
	}
	back, err = FromGGUF(writeGGUF(t, kvs))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := back.Encode(text, true, false), spm.Encode(text, true, false); !reflect.DeepEqual(got, want) {
		t.Fatalf("spm gguf round trip: %v vs %v", got, want)
	}
}

func writeGGUF(t *testing.T, kvs []gguf.KV) *gguf.File {
	var sb strings.Builder
	w := gguf.NewWriter(&sb)
	for _, kv := range kvs {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse("tok.gguf", []byte(sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestHFTokenizerJSON(t *testing.T) {
	syn, err := Synthetic(600, 3, PatternQwen2)
	if err != nil {
		t.Fatal(err)
	}
	vocab := map[string]int{}
	for i, s := range syn.tokens[:598] {
		vocab[s] = i
	}
	var merges [][]string
	for _, m := range syn.o.Merges {
		merges = append(merges, []string{m[0], m[1]})
	}
	doc := map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 598, "content": "<|begin_of_text|>", "special": true},
			map[string]any{"id": 599, "content": "<|end_of_text|>", "special": true},
		},
		"normalizer": map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": PatternQwen2}, "behavior": "Isolated"},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
		}},
		"post_processor": map[string]any{"type": "TemplateProcessing", "single": []any{
			map[string]any{"SpecialToken": map[string]any{"id": "<|begin_of_text|>", "type_id": 0}},
			map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
		}},
		"decoder": map[string]any{"type": "ByteLevel"},
		"model":   map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	b, _ := json.Marshal(doc)
	tok, err := ParseHF(b)
	if err != nil {
		t.Fatal(err)
	}
	text := "The cafe\u0301 has 42 cats"
	got := tok.Encode(text, true, false)
	want := syn.Encode("The café has 42 cats", true, false) // NFC-composed
	if tok.BOS() != 598 || tok.EOS() != 599 || !reflect.DeepEqual(got, want) {
		t.Fatalf("hf: bos %d eos %d ids %v want %v", tok.BOS(), tok.EOS(), got, want)
	}
	if _, err := ParseHF([]byte(`{"model":{"type":"Unigram"}}`)); err == nil {
		t.Fatal("unigram accepted")
	}
}

func FuzzSPM(f *testing.F) {
	tok := llama2c(f)
	for _, s := range []string{"Once upon a time", "héllo 😀", "\xff\x00", "", "  a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s, true, false)
		if d := tok.Decode(ids); d != s {
			t.Fatalf("round trip %q -> %v -> %q", s, ids, d)
		}
	})
}

func FuzzBPE(f *testing.F) {
	tok, err := Synthetic(3000, 1, PatternLlama3)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"Hello world's 12345", "héllo 😀\r\n", "\xff\x00", "", "  a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s, false, false)
		if d := tok.Decode(ids); d != s {
			t.Fatalf("round trip %q -> %v -> %q (valid utf8 %v)", s, ids, d, utf8.ValidString(s))
		}
	})
}

func FuzzParseLlama2C(f *testing.F) {
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'a'}, 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n > 1000 {
			return
		}
		tok, err := ParseLlama2C(b, n)
		if err == nil {
			tok.Decode(tok.Encode("abc é", true, true))
		}
	})
}

func FuzzParseHF(f *testing.F) {
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},"decoder":{"type":"ByteLevel"}}`))
	f.Add([]byte(`{"model":{"type":"BPE","byte_fallback":true,"vocab":{"<0x41>":0,"▁":1},"merges":[["▁","b"]]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := ParseHF(b)
		if err == nil {
			tok.Decode(tok.Encode("ab é", true, true))
		}
	})
}
