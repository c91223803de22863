// Package chat turns a conversation into a model's prompt: it renders the model's own
// chat template (the Jinja2 source in a GGUF file's tokenizer.chat_template metadata, or
// in a HuggingFace directory's tokenizer_config.json "chat_template" / chat_template.jinja)
// exactly as HuggingFace transformers' apply_chat_template does, or, for a model without
// a template, the plain format below. It also cuts the prompt where retrieved documents
// go, so that their chunk caches can be reused (see Layout).
//
// # Template engine
//
// Templates are rendered with github.com/ardanlabs/jinja (v1.8.0, pinned), a pure-Go
// Jinja engine written for LLM chat templates: Python string methods (.strip, .split,
// .startswith, ...), namespace(), loop variables, slicing with steps, macros, tojson,
// raise_exception. It was chosen over github.com/nikolalohinski/gonja/v2 and
// github.com/flosch/pongo2 (general Jinja2/Django ports whose Python-method and
// whitespace-control coverage of chat templates is thinner) for fidelity. It is checked
// against @huggingface/jinja, the renderer of transformers.js, on the real templates of
// Llama 3, 3.1, 3.2 and 3.3, Qwen 2.5 and 3, Gemma 2 and 3, SmolLM2 and Mistral Nemo
// (reference_test.go: identical text, then identical tokens). What it cannot render:
// Jinja features outside chat templates (template inheritance, {% include %}, {% call %}
// blocks, custom tests and filters beyond its list); a template that uses one fails at
// Load with the engine's error, never silently. Templates see the variables transformers
// passes (messages, add_generation_prompt, bos_token, eos_token, unk_token, pad_token)
// and no strftime_now, as in transformers.js: Llama 3.x templates then print their
// default date, which keeps the prompt prefix (and so the chunk caches after it) the
// same from day to day. Message contents are strings (no multimodal parts, no tools).
//
// # Plain format
//
// A model without a template (llama2.c checkpoints such as stories260K, base models) gets
//
//	[BOS]{system}\n\n                                   (the system message; omitted if none)
//	User: {content}\n\nAssistant: {content}\n\n        (each earlier turn)
//	User: {last user message}\n\nAssistant:
//
// tokenized as plain text (no special-token parsing), with the tokenizer's BOS first.
//
// # Where documents go (Layout)
//
// A RAG request fuses documents (chunks whose KV is cached) in order just before the last
// user message. The prompt is cut into three parts: Prefix, everything before the last
// user message's content (BOS, the system message, earlier turns and the last user turn's
// header, e.g. "<|im_start|>user\n"); the documents, each fused as the chunk
// document + "\n\n"; and Query, the rest (the last user message, its end-of-turn and the
// assistant header). In the plain format the cut is before "User: " of the last turn. A
// chunk's KV is computed after exactly the Prefix it is fused after (blend stores it
// under a key that folds in the prefix's tokens), so requests with the same system
// message and history reuse the chunk caches; the prefix's own KV is cached as a segment
// too. Prefix and Query are tokenized separately, with special-token parsing for
// templates (documents never: their text is data). Rendering with the last user message
// replaced by a marker finds the cut; a template that changes the message content (so that
// Prefix + content + Query is not its plain rendering) is refused for documents.
package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ardanlabs/jinja"

	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// Errors.
var (
	// ErrInvalid: a conversation the template or the format cannot take (no messages,
	// unknown role, no user message to put documents before, a raise_exception).
	ErrInvalid = errors.New("chat: invalid conversation")
	// ErrTemplate: a chat template that does not compile or render.
	ErrTemplate = errors.New("chat: bad chat template")
)

// Message is one message of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Template formats conversations for one model. It is immutable and safe for
// concurrent use.
type Template struct {
	// Source is the Jinja source ("" for the plain format).
	Source string
	// Origin says where the template came from ("gguf", "tokenizer_config.json",
	// "chat_template.jinja", "plain" or "given").
	Origin string
	// Specials are the special-token variables the template sees (bos_token, ...).
	Specials map[string]string
	// Stops are the texts of tokens that end an assistant turn (eos_token and the
	// family's end-of-turn tokens that the template uses).
	Stops []string

	tmpl *jinja.Template
}

// Plain returns the plain format (no template).
func Plain() *Template { return &Template{Origin: "plain"} }

