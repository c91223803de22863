package retrieval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/embed/embedtest"
)

func TestChunk(t *testing.T) {
	text := "  one two\tthree\n four five six seven  "
	if got := Chunk(text, 3, 1); !slices.Equal(got, []string{"one two\tthree", "three\n four five", "five six seven"}) {
		t.Fatalf("Chunk(3, 1) = %q", got)
	}
	if got := Chunk(text, 4, 0); !slices.Equal(got, []string{"one two\tthree\n four", "five six seven"}) {
		t.Fatalf("Chunk(4, 0) = %q", got)
	}
	if got := Chunk(text, 10, 2); !slices.Equal(got, []string{"one two\tthree\n four five six seven"}) {
		t.Fatalf("short text: %q", got)
	}
	if got := Chunk(text, -1, 0); len(got) != 1 || got[0] != strings.TrimSpace(text) {
		t.Fatalf("no chunking: %q", got)
	}
	if got := Chunk(" \n", 3, 1); got != nil {
		t.Fatalf("blank text: %q", got)
	}
	// Every word appears, windows advance by words − overlap.
	var words []string
	for i := 0; i < 1000; i++ {
		words = append(words, fmt.Sprint("w", i))
	}
	cs := Chunk(strings.Join(words, " "), 256, 32)
	if len(cs) != 5 || !strings.HasPrefix(cs[1], "w224 ") || !strings.HasSuffix(cs[4], " w999") {
		t.Fatalf("1000 words in 256/32 windows: %d chunks, second starts %q", len(cs), cs[1][:10])
	}
	if PassageID("a#b", 3) != "a#b#3" || DocOfPassage("a#b#3") != "a#b" {
		t.Fatal("passage ids")
	}
	if ChunkID("hello") != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatal("ChunkID is not the SHA-256 of the text")
	}
}

func TestMinHash(t *testing.T) {
	var words []string
	for i := 0; i < 120; i++ {
		words = append(words, fmt.Sprint("w", i%97, "x", i%13))
	}
	a := strings.Join(words, " ")
	words[60] = "changed"
	b := strings.Join(words, " ")
	sa, sb := minhash(a), minhash(b)
	if s := sa.similarity(&sb); s < 0.85 {
		t.Fatalf("near duplicates: similarity %v", s)
	}
	sc := minhash("completely different text about cats and dogs and road traffic")
	if s := sa.similarity(&sc); s > 0.1 {
		t.Fatalf("unrelated texts: similarity %v", s)
	}
	if minhash(" A  b\nC ") != minhash("a b c") {
		t.Fatal("minhash is not normalization-invariant")
	}
}

