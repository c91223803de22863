package lexical

import (
	"errors"
	"sync"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/mapping"
)

var (
	analyzerOnce sync.Once
	analyzerVal  *analysis.DefaultAnalyzer
	analyzerErr  error
)

// enAnalyzer returns bleve's English analyzer "en": unicode tokenizer, possessive
// filter, lower case, English stop words, Porter stemmer.
func enAnalyzer() (*analysis.DefaultAnalyzer, error) {
	analyzerOnce.Do(func() {
		im := mapping.NewIndexMapping()
		a, ok := im.AnalyzerNamed(en.AnalyzerName).(*analysis.DefaultAnalyzer)
		if !ok || a == nil || a.Tokenizer == nil {
			analyzerErr = errors.New("lexical: bleve analyzer \"en\" is not registered as a tokenizer and token filters")
			return
		}
		analyzerVal = a
	})
	return analyzerVal, analyzerErr
}

// maxCachedTokens bounds a termCache (a shard of any size has a vocabulary far below
// it on natural text; beyond it, tokens are filtered uncached).
const maxCachedTokens = 1 << 20

type cachedTerm struct {
	term string
	keep bool // false: a stop word, dropped
}

// termCache analyzes text exactly as bleve's "en" analyzer does — every one of its
// token filters maps one token to at most one token and depends on that token alone —
// but runs the filters (the Porter stemmer is most of the analysis time) once per
// distinct raw token. Not safe for concurrent use.
type termCache struct {
	a    *analysis.DefaultAnalyzer
	idOf map[string]uint32 // raw token → interned term id (ids)
	one  analysis.TokenStream
	tok  analysis.Token
}

func newTermCache() (*termCache, error) {
	a, err := enAnalyzer()
	if err != nil {
		return nil, err
	}
	return &termCache{a: a, idOf: map[string]uint32{}, one: make(analysis.TokenStream, 1)}, nil
}

// filter runs the analyzer's token filters on one token.
func (c *termCache) filter(t *analysis.Token) cachedTerm {
	c.tok = *t
	c.tok.Term = append([]byte(nil), t.Term...) // filters may rewrite the bytes in place
	c.one = c.one[:1]
	c.one[0] = &c.tok
	ts := c.one
	for _, f := range c.a.TokenFilters {
		ts = f.Filter(ts)
	}
	if len(ts) == 0 {
		return cachedTerm{}
	}
	return cachedTerm{term: string(ts[0].Term), keep: true}
}

// ids appends, for every analyzed term of text, the id intern gives it (intern is
// called once per distinct raw token; a stop word gets no id).
func (c *termCache) ids(text string, intern func(term string) uint32, dst []uint32) []uint32 {
	if !isASCII(text) {
		for _, t := range c.a.Tokenizer.Tokenize([]byte(text)) {
			if id := c.idOfToken(t, intern); id != noTerm {
				dst = append(dst, id)
			}
		}
		return dst
	}
	for i := 0; ; {
		start, end := nextASCIIWord(text, i)
		if start < 0 {
			return dst
		}
		i = end
		id, ok := c.idOf[text[start:end]]
		if !ok {
			id = c.idOfToken(&analysis.Token{Term: []byte(text[start:end]), Start: start, End: end}, intern)
		}
		if id != noTerm {
			dst = append(dst, id)
		}
	}
}

// idOfToken returns the interned id of the raw token t (noTerm for a stop word),
// filtering and caching it on first sight.
func (c *termCache) idOfToken(t *analysis.Token, intern func(term string) uint32) uint32 {
	if id, ok := c.idOf[string(t.Term)]; ok {
		return id
	}
	ct := c.filter(t)
	id := noTerm
	if ct.keep {
		id = intern(ct.term)
	}
	if len(c.idOf) < maxCachedTokens {
		c.idOf[string(t.Term)] = id
	}
	return id
}

// noTerm is the id of a dropped (stop-word) token.
const noTerm = ^uint32(0)

// Tokens returns the analyzed terms of text, in order (what the index holds).
func Tokens(text string) ([]string, error) {
	a, err := enAnalyzer()
	if err != nil {
		return nil, err
	}
	ts := a.Analyze([]byte(text))
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t.Term)
	}
	return out, nil
}

// Query is an analyzed query: its distinct terms in first-occurrence order and how many
// times each occurs (a repeated query term counts that many times, as in Lucene's
// bag-of-words query).
type Query struct {
	Terms  []string
	Counts []int
}

// Analyze turns query text into a Query. An empty Query (all stop words, say) matches
// nothing.
func Analyze(text string) (Query, error) {
	toks, err := Tokens(text)
	if err != nil {
		return Query{}, err
	}
	var q Query
	pos := map[string]int{}
	for _, t := range toks {
		if i, ok := pos[t]; ok {
			q.Counts[i]++
			continue
		}
		pos[t] = len(q.Terms)
		q.Terms = append(q.Terms, t)
		q.Counts = append(q.Counts, 1)
	}
	return q, nil
}