// IsPlain reports whether t is the plain format.
func (t *Template) IsPlain() bool { return t.tmpl == nil }

// endOfTurn lists end-of-turn token texts of the families ragkv knows; those that a
// template mentions become stops.
var endOfTurn = []string{"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>", "<|end_of_text|>"}

// New compiles a Jinja chat template; specials are its special-token variables
// (bos_token, eos_token, ...).
func New(source string, specials map[string]string) (*Template, error) {
	tm, err := jinja.Compile(source)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	t := &Template{Source: source, Origin: "given", Specials: map[string]string{}, tmpl: tm}
	for k, v := range specials {
		t.Specials[k] = v
	}
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			t.Stops = append(t.Stops, s)
		}
	}
	add(specials["eos_token"])
	for _, s := range endOfTurn {
		if strings.Contains(source, s) {
			add(s)
		}
	}
	return t, nil
}

// Load returns the chat template of a model file: a GGUF file's tokenizer.chat_template,
// a HuggingFace directory's (or a safetensors file's directory's) chat_template.jinja or
// tokenizer_config.json chat_template, or else the plain format. tok names the GGUF
// special tokens (bos_token from tokenizer.ggml.bos_token_id, ...); it may be nil.
func Load(modelPath string, tok tokenizer.Tokenizer) (*Template, error) {
	st, err := os.Stat(modelPath)
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	if !st.IsDir() && gguf.HasMagic(modelPath) {
		return loadGGUF(modelPath, tok)
	}
	dir := modelPath
	if !st.IsDir() {
		dir = filepath.Dir(modelPath)
		if !strings.HasSuffix(modelPath, ".safetensors") {
			return Plain(), nil // llama2.c checkpoint
		}
	}
	return LoadHFDir(dir)
}

// LoadTokenizerFile returns the template that goes with a tokenizer file given on its
// own: the tokenizer_config.json beside a tokenizer.json, a GGUF file's metadata, or
// else the plain format.
func LoadTokenizerFile(path string, tok tokenizer.Tokenizer) (*Template, error) {
	if gguf.HasMagic(path) {
		return loadGGUF(path, tok)
	}
	if strings.HasSuffix(path, ".json") {
		return LoadHFDir(filepath.Dir(path))
	}
	return Plain(), nil
}

func loadGGUF(path string, tok tokenizer.Tokenizer) (*Template, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	defer f.Close()
	src, err := f.String("tokenizer.chat_template")
	if errors.Is(err, gguf.ErrNotFound) {
		return Plain(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("chat: %s: %w", path, err)
	}
	specials := map[string]string{}
	if tok != nil {
		for name, key := range map[string]string{"bos_token": "tokenizer.ggml.bos_token_id", "eos_token": "tokenizer.ggml.eos_token_id",
			"unk_token": "tokenizer.ggml.unknown_token_id", "pad_token": "tokenizer.ggml.padding_token_id"} {
			if id, err := f.Uint(key); err == nil {
				if s := tokenizer.TokenText(tok, int(id)); s != "" {
					specials[name] = s
				}
			}
		}
	}
	t, err := New(src, specials)
	if err != nil {
		return nil, fmt.Errorf("chat: %s: %w", path, err)
	}
	t.Origin = "gguf"
	return t, nil
}

// LoadHFDir reads dir/chat_template.jinja or the chat_template of
// dir/tokenizer_config.json (a string, or a list of {name, template}: "default" is
// taken), with that file's special tokens; neither: the plain format.
func LoadHFDir(dir string) (*Template, error) {
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	var specials map[string]string
	var src, origin string
	if b, err := os.ReadFile(cfgPath); err == nil {
		var err error
		if src, specials, err = ParseTokenizerConfig(b); err != nil {
			return nil, fmt.Errorf("chat: %s: %w", cfgPath, err)
		}
		origin = "tokenizer_config.json"
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("chat: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja")); err == nil {
		src, origin = string(b), "chat_template.jinja"
	}
	if src == "" {
		return Plain(), nil
	}
	t, err := New(src, specials)
	if err != nil {
		return nil, fmt.Errorf("chat: %s: %w", filepath.Join(dir, origin), err)
	}
	t.Origin = origin
	return t, nil
}

// ParseTokenizerConfig returns the chat template and special tokens of a
// tokenizer_config.json.
func ParseTokenizerConfig(b []byte) (string, map[string]string, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	specials := map[string]string{}
	for _, k := range []string{"bos_token", "eos_token", "unk_token", "pad_token"} {
		raw, ok := cfg[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if s != "" {
				specials[k] = s
			}
			continue
		}
		var obj struct {
			Content string `json:"content"`
		}
		if json.Unmarshal(raw, &obj) == nil && obj.Content != "" {
			specials[k] = obj.Content
		}
	}
	raw, ok := cfg["chat_template"]
	if !ok || string(raw) == "null" {
		return "", specials, nil
	}
	var src string
	if err := json.Unmarshal(raw, &src); err == nil {
		return src, specials, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", nil, fmt.Errorf("%w: chat_template is neither a string nor a list of {name, template}", ErrTemplate)
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, specials, nil
		}
	}
	if len(named) > 0 {
		return named[0].Template, specials, nil
	}
	return "", specials, nil
}