// TestSearchMatchesBruteForce checks BM25 against textbook BM25 computed over every
// passage, and dense search (full vectors, and PCA codes + rescoring) against a scan
// of the stored full vectors.
func TestSearchMatchesBruteForce(t *testing.T) {
	sif := testSIF(t)
	st := openStore(t, t.TempDir(), sif)
	defer st.Close()
	docs := fixtureDocs(40)
	ingest(t, st, "full", &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5, PCADims: -1, Dedup: DedupNone}, 1, docs)
	ingest(t, st, "pca", &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5, PCADims: 6, Int8: true, Dedup: DedupNone}, 2, docs)
	ps := allPassages(t, st, "full")
	if len(ps) < 80 {
		t.Fatalf("only %d passages", len(ps))
	}
	c, _ := st.collection("full")
	sn := c.acquire()
	qe := sn.emb
	sn.release()
	for _, q := range fixtureQueries {
		want := collapse(ranked(bruteBM25(t, ps, q), true), ps)
		got := search(t, st, SearchRequest{Collection: "full", Query: q, K: 10, Mode: ModeBM25})
		if len(got) != min(10, len(want)) {
			t.Fatalf("%q: %d hits, want %d", q, len(got), min(10, len(want)))
		}
		scores := bruteBM25(t, ps, q)
		for i, h := range got {
			if math.Abs(h.Score-scores[h.PassageID]) > 1e-9 || h.PassageID != want[i] {
				t.Fatalf("%q rank %d: %s %v, brute force %s %v", q, i, h.PassageID, h.Score, want[i], scores[want[i]])
			}
		}
		qv, err := qe.Embed(context.Background(), []string{q})
		if err != nil {
			t.Fatal(err)
		}
		dense := map[string]float64{}
		for _, p := range ps {
			dense[p.pid] = float64(embed.Dot(qv[0], p.vec))
		}
		wantD := collapse(ranked(dense, false), ps)
		for _, coll := range []string{"full", "pca"} {
			got := search(t, st, SearchRequest{Collection: coll, Query: q, K: 10, Mode: ModeDense})
			for i, h := range got {
				if h.PassageID != wantD[i] || math.Abs(h.Score-dense[wantD[i]]) > 1e-6 {
					t.Fatalf("%s %q rank %d: %s %v, brute force %s %v", coll, q, i, h.PassageID, h.Score, wantD[i], dense[wantD[i]])
				}
			}
		}
	}
	// Codes only (no rescoring) is an approximation: with 6 int8 dims it differs.
	info, _ := st.Collection("pca")
	if info.PCADims != 6 || !info.Int8 || info.BytesPerVector != 6 {
		t.Fatalf("pca collection info %+v", info)
	}
	// Every search above counted against its collection.
	full, _ := st.Collection("full")
	if n := uint64(len(fixtureQueries)); full.Queries != 2*n || info.Queries != n {
		t.Fatalf("queries: full %d (want %d), pca %d (want %d)", full.Queries, 2*n, info.Queries, n)
	}
}

// TestShardingIsExact: 1 shard, 3 shards, two incremental ingests and a rebuild give
// identical rankings and scores in every mode, with filters and grouping.
func TestShardingIsExact(t *testing.T) {
	sif := testSIF(t)
	st := openStore(t, t.TempDir(), sif)
	defer st.Close()
	docs := fixtureDocs(48)
	opts := &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5, PCADims: 8}
	ingest(t, st, "one", opts, 1, docs)
	ingest(t, st, "three", opts, 3, docs)
	ingest(t, st, "incr", opts, 2, docs[:30])
	r := ingest(t, st, "incr", opts, 2, docs[30:])
	if r.Generation != 2 || r.TotalDocs != 48 {
		t.Fatalf("second ingest: %+v", r)
	}
	if info, _ := st.Collection("incr"); info.Shards != 4 {
		t.Fatalf("incremental collection has %d shards, want 4", info.Shards)
	}
	w := 0.6
	reqs := []SearchRequest{
		{Mode: ModeBM25, K: 15},
		{Mode: ModeDense, K: 15},
		{Mode: ModeHybrid, K: 15},
		{Mode: ModeHybrid, K: 15, Fusion: FusionRRF},
		{Mode: ModeHybrid, K: 12, FusionWeight: &w, GroupByDoc: true},
		{Mode: ModeBM25, K: 5, DocIDs: []string{"d003", "d007", "d011", "d040"}},
		{Mode: ModeDense, K: 20, ExcludeDocIDs: []string{"d001", "d002"}, GroupByDoc: true},
	}
	check := func(label string, reqs []SearchRequest, colls ...string) {
		for _, q := range fixtureQueries {
			for _, req := range reqs {
				var ref []Hit
				for i, c := range colls {
					req.Collection, req.Query = c, q
					hits := search(t, st, req)
					if i == 0 {
						ref = hits
						continue
					}
					sameHits(t, fmt.Sprintf("%s %s %+v", label, c, req), ref, hits)
				}
			}
		}
	}
	check("layouts", reqs, "one", "three")
	// The incremental collection fitted its embedder state and projection on its first
	// ingest only, so only BM25 (which needs no fitting) must agree with the others.
	var bm25 []SearchRequest
	for _, r := range reqs {
		if r.Mode == ModeBM25 {
			bm25 = append(bm25, r)
		}
	}
	check("incremental", bm25, "one", "incr")
	if _, err := st.Rebuild(context.Background(), "three", 2); err != nil {
		t.Fatal(err)
	}
	if info, _ := st.Collection("three"); info.Shards != 2 || info.Generation != 2 {
		t.Fatalf("after rebuild: %+v", info)
	}
	check("rebuilt", reqs, "one", "three")
	// Old shard directories are gone once no search holds them.
	ents, _ := os.ReadDir(filepath.Join(st.opts.Dir, "collections", "three"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "g000001") {
			t.Fatalf("obsolete shard %s left behind", e.Name())
		}
	}
}

