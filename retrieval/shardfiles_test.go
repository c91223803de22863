package retrieval

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ragkv/ragkv/retrieval/embed"
)

// TestDamagedShardFilesAreCorrupt: a shard whose memory-mapped files are truncated,
// extended or inconsistent is refused with ErrCorrupt when opened (reads of mapped
// bytes are bounds-checked once, at open).
func TestDamagedShardFilesAreCorrupt(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, testSIF(t))
	ingest(t, st, "c", &CollectionOptions{PCADims: 4}, 1, fixtureDocs(40))
	sn, err := st.pin("c")
	if err != nil {
		t.Fatal(err)
	}
	sh, m := sn.shards[0], sn.m
	sdir, ref := sh.dir, sh.ref
	sn.release()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		file   string
		damage func([]byte) []byte
	}{
		{shardPassageIndex, func(b []byte) []byte { return b[:len(b)-8] }},
		{shardPassageIndex, func(b []byte) []byte { b[9]++; return b }},
		{shardPassagesFile, func(b []byte) []byte { return b[:len(b)-1] }},
		{shardPassagesFile, func(b []byte) []byte { return append(b, 0) }},
		{shardPassagesFile, func(b []byte) []byte { b[0] = 0x7f; return b }},
		{shardVectorsFile, func(b []byte) []byte { return b[:len(b)-4] }},
		{filepath.Join(shardLexicalDir, "index.bin"), func(b []byte) []byte { return b[:len(b)-1] }},
		{filepath.Join(shardLexicalDir, "index.bin"), func(b []byte) []byte { b[10]++; return b }},
	} {
		p := filepath.Join(sdir, tc.file)
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, tc.damage(append([]byte{}, orig...)), 0o644); err != nil {
			t.Fatal(err)
		}
		if sh, err := openShard(sdir, ref, m); err == nil {
			sh.close()
			t.Errorf("%s damaged: shard opened", tc.file)
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s damaged: error %v does not wrap ErrCorrupt", tc.file, err)
		}
		if err := os.WriteFile(p, orig, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sh2, err := openShard(sdir, ref, m)
	if err != nil {
		t.Fatalf("restored shard: %v", err)
	}
	sh2.close()
	_ = context.Background()
}

// TestBuildMemoryBoundsConcurrentBuilds: with a build memory budget smaller than any
// shard, shards are built one at a time (and the collection is the same as without).
func TestBuildMemoryBoundsConcurrentBuilds(t *testing.T) {
	ctx := context.Background()
	docs := fixtureDocs(60)
	var mu sync.Mutex
	running, peak, builds := 0, 0, 0
	hook := func(p string) error {
		mu.Lock()
		defer mu.Unlock()
		switch p {
		case "build-start":
			running++
			builds++
			peak = max(peak, running)
		case "build-end":
			running--
		}
		return nil
	}
	st, err := Open(ctx, Options{Dir: t.TempDir(), Embedders: []embed.Embedder{testSIF(t)}, BuildParallelism: 4, BuildMemory: 1, Logger: slog.New(slog.DiscardHandler), testHook: hook})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ingest(t, st, "c", &CollectionOptions{PCADims: 4}, 4, docs)
	if builds != 4 || peak != 1 {
		t.Fatalf("%d builds, %d at once; want 4, one at a time", builds, peak)
	}
	free := openStore(t, t.TempDir(), testSIF(t))
	defer free.Close()
	ingest(t, free, "c", &CollectionOptions{PCADims: 4}, 4, docs)
	for _, q := range []string{"dog engine bread", "river"} {
		sameHits(t, q, search(t, st, SearchRequest{Collection: "c", Query: q, K: 10}), search(t, free, SearchRequest{Collection: "c", Query: q, K: 10}))
	}
	if _, err := Open(ctx, Options{Dir: t.TempDir(), BuildMemory: -1}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("negative build memory: %v", err)
	}
}
