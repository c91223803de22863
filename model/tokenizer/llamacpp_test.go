package tokenizer

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
)

// Byte-level BPE pre-tokenizers against llama.cpp itself: for each pre-tokenizer the
// model families use (smollm for SmolLM/SmolLM2, qwen2 for Qwen2/2.5/3, llama-bpe for
// Llama 3.x, gpt-2 for the others), a synthetic 8192-token vocabulary (Synthetic, seed 7,
// written to GGUF and read back as the engine reads files) and llama.cpp's own
// llama_tokenize (commit c392e5094, the shared oracle's, vocab-only load, no special
// tokens) on the reference corpus (SciFact and MuSiQue texts, every 25th) and edge cases.
// testdata/llamacpp_bpe.json.gz holds, per text, the SHA-256 of llama.cpp's ids (u32
// little-endian) and their count: every text must encode to exactly those ids.

// edgeTexts exercise the pre-tokenizer splits: digits, contractions, runs of spaces,
// newlines and tabs, punctuation runs, accents, CJK, emoji.
var edgeTexts = []string{
	"In 2024, 3.14159 and 1,000,000 people; 12345678901234567890!",
	"I'm sure it's they're we've you'll he'd 'S 'T CAN'T",
	"  leading and   inner   spaces  \n\n\t\ttabs\r\nwindows  \n ",
	"Hello!!! ??? ... --- (a) [b] {c} <d> $100 #tag @user ~x ^y |z",
	"naïve café résumé Ångström Straße ŒUVRE",
	"日本語のテキストと中文文本 한국어 텍스트",
	"emoji 🎉🚀 mixed👍🏽text and ZWJ 👨‍👩‍👧",
	"x\u00a0y\u2009z\u3000w",
	"1a2b3c 4 5  6   7\n8\t9",
}

func llamaCppTexts(t *testing.T) []string { return append(referenceCorpus(t), edgeTexts...) }

// llamaCppPres are the pre-tokenizers checked.
var llamaCppPres = []string{"smollm", "qwen2", "llama-bpe", "gpt-2"}

// syntheticFromGGUF is the synthetic vocabulary for pre, through GGUF metadata.
func syntheticFromGGUF(t *testing.T, pre string) Tokenizer {
	t.Helper()
	pat, err := PreTokenizerPattern(pre)
	if err != nil {
		t.Fatal(err)
	}
	syn, err := Synthetic(8192, 7, pat)
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := GGUFMetadata(syn, pre)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := FromGGUF(writeGGUF(t, kvs))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func idsDigest(ids []int) string {
	h := sha256.New()
	var b [4]byte
	for _, id := range ids {
		binary.LittleEndian.PutUint32(b[:], uint32(id))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

type llamaCppGolden struct {
	Reference string `json:"reference"`
	Texts     int    `json:"texts"`
	Pres      map[string][]struct {
		SHA256 string `json:"sha256"`
		N      int    `json:"n"`
	} `json:"pres"`
}

func TestBPEAgainstLlamaCpp(t *testing.T) {
	texts := llamaCppTexts(t)
	f, err := os.Open("testdata/llamacpp_bpe.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var g llamaCppGolden
	if err := json.NewDecoder(zr).Decode(&g); err != nil {
		t.Fatal(err)
	}
	if g.Texts != len(texts) {
		t.Fatalf("golden for %d texts, the corpus has %d (RAGKV_TOKREF_STEP must be unset)", g.Texts, len(texts))
	}
	for _, pre := range llamaCppPres {
		tok := syntheticFromGGUF(t, pre)
		want := g.Pres[pre]
		if len(want) != len(texts) {
			t.Fatalf("%s: %d golden texts", pre, len(want))
		}
		same, tokens := 0, 0
		for i, text := range texts {
			ids := tok.Encode(text, false, false)
			tokens += want[i].N
			if len(ids) == want[i].N && idsDigest(ids) == want[i].SHA256 {
				same++
			} else if same+5 > i { // name the first few
				t.Errorf("%s: text %d (%.60q…): %d ids, llama.cpp %d (or different ids)", pre, i, text, len(ids), want[i].N)
			}
		}
		t.Logf("%s: %d/%d texts (%d llama.cpp tokens) identical to llama.cpp", pre, same, len(texts), tokens)
		if same != len(texts) {
			t.Errorf("%s: %d of %d texts differ from llama.cpp", pre, len(texts)-same, len(texts))
		}
	}
}