func TestFiltersAreExact(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	ingest(t, st, "c", &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5, Embedder: "none"}, 3, fixtureDocs(40))
	ps := allPassages(t, st, "c")
	allow := []string{"d005", "d013", "d021", "d029", "d037", "d002"}
	for _, q := range fixtureQueries {
		scores := bruteBM25(t, ps, q)
		var want []string
		seen := map[string]bool{}
		for _, pid := range collapse(ranked(scores, true), ps) {
			d := DocOfPassage(pid)
			if slices.Contains(allow, d) && !seen[d] {
				seen[d] = true
				want = append(want, d)
			}
		}
		// k larger than the first fetch: the depth must grow until k documents survive.
		got := search(t, st, SearchRequest{Collection: "c", Query: q, K: 6, Mode: ModeBM25, DocIDs: allow, GroupByDoc: true})
		var gotDocs []string
		for _, h := range got {
			gotDocs = append(gotDocs, h.DocID)
		}
		if !slices.Equal(gotDocs, want[:min(6, len(want))]) {
			t.Fatalf("%q: filtered docs %v, want %v", q, gotDocs, want)
		}
	}
}

func TestDedupAndReingest(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	docs := fixtureDocs(30) // d009, d019, d029 repeat the text of their predecessors
	r := ingest(t, st, "exact", &CollectionOptions{Embedder: "none"}, 2, docs)
	if r.Docs != 30 || r.Passages != 27 || r.Duplicates != 3 {
		t.Fatalf("exact dedup: %+v", r)
	}
	// Same documents again: skipped. A new document with a known text: dropped as a
	// duplicate against the committed collection.
	again := append(slices.Clone(docs[:5]), Document{ID: "new", Text: docs[3].Text})
	r = ingest(t, st, "exact", nil, 1, again)
	if r.Docs != 1 || r.DocsSkipped != 5 || r.Passages != 0 || r.Duplicates != 1 || r.Generation != 1 {
		t.Fatalf("re-ingest: %+v", r)
	}
	// MinHash catches near duplicates within one ingest and against the collection.
	near := func(d Document, id string) Document {
		w := strings.Fields(d.Text)
		w[len(w)/2] = "changed"
		return Document{ID: id, Title: d.Title, Text: strings.Join(w, " ")}
	}
	mh := &CollectionOptions{Embedder: "none", Dedup: DedupMinHash, MinHashThreshold: 0.7, ChunkWords: -1}
	long := fixtureDocs(25)[24] // the longest kind of fixture document
	r = ingest(t, st, "mh", mh, 1, []Document{long, near(long, "n1"), docs[0]})
	if r.Passages != 2 || r.Duplicates != 1 {
		t.Fatalf("minhash within ingest: %+v", r)
	}
	r = ingest(t, st, "mh", mh, 1, []Document{near(long, "n2"), docs[1]})
	if r.Passages != 1 || r.Duplicates != 1 {
		t.Fatalf("minhash against collection: %+v", r)
	}
	// Dedup none keeps everything.
	r = ingest(t, st, "none", &CollectionOptions{Embedder: "none", Dedup: DedupNone}, 1, docs)
	if r.Passages != 30 || r.Duplicates != 0 {
		t.Fatalf("dedup none: %+v", r)
	}
	// Hits of identical text collapse after merging.
	hits := search(t, st, SearchRequest{Collection: "none", Query: "tok1 tok2 tok3 dog car bread cell", K: 30, Mode: ModeBM25})
	chunks := map[string]bool{}
	for _, h := range hits {
		if chunks[h.ChunkID] {
			t.Fatalf("chunk %s returned twice", h.ChunkID)
		}
		chunks[h.ChunkID] = true
		if h.ChunkID != ChunkID(h.Text) {
			t.Fatalf("hit %s: chunk id is not the SHA-256 of its text", h.PassageID)
		}
	}
	if _, err := st.BeginIngest(ctx, "exact", IngestOptions{Create: &CollectionOptions{Embedder: "none", ChunkWords: 99}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("ingest with different options: %v", err)
	}
}

func TestPersistenceAndFusionWeights(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sif := testSIF(t)
	st := openStore(t, dir, sif)
	docs := fixtureDocs(40)
	ingest(t, st, "c", &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5}, 2, docs)
	var lqs []LabeledQuery
	for i, q := range fixtureQueries {
		// A document's own topic words as the query; relevant: documents of that topic.
		rel := map[string]int{}
		for j := i % 4; j < 40; j += 4 {
			rel[docs[j].ID] = 1
		}
		lqs = append(lqs, LabeledQuery{ID: fmt.Sprint("q", i), Text: q, Relevant: rel})
	}
	fit, err := st.FitFusion(ctx, "c", lqs, FitOptions{Persist: true, K: 20})
	if err != nil {
		t.Fatal(err)
	}
	best := 0.0
	for _, g := range fit.Grid {
		best = max(best, g.NDCG10)
	}
	if fit.NDCG10 != best || len(fit.Grid) != 21 || len(fit.FoldWeight) != len(lqs) {
		t.Fatalf("fit %+v", fit)
	}
	before := map[string][]Hit{}
	for _, q := range fixtureQueries {
		before[q] = search(t, st, SearchRequest{Collection: "c", Query: q, K: 10})
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openStore(t, dir, sif)
	defer st.Close()
	info, err := st.Collection("c")
	if err != nil || info.Fusion == nil || info.Fusion.BM25 != fit.Weight || info.Docs != 40 {
		t.Fatalf("after reopen: %+v, %v", info, err)
	}
	for _, q := range fixtureQueries {
		res, err := st.Search(ctx, SearchRequest{Collection: "c", Query: q, K: 10})
		if err != nil {
			t.Fatal(err)
		}
		if res.Mode != ModeHybrid || res.FusionWeight != fit.Weight {
			t.Fatalf("default search: mode %s weight %v, want hybrid with fitted %v", res.Mode, res.FusionWeight, fit.Weight)
		}
		sameHits(t, "reopened "+q, before[q], res.Hits)
		if res.Hits[0].Text == "" || res.Hits[0].Title == "" {
			t.Fatal("hit without text or title")
		}
	}
	// A collection built with an embedder the store lacks still serves BM25.
	st2dir := t.TempDir()
	st2 := openStore(t, st2dir, sif)
	ingest(t, st2, "x", nil, 1, docs[:8])
	st2.Close()
	st2 = openStore(t, st2dir)
	defer st2.Close()
	if _, err := st2.Search(ctx, SearchRequest{Collection: "x", Query: "dog", K: 3, Mode: ModeDense}); !errors.Is(err, ErrEmbedderUnavailable) {
		t.Fatalf("dense without embedder: %v", err)
	}
	search(t, st2, SearchRequest{Collection: "x", Query: "dog", K: 3, Mode: ModeBM25})
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir(), testSIF(t))
	defer st.Close()
	ingest(t, st, "text", nil, 1, fixtureDocs(8))
	ingest(t, st, "lex", &CollectionOptions{Embedder: "none"}, 1, fixtureDocs(8))
	ingest(t, st, "vec", &CollectionOptions{Embedder: ClientVectors, Dim: 3, ChunkWords: -1}, 1,
		[]Document{{ID: "a", Text: "alpha", Vector: []float32{1, 0, 0}}, {ID: "b", Text: "beta", Vector: []float32{0, 1, 0}}})
	for _, c := range []struct {
		req  SearchRequest
		want error
	}{
		{SearchRequest{Collection: "nope", Query: "x", K: 1}, ErrCollectionNotFound},
		{SearchRequest{Collection: "text", Query: "  ", K: 1}, ErrEmptyQuery},
		{SearchRequest{Collection: "text", Query: "x", K: 0}, ErrInvalidK},
		{SearchRequest{Collection: "text", Query: "x", K: -3}, ErrInvalidK},
		{SearchRequest{Collection: "text", Query: "x", K: 1 << 30}, ErrInvalidK},
		{SearchRequest{Collection: "text", Query: "x", K: 1, Mode: "fuzzy"}, ErrInvalidArgument},
		{SearchRequest{Collection: "text", Query: "x", K: 1, Vector: []float32{1, 2}}, ErrDimension},
		{SearchRequest{Collection: "lex", Query: "x", K: 1, Mode: ModeDense}, ErrNoDense},
		{SearchRequest{Collection: "vec", Query: "x", K: 1, Mode: ModeDense}, ErrEmptyQuery},
		{SearchRequest{Collection: "vec", K: 1, Mode: ModeDense, Vector: []float32{1, 0}}, ErrDimension},
		{SearchRequest{Collection: "vec", K: 1, Mode: ModeDense, Vector: []float32{0, 0, 0}}, ErrInvalidArgument},
		{SearchRequest{Collection: "vec", K: 1, Mode: ModeDense, Vector: []float32{float32(math.NaN()), 0, 0}}, ErrInvalidArgument},
	} {
		_, err := st.Search(ctx, c.req)
		if !errors.Is(err, c.want) {
			t.Errorf("Search(%+v) = %v, want %v", c.req, err, c.want)
		}
	}
	hits := search(t, st, SearchRequest{Collection: "vec", K: 2, Mode: ModeDense, Vector: []float32{0.1, 2, 0}})
	if hits[0].PassageID != "b#0" || math.Abs(hits[0].Score-2/math.Sqrt(4.01)) > 1e-6 {
		t.Fatalf("client-vector search: %+v", hits)
	}
	// Ingest errors name the document and change nothing.
	in, err := st.BeginIngest(ctx, "vec", IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		doc  Document
		want error
	}{
		{Document{ID: "c", Text: "x", Vector: []float32{1}}, ErrDimension},
		{Document{ID: "", Text: "x", Vector: []float32{1, 0, 0}}, ErrInvalidArgument},
		{Document{ID: "d", Text: " ", Vector: []float32{1, 0, 0}}, ErrInvalidArgument},
		{Document{ID: "e\x00", Text: "x", Vector: []float32{1, 0, 0}}, ErrInvalidArgument},
	} {
		if err := in.Add(ctx, c.doc); !errors.Is(err, c.want) {
			t.Errorf("Add(%+v) = %v, want %v", c.doc, err, c.want)
		}
	}
	in.Abort()
	in, _ = st.BeginIngest(ctx, "text", IngestOptions{})
	if err := in.Add(ctx, Document{ID: "z", Text: "x", Vector: []float32{1}}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("vector for a text collection: %v", err)
	}
	in.Abort()
	for _, name := range []string{"", "a/b", "..", strings.Repeat("x", 65), "-x"} {
		if _, err := st.BeginIngest(ctx, name, IngestOptions{}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("collection name %q: %v", name, err)
		}
	}
	for _, o := range []CollectionOptions{
		{ChunkWords: 10, ChunkOverlap: 10}, {Dedup: "fuzzy"}, {Embedder: "nope"}, {Embedder: ClientVectors},
		{Embedder: ClientVectors, Dim: 4}, {DenseIndex: "lsh"}, {MinHashThreshold: 2},
	} {
		if _, err := st.BeginIngest(ctx, "new", IngestOptions{Create: &o}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("options %+v: %v", o, err)
		}
	}
	if _, err := st.BeginIngest(ctx, "new", IngestOptions{Shards: 1000}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("1000 shards: %v", err)
	}
	if info, _ := st.Collection("vec"); info.Docs != 2 || info.Generation != 1 {
		t.Fatalf("failed adds changed the collection: %+v", info)
	}
}

