package lexical

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"
)

// BM25 parameters (Robertson; Lucene and Anserini defaults).
const (
	K1 = 1.2
	B  = 0.75
)

const (
	fieldName   = "t"
	bleveDir    = "bleve"
	lengthsFile = "lengths.bin"
	statsFile   = "lexical.json"
	batchSize   = 512
)

// ErrCorrupt marks a shard directory whose files do not agree with each other.
var ErrCorrupt = errors.New("lexical: corrupt shard")

var (
	analyzerOnce sync.Once
	analyzerVal  analysis.Analyzer
	analyzerErr  error
)

func newMapping() *mapping.IndexMappingImpl {
	fm := mapping.NewTextFieldMapping()
	fm.Analyzer = en.AnalyzerName
	fm.Store = false
	fm.IncludeTermVectors = false
	fm.IncludeInAll = false
	fm.DocValues = false
	dm := mapping.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt(fieldName, fm)
	im := mapping.NewIndexMapping()
	im.DefaultMapping = dm
	im.DefaultAnalyzer = en.AnalyzerName
	im.StoreDynamic = false
	im.IndexDynamic = false
	im.DocValuesDynamic = false
	return im
}

func enAnalyzer() (analysis.Analyzer, error) {
	analyzerOnce.Do(func() {
		analyzerVal = newMapping().AnalyzerNamed(en.AnalyzerName)
		if analyzerVal == nil {
			analyzerErr = errors.New("lexical: bleve analyzer \"en\" is not registered")
		}
	})
	return analyzerVal, analyzerErr
}

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

// Stats are a shard's (or, summed, a collection's) length statistics.
type Stats struct {
	Docs        int64 `json:"docs"`
	TotalLength int64 `json:"total_length"`
}

// Build indexes texts[i] as document ordinal i into a new shard in dir (which must not
// exist or be empty). It returns the shard's statistics.
func Build(ctx context.Context, dir string, texts []string) (Stats, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, fmt.Errorf("lexical: %w", err)
	}
	idx, err := bleve.NewUsing(filepath.Join(dir, bleveDir), newMapping(), bleve.Config.DefaultIndexType, bleve.Config.DefaultKVStore, nil)
	if err != nil {
		return Stats{}, fmt.Errorf("lexical: create index: %w", err)
	}
	a, err := enAnalyzer()
	if err != nil {
		_ = idx.Close()
		return Stats{}, err
	}
	lengths := make([]byte, 4*len(texts))
	var st Stats
	batch := idx.NewBatch()
	for i, text := range texts {
		if i%batchSize == 0 {
			if err := ctx.Err(); err != nil {
				_ = idx.Close()
				return Stats{}, err
			}
		}
		// Our own token count equals bleve's field length (len of the analyzed token
		// stream, see document.TextField.Analyze); TestLengthsMatchBleveNorms checks it.
		n := len(a.Analyze([]byte(text)))
		binary.LittleEndian.PutUint32(lengths[4*i:], uint32(n))
		st.TotalLength += int64(n)
		if err := batch.Index(strconv.Itoa(i), map[string]any{fieldName: text}); err != nil {
			_ = idx.Close()
			return Stats{}, fmt.Errorf("lexical: index doc %d: %w", i, err)
		}
		if batch.Size() >= batchSize {
			if err := idx.Batch(batch); err != nil {
				_ = idx.Close()
				return Stats{}, fmt.Errorf("lexical: index batch: %w", err)
			}
			batch.Reset()
		}
	}
	if batch.Size() > 0 {
		if err := idx.Batch(batch); err != nil {
			_ = idx.Close()
			return Stats{}, fmt.Errorf("lexical: index batch: %w", err)
		}
	}
	if err := idx.Close(); err != nil {
		return Stats{}, fmt.Errorf("lexical: close index: %w", err)
	}
	st.Docs = int64(len(texts))
	if err := writeFileSync(filepath.Join(dir, lengthsFile), lengths); err != nil {
		return Stats{}, err
	}
	b, _ := json.Marshal(st)
	if err := writeFileSync(filepath.Join(dir, statsFile), b); err != nil {
		return Stats{}, err
	}
	return st, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("lexical: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("lexical: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("lexical: sync %s: %w", path, err)
	}
	return f.Close()
}

