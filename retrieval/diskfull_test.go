package retrieval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/tmpfstest"
)

// TestIngestRefusedOnFullDisk: on a 24 MiB tmpfs, an ingest whose passages would leave
// less than MinFreeBytes is refused with ErrNoSpace at Commit (before anything is
// written: the collection keeps its committed documents), and BeginIngest is refused
// when the reserve is not free at all; searches go on working.
func TestIngestRefusedOnFullDisk(t *testing.T) {
	dir := tmpfstest.Mount(t, "24m")
	ctx := context.Background()
	open := func(minFree int64) *Store {
		st, err := Open(ctx, Options{Dir: dir, BuildParallelism: 1, MinFreeBytes: minFree, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open(4 << 20)
	small := []Document{{ID: "a", Text: "the quick brown fox jumps over the lazy dog"}, {ID: "b", Text: "a stitch in time saves nine"}}
	ingest(t, st, "c", nil, 1, small)
	// About 10 MiB of distinct text: its estimate (twice the text) does not fit.
	var big []Document
	for i := 0; i < 1000; i++ {
		var sb strings.Builder
		for sb.Len() < 10<<10 {
			fmt.Fprintf(&sb, "w%dx%d ", i, sb.Len())
		}
		big = append(big, Document{ID: fmt.Sprint("big", i), Text: sb.String()})
	}
	in, err := st.BeginIngest(ctx, "c", IngestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Add(ctx, big...); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Commit(ctx); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("commit of ~20 MiB on a 24 MiB disk: %v, want ErrNoSpace", err)
	}
	if hits := search(t, st, SearchRequest{Collection: "c", Query: "stitch", K: 5}); len(hits) != 1 || hits[0].DocID != "b" {
		t.Fatalf("search after the refused ingest: %+v", hits)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	free, ok, err := freeBytes(dir)
	if err != nil || !ok {
		t.Fatal(err)
	}
	st = open(free + 1)
	defer st.Close()
	if _, err := st.BeginIngest(ctx, "c", IngestOptions{}); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("begin ingest without the reserve free: %v, want ErrNoSpace", err)
	}
	if hits := search(t, st, SearchRequest{Collection: "c", Query: "fox", K: 5}); len(hits) != 1 || hits[0].DocID != "a" {
		t.Fatalf("search after reopening: %+v", hits)
	}
}