// failingHook fails a commit at one point, as a crash there would.
func TestCrashBeforeCommitKeepsLastGeneration(t *testing.T) {
	ctx := context.Background()
	for _, point := range []string{"shards-built", "passages-written"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			sif := testSIF(t)
			st := openStore(t, dir, sif)
			docs := fixtureDocs(40)
			ingest(t, st, "c", &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5}, 2, docs[:20])
			before := search(t, st, SearchRequest{Collection: "c", Query: "dog engine bread", K: 10})
			st.opts.testHook = func(p string) error {
				if p == point {
					return errors.New("injected crash at " + p)
				}
				return nil
			}
			in, err := st.BeginIngest(ctx, "c", IngestOptions{Shards: 2})
			if err != nil {
				t.Fatal(err)
			}
			if err := in.Add(ctx, docs[20:]...); err != nil {
				t.Fatal(err)
			}
			if _, err := in.Commit(ctx); err == nil || !strings.Contains(err.Error(), "injected crash") {
				t.Fatalf("commit: %v", err)
			}
			st.opts.testHook = nil
			sameHits(t, "after failed commit", before, search(t, st, SearchRequest{Collection: "c", Query: "dog engine bread", K: 10}))
			st.Close()
			st = openStore(t, dir, sif)
			defer st.Close()
			sameHits(t, "after reopen", before, search(t, st, SearchRequest{Collection: "c", Query: "dog engine bread", K: 10}))
			// Nothing of the failed ingest remains: its documents are new again.
			r := ingest(t, st, "c", nil, 2, docs[20:])
			if r.Docs != 20 || r.DocsSkipped != 0 || r.Generation != 2 {
				t.Fatalf("retry after failure: %+v", r)
			}
		})
	}
}

