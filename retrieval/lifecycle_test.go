package retrieval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/failpoint"
	"github.com/ragkv/ragkv/retrieval/embed"
)

// lifecycleOpts: small passages, no dedup (a from-scratch build keeps the same
// passages whatever the order documents arrive in).
func lifecycleOpts() *CollectionOptions {
	return &CollectionOptions{ChunkWords: 20, ChunkOverlap: 5, Dedup: DedupNone}
}

// mutate returns the upserted version of a document.
func mutate(d Document) Document {
	d.Text = "revised " + d.Text + " tok99 dog engine"
	return d
}

// lifecycleScript applies to st (already holding docs[:30] in "c") the changes of the
// lifecycle tests, and returns the final corpus.
var (
	upserted = []int{5, 12, 31}
	deleted  = []string{"d007", "d033", "d002"}
)

func finalCorpus(docs []Document) []Document {
	var out []Document
	for i, d := range docs {
		if slices.Contains(deleted, d.ID) {
			continue
		}
		if slices.Contains(upserted, i) {
			d = mutate(d)
		}
		out = append(out, d)
	}
	return out
}

// upsertAndDelete runs the mutating ingest: docs upserted, two deleted.
func upsertAndDelete(ctx context.Context, st *Store, docs []Document) (IngestResult, error) {
	in, err := st.BeginIngest(ctx, "c", IngestOptions{Shards: 2, Upsert: true})
	if err != nil {
		return IngestResult{}, err
	}
	var up []Document
	for _, i := range upserted {
		up = append(up, mutate(docs[i]))
	}
	if err := in.Add(ctx, up...); err != nil {
		in.Abort()
		return IngestResult{}, err
	}
	if err := in.Delete(ctx, deleted[:2]...); err != nil {
		in.Abort()
		return IngestResult{}, err
	}
	return in.Commit(ctx)
}

func compareAll(t *testing.T, label string, a, b *Store, modes ...Mode) {
	t.Helper()
	for _, mode := range modes {
		for _, q := range fixtureQueries {
			req := SearchRequest{Collection: "c", Query: q, K: 25, Mode: mode}
			ha, hb := search(t, a, req), search(t, b, req)
			sameHits(t, label+" "+string(mode)+" "+q, ha, hb)
			for i := range ha {
				if ha[i].Text != hb[i].Text || ha[i].Title != hb[i].Title {
					t.Fatalf("%s %s %q: hit %d text differs", label, mode, q, i)
				}
			}
		}
	}
}

