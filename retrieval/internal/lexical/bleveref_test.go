package lexical

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/mapping"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/ragkv/ragkv/internal/shared"
)

// bleveMapping is the mapping the bleve-backed shards of earlier versions used.
func bleveMapping() *mapping.IndexMappingImpl {
	fm := mapping.NewTextFieldMapping()
	fm.Analyzer = en.AnalyzerName
	fm.Store = false
	fm.IncludeTermVectors = false
	fm.IncludeInAll = false
	fm.DocValues = false
	dm := mapping.NewDocumentStaticMapping()
	dm.AddFieldMappingsAt("t", fm)
	im := mapping.NewIndexMapping()
	im.DefaultMapping = dm
	im.DefaultAnalyzer = en.AnalyzerName
	im.StoreDynamic = false
	im.IndexDynamic = false
	im.DocValuesDynamic = false
	return im
}

type posting struct{ ord, tf uint32 }

// blevePostings indexes texts with bleve (scorch) and returns every term's postings in
// ordinal order, and each document's field length from bleve's norms.
func blevePostings(t *testing.T, texts []string) (map[string][]posting, []int) {
	t.Helper()
	idx, err := bleve.NewUsing(filepath.Join(t.TempDir(), "bleve"), bleveMapping(), bleve.Config.DefaultIndexType, bleve.Config.DefaultKVStore, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	batch := idx.NewBatch()
	for i, text := range texts {
		if err := batch.Index(strconv.Itoa(i), map[string]any{"t": text}); err != nil {
			t.Fatal(err)
		}
		if batch.Size() >= 512 {
			if err := idx.Batch(batch); err != nil {
				t.Fatal(err)
			}
			batch.Reset()
		}
	}
	if err := idx.Batch(batch); err != nil {
		t.Fatal(err)
	}
	adv, err := idx.Advanced()
	if err != nil {
		t.Fatal(err)
	}
	rd, err := adv.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	ordOf := map[uint64]uint32{}
	it, err := rd.DocIDReaderAll()
	if err != nil {
		t.Fatal(err)
	}
	for {
		id, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if id == nil {
			break
		}
		ext, err := rd.ExternalID(id)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := strconv.Atoi(ext)
		ordOf[id.Value()] = uint32(o)
	}
	_ = it.Close()
	dict, err := rd.FieldDict("t")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]posting{}
	lengths := make([]int, len(texts))
	var tfd index.TermFieldDoc
	for {
		e, err := dict.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e == nil {
			break
		}
		r, err := rd.TermFieldReader(context.Background(), []byte(e.Term), "t", true, true, false)
		if err != nil {
			t.Fatal(err)
		}
		var ps []posting
		for {
			d, err := r.Next(tfd.Reset())
			if err != nil {
				t.Fatal(err)
			}
			if d == nil {
				break
			}
			o := ordOf[d.ID.Value()]
			ps = append(ps, posting{o, uint32(d.Freq)})
			lengths[o] = int(math.Round(1 / (d.Norm * d.Norm)))
		}
		_ = r.Close()
		slices.SortFunc(ps, func(a, b posting) int { return int(a.ord) - int(b.ord) })
		out[e.Term] = ps
	}
	_ = dict.Close()
	return out, lengths
}

// ourPostings lists every term of a shard with its postings (dictionary order).
func ourPostings(t *testing.T, s *Shard) map[string][]posting {
	t.Helper()
	out := map[string][]posting{}
	off := s.dictOff
	var c cursor
	for k := 0; k < s.Terms(); k++ {
		term, ti, next, err := s.entry(off)
		if err != nil {
			t.Fatal(err)
		}
		var ps []posting
		for c.init(ti, s.docs); c.doc != noMore; c.next() {
			ps = append(ps, posting{c.doc, c.tf})
		}
		if c.err != nil {
			t.Fatal(c.err)
		}
		if len(ps) != int(ti.df) {
			t.Fatalf("term %q: df %d, %d postings", term, ti.df, len(ps))
		}
		out[string(term)] = ps
		off = next
	}
	return out
}

func checkSameIndex(t *testing.T, texts []string) {
	t.Helper()
	want, wantLen := blevePostings(t, texts)
	s := build(t, texts)
	got := ourPostings(t, s)
	if len(got) != len(want) {
		t.Errorf("%d terms, bleve has %d", len(got), len(want))
	}
	for term, wp := range want {
		gp := got[term]
		if fmt.Sprint(gp) != fmt.Sprint(wp) {
			t.Fatalf("term %q: postings %v, bleve %v", term, gp, wp)
		}
		ti, ok, err := s.lookup(term)
		if err != nil || !ok || int(ti.df) != len(wp) {
			t.Fatalf("lookup %q: %v %v %+v", term, ok, err, ti)
		}
	}
	for o, l := range wantLen {
		if l != 0 && s.Len(o) != l { // 0: bleve saw no terms (no norm)
			t.Fatalf("document %d: length %d, bleve's norm says %d", o, s.Len(o), l)
		}
	}
	if _, ok, _ := s.lookup("\x00not-a-term"); ok {
		t.Fatal("found a term that is not there")
	}
}

// TestPostingsEqualBleve: the index holds exactly the postings (terms, ordinals, term
// frequencies) and lengths bleve's scorch index holds for the same texts, on odd text.
func TestPostingsEqualBleve(t *testing.T) {
	texts := append([]string{}, corpus...)
	texts = append(texts,
		"Ünïcödé façade naïve café — résumé's “quoted” 3.14 1,000 e-mail a.b.c don't it's JOHN'S",
		"日本語のテキスト 中文 한국어 العربية emoji 🙂🙂 mixed123abc",
		"", "the of and", "'s", "’s ＇s", "x", "Running runs ran runner's",
	)
	for i := 0; i < 300; i++ {
		texts = append(texts, fmt.Sprintf("doc %d term%d common words %s", i, i%17, corpus[i%len(corpus)]))
	}
	checkSameIndex(t, texts)
}

// TestPostingsEqualBleveSciFact compares with bleve on the SciFact corpus (titles +
// abstracts, as the retrieval store indexes them).
func TestPostingsEqualBleveSciFact(t *testing.T) {
	f, err := os.Open(shared.Path(t, "data", "scifact", "corpus.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var texts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var d struct{ Title, Text string }
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, d.Title+"\n"+d.Text)
	}
	if testing.Short() {
		texts = texts[:1000]
	}
	checkSameIndex(t, texts)
}
