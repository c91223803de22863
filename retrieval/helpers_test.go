package retrieval

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"testing"

	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
	"github.com/ragkv/ragkv/retrieval/internal/lexical"
)

// fixtureDocs builds n documents about four topics; every 10th document repeats the
// text of the one before it (an exact duplicate passage under another id).
func fixtureDocs(n int) []Document {
	topics := []string{"animals", "vehicles", "food", "science"}
	rng := uint64(7)
	next := func(k int) int {
		rng ^= rng << 13
		rng ^= rng >> 7
		rng ^= rng << 17
		return int(rng % uint64(k))
	}
	var docs []Document
	for i := 0; i < n; i++ {
		t := topics[i%4]
		words := embedtest.Topics[t]
		other := embedtest.Topics[topics[(i+1+next(3))%4]]
		var text []byte
		nw := 25 + (i%5)*12
		for w := 0; w < nw; w++ {
			switch r := next(10); {
			case r < 5:
				text = append(text, words[next(len(words))]...)
			case r < 6:
				text = append(text, other[next(len(other))]...)
			case r < 9:
				text = append(text, embedtest.FunctionWords[next(len(embedtest.FunctionWords))]...)
			default:
				text = append(text, fmt.Sprintf("tok%d", next(40))...)
			}
			text = append(text, ' ')
		}
		d := Document{ID: fmt.Sprintf("d%03d", i), Title: fmt.Sprintf("%s note %d", t, i), Text: string(text)}
		if i%10 == 9 {
			d.Text = docs[i-1].Text
		}
		docs = append(docs, d)
	}
	return docs
}

var fixtureQueries = []string{
	"dog fur pet", "engine fuel traffic on the road", "bake bread and cheese", "tumor gene cancer patients",
	"the cat", "tok3 tok7", "vitamin dose for the dog", "kitchen recipe soup",
}

func testSIF(t testing.TB) embed.Embedder {
	t.Helper()
	s, err := embed.NewSIF(embedtest.WordVectors(t), embed.SIFOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openStore(t testing.TB, dir string, embs ...embed.Embedder) *Store {
	t.Helper()
	st, err := Open(context.Background(), Options{Dir: dir, Embedders: embs, BuildParallelism: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ingest(t testing.TB, st *Store, name string, opts *CollectionOptions, shards int, docs []Document) IngestResult {
	t.Helper()
	ctx := context.Background()
	in, err := st.BeginIngest(ctx, name, IngestOptions{Create: opts, Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Add(ctx, docs...); err != nil {
		in.Abort()
		t.Fatal(err)
	}
	res, err := in.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func search(t testing.TB, st *Store, req SearchRequest) []Hit {
	t.Helper()
	res, err := st.Search(context.Background(), req)
	if err != nil {
		t.Fatalf("search %+v: %v", req, err)
	}
	return res.Hits
}

func sameHits(t testing.TB, label string, a, b []Hit) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d hits vs %d", label, len(a), len(b))
	}
	for i := range a {
		if a[i].PassageID != b[i].PassageID || a[i].Score != b[i].Score || a[i].ChunkID != b[i].ChunkID {
			t.Fatalf("%s: hit %d differs: %s %v vs %s %v", label, i, a[i].PassageID, a[i].Score, b[i].PassageID, b[i].Score)
		}
	}
}

// brutePassage is a passage as the brute-force references see it.
type brutePassage struct {
	pid, doc, text string
	body           string // the passage text without its title (what chunk ids hash)
	vec            []float32
}

// allPassages reads every committed passage of a collection.
func allPassages(t testing.TB, st *Store, name string) []brutePassage {
	t.Helper()
	c, err := st.collection(name)
	if err != nil {
		t.Fatal(err)
	}
	sn := c.acquire()
	defer sn.release()
	var pids []string
	for i, sh := range sn.shards {
		for o := 0; o < sh.n; o++ {
			if !sn.dead[i].has(uint32(o)) {
				pids = append(pids, sh.pid(uint32(o)))
			}
		}
	}
	slices.Sort(pids)
	recs, err := st.getPassages(name, pids, redoGen(sn.m))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]brutePassage, len(pids))
	for i, r := range recs {
		out[i] = brutePassage{pid: pids[i], doc: r.Doc, text: indexText(r.Title, r.Text), body: r.Text, vec: r.Vector}
	}
	return out
}

// bruteBM25 scores every passage with textbook BM25 over its analyzed tokens.
func bruteBM25(t testing.TB, ps []brutePassage, query string) map[string]float64 {
	t.Helper()
	toks := make([][]string, len(ps))
	total := 0
	for i, p := range ps {
		tk, err := lexical.Tokens(p.text)
		if err != nil {
			t.Fatal(err)
		}
		toks[i], total = tk, total+len(tk)
	}
	avg := float64(total) / float64(len(ps))
	qt, _ := lexical.Tokens(query)
	out := map[string]float64{}
	for _, term := range qt {
		df := 0
		for _, tk := range toks {
			if slices.Contains(tk, term) {
				df++
			}
		}
		idf := math.Log(1 + (float64(len(ps))-float64(df)+0.5)/(float64(df)+0.5))
		for i, tk := range toks {
			tf := 0
			for _, x := range tk {
				if x == term {
					tf++
				}
			}
			if tf > 0 {
				dl := float64(len(tk))
				out[ps[i].pid] += idf * float64(tf) * 2.2 / (float64(tf) + 1.2*(0.25+0.75*dl/avg))
			}
		}
	}
	return out
}

// ranked orders a score map (score desc, id asc), keeping positive scores when onlyPos.
func ranked(scores map[string]float64, onlyPos bool) []string {
	var ids []string
	for id, s := range scores {
		if !onlyPos || s > 0 {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		if scores[a] != scores[b] {
			if scores[a] > scores[b] {
				return -1
			}
			return 1
		}
		return cmpString(a, b)
	})
	return ids
}

// collapse drops later passages whose text repeats an earlier one's (Search returns each
// chunk once).
func collapse(ids []string, ps []brutePassage) []string {
	body := map[string]string{}
	for _, p := range ps {
		body[p.pid] = p.body
	}
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if !seen[body[id]] {
			seen[body[id]] = true
			out = append(out, id)
		}
	}
	return out
}