// Shard is an open, immutable shard index. It is safe for concurrent use.
type Shard struct {
	idx     bleve.Index
	reader  index.IndexReader
	lengths []uint32
	// ordOf maps bleve's internal document number to our ordinal.
	ordOf []uint32
	stats Stats
}

// Open opens a shard built by Build, read-only.
func Open(dir string) (*Shard, error) {
	b, err := os.ReadFile(filepath.Join(dir, statsFile))
	if err != nil {
		return nil, fmt.Errorf("lexical: %w", err)
	}
	var st Stats
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, statsFile, err)
	}
	lb, err := os.ReadFile(filepath.Join(dir, lengthsFile))
	if err != nil {
		return nil, fmt.Errorf("lexical: %w", err)
	}
	if int64(len(lb)) != 4*st.Docs {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrCorrupt, lengthsFile, len(lb), 4*st.Docs)
	}
	s := &Shard{stats: st, lengths: make([]uint32, st.Docs)}
	for i := range s.lengths {
		s.lengths[i] = binary.LittleEndian.Uint32(lb[4*i:])
	}
	s.idx, err = bleve.OpenUsing(filepath.Join(dir, bleveDir), map[string]any{"read_only": true})
	if err != nil {
		return nil, fmt.Errorf("lexical: open index: %w", err)
	}
	adv, err := s.idx.Advanced()
	if err != nil {
		_ = s.idx.Close()
		return nil, fmt.Errorf("lexical: %w", err)
	}
	s.reader, err = adv.Reader()
	if err != nil {
		_ = s.idx.Close()
		return nil, fmt.Errorf("lexical: reader: %w", err)
	}
	if err := s.loadOrdinals(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Shard) loadOrdinals() error {
	n, err := s.reader.DocCount()
	if err != nil {
		return fmt.Errorf("lexical: %w", err)
	}
	if int64(n) != s.stats.Docs {
		return fmt.Errorf("%w: index holds %d documents, stats say %d", ErrCorrupt, n, s.stats.Docs)
	}
	it, err := s.reader.DocIDReaderAll()
	if err != nil {
		return fmt.Errorf("lexical: %w", err)
	}
	defer it.Close()
	for {
		id, err := it.Next()
		if err != nil {
			return fmt.Errorf("lexical: %w", err)
		}
		if id == nil {
			break
		}
		ext, err := s.reader.ExternalID(id)
		if err != nil {
			return fmt.Errorf("lexical: %w", err)
		}
		ord, err := strconv.ParseUint(ext, 10, 32)
		if err != nil || int64(ord) >= s.stats.Docs {
			return fmt.Errorf("%w: document id %q", ErrCorrupt, ext)
		}
		in := id.Value()
		if in >= uint64(len(s.ordOf)) {
			grow := make([]uint32, in+1)
			copy(grow, s.ordOf)
			for i := len(s.ordOf); i < len(grow); i++ {
				grow[i] = math.MaxUint32
			}
			s.ordOf = grow
		}
		s.ordOf[in] = uint32(ord)
	}
	return nil
}

// Stats returns the shard's document count and total token count.
func (s *Shard) Stats() Stats { return s.stats }

// Len returns the analyzed length of document ord.
func (s *Shard) Len(ord int) int { return int(s.lengths[ord]) }

// DocFreqs adds the shard's document frequency of every query term to df.
func (s *Shard) DocFreqs(ctx context.Context, q Query, df []int64) error {
	for i, t := range q.Terms {
		r, err := s.reader.TermFieldReader(ctx, []byte(t), fieldName, false, false, false)
		if err != nil {
			return fmt.Errorf("lexical: term %q: %w", t, err)
		}
		df[i] += int64(r.Count())
		_ = r.Close()
	}
	return nil
}