// Render renders a conversation (with the assistant header after it if addGeneration).
func (t *Template) Render(msgs []Message, addGeneration bool) (string, error) {
	if err := checkMessages(msgs); err != nil {
		return "", err
	}
	if t.IsPlain() {
		p, q := plainParts(msgs, len(msgs))
		s := p + q
		if !addGeneration {
			s = strings.TrimSuffix(s, "Assistant:")
		}
		return s, nil
	}
	return t.render(msgs, addGeneration)
}

func (t *Template) render(msgs []Message, addGeneration bool) (string, error) {
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(m.Role))
		d.AsDict().Set("content", jinja.NewString(m.Content))
		list[i] = d
	}
	data := map[string]jinja.Value{
		"messages":              jinja.NewList(list),
		"add_generation_prompt": jinja.NewBool(addGeneration),
		"strftime_now":          jinja.Undefined(),
		"raise_exception":       raiseException,
	}
	for k, v := range t.Specials {
		data[k] = jinja.NewString(v)
	}
	out, err := t.tmpl.RenderValues(data)
	if err != nil {
		if errors.Is(err, errRaised) {
			return "", fmt.Errorf("%w: the chat template refuses it: %v", ErrInvalid, err)
		}
		return "", fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	return out, nil
}

// errRaised marks a template's raise_exception (the conversation's fault, not the
// template's).
var errRaised = errors.New("raise_exception")

var raiseException = jinja.NewCallable("raise_exception", func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	msg := "raise_exception"
	if len(args) > 0 {
		msg = args[0].String()
	}
	return jinja.Undefined(), fmt.Errorf("%w: %s", errRaised, msg)
})

func checkMessages(msgs []Message) error {
	if len(msgs) == 0 {
		return fmt.Errorf("%w: no messages", ErrInvalid)
	}
	for i, m := range msgs {
		switch m.Role {
		case "system", "user", "assistant", "developer":
		default:
			return fmt.Errorf("%w: message %d has role %q (want system, developer, user or assistant)", ErrInvalid, i, m.Role)
		}
	}
	return nil
}

// plainParts renders the plain format cut before message cut (a user message; len(msgs):
// no cut, everything in the second part... then the first part is all but the cue).
func plainParts(msgs []Message, cut int) (string, string) {
	var pre, post strings.Builder
	b := &pre
	for i, m := range msgs {
		if i == cut {
			b = &post
		}
		switch m.Role {
		case "system", "developer":
			b.WriteString(m.Content + "\n\n")
		case "user":
			b.WriteString("User: " + m.Content + "\n\n")
		default:
			b.WriteString("Assistant: " + m.Content + "\n\n")
		}
	}
	b.WriteString("Assistant:")
	return pre.String(), post.String()
}

// Layout is a prompt cut where documents go: Prefix, then the documents, then Query.
// Prefix and Query are texts to tokenize with special-token parsing (templates) or
// plain (the plain format, Prefix after the BOS token).
type Layout struct {
	Prefix string
	Query  string
	// Plain: the plain format (tokenize without special-token parsing, BOS first).
	Plain bool
	// Cut: Prefix ends right before the last user message (documents can go there).
	Cut bool
}

// Text is the prompt without documents.
func (l Layout) Text() string { return l.Prefix + l.Query }

// DocumentSeparator follows every document in the fused prompt.
const DocumentSeparator = "\n\n"

// marker stands for the last user message's content while finding the cut; NUL bytes
// survive the trim and replace filters of chat templates.
const marker = "\x00ragkv-documents\x00"

