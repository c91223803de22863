package openai

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/retrieval"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/server/auth"
)

// job is one validated generation: the prompt's parts as tokens and how to sample.
type job struct {
	in        blend.PrefillInput
	prompt    promptReport
	retrieved []retrievedReport
	docSegs   int // chunk segments (documents) of the prompt
	knownToks int // prompt tokens known before the prefill (key documents not counted)

	maxTokens   int
	explicitMax bool
	temperature float32
	topP        float32
	seed        uint64
	stops       []string
	logprobs    int // top alternatives per token; -1: no logprobs
	stream      bool
	usageChunk  bool
}

type promptReport struct {
	Prefix    string   `json:"prefix"`
	Documents []string `json:"documents"`
	Query     string   `json:"query"`
	// Format is "template" (the model's chat template), "plain" (the plain chat
	// format) or "completion" (a raw prompt).
	Format string `json:"format"`
}

type retrievedReport struct {
	PassageID string  `json:"passage_id"`
	DocID     string  `json:"doc_id"`
	Score     float64 `json:"score"`
	ChunkID   string  `json:"chunk_id"`
}

// sampling validates the shared sampling fields into j.
func (s *Server) sampling(j *job, f *samplingFields, defaultMax int) *apiError {
	if e := s.checkModel(f.Model); e != nil {
		return e
	}
	if f.N != nil && *f.N != 1 {
		return invalid("n", "n = %d: this server returns one choice per request (n = 1)", *f.N)
	}
	if f.BestOf != nil && *f.BestOf != 1 {
		return invalid("best_of", "best_of = %d is not supported (1 only)", *f.BestOf)
	}
	if f.PresencePenalty != nil && *f.PresencePenalty != 0 {
		return invalid("presence_penalty", "presence_penalty is not supported (0 only)")
	}
	if f.FrequencyPenalty != nil && *f.FrequencyPenalty != 0 {
		return invalid("frequency_penalty", "frequency_penalty is not supported (0 only)")
	}
	if len(f.LogitBias) > 0 {
		return invalid("logit_bias", "logit_bias is not supported")
	}
	if t := strings.TrimSpace(string(f.Tools)); t != "" && t != "null" && t != "[]" {
		return invalid("tools", "tools are not supported")
	}
	j.maxTokens = defaultMax
	switch {
	case f.MaxCompletionTokens != nil:
		j.maxTokens, j.explicitMax = *f.MaxCompletionTokens, true
		if j.maxTokens < 1 {
			return invalid("max_completion_tokens", "max_completion_tokens = %d: want at least 1", j.maxTokens)
		}
	case f.MaxTokens != nil:
		j.maxTokens, j.explicitMax = *f.MaxTokens, true
		if j.maxTokens < 1 {
			return invalid("max_tokens", "max_tokens = %d: want at least 1", j.maxTokens)
		}
	}
	j.temperature = 1
	if f.Temperature != nil {
		t := *f.Temperature
		if !(t >= 0 && t <= 2) {
			return invalid("temperature", "temperature %g: want a number in [0, 2]", t)
		}
		j.temperature = float32(t)
	}
	if f.TopP != nil {
		p := *f.TopP
		if !(p > 0 && p <= 1) {
			return invalid("top_p", "top_p %g: want a number in (0, 1]", p)
		}
		if p < 1 {
			j.topP = float32(p)
		}
	}
	if f.Seed != nil {
		j.seed = uint64(*f.Seed)
	} else {
		var b [8]byte
		_, _ = rand.Read(b[:])
		j.seed = binary.LittleEndian.Uint64(b[:])
	}
	stops, e := stringOrList(f.Stop, "stop")
	if e != nil {
		return e
	}
	if len(stops) > 4 {
		return invalid("stop", "stop has %d sequences (at most 4)", len(stops))
	}
	for _, st := range stops {
		if st == "" {
			return invalid("stop", "stop sequences must not be empty")
		}
	}
	j.stops = stops
	j.stream = f.Stream
	if f.StreamOptions != nil {
		if !f.Stream {
			return invalid("stream_options", "stream_options is only allowed with stream: true")
		}
		j.usageChunk = f.StreamOptions.IncludeUsage
	}
	j.logprobs = -1
	return nil
}