// Params are the collection-global quantities a shard scores with.
type Params struct {
	// Weights[i] is Counts[i] × idf(Terms[i]) with the collection-global idf.
	Weights []float64
	// AvgLen is the collection-global mean document length.
	AvgLen float64
}

// IDF is the BM25 idf with collection-global N and df.
func IDF(n, df int64) float64 {
	return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
}

// GlobalParams computes Params from collection-global statistics.
func GlobalParams(q Query, st Stats, df []int64) Params {
	p := Params{Weights: make([]float64, len(q.Terms))}
	if st.Docs > 0 {
		p.AvgLen = float64(st.TotalLength) / float64(st.Docs)
	}
	for i := range q.Terms {
		p.Weights[i] = float64(q.Counts[i]) * IDF(st.Docs, df[i])
	}
	return p
}

// Accumulate writes every document's BM25 score into acc (len ≥ Stats().Docs; zeroed
// here) and returns the ordinals of the documents that matched at least one term, in
// no particular order (appended to matched[:0]). Terms are added in query order, so a
// document's score is the same float64 in every shard layout.
func (s *Shard) Accumulate(ctx context.Context, q Query, p Params, acc []float64, matched []uint32) ([]uint32, error) {
	acc = acc[:s.stats.Docs]
	clear(acc)
	matched = matched[:0]
	avg := p.AvgLen
	if avg <= 0 {
		avg = 1
	}
	var tfd index.TermFieldDoc
	for i, t := range q.Terms {
		w := p.Weights[i]
		if w == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r, err := s.reader.TermFieldReader(ctx, []byte(t), fieldName, true, false, false)
		if err != nil {
			return nil, fmt.Errorf("lexical: term %q: %w", t, err)
		}
		for {
			d, err := r.Next(tfd.Reset())
			if err != nil {
				_ = r.Close()
				return nil, fmt.Errorf("lexical: postings of %q: %w", t, err)
			}
			if d == nil {
				break
			}
			in := d.ID.Value()
			if in >= uint64(len(s.ordOf)) || s.ordOf[in] == math.MaxUint32 {
				_ = r.Close()
				return nil, fmt.Errorf("%w: posting for unknown document %d", ErrCorrupt, in)
			}
			ord := s.ordOf[in]
			tf := float64(d.Freq)
			dl := float64(s.lengths[ord])
			if acc[ord] == 0 {
				matched = append(matched, ord)
			}
			acc[ord] += w * tf * (K1 + 1) / (tf + K1*(1-B+B*dl/avg))
		}
		_ = r.Close()
	}
	return matched, nil
}

// Close releases the index.
func (s *Shard) Close() error {
	var err error
	if s.reader != nil {
		err = s.reader.Close()
	}
	if e := s.idx.Close(); err == nil {
		err = e
	}
	return err
}

// SubtractDeadDocFreqs subtracts from df, for every query term, how many of the
// shard's documents that contain it are dead (tombstoned by the caller), so that
// df counts live documents only: a shard with tombstones then scores exactly as a
// shard built without the dead documents would.
func (s *Shard) SubtractDeadDocFreqs(ctx context.Context, q Query, dead func(ord uint32) bool, df []int64) error {
	var tfd index.TermFieldDoc
	for i, t := range q.Terms {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := s.reader.TermFieldReader(ctx, []byte(t), fieldName, false, false, false)
		if err != nil {
			return fmt.Errorf("lexical: term %q: %w", t, err)
		}
		for {
			d, err := r.Next(tfd.Reset())
			if err != nil {
				_ = r.Close()
				return fmt.Errorf("lexical: postings of %q: %w", t, err)
			}
			if d == nil {
				break
			}
			in := d.ID.Value()
			if in >= uint64(len(s.ordOf)) || s.ordOf[in] == math.MaxUint32 {
				_ = r.Close()
				return fmt.Errorf("%w: posting for unknown document %d", ErrCorrupt, in)
			}
			if dead(s.ordOf[in]) {
				df[i]--
			}
		}
		_ = r.Close()
	}
	return nil
}
