// Package synth generates deterministic synthetic text corpora for datastore
// benchmarks: words drawn by Zipf's law over a frequency-ranked vocabulary (Zipf 1935;
// natural text has exponent ≈ 1), mixed with topic-specific Zipf distributions so that
// documents of one topic share content words (what dense retrieval keys on), and
// log-normal passage lengths (web passages' lengths are roughly log-normal). Document
// i depends only on (seed, i), so a corpus of any size streams in constant memory and
// can be generated in parallel.
package synth

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Options describe a corpus.
type Options struct {
	// Vocab is the vocabulary, most frequent word first (a GloVe file's order).
	Vocab []string
	// Seed makes the corpus (default 1).
	Seed uint64
	// Topics is the number of topics (default 256); TopicShare the fraction of a
	// document's words drawn from its topic (default 0.4).
	Topics     int
	TopicShare float64
	// MedianWords and Sigma are the log-normal passage length: median words and σ of
	// the log (defaults 90 and 0.5); lengths are clipped to [MinWords, MaxWords]
	// (defaults 12 and 250: one 256-word passage per document).
	MedianWords, Sigma float64
	MinWords, MaxWords int
	// Exponent is the Zipf exponent s > 1 of word ranks (default 1.07).
	Exponent float64
}

// Corpus generates documents and queries.
type Corpus struct {
	o      Options
	topics [][]int32 // per topic: a random subset of content-word ranks, in Zipf order
}

const stopRanks = 100 // the most frequent words are never topic words nor query words

// New validates the options and prepares the topics.
func New(o Options) (*Corpus, error) {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Topics == 0 {
		o.Topics = 256
	}
	if o.TopicShare == 0 {
		o.TopicShare = 0.4
	}
	if o.MedianWords == 0 {
		o.MedianWords = 90
	}
	if o.Sigma == 0 {
		o.Sigma = 0.5
	}
	if o.MinWords == 0 {
		o.MinWords = 12
	}
	if o.MaxWords == 0 {
		o.MaxWords = 250
	}
	if o.Exponent == 0 {
		o.Exponent = 1.07
	}
	switch {
	case len(o.Vocab) < 2*stopRanks:
		return nil, fmt.Errorf("synth: vocabulary of %d words, need at least %d", len(o.Vocab), 2*stopRanks)
	case o.Topics < 1 || o.TopicShare < 0 || o.TopicShare > 1:
		return nil, errors.New("synth: topics must be positive and topic share in [0, 1]")
	case o.MinWords < 1 || o.MaxWords < o.MinWords || o.MedianWords <= 0 || o.Sigma < 0:
		return nil, errors.New("synth: invalid passage length distribution")
	case o.Exponent <= 1:
		return nil, errors.New("synth: Zipf exponent must be > 1")
	}
	c := &Corpus{o: o, topics: make([][]int32, o.Topics)}
	r := rand.New(rand.NewPCG(o.Seed, 0x70b1c))
	per := min(2000, len(o.Vocab)-stopRanks)
	for t := range c.topics {
		ws := make([]int32, per)
		for i := range ws {
			// Topic words lean to the frequent end too (a topic's words are common ones).
			ws[i] = int32(stopRanks + int(float64(len(o.Vocab)-stopRanks)*math.Pow(r.Float64(), 2)))
		}
		c.topics[t] = ws
	}
	return c, nil
}

func (c *Corpus) rng(kind, i uint64) *rand.Rand {
	return rand.New(rand.NewPCG(c.o.Seed^kind*0x9e3779b97f4a7c15, i))
}

// Doc returns document i: its id ("s<i>"), title and text, and its topic.
func (c *Corpus) Doc(i int) (id, title, text string, topic int) {
	r := c.rng(1, uint64(i))
	topic = r.IntN(c.o.Topics)
	n := int(math.Round(c.o.MedianWords * math.Exp(c.o.Sigma*r.NormFloat64())))
	n = min(max(n, c.o.MinWords), c.o.MaxWords)
	global := rand.NewZipf(r, c.o.Exponent, 2, uint64(len(c.o.Vocab)-1))
	tw := c.topics[topic]
	local := rand.NewZipf(r, c.o.Exponent, 2, uint64(len(tw)-1))
	var b strings.Builder
	b.Grow(8 * n)
	for w := 0; w < n; w++ {
		if w > 0 {
			b.WriteByte(' ')
		}
		if r.Float64() < c.o.TopicShare {
			b.WriteString(c.o.Vocab[tw[local.Uint64()]])
		} else {
			b.WriteString(c.o.Vocab[global.Uint64()])
		}
	}
	title = c.o.Vocab[tw[local.Uint64()]] + " " + c.o.Vocab[tw[local.Uint64()]]
	return fmt.Sprintf("s%d", i), title, b.String(), topic
}

// Query returns query i over a corpus of n documents: 3 to 6 content words (ranks ≥
// 100) of a document picked by i, and that document's index.
func (c *Corpus) Query(i, n int) (string, int) {
	r := c.rng(2, uint64(i))
	d := r.IntN(n)
	_, _, text, _ := c.Doc(d)
	words := strings.Fields(text)
	stop := map[string]bool{}
	for _, w := range c.o.Vocab[:stopRanks] {
		stop[w] = true
	}
	var content []string
	for _, w := range words {
		if !stop[w] {
			content = append(content, w)
		}
	}
	if len(content) == 0 {
		content = words
	}
	k := 3 + r.IntN(4)
	q := make([]string, 0, k)
	for j := 0; j < k; j++ {
		q = append(q, content[r.IntN(len(content))])
	}
	return strings.Join(q, " "), d
}