// rag validates the RAG fields and fills j.in: the prefix tokens, the documents (given,
// then retrieved for retrievalQuery) and the query tokens.
func (s *Server) rag(ctx context.Context, j *job, f *ragFields, prefix, query []int, retrievalQuery string) *apiError {
	m := s.o.Engine.Model()
	j.in = blend.PrefillInput{Namespace: f.Namespace, SystemTokens: prefix, QueryTokens: query}
	nsName, err := chunkcache.NormalizeNamespace(f.Namespace)
	if err != nil {
		return invalid("namespace", "namespace %q: %v", f.Namespace, err)
	}
	if id := auth.FromContext(ctx); id != nil && !id.Namespace(nsName) {
		return notFound("namespace", "namespace_not_found", "namespace %q does not exist", f.Namespace)
	}
	if f.Blend != nil {
		meth, err := blend.ParseMethod(f.Blend.Method)
		if err != nil {
			return invalid("blend.method", "blend.method %q: want full, prefix, naive, cacheblend or cachecraft", f.Blend.Method)
		}
		j.in.Method = meth
		if f.Blend.Ratio != nil {
			r := *f.Blend.Ratio
			if !(r >= 0 && r <= 1) {
				return invalid("blend.ratio", "blend.ratio %g: want a number in [0, 1]", r)
			}
			j.in.Ratio = &r
		}
	}
	docs, e := parseDocuments(f.Documents)
	if e != nil {
		return e
	}
	if f.Retrieval != nil {
		rt := f.Retrieval
		if s.o.Retrieval == nil {
			return invalid("retrieval", "this server serves no retrieval (start it without --retrieval-disabled)")
		}
		if rt.Collection == "" {
			return invalid("retrieval.collection", "retrieval.collection is required")
		}
		k := server.DefaultRetrievalK
		if rt.K != nil {
			k = *rt.K
		}
		if k < 1 || k > s.o.MaxDocuments {
			return invalid("retrieval.k", "retrieval.k = %d: want 1 to %d", k, s.o.MaxDocuments)
		}
		mode, err := retrieval.ParseMode(rt.Mode)
		if err != nil {
			return invalid("retrieval.mode", "retrieval.mode %q: want bm25, dense or hybrid", rt.Mode)
		}
		if strings.TrimSpace(retrievalQuery) == "" {
			return invalid("retrieval", "retrieval needs a user message (or prompt) to search for")
		}
		if !mayCollection(auth.FromContext(ctx), rt.Collection) { // answered as a missing one
			return notFound("retrieval.collection", "collection_not_found", "retrieval.collection %q does not exist", rt.Collection)
		}
		// The one retrieval path (package server): the same passages, chunk texts and
		// order as a gRPC Prefill with a retrieval source.
		ps, err := server.RetrievePassages(ctx, s.o.Retrieval, server.RetrievalSource{Collection: rt.Collection, Query: retrievalQuery, K: k, Mode: mode}, s.o.MaxDocuments)
		if errors.Is(err, retrieval.ErrCollectionNotFound) {
			return notFound("retrieval.collection", "collection_not_found", "retrieval.collection %q does not exist", rt.Collection)
		}
		if err != nil {
			return toAPIError(err, "retrieval")
		}
		for _, p := range ps {
			j.retrieved = append(j.retrieved, retrievedReport{PassageID: p.PassageID, DocID: p.DocID, Score: p.Score, ChunkID: p.ChunkID})
			docs = append(docs, document{Text: p.Text})
		}
	}
	if len(docs) > s.o.MaxDocuments {
		return invalid("documents", "%d documents (at most %d, retrieved ones included)", len(docs), s.o.MaxDocuments)
	}
	j.knownToks = len(prefix) + len(query)
	for i, d := range docs {
		if d.Key != "" {
			k, err := chunkcache.ParseKey(d.Key)
			if err != nil {
				return invalid(fmt.Sprintf("documents[%d].key", i), "documents[%d].key %q: want 64 hex digits", i, d.Key)
			}
			j.in.Chunks = append(j.in.Chunks, blend.ChunkRef{Key: &k})
			j.prompt.Documents = append(j.prompt.Documents, "key:"+d.Key)
			continue
		}
		text := server.PassageChunkText(d.Text)
		toks := m.Tok.Encode(text, false, false)
		j.in.Chunks = append(j.in.Chunks, blend.ChunkRef{Tokens: toks})
		j.prompt.Documents = append(j.prompt.Documents, text)
		j.knownToks += len(toks)
	}
	j.docSegs = len(j.in.Chunks)
	if len(j.in.Chunks) > 0 && len(prefix) == 0 {
		// Chunks are computed after a prefix; give them the BOS token at least.
		if bos := m.Tok.BOS(); bos >= 0 {
			j.in.SystemTokens = []int{bos}
			j.knownToks++
		}
	}
	ctxLen := m.Config.Ctx
	if j.knownToks > ctxLen {
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: strp("messages"), Code: strp("context_length_exceeded"),
			Message: fmt.Sprintf("This model's maximum context length is %d tokens. However, your prompt has %d tokens.", ctxLen, j.knownToks)}
	}
	if j.knownToks+j.maxTokens > ctxLen {
		if j.explicitMax {
			return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: strp("max_tokens"), Code: strp("context_length_exceeded"),
				Message: fmt.Sprintf("This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the prompt, %d for the completion).",
					ctxLen, j.knownToks+j.maxTokens, j.knownToks, j.maxTokens)}
		}
		j.maxTokens = max(1, ctxLen-j.knownToks)
	}
	return nil
}