func TestUpsertDeleteCompactEqualScratch(t *testing.T) {
	ctx := context.Background()
	sif := testSIF(t)
	docs := fixtureDocs(40)
	st := openStore(t, t.TempDir(), sif)
	defer st.Close()
	ingest(t, st, "c", lifecycleOpts(), 2, docs[:30])
	ingest(t, st, "c", nil, 3, docs[30:])
	r, err := upsertAndDelete(ctx, st, docs)
	if err != nil {
		t.Fatal(err)
	}
	if r.Replaced != 3 || r.Deleted != 2 || r.Tombstoned == 0 || r.TotalDocs != 38 {
		t.Fatalf("mutating ingest: %+v", r)
	}
	r, err = st.DeleteDocuments(ctx, "c", []string{deleted[2], "no-such-doc"})
	if err != nil || r.Deleted != 1 || r.DeleteMissing != 1 || r.TotalDocs != 37 {
		t.Fatalf("DeleteDocuments: %+v, %v", r, err)
	}
	// Plain (non-upsert) ingest still skips existing documents.
	if r := ingest(t, st, "c", nil, 1, []Document{mutate(docs[1])}); r.DocsSkipped != 1 || r.Docs != 0 {
		t.Fatalf("re-ingest without upsert: %+v", r)
	}

	ref := openStore(t, t.TempDir(), sif)
	defer ref.Close()
	ingest(t, ref, "c", lifecycleOpts(), 1, finalCorpus(docs))
	ia, _ := st.Collection("c")
	ib, _ := ref.Collection("c")
	if ia.Docs != ib.Docs || ia.Passages != ib.Passages {
		t.Fatalf("sizes: %d docs %d passages, from scratch %d / %d", ia.Docs, ia.Passages, ib.Docs, ib.Passages)
	}
	// BM25 with tombstones already equals the from-scratch build (live-only statistics).
	compareAll(t, "tombstones", st, ref, ModeBM25)

	st.opts.Compaction = CompactionPolicy{MergeFactor: 2, MaxShards: 2, MaxDeadFraction: 0.01}
	cr, err := st.Compact(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if cr.Merges == 0 || cr.ShardsAfter > 2 || cr.Dropped == 0 {
		t.Fatalf("compaction: %+v", cr)
	}
	sn, _ := st.pin("c")
	for i := range sn.shards {
		if sn.dead[i] != nil {
			t.Fatalf("shard %s keeps tombstones after compaction", sn.shards[i].ref.Dir)
		}
	}
	sn.release()
	compareAll(t, "compacted", st, ref, ModeBM25)

	// Dense models were fitted on the first ingest; a refitting rebuild makes dense and
	// hybrid rankings equal to the from-scratch build's too.
	if _, err := st.RebuildWith(ctx, "c", RebuildOptions{Shards: 3, Refit: true}); err != nil {
		t.Fatal(err)
	}
	compareAll(t, "refit", st, ref, ModeBM25, ModeDense, ModeHybrid)

	dir := st.opts.Dir
	st.Close()
	st = openStore(t, dir, sif)
	compareAll(t, "reopened", st, ref, ModeBM25, ModeDense, ModeHybrid)
	// Re-adding a deleted document works (its keys are gone).
	if r := ingest(t, st, "c", nil, 1, []Document{docs[7]}); r.Docs != 1 || r.Passages == 0 {
		t.Fatalf("re-adding a deleted document: %+v", r)
	}
	if n, err := st.CollectGarbage(ctx); err != nil {
		t.Fatalf("value-log GC: %d, %v", n, err)
	}
}

// TestLifecycleFailpoints fails a mutating commit, a compaction and a refitting
// rebuild at each of their steps: before the commit point the store keeps the last
// committed state (in process and after reopening); after it, a reopened store holds
// the new state exactly.
func TestLifecycleFailpoints(t *testing.T) {
	ctx := context.Background()
	sif := testSIF(t)
	docs := fixtureDocs(40)
	ref := openStore(t, t.TempDir(), sif)
	defer ref.Close()
	ingest(t, ref, "c", lifecycleOpts(), 1, finalCorpusNoLast(docs))
	base := func(t *testing.T) (*Store, string) {
		dir := t.TempDir()
		st := openStore(t, dir, sif)
		ingest(t, st, "c", lifecycleOpts(), 2, docs[:30])
		ingest(t, st, "c", nil, 2, docs[30:])
		return st, dir
	}
	inject := func(st *Store, point string) {
		st.opts.testHook = func(p string) error {
			if p == point {
				return errors.New("injected crash at " + p)
			}
			return nil
		}
	}
	for _, point := range []string{"shards-built", "passages-written", "redo-written", "committed"} {
		t.Run("ingest-"+point, func(t *testing.T) {
			st, dir := base(t)
			before := search(t, st, SearchRequest{Collection: "c", Query: "dog engine bread", K: 20, Mode: ModeBM25})
			inject(st, point)
			if _, err := upsertAndDelete(ctx, st, docs); err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("commit: %v", err)
			}
			st.opts.testHook = nil
			if point != "committed" {
				sameHits(t, "in process", before, search(t, st, SearchRequest{Collection: "c", Query: "dog engine bread", K: 20, Mode: ModeBM25}))
			}
			st.Close()
			st = openStore(t, dir, sif)
			defer st.Close()
			if point == "committed" {
				compareAll(t, "reopened after commit point", st, ref, ModeBM25)
				return
			}
			sameHits(t, "reopened", before, search(t, st, SearchRequest{Collection: "c", Query: "dog engine bread", K: 20, Mode: ModeBM25}))
			if _, err := upsertAndDelete(ctx, st, docs); err != nil {
				t.Fatalf("retry: %v", err)
			}
			compareAll(t, "retried", st, ref, ModeBM25)
		})
	}
	for _, point := range []string{"compact-built", "compact-committed", "rebuild-built", "rebuild-committed"} {
		t.Run(point, func(t *testing.T) {
			st, dir := base(t)
			if _, err := upsertAndDelete(ctx, st, docs); err != nil {
				t.Fatal(err)
			}
			compareAll(t, "before", st, ref, ModeBM25)
			inject(st, point)
			st.opts.Compaction = CompactionPolicy{MergeFactor: 2, MaxShards: 1, MaxDeadFraction: 0.01}
			var err error
			if strings.HasPrefix(point, "compact") {
				_, err = st.Compact(ctx, "c")
			} else {
				_, err = st.RebuildWith(ctx, "c", RebuildOptions{Shards: 2, Refit: true})
			}
			if err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("%s: %v", point, err)
			}
			st.opts.testHook = nil
			st.Close()
			st = openStore(t, dir, sif)
			defer st.Close()
			compareAll(t, "reopened", st, ref, ModeBM25)
			if point == "rebuild-committed" {
				compareAll(t, "reopened", st, ref, ModeDense, ModeHybrid)
			}
			ents, _ := os.ReadDir(dir + "/collections/c")
			info, _ := st.Collection("c")
			if len(ents) != info.Shards {
				t.Fatalf("%d shard directories for %d shards", len(ents), info.Shards)
			}
		})
	}
}