// Split renders a conversation (with the assistant header) cut before the last user
// message's content.
func (t *Template) Split(msgs []Message) (Layout, error) {
	if err := checkMessages(msgs); err != nil {
		return Layout{}, err
	}
	last := -1
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			last = i
			break
		}
	}
	if t.IsPlain() {
		if last < 0 {
			p, q := plainParts(msgs, len(msgs))
			return Layout{Query: p + q, Plain: true}, nil
		}
		p, q := plainParts(msgs, last)
		return Layout{Prefix: p, Query: q, Plain: true, Cut: true}, nil
	}
	full, err := t.render(msgs, true)
	if err != nil {
		return Layout{}, err
	}
	if last < 0 {
		return Layout{Query: full}, nil
	}
	// The marker goes before the content, or before the content without its leading
	// white space (templates that trim it).
	variants := []string{msgs[last].Content}
	if tl := strings.TrimLeft(msgs[last].Content, " \t\r\n"); tl != msgs[last].Content {
		variants = append(variants, tl)
	}
	for _, content := range variants {
		marked := append([]Message(nil), msgs...)
		marked[last].Content = marker + content
		out, err := t.render(marked, true)
		if err != nil {
			return Layout{}, err
		}
		i := strings.Index(out, marker)
		if i >= 0 && strings.Count(out, marker) == 1 && out[:i]+out[i+len(marker):] == full {
			return Layout{Prefix: out[:i], Query: out[i+len(marker):], Cut: true}, nil
		}
	}
	// The template rewrites the content (or repeats it): no stable place for documents.
	// The whole prompt is the query.
	return Layout{Query: full}, nil
}

// SplitForDocuments is Split for a request with documents: it fails where there is no
// user message to put them before, or no stable cut.
func (t *Template) SplitForDocuments(msgs []Message) (Layout, error) {
	l, err := t.Split(msgs)
	if err != nil {
		return Layout{}, err
	}
	if !l.Cut {
		for _, m := range msgs {
			if m.Role == "user" {
				return Layout{}, fmt.Errorf("%w: the chat template transforms the last user message, so documents have no stable place in it", ErrInvalid)
			}
		}
		return Layout{}, fmt.Errorf("%w: documents go before the last user message, and there is none", ErrInvalid)
	}
	return l, nil
}

// Tokens tokenizes a layout part: with special-token parsing for templates, plain with
// the BOS token first for the Prefix of the plain format.
func (l Layout) Tokens(tok tokenizer.Tokenizer) (prefix, query []int) {
	if l.Plain {
		return tok.Encode(l.Prefix, true, false), tok.Encode(l.Query, false, false)
	}
	return tokenizer.EncodeSpecial(tok, l.Prefix, false, false), tokenizer.EncodeSpecial(tok, l.Query, false, false)
}

// WithTemplate copies the GGUF file src to dst with tokenizer.chat_template set to
// source (for test models: a synthetic or small model carrying a real template).
func WithTemplate(src, dst, source string) error {
	f, err := gguf.Open(src)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	defer f.Close()
	var kvs []gguf.KV
	for _, kv := range f.KVs {
		if kv.Key != "tokenizer.chat_template" {
			kvs = append(kvs, kv)
		}
	}
	kvs = append(kvs, gguf.KV{Key: "tokenizer.chat_template", Value: gguf.String(source)})
	g := *f
	g.KVs = kvs
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	if err := gguf.WriteFile(out, &g); err != nil {
		out.Close()
		return fmt.Errorf("chat: %s: %w", dst, err)
	}
	return out.Close()
}

// LoadFile compiles the Jinja chat template in file path for a model with tokenizer tok
// (bos_token and eos_token name tok's BOS and EOS tokens).
func LoadFile(path string, tok tokenizer.Tokenizer) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	specials := map[string]string{}
	if tok != nil {
		if s := tokenizer.TokenText(tok, tok.BOS()); s != "" {
			specials["bos_token"] = s
		}
		if s := tokenizer.TokenText(tok, tok.EOS()); s != "" {
			specials["eos_token"] = s
		}
	}
	t, err := New(string(b), specials)
	if err != nil {
		return nil, fmt.Errorf("chat: %s: %w", path, err)
	}
	t.Origin = "file"
	return t, nil
}