// tokenLogprob is one generated token's log-probability and its top alternatives.
type tokenLogprob struct {
	Token   string
	Logprob float64
	Top     []topLogprob
}

type topLogprob struct {
	Token   string
	Logprob float64
}

// result is a finished generation.
type result struct {
	text     string
	finish   string
	tokens   int
	prefill  *blend.PrefillOutput
	logprobs []tokenLogprob
}

// errStop ends a generation at a stop token or sequence.
var errStop = errors.New("stop")

// run generates. onStart is called once the prefill is done (before any text), onText
// with each piece of text that is final (stop sequences held back until they cannot
// match) and the log-probabilities of the tokens since the last call.
func (s *Server) run(ctx context.Context, j *job, onStart func(*blend.PrefillOutput) error, onText func(string, []tokenLogprob) error) (*result, error) {
	m := s.o.Engine.Model()
	tok := m.Tok
	res := &result{finish: "length"}
	st := &stopper{stops: j.stops}
	var sb strings.Builder
	var pendingLP []tokenLogprob
	emit := func(text string) error {
		sb.WriteString(text)
		if text == "" && len(pendingLP) == 0 {
			return nil
		}
		lp := pendingLP
		pendingLP = nil
		res.logprobs = append(res.logprobs, lp...)
		return onText(text, lp)
	}
	in := &blend.GenerateInput{Prefill: &j.in, MaxTokens: j.maxTokens, Temperature: j.temperature, TopP: j.topP, Seed: j.seed, Logits: j.logprobs >= 0}
	err := s.o.Engine.Generate(ctx, in, func(ev blend.GenerateEvent) error {
		switch {
		case ev.Prefill != nil:
			res.prefill = ev.Prefill
			if onStart != nil {
				return onStart(ev.Prefill)
			}
			return nil
		case ev.Done != nil:
			if ev.Done.Reason == "eos" {
				res.finish = "stop"
			}
			out, hit := st.add(ev.Text)
			if hit {
				res.finish = "stop"
			} else {
				out += st.flush()
			}
			return emit(out)
		default:
			if s.stopIDs[ev.Token] {
				res.finish = "stop"
				return errStop
			}
			res.tokens++
			if j.logprobs >= 0 {
				pendingLP = append(pendingLP, logprobOf(tok, ev.Logits, ev.Token, j.logprobs))
			}
			out, hit := st.add(ev.Text)
			if err := emit(out); err != nil {
				return err
			}
			if hit {
				res.finish = "stop"
				return errStop
			}
			return nil
		}
	})
	if errors.Is(err, errStop) {
		err = nil
		if len(pendingLP) > 0 {
			err = emit("")
		}
	}
	if err != nil {
		return res, err
	}
	res.text = sb.String()
	return res, nil
}

// logprobOf is the log-softmax of the token's logits at tok, with the top n.
func logprobOf(t interface{ Piece(prev, id int) []byte }, logits []float32, id, n int) tokenLogprob {
	maxv := float64(logits[0])
	for _, v := range logits {
		maxv = math.Max(maxv, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - maxv)
	}
	lse := maxv + math.Log(sum)
	name := func(i int) string { return strings.ToValidUTF8(string(t.Piece(-1, i)), "\uFFFD") }
	lp := tokenLogprob{Token: name(id), Logprob: float64(logits[id]) - lse}
	if n > 0 {
		idx := make([]int, len(logits))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
		for _, i := range idx[:min(n, len(idx))] {
			lp.Top = append(lp.Top, topLogprob{Token: name(i), Logprob: float64(logits[i]) - lse})
		}
	}
	return lp
}

// stopper finds stop sequences in streamed text, holding back a tail that may be the
// start of one.
type stopper struct {
	stops   []string
	pending string
}

