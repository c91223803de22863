package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/ragkv/ragkv/internal/tmpfstest"
)

// TestBadgerRefusesPutsOnFullDisk fills a 32 MiB tmpfs through the disk tier: puts
// succeed until one would leave less than MinFreeBytes, which fails with ErrNoSpace
// (the process does not die of a SIGBUS in Badger's memory-mapped writes); every object
// stored before reads back intact, the tier still answers, and it keeps its objects
// across a reopen.
func TestBadgerRefusesPutsOnFullDisk(t *testing.T) {
	dir := tmpfstest.Mount(t, "32m")
	ctx := context.Background()
	opts := BadgerOptions{Dir: dir, ValueLogFileSize: 1 << 20, SegmentBytes: 256 << 10, MemTableSize: 1 << 20, MinFreeBytes: 6 << 20,
		GCInterval: -1, Logger: slog.New(slog.DiscardHandler)}
	b, err := OpenBadger(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj := func(i int) Object {
		p := make([]byte, 128<<10)
		for j := range p {
			p[j] = byte(i*7 + j)
		}
		return Object{Manifest: []byte(fmt.Sprint("m", i)), Parts: [][]byte{p, p[:1000]}}
	}
	key := func(i int) Key { return Key{byte(i), byte(i >> 8), 1} }
	stored := 0
	for ; stored < 1000; stored++ {
		err := b.Put(ctx, key(stored), obj(stored))
		if errors.Is(err, ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatalf("put %d: %v", stored, err)
		}
	}
	if stored == 0 || stored == 1000 {
		t.Fatalf("%d puts before ErrNoSpace", stored)
	}
	free, err := FreeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if free < opts.MinFreeBytes-int64(len(obj(0).Parts[0]))*2 {
		t.Fatalf("%d bytes free after the refusal, reserve %d", free, opts.MinFreeBytes)
	}
	// A refused put stays refused; the probe (a tiny write) still works.
	if err := b.Put(ctx, key(5000), obj(5000)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("second put on a full disk: %v", err)
	}
	if err := b.Probe(ctx); err != nil {
		t.Fatalf("probe on a full disk: %v", err)
	}
	check := func(b *Badger) {
		for i := 0; i < stored; i++ {
			r, err := b.Open(ctx, key(i))
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			p, err := r.ReadPart(ctx, 0, nil)
			r.Close()
			if err != nil || string(p) != string(obj(i).Parts[0]) {
				t.Fatalf("object %d differs after the disk filled: %v", i, err)
			}
		}
	}
	check(b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err = OpenBadger(ctx, opts); err != nil {
		t.Fatalf("reopen on a full disk: %v", err)
	}
	defer b.Close()
	check(b)
	t.Logf("%d puts of %d KiB stored in 32 MiB before ErrNoSpace; %d bytes free", stored, (128<<10+1000)>>10, free)
}