// TestCrashedProcessRecovers kills a child process in the middle of a commit (after
// the passages reached Badger, before the manifest switch) and checks that the store
// reopens at the last committed generation with nothing of the crashed ingest left.
func TestCrashedProcessRecovers(t *testing.T) {
	if dir := os.Getenv("RAGKV_RETRIEVAL_CRASH_DIR"); dir != "" {
		crashChild(t, dir)
		return
	}
	dir := t.TempDir()
	sif := testSIF(t)
	st := openStore(t, dir, sif)
	docs := fixtureDocs(40)
	ingest(t, st, "c", &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5}, 2, docs[:20])
	before := search(t, st, SearchRequest{Collection: "c", Query: "tumor gene engine", K: 10})
	st.Close()

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := execCommand(exe, "-test.run=^TestCrashedProcessRecovers$")
	cmd.Env = append(os.Environ(), "RAGKV_RETRIEVAL_CRASH_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if code := exitCode(err); code != 3 {
		t.Fatalf("child exited with %d (want the crash exit 3): %v\n%s", code, err, out)
	}
	st = openStore(t, dir, sif)
	defer st.Close()
	info, err := st.Collection("c")
	if err != nil || info.Generation != 1 || info.Docs != 20 {
		t.Fatalf("after crash: %+v, %v", info, err)
	}
	sameHits(t, "after crash", before, search(t, st, SearchRequest{Collection: "c", Query: "tumor gene engine", K: 10}))
	ents, _ := os.ReadDir(filepath.Join(dir, "collections", "c"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "g000002") {
			t.Fatalf("shard %s of the crashed ingest left behind", e.Name())
		}
	}
	r := ingest(t, st, "c", nil, 2, docs[20:])
	if r.Docs != 20 || r.Generation != 2 {
		t.Fatalf("re-ingest after crash: %+v", r)
	}
}