// add returns the text that is final and whether a stop sequence was found (the text
// before it is returned; nothing after it).
func (s *stopper) add(t string) (string, bool) {
	if len(s.stops) == 0 {
		return t, false
	}
	buf := s.pending + t
	cut := -1
	for _, st := range s.stops {
		if i := strings.Index(buf, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		s.pending = ""
		return buf[:cut], true
	}
	hold := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(buf)); k > hold; k-- {
			if strings.HasSuffix(buf, st[:k]) {
				hold = k
				break
			}
		}
	}
	s.pending = buf[len(buf)-hold:]
	return buf[:len(buf)-hold], false
}

func (s *stopper) flush() string {
	p := s.pending
	s.pending = ""
	return p
}

// usage is OpenAI's usage object with vLLM's prompt_tokens_details.
type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

type segmentReport struct {
	Kind string `json:"kind"`
	// Document is the index of the document (given ones first, then retrieved ones);
	// absent for the prefix.
	Document     *int    `json:"document,omitempty"`
	Key          string  `json:"key"`
	Tokens       int     `json:"tokens"`
	CachedTokens int     `json:"cached_tokens"`
	Reused       int     `json:"reused"`
	Recomputed   int     `json:"recomputed"`
	Source       string  `json:"source"`
	Stored       bool    `json:"stored"`
	Exact        bool    `json:"exact"`
	Impact       float64 `json:"impact,omitempty"`
}

type ragkvReport struct {
	Method           string            `json:"method"`
	Ratio            float64           `json:"ratio"`
	PromptTokens     int               `json:"prompt_tokens"`
	QueryTokens      int               `json:"query_tokens"`
	RecomputedTokens float64           `json:"recomputed_tokens"`
	RecomputeFrac    float64           `json:"recompute_frac"`
	CachedTokens     int               `json:"cached_tokens"`
	CacheHits        map[string]int    `json:"cache_hits"`
	PrepareSeconds   float64           `json:"prepare_seconds"`
	LoadSeconds      float64           `json:"load_seconds"`
	RecomputeSeconds float64           `json:"recompute_seconds"`
	PrefillSeconds   float64           `json:"prefill_seconds"`
	LoadHiddenFrac   float64           `json:"load_hidden_frac"`
	FirstToken       int               `json:"first_token"`
	FirstText        string            `json:"first_text"`
	Segments         []segmentReport   `json:"segments"`
	Retrieved        []retrievedReport `json:"retrieved"`
	Prompt           promptReport      `json:"prompt"`
}

// cachedSource reports whether a segment's KV was read from the chunk cache.
func cachedSource(src string) bool { return src != "computed" && src != "none" && src != "" }

func (s *Server) report(j *job, out *blend.PrefillOutput) (*ragkvReport, usage) {
	st := &out.Stats
	rep := &ragkvReport{Method: string(st.Method), Ratio: st.Ratio, PromptTokens: st.Tokens, QueryTokens: st.Query,
		RecomputedTokens: st.Recomputed, RecomputeFrac: st.RecomputeFrac, CacheHits: out.CacheHits,
		PrepareSeconds: out.Prepare.Seconds(), LoadSeconds: st.Load.Seconds(), RecomputeSeconds: st.Compute.Seconds(),
		PrefillSeconds: (out.Prepare + st.Total).Seconds(), LoadHiddenFrac: st.LoadHiddenFrac,
		FirstToken: out.FirstToken, FirstText: out.FirstText, Retrieved: j.retrieved, Prompt: j.prompt}
	if rep.Retrieved == nil {
		rep.Retrieved = []retrievedReport{}
	}
	if rep.Prompt.Documents == nil {
		rep.Prompt.Documents = []string{}
	}
	doc := 0
	for _, seg := range out.Segments {
		r := segmentReport{Kind: seg.Kind, Key: seg.Key.String(), Tokens: seg.Tokens, Reused: seg.Reused, Recomputed: seg.Recomputed,
			Source: seg.Source, Stored: seg.Stored, Exact: seg.Exact, Impact: seg.Impact}
		if seg.Kind == "chunk" {
			d := doc
			r.Document = &d
			doc++
		}
		if cachedSource(seg.Source) {
			r.CachedTokens = seg.Tokens
			rep.CachedTokens += seg.Tokens
		}
		rep.Segments = append(rep.Segments, r)
	}
	var u usage
	u.PromptTokens = st.Tokens
	u.PromptTokensDetails.CachedTokens = rep.CachedTokens
	return rep, u
}
