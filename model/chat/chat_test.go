package chat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/tokenizer"
)

func TestPlainFormat(t *testing.T) {
	p := Plain()
	msgs := []Message{{"system", "Be kind."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Tell a story."}}
	got, err := p.Render(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "Be kind.\n\nUser: Hi\n\nAssistant: Hello.\n\nUser: Tell a story.\n\nAssistant:"
	if got != want {
		t.Fatalf("plain: %q, want %q", got, want)
	}
	l, err := p.SplitForDocuments(msgs)
	if err != nil {
		t.Fatal(err)
	}
	if l.Prefix != "Be kind.\n\nUser: Hi\n\nAssistant: Hello.\n\n" || l.Query != "User: Tell a story.\n\nAssistant:" || !l.Plain || !l.Cut {
		t.Fatalf("plain layout %+v", l)
	}
	if _, err := p.SplitForDocuments([]Message{{"system", "x"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("documents without a user message: %v", err)
	}
	if _, err := p.Render([]Message{{"tool", "x"}}, true); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown role: %v", err)
	}
	if _, err := p.Render(nil, true); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no messages: %v", err)
	}
}

// TestSmolLM2 checks SmolLM2's template against the text its model card shows.
func TestSmolLM2(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "templates", "HuggingFaceTB-SmolLM2-135M-Instruct.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := New(string(b), map[string]string{"eos_token": "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tm.Render([]Message{{"user", "Hello"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Fatalf("%q\nwant %q", got, want)
	}
	l, err := tm.SplitForDocuments([]Message{{"user", "Hello"}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Prefix != strings.TrimSuffix(want, "Hello<|im_end|>\n<|im_start|>assistant\n") || l.Query != "Hello<|im_end|>\n<|im_start|>assistant\n" {
		t.Fatalf("layout %+v", l)
	}
	if len(tm.Stops) != 1 || tm.Stops[0] != "<|im_end|>" {
		t.Fatalf("stops %v", tm.Stops)
	}
}

func TestTemplateErrors(t *testing.T) {
	if _, err := New("{% if %}", nil); !errors.Is(err, ErrTemplate) {
		t.Fatalf("bad template: %v", err)
	}
	b, err := os.ReadFile(filepath.Join("testdata", "templates", "google-gemma-2-2b-it.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := New(string(b), map[string]string{"bos_token": "<bos>"})
	if err != nil {
		t.Fatal(err)
	}
	// Gemma 2 refuses a system message and two user turns in a row.
	if _, err := tm.Render([]Message{{"user", "a"}, {"user", "b"}}, true); !errors.Is(err, ErrInvalid) {
		t.Fatalf("raise_exception: %v", err)
	}
	if _, _, err := ParseTokenizerConfig([]byte(`{"chat_template": 3}`)); !errors.Is(err, ErrTemplate) {
		t.Fatalf("chat_template 3: %v", err)
	}
	src, sp, err := ParseTokenizerConfig([]byte(`{"bos_token": {"content": "<s>"}, "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}`))
	if err != nil || src != "D" || sp["bos_token"] != "<s>" {
		t.Fatalf("named templates: %q %v %v", src, sp, err)
	}
}

// TestLoadGGUF: a GGUF file's tokenizer.chat_template is found, with bos_token named by
// the vocabulary; stories260K's llama2.c checkpoint gets the plain format.
func TestLoadGGUF(t *testing.T) {
	src := shared.Path(t, "models", "stories260K", "stories260K-f32.gguf")
	out := filepath.Join(t.TempDir(), "with-template.gguf")
	tmplSrc, err := os.ReadFile(filepath.Join("testdata", "templates", "mistralai-Mistral-Nemo-Instruct-2407.jinja"))
	if err != nil {
		t.Fatal(err)
	}
	if err := WithTemplate(src, out, string(tmplSrc)); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.FromGGUF(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	tm, err := Load(out, tok)
	if err != nil {
		t.Fatal(err)
	}
	if tm.Origin != "gguf" || tm.Specials["bos_token"] != "<s>" || tm.Specials["eos_token"] != "</s>" {
		t.Fatalf("origin %q specials %v", tm.Origin, tm.Specials)
	}
	l, err := tm.SplitForDocuments([]Message{{"user", "Where is Tom?"}})
	if err != nil {
		t.Fatal(err)
	}
	p, q := l.Tokens(tok)
	if p[0] != tok.BOS() || len(q) == 0 {
		t.Fatalf("prefix %v query %v (BOS %d)", p, q, tok.BOS())
	}
	plain, err := Load(shared.Path(t, "models", "stories260K", "stories260K.bin"), nil)
	if err != nil || !plain.IsPlain() {
		t.Fatalf("llama2.c checkpoint: %v %v", plain, err)
	}
}