// finalCorpusNoLast is the corpus after upsertAndDelete alone (the third deletion is
// DeleteDocuments' in the other test).
func finalCorpusNoLast(docs []Document) []Document {
	var out []Document
	for i, d := range docs {
		if slices.Contains(deleted[:2], d.ID) {
			continue
		}
		if slices.Contains(upserted, i) {
			d = mutate(d)
		}
		out = append(out, d)
	}
	return out
}

// TestKilledAtEveryStepRecovers kills a child process (os.Exit through the failpoint
// "retrieval/<step>", armed by RAGKV_FAILPOINTS) at every step of an upsert+delete
// ingest, of a compaction and of a refitting rebuild. A crash before the commit point
// leaves the last committed state (searches equal those before the change, and the
// change can be retried); a crash after it (the upsert's manifest switched, its redo
// log not applied; a compaction or rebuild switched, old shards not removed) reopens
// to the new state, equal to a from-scratch build of the final corpus.
func TestKilledAtEveryStepRecovers(t *testing.T) {
	sif := testSIF(t)
	docs := fixtureDocs(40)
	if dir := os.Getenv("RAGKV_RETRIEVAL_LIFECYCLE_DIR"); dir != "" {
		if err := failpoint.EnvError(); err != nil {
			t.Fatal(err)
		}
		st, err := Open(context.Background(), Options{Dir: dir, Embedders: []embed.Embedder{sif}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		switch step := os.Getenv("RAGKV_RETRIEVAL_LIFECYCLE_STEP"); {
		case strings.HasPrefix(step, "compact"):
			st.opts.Compaction = CompactionPolicy{MergeFactor: 2, MaxShards: 1, MaxDeadFraction: 0.01}
			_, err = st.Compact(context.Background(), "c")
		case strings.HasPrefix(step, "rebuild"):
			_, err = st.RebuildWith(context.Background(), "c", RebuildOptions{Shards: 2, Refit: true})
		case step == "manifest-deleted":
			err = st.DeleteCollection(context.Background(), "c")
		default:
			_, err = upsertAndDelete(context.Background(), st, docs)
		}
		t.Fatalf("the change did not reach the crash point: %v", err)
	}
	ref := openStore(t, t.TempDir(), sif)
	defer ref.Close()
	ingest(t, ref, "c", lifecycleOpts(), 1, finalCorpusNoLast(docs))
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	q := SearchRequest{Collection: "c", Query: "dog engine bread", K: 20, Mode: ModeBM25}
	steps := []string{"shards-built", "passages-written", "redo-written", "committed",
		"compact-built", "compact-committed", "rebuild-built", "rebuild-committed", "manifest-deleted"}
	for _, name := range failpoint.Names("retrieval/") {
		if !slices.Contains(steps, strings.TrimPrefix(name, "retrieval/")) {
			t.Errorf("failpoint %s has no crash case", name)
		}
	}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			st := openStore(t, dir, sif)
			ingest(t, st, "c", lifecycleOpts(), 2, docs[:30])
			ingest(t, st, "c", nil, 2, docs[30:])
			maintenance := strings.HasPrefix(step, "compact") || strings.HasPrefix(step, "rebuild")
			if maintenance {
				// Compactions and rebuilds crash on top of the committed upsert.
				if _, err := upsertAndDelete(context.Background(), st, docs); err != nil {
					t.Fatal(err)
				}
			}
			before := search(t, st, q)
			st.Close()
			cmd := execCommand(exe, "-test.run=^TestKilledAtEveryStepRecovers$")
			cmd.Env = append(os.Environ(), "RAGKV_RETRIEVAL_LIFECYCLE_DIR="+dir, "RAGKV_RETRIEVAL_LIFECYCLE_STEP="+step,
				failpoint.EnvVar+"=retrieval/"+step+"=exit(3)")
			out, err := cmd.CombinedOutput()
			if code := exitCode(err); code != 3 {
				t.Fatalf("child exited with %d (want 3): %v\n%s", code, err, out)
			}
			st = openStore(t, dir, sif)
			defer st.Close()
			if step == "manifest-deleted" {
				// Past the delete's commit point: the reopened store finishes it, and a
				// collection created under the name starts empty.
				if _, err := st.Collection("c"); !errors.Is(err, ErrCollectionNotFound) {
					t.Fatalf("deleted collection after the crash: %v", err)
				}
				if r := ingest(t, st, "c", lifecycleOpts(), 1, docs[:5]); r.Docs != 5 || r.TotalDocs != 5 {
					t.Fatalf("re-created collection: %+v", r)
				}
				return
			}
			if redo, err := st.redoCollections(); err != nil || len(redo) != 0 {
				t.Fatalf("redo log left after recovery: %v %v", redo, err)
			}
			if !maintenance && step != "committed" {
				sameHits(t, "reopened before the commit point", before, search(t, st, q))
				if _, err := upsertAndDelete(context.Background(), st, docs); err != nil {
					t.Fatalf("retry: %v", err)
				}
			}
			compareAll(t, "recovered", st, ref, ModeBM25)
			if step == "rebuild-committed" {
				compareAll(t, "recovered", st, ref, ModeDense, ModeHybrid)
			}
			if maintenance {
				ents, _ := os.ReadDir(dir + "/collections/c")
				info, _ := st.Collection("c")
				if len(ents) != info.Shards {
					t.Fatalf("%d shard directories for %d shards", len(ents), info.Shards)
				}
			}
		})
	}
}

