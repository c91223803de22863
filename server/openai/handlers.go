package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/model/chat"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// sse writes server-sent events.
type sse struct {
	w       http.ResponseWriter
	started bool
}

func (e *sse) start() {
	h := e.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	e.w.WriteHeader(http.StatusOK)
	e.started = true
}

func (e *sse) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(e.w, "data: %s\n\n", b); err != nil {
		return err
	}
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

func (e *sse) done() {
	fmt.Fprint(e.w, "data: [DONE]\n\n")
	if f, ok := e.w.(http.Flusher); ok {
		f.Flush()
	}
}

// fail reports an error: as a JSON error response before the stream started, as an
// error event in it afterwards.
func (s *Server) fail(w http.ResponseWriter, ev *sse, err error, param string) {
	ae := toAPIError(err, param)
	if ae.Status >= 500 {
		s.log.Error("openai request failed", "err", err)
	}
	if ev != nil && ev.started {
		_ = ev.send(map[string]any{"error": ae})
		ev.done()
		return
	}
	writeError(w, ae)
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if e := decode(w, r, s.o.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	j := &job{}
	if e := s.sampling(j, &req.samplingFields, s.o.Engine.Model().Config.Ctx); e != nil {
		writeError(w, e)
		return
	}
	if req.Logprobs != nil && *req.Logprobs || req.TopLogprobs != nil {
		writeError(w, invalid("logprobs", "logprobs are supported on /v1/completions only"))
		return
	}
	if rf := strings.TrimSpace(string(req.ResponseFormat)); rf != "" && rf != "null" {
		var f struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(req.ResponseFormat, &f) != nil || f.Type != "text" {
			writeError(w, invalid("response_format", "response_format: only {\"type\": \"text\"} is supported"))
			return
		}
	}
	if len(req.Messages) == 0 {
		writeError(w, invalid("messages", "messages is required and must not be empty"))
		return
	}
	msgs := make([]chat.Message, len(req.Messages))
	lastUser := ""
	for i, m := range req.Messages {
		c, e := messageContent(m.Content, fmt.Sprintf("messages[%d].content", i))
		if e != nil {
			writeError(w, e)
			return
		}
		msgs[i] = chat.Message{Role: m.Role, Content: c}
		if m.Role == "user" {
			lastUser = c
		}
	}
	tm := s.o.Template
	var layout chat.Layout
	var err error
	if len(req.Documents) > 0 || req.Retrieval != nil {
		layout, err = tm.SplitForDocuments(msgs)
	} else {
		layout, err = tm.Split(msgs)
	}
	if err != nil {
		s.fail(w, nil, err, "messages")
		return
	}
	prefix, query := layout.Tokens(s.o.Engine.Model().Tok)
	j.prompt = promptReport{Prefix: layout.Prefix, Query: layout.Query, Format: "template"}
	if layout.Plain {
		j.prompt.Format = "plain"
	}
	if e := s.rag(r.Context(), j, &req.ragFields, prefix, query, lastUser); e != nil {
		writeError(w, e)
		return
	}
	s.serve(w, r, j, "chat.completion", "chatcmpl-")
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	var req completionRequest
	if e := decode(w, r, s.o.MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	j := &job{}
	if e := s.sampling(j, &req.samplingFields, 16); e != nil {
		writeError(w, e)
		return
	}
	if req.Echo {
		writeError(w, invalid("echo", "echo is not supported"))
		return
	}
	if req.Suffix != "" {
		writeError(w, invalid("suffix", "suffix is not supported"))
		return
	}
	if req.Logprobs != nil {
		if *req.Logprobs < 0 || *req.Logprobs > 20 {
			writeError(w, invalid("logprobs", "logprobs = %d: want 0 to 20", *req.Logprobs))
			return
		}
		j.logprobs = *req.Logprobs
	}
	prompts, e := stringOrList(req.Prompt, "prompt")
	if e != nil {
		writeError(w, invalid("prompt", "prompt: expected a string or a list of one string (token arrays are not supported)"))
		return
	}
	if len(prompts) != 1 {
		writeError(w, invalid("prompt", "prompt: give exactly one prompt (got %d)", len(prompts)))
		return
	}
	tok := s.o.Engine.Model().Tok
	// A raw prompt: special-token texts parsed, the BOS token first (unless the prompt
	// starts with its text); with documents the BOS is the prefix and the prompt the
	// query.
	query := tokenizer.EncodeSpecial(tok, prompts[0], false, false)
	var prefix []int
	if bos := tok.BOS(); bos >= 0 && (len(query) == 0 || query[0] != bos) {
		prefix = []int{bos}
	} else if len(query) > 0 {
		prefix, query = query[:1], query[1:]
	}
	if len(prefix)+len(query) == 0 {
		writeError(w, invalid("prompt", "prompt is empty and the model has no BOS token"))
		return
	}
	j.prompt = promptReport{Query: prompts[0], Format: "completion"}
	if len(prefix) > 0 {
		j.prompt.Prefix = tokenizer.TokenText(tok, prefix[0])
	}
	if e := s.rag(r.Context(), j, &req.ragFields, prefix, query, prompts[0]); e != nil {
		writeError(w, e)
		return
	}
	s.serve(w, r, j, "text_completion", "cmpl-")
}

// serve runs the job and writes the response (object "chat.completion" or
// "text_completion"), streamed or not.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, j *job, object, idPrefix string) {
	id, created := newID(idPrefix), time.Now().Unix()
	isChat := object == "chat.completion"
	chunkObject := object
	if isChat {
		chunkObject = "chat.completion.chunk"
	}
	base := func(obj string) map[string]any {
		return map[string]any{"id": id, "object": obj, "created": created, "model": s.o.ModelName}
	}
	choice := func(text string, lps []tokenLogprob, finish any, stream bool) map[string]any {
		c := map[string]any{"index": 0, "finish_reason": finish, "logprobs": nil}
		if lps != nil {
			c["logprobs"] = completionLogprobs(lps)
		}
		switch {
		case isChat && stream:
			d := map[string]any{}
			if text != "" {
				d["content"] = text
			}
			c["delta"] = d
		case isChat:
			c["message"] = map[string]any{"role": "assistant", "content": text}
		default:
			c["text"] = text
		}
		return c
	}
	if !j.stream {
		res, err := s.run(r.Context(), j, nil, func(string, []tokenLogprob) error { return nil })
		if err != nil {
			s.fail(w, nil, err, "")
			return
		}
		rep, u := s.report(j, res.prefill)
		u.CompletionTokens = res.tokens
		u.TotalTokens = u.PromptTokens + u.CompletionTokens
		var lps []tokenLogprob
		if j.logprobs >= 0 {
			lps = res.logprobs
		}
		body := base(object)
		body["choices"] = []any{choice(res.text, lps, res.finish, false)}
		body["usage"] = u
		body["ragkv"] = rep
		writeJSON(w, body)
		return
	}
	ev := &sse{w: w}
	chunk := func(c map[string]any) map[string]any {
		b := base(chunkObject)
		b["choices"] = []any{c}
		if j.usageChunk {
			b["usage"] = nil
		}
		return b
	}
	onStart := func(*blend.PrefillOutput) error {
		ev.start()
		if isChat {
			c := choice("", nil, nil, true)
			c["delta"] = map[string]any{"role": "assistant", "content": ""}
			return ev.send(chunk(c))
		}
		return nil
	}
	onText := func(text string, lps []tokenLogprob) error {
		if j.logprobs < 0 {
			lps = nil
		}
		return ev.send(chunk(choice(text, lps, nil, true)))
	}
	res, err := s.run(r.Context(), j, onStart, onText)
	if err != nil {
		s.fail(w, ev, err, "")
		return
	}
	rep, u := s.report(j, res.prefill)
	u.CompletionTokens = res.tokens
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	last := chunk(choice("", nil, res.finish, true))
	last["ragkv"] = rep
	if err := ev.send(last); err != nil {
		return
	}
	if j.usageChunk {
		b := base(chunkObject)
		b["choices"] = []any{}
		b["usage"] = u
		_ = ev.send(b)
	}
	ev.done()
}

// completionLogprobs is the legacy completions logprobs object.
func completionLogprobs(lps []tokenLogprob) map[string]any {
	toks := make([]string, len(lps))
	lp := make([]float64, len(lps))
	top := make([]map[string]float64, len(lps))
	off := make([]int, len(lps))
	o := 0
	for i, t := range lps {
		toks[i], lp[i], off[i] = t.Token, t.Logprob, o
		o += len(t.Token)
		if t.Top != nil {
			top[i] = map[string]float64{}
			for _, a := range t.Top {
				if _, dup := top[i][a.Token]; !dup {
					top[i][a.Token] = a.Logprob
				}
			}
		}
	}
	return map[string]any{"tokens": toks, "token_logprobs": lp, "top_logprobs": top, "text_offset": off}
}