func crashChild(t *testing.T, dir string) {
	st, err := Open(context.Background(), Options{Dir: dir, Embedders: []embed.Embedder{testSIF(t)},
		testHook: func(p string) error {
			if p == "passages-written" {
				os.Exit(3) // die without closing anything
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, st, "c", nil, 2, fixtureDocs(40)[20:])
	t.Fatal("the commit did not reach the crash point")
}

func TestTools(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sif := testSIF(t)
	st := openStore(t, dir, sif)
	tools := []Tool{
		{Name: "PetCare", Description: "helps with animals"},
		{Name: "AutoShop", Description: "the engine and the car"},
		{Name: "Chef", Description: "food"},
		{Name: "Lab", Description: "clinical study of a gene"},
	}
	// Usage queries carry the topic; PetCare's description says little, its usage a lot.
	usage := []ToolUsage{
		{Query: "my dog has fur on the tail", Tool: "PetCare"}, {Query: "kitten and puppy vet", Tool: "PetCare"},
		{Query: "brake and wheel for my truck", Tool: "AutoShop"},
		{Query: "bake bread with cheese", Tool: "Chef"}, {Query: "soup recipe for the kitchen", Tool: "Chef"},
	}
	info, err := st.RegisterTools(ctx, "t", tools, usage, RegisterToolsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Tools != 4 || info.WithUsage != 3 || info.Usages != 5 || info.Method != ToolMethodTool2Vec {
		t.Fatalf("info %+v", info)
	}
	check := func(st *Store) {
		for q, want := range map[string]string{"a dog with fur": "PetCare", "truck engine fuel": "AutoShop", "cook a meal": "Chef", "tumor protein dose": "Lab"} {
			hits, err := st.RetrieveTools(ctx, "t", q, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(hits) != 2 || hits[0].Name != want {
				t.Errorf("%q: %+v, want %s first", q, hits, want)
			}
		}
	}
	check(st)
	st.Close()
	st = openStore(t, dir, sif)
	defer st.Close()
	check(st)
	for _, c := range []struct {
		tools []Tool
		usage []ToolUsage
	}{
		{nil, nil},
		{[]Tool{{Name: "A", Description: "x"}, {Name: "A", Description: "y"}}, nil},
		{[]Tool{{Name: "A", Description: "x"}}, []ToolUsage{{Query: "q", Tool: "B"}}},
		{[]Tool{{Name: "A", Description: ""}}, nil},
	} {
		if _, err := st.RegisterTools(ctx, "bad", c.tools, c.usage, RegisterToolsOptions{}); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("RegisterTools(%+v, %+v) = %v", c.tools, c.usage, err)
		}
	}
	if _, err := st.RetrieveTools(ctx, "missing", "q", 1); !errors.Is(err, ErrToolsNotFound) {
		t.Errorf("missing registry: %v", err)
	}
	if _, err := st.RetrieveTools(ctx, "t", "", 1); !errors.Is(err, ErrEmptyQuery) {
		t.Errorf("empty query: %v", err)
	}
	if _, err := st.RetrieveTools(ctx, "t", "q", 0); !errors.Is(err, ErrInvalidK) {
		t.Errorf("k 0: %v", err)
	}
}

// TestHTTPEmbedderIsADropIn builds a dense collection through an OpenAI-compatible
// server and checks dense search against the server's own vectors.
func TestHTTPEmbedderIsADropIn(t *testing.T) {
	ctx := context.Background()
	srv := embedtest.NewServer(t)
	he, err := embed.NewHTTP(ctx, embed.HTTPOptions{URL: srv.URL, Model: "test", BatchSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, t.TempDir(), he)
	defer st.Close()
	docs := fixtureDocs(24)
	ingest(t, st, "c", &CollectionOptions{ChunkWords: -1, PCADims: -1}, 2, docs)
	ps := allPassages(t, st, "c")
	wv := embedtest.WordVectors(t)
	for _, q := range fixtureQueries {
		qv := embedtest.MeanVector(wv, q)
		embed.Normalize(qv)
		scores := map[string]float64{}
		for _, p := range ps {
			dv := embedtest.MeanVector(wv, p.text)
			embed.Normalize(dv)
			scores[p.pid] = float64(embed.Dot(qv, dv))
		}
		want := collapse(ranked(scores, false), ps)
		hits := search(t, st, SearchRequest{Collection: "c", Query: q, K: 5, Mode: ModeDense})
		for i, h := range hits {
			if h.PassageID != want[i] || math.Abs(scores[want[i]]-h.Score) > 1e-5 {
				t.Fatalf("%q rank %d: %s %v, want %s %v", q, i, h.PassageID, h.Score, want[i], scores[want[i]])
			}
		}
	}
	srv.Fail(500)
	if _, err := st.Search(ctx, SearchRequest{Collection: "c", Query: "dog", K: 3, Mode: ModeDense}); !errors.Is(err, embed.ErrRemote) {
		t.Fatalf("embedding server down: %v", err)
	}
}

// TestToolIndexBatchesEmbeddings: building a tool index costs a few embedding requests
// in all (not one per tool), and a Tool2Vec vector is the normalized mean of its usage
// queries' embeddings.
func TestToolIndexBatchesEmbeddings(t *testing.T) {
	ctx := context.Background()
	srv := embedtest.NewServer(t)
	he, err := embed.NewHTTP(ctx, embed.HTTPOptions{URL: srv.URL, Model: "test", Dim: embedtest.Dim, BatchSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	words := []string{"dog", "car", "bread", "gene", "fur", "engine", "soup", "protein"}
	var tools []Tool
	var usage []ToolUsage
	for i := 0; i < 45; i++ {
		name := fmt.Sprintf("tool%02d", i)
		tools = append(tools, Tool{Name: name, Description: "about the " + words[i%len(words)]})
		if i < 40 {
			usage = append(usage, ToolUsage{Query: "my " + words[(i+1)%len(words)], Tool: name},
				ToolUsage{Query: "a " + words[(i+2)%len(words)] + " and a " + words[(i+3)%len(words)], Tool: name})
		}
	}
	ti, err := BuildToolIndex(ctx, he, tools, usage, ToolMethodTool2Vec)
	if err != nil {
		t.Fatal(err)
	}
	if b := srv.Batches(); len(b) > 3 {
		t.Errorf("%d embedding requests (%v) for %d tools and %d usage queries", len(b), b, len(tools), len(usage))
	}
	wv := embedtest.WordVectors(t)
	for i, tool := range tools {
		var texts []string
		for _, u := range usage {
			if u.Tool == tool.Name {
				texts = append(texts, u.Query)
			}
		}
		if ti.Usage[i] != len(texts) {
			t.Errorf("%s: usage %d, want %d", tool.Name, ti.Usage[i], len(texts))
		}
		if len(texts) == 0 {
			texts = []string{tool.Description}
		}
		want := make([]float32, embedtest.Dim)
		for _, text := range texts {
			v := embedtest.MeanVector(wv, text)
			embed.Normalize(v)
			for j, x := range v {
				want[j] += x
			}
		}
		embed.Normalize(want)
		for j := range want {
			if math.Abs(float64(want[j]-ti.Vectors[i][j])) > 1e-5 {
				t.Fatalf("%s: vector %v, want %v", tool.Name, ti.Vectors[i], want)
			}
		}
	}
}

// TestCrashedDeleteLeavesNothing: a delete that stops after its commit point (the
// manifest is gone) is completed by the next Open, so that nothing of the deleted
// collection resurfaces in one created later under the same name.
func TestCrashedDeleteLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	docs := fixtureDocs(30)
	ingest(t, st, "c", nil, 2, docs[:20])
	st.opts.testHook = func(p string) error {
		if p == "manifest-deleted" {
			return errors.New("injected crash at " + p)
		}
		return nil
	}
	if err := st.DeleteCollection(ctx, "c"); err == nil || !strings.Contains(err.Error(), "injected crash") {
		t.Fatalf("delete: %v", err)
	}
	st.Close()
	st = openStore(t, dir)
	defer st.Close()
	if _, err := st.Collection("c"); !errors.Is(err, ErrCollectionNotFound) {
		t.Fatalf("deleted collection after reopen: %v", err)
	}
	ingest(t, st, "c", nil, 1, docs[20:])
	// The deleted collection's documents are new to the recreated one.
	if r := ingest(t, st, "c", nil, 1, docs[:20]); r.Docs != 20 || r.DocsSkipped != 0 {
		t.Fatalf("re-ingest of the deleted documents: %+v", r)
	}
	if r, err := st.Rebuild(ctx, "c", 2); err != nil || r.TotalPass != int64(len(allPassages(t, st, "c"))) {
		t.Fatalf("rebuild: %+v, %v", r, err)
	}
}