func TestCompactionPlan(t *testing.T) {
	p := CompactionPolicy{MergeFactor: 4, MaxShards: 6, MaxDeadFraction: 0.5}
	cases := []struct {
		ns, live []int
		want     []int
	}{
		{[]int{100, 100, 100}, []int{100, 100, 100}, nil},
		{[]int{100, 110, 120, 130, 5000}, []int{100, 110, 120, 130, 5000}, []int{0, 1, 2, 3}},
		{[]int{10, 100, 1000, 10000, 100000, 1000000, 9}, []int{10, 100, 1000, 10000, 100000, 1000000, 9}, []int{6, 0}},
		{[]int{100, 100}, []int{100, 40}, []int{1}},
		{[]int{100, 100}, []int{0, 40}, []int{0}},
	}
	for _, c := range cases {
		if got := compactionPlan(c.ns, c.live, p); !slices.Equal(got, c.want) {
			t.Errorf("plan(%v, %v) = %v, want %v", c.ns, c.live, got, c.want)
		}
	}
}

// TestSearchDuringUpserts searches (with texts) while upserts, deletes and compactions
// commit: no search fails, and every hit's text hashes to its chunk id (old or new
// version, never a mix).
func TestSearchDuringUpserts(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir(), testSIF(t))
	defer st.Close()
	docs := fixtureDocs(40)
	ingest(t, st, "c", lifecycleOpts(), 2, docs)
	st.opts.Compaction = CompactionPolicy{MergeFactor: 2, MaxShards: 2, MaxDeadFraction: 0.1}
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			res, err := st.Search(ctx, SearchRequest{Collection: "c", Query: fixtureQueries[i%len(fixtureQueries)], K: 10, Mode: ModeHybrid})
			if err != nil {
				errs <- err
				return
			}
			for _, h := range res.Hits {
				if ChunkID(h.Text) != h.ChunkID {
					errs <- fmt.Errorf("hit %s (generation %d): text %q does not match its chunk id", h.PassageID, res.Generation, h.Text)
					return
				}
			}
		}
	}()
	for round := 0; round < 6; round++ {
		in, err := st.BeginIngest(ctx, "c", IngestOptions{Upsert: true})
		if err != nil {
			t.Fatal(err)
		}
		var up []Document
		for i := round; i < 40; i += 5 {
			d := docs[i]
			d.Text = strings.Repeat("round ", round+1) + d.Text
			up = append(up, d)
		}
		if err := in.Add(ctx, up...); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			if _, err := st.Compact(ctx, "c"); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
