package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/ragkv/ragkv/internal/failpoint"
)

func openBadger(t *testing.T, dir string) *Badger {
	t.Helper()
	// Small segments, so that objects span several of them.
	b, err := OpenBadger(context.Background(), BadgerOptions{Dir: dir, GCInterval: -1, SegmentBytes: 8000})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openBadgerSegments opens a disk tier that writes the earlier layout (parts as
// Badger segments), as data dirs of earlier versions hold.
func openBadgerSegments(t *testing.T, dir string) *Badger {
	t.Helper()
	b, err := OpenBadger(context.Background(), BadgerOptions{Dir: dir, GCInterval: -1, SegmentBytes: 8000, segments: true})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tiers(t *testing.T) map[string]Tier {
	b := openBadger(t, t.TempDir())
	t.Cleanup(func() { b.Close() })
	bs := openBadgerSegments(t, t.TempDir())
	t.Cleanup(func() { bs.Close() })
	return map[string]Tier{"memory": NewMemory(), "disk": b, "disk-segments": bs}
}

func testObject(seed uint64, parts, partSize int) Object {
	r := rand.New(rand.NewPCG(seed, 3))
	o := Object{Manifest: []byte(fmt.Sprintf("manifest-%d", seed))}
	for i := 0; i < parts; i++ {
		p := make([]byte, partSize+i)
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		o.Parts = append(o.Parts, p)
	}
	return o
}

func key(i int) Key {
	var k Key
	k[0], k[1], k[31] = byte(i), byte(i>>8), 0xAB
	return k
}

func checkObject(t *testing.T, tier Tier, k Key, want Object) {
	t.Helper()
	ctx := context.Background()
	r, err := tier.Open(ctx, k)
	if err != nil {
		t.Fatalf("%s: open: %v", tier.Name(), err)
	}
	defer r.Close()
	if !bytes.Equal(r.Manifest(), want.Manifest) {
		t.Fatalf("%s: manifest %q, want %q", tier.Name(), r.Manifest(), want.Manifest)
	}
	if r.NumParts() != len(want.Parts) || r.Size() != want.Size() {
		t.Fatalf("%s: %d parts / %d bytes, want %d / %d", tier.Name(), r.NumParts(), r.Size(), len(want.Parts), want.Size())
	}
	var buf []byte
	// Read in reverse: every part reads on its own.
	for i := len(want.Parts) - 1; i >= 0; i-- {
		if r.PartSize(i) != int64(len(want.Parts[i])) {
			t.Fatalf("part %d size %d", i, r.PartSize(i))
		}
		buf, err = r.ReadPart(ctx, i, buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, want.Parts[i]) {
			t.Fatalf("%s: part %d differs", tier.Name(), i)
		}
	}
	if _, err := r.ReadPart(ctx, len(want.Parts), nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("%s: out-of-range part: %v", tier.Name(), err)
	}
}

func TestTierConformance(t *testing.T) {
	ctx := context.Background()
	for name, tier := range tiers(t) {
		t.Run(name, func(t *testing.T) {
			a, b := testObject(1, 4, 3000), testObject(2, 2, 10)
			if err := tier.Put(ctx, key(1), a); err != nil {
				t.Fatal(err)
			}
			if err := tier.Put(ctx, key(2), b); err != nil {
				t.Fatal(err)
			}
			checkObject(t, tier, key(1), a)
			checkObject(t, tier, key(2), b)
			if ok, err := tier.Has(ctx, key(1)); !ok || err != nil {
				t.Fatalf("Has = %v, %v", ok, err)
			}
			if ok, err := tier.Has(ctx, key(3)); ok || err != nil {
				t.Fatalf("Has(absent) = %v, %v", ok, err)
			}
			if _, err := tier.Open(ctx, key(3)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Open(absent) = %v", err)
			}
			// A reader is a snapshot: overwrite and delete do not disturb it.
			r, err := tier.Open(ctx, key(1))
			if err != nil {
				t.Fatal(err)
			}
			c := testObject(3, 2, 50) // fewer parts than a
			if err := tier.Put(ctx, key(1), c); err != nil {
				t.Fatal(err)
			}
			checkObject(t, tier, key(1), c)
			if err := tier.Delete(ctx, key(1)); err != nil {
				t.Fatal(err)
			}
			got, err := r.ReadPart(ctx, 3, nil)
			if err != nil || !bytes.Equal(got, a.Parts[3]) {
				t.Fatalf("snapshot read after delete: %v", err)
			}
			r.Close()
			if err := tier.Delete(ctx, key(1)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second delete: %v", err)
			}
			seen := map[Key]int64{}
			if err := tier.Scan(ctx, func(in Info) error {
				seen[in.Key] = in.Size
				if string(in.Manifest) != string(b.Manifest) {
					return fmt.Errorf("manifest %q", in.Manifest)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(seen) != 1 || seen[key(2)] != b.Size() {
				t.Fatalf("scan saw %v", seen)
			}
			// Overwriting with fewer parts leaves no stale segments (disk: checked below).
			if err := tier.Put(ctx, key(4), testObject(4, 5, 3000)); err != nil {
				t.Fatal(err)
			}
			if bt, ok := tier.(*Badger); ok && bt.opts.segments {
				if n := countSegments(t, bt, key(4)); n < 2 {
					t.Fatalf("a 5-part object of 500 bytes in 8000-byte segments: %d segments", n)
				}
			} else if ok {
				if n := countBlobs(t, bt, key(4)); n != 1 {
					t.Fatalf("disk holds %d blob files for one object", n)
				}
			}
			small := testObject(5, 1, 100)
			if err := tier.Put(ctx, key(4), small); err != nil {
				t.Fatal(err)
			}
			checkObject(t, tier, key(4), small)
			if bt, ok := tier.(*Badger); ok && bt.opts.segments {
				if n := countSegments(t, bt, key(4)); n != 1 {
					t.Fatalf("disk holds %d segments for a 1-part object", n)
				}
			} else if ok {
				if n := countBlobs(t, bt, key(4)); n != 1 {
					t.Fatalf("disk holds %d blob files after an overwrite, want 1", n)
				}
				if n := countSegments(t, bt, key(4)); n != 0 {
					t.Fatalf("a blob-layout object has %d segments in Badger", n)
				}
			}
			if _, err := tier.Open(ctx, key(4)); err != nil {
				t.Fatal(err)
			}
			if err := tier.Put(ctx, key(9), Object{Parts: make([][]byte, MaxParts+1)}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("too many parts: %v", err)
			}
		})
	}
}

func countSegments(t *testing.T, b *Badger, k Key) int {
	n := 0
	prefix := append([]byte{prefixSegment}, k[:]...)
	if err := b.DB().View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// countBlobs counts the blob files of k (whatever their generation).
func countBlobs(t *testing.T, b *Badger, k Key) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(b.blobs, fmt.Sprintf("%02x", k[0])))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if kk, _, ok := parseBlobName(e.Name()); ok && kk == k {
			n++
		}
	}
	return n
}

func TestMemoryBytes(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	a := testObject(1, 3, 100)
	_ = m.Put(ctx, key(1), a)
	_ = m.Put(ctx, key(1), a)
	_ = m.Put(ctx, key(2), a)
	if m.Bytes() != 2*a.Size() || m.Len() != 2 {
		t.Fatalf("bytes %d len %d", m.Bytes(), m.Len())
	}
	_ = m.Delete(ctx, key(1))
	if m.Bytes() != a.Size() {
		t.Fatalf("bytes %d", m.Bytes())
	}
}

func TestBadgerPersistsAndRepairs(t *testing.T) {
	for _, layoutName := range []string{"blobs", "segments"} {
		t.Run(layoutName, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			open := openBadger
			if layoutName == "segments" {
				open = openBadgerSegments
			}
			b := open(t, dir)
			objs := map[Key]Object{}
			for i := 0; i < 20; i++ {
				o := testObject(uint64(i), 1+i%4, 5000+(i%3)*150000) // small and value-log sized parts
				objs[key(i)] = o
				if err := b.Put(ctx, key(i), o); err != nil {
					t.Fatal(err)
				}
			}
			// Damage from outside: an orphan part, an object that lost a part, and (blob
			// layout) one whose blob file was cut short.
			if layoutName == "segments" {
				if err := b.DB().Update(func(txn *badger.Txn) error {
					if err := txn.Set(segKey(nil, key(100), 0), []byte("orphan")); err != nil {
						return err
					}
					return txn.Delete(segKey(nil, key(3), 0))
				}); err != nil {
					t.Fatal(err)
				}
			} else {
				p3, ok, err := b.BlobPath(key(3))
				if err != nil || !ok {
					t.Fatalf("blob path: %v %v", ok, err)
				}
				if err := os.Remove(p3); err != nil {
					t.Fatal(err)
				}
				p5, _, _ := b.BlobPath(key(5))
				if err := os.Truncate(p5, 100); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Open(ctx, key(5)); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open of a truncated blob: %v, want ErrCorrupt", err)
				}
				if _, err := b.Open(ctx, key(3)); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open of an object without its blob: %v, want ErrCorrupt", err)
				}
				stray := b.blobPath(key(100), 42)
				if err := os.WriteFile(stray, []byte("orphan"), 0o600); err != nil {
					t.Fatal(err)
				}
				if n, err := b.StrayBlobs(ctx); err != nil || n != 1 {
					t.Fatalf("stray blobs before the repair: %d, %v; want 1 (key 100)", n, err)
				}
				delete(objs, key(5))
			}
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			b = open(t, dir)
			defer b.Close()
			delete(objs, key(3))
			n := 0
			if err := b.Scan(ctx, func(in Info) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			if n != len(objs) {
				t.Fatalf("after reopen %d objects, want %d", n, len(objs))
			}
			for k, o := range objs {
				checkObject(t, b, k, o)
			}
			if countSegments(t, b, key(100)) != 0 || countSegments(t, b, key(3)) != 0 {
				t.Fatal("repair left orphan parts")
			}
			if n, err := b.StrayBlobs(ctx); err != nil || n != 0 {
				t.Fatalf("stray blob files after the repair: %d, %v", n, err)
			}
			if layoutName == "blobs" && (countBlobs(t, b, key(5)) != 0 || countBlobs(t, b, key(100)) != 0) {
				t.Fatal("repair left a truncated or orphan blob file")
			}
		})
	}
}

// TestBadgerReadsEarlierLayout: a data dir written in the earlier layout (segments in
// Badger) reads back after an upgrade; an overwrite moves the object to a blob file
// and drops its segments; a delete removes the rest.
func TestBadgerReadsEarlierLayout(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	old := openBadgerSegments(t, dir)
	objs := map[Key]Object{}
	for i := 0; i < 6; i++ {
		objs[key(i)] = testObject(uint64(i), 3, 4000)
		if err := old.Put(ctx, key(i), objs[key(i)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	b := openBadger(t, dir)
	defer b.Close()
	for k, o := range objs {
		checkObject(t, b, k, o)
	}
	if _, ok, err := b.BlobPath(key(0)); ok || err != nil {
		t.Fatalf("an earlier-layout object has a blob file: %v %v", ok, err)
	}
	o := testObject(77, 2, 100)
	if err := b.Put(ctx, key(0), o); err != nil {
		t.Fatal(err)
	}
	checkObject(t, b, key(0), o)
	if n := countSegments(t, b, key(0)); n != 0 {
		t.Fatalf("overwritten object kept %d segments", n)
	}
	if n := countBlobs(t, b, key(0)); n != 1 {
		t.Fatalf("overwritten object has %d blob files", n)
	}
	if err := b.Delete(ctx, key(1)); err != nil {
		t.Fatal(err)
	}
	if n := countSegments(t, b, key(1)); n != 0 {
		t.Fatalf("deleted object kept %d segments", n)
	}
	if _, err := b.Open(ctx, key(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open after delete: %v", err)
	}
}

// TestBadgerFailedUnlinkIsRetried: a blob unlink that fails (failpoint
// store/badger/blob-unlink) leaves the file pending; the next GC tick removes it, so
// no stray blob stays until a restart.
func TestBadgerFailedUnlinkIsRetried(t *testing.T) {
	ctx := context.Background()
	b := openBadger(t, t.TempDir())
	defer b.Close()
	for i := 0; i < 4; i++ {
		if err := b.Put(ctx, key(i), testObject(uint64(i), 2, 300)); err != nil {
			t.Fatal(err)
		}
	}
	if err := failpoint.Enable("store/badger/blob-unlink", "error"); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, key(0)); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, key(1), testObject(9, 1, 10)); err != nil {
		t.Fatal(err)
	}
	if n, err := b.StrayBlobs(ctx); err != nil || n != 2 || b.PendingUnlinks() != 2 {
		t.Fatalf("after failed unlinks: %d stray, %d pending, %v; want 2, 2", n, b.PendingUnlinks(), err)
	}
	b.RunGC() // still failing: stays pending
	if b.PendingUnlinks() != 2 {
		t.Fatalf("pending after a failing retry: %d", b.PendingUnlinks())
	}
	failpoint.Disable("store/badger/blob-unlink")
	b.RunGC()
	if n, err := b.StrayBlobs(ctx); err != nil || n != 0 || b.PendingUnlinks() != 0 {
		t.Fatalf("after the retry: %d stray, %d pending, %v", n, b.PendingUnlinks(), err)
	}
	checkObject(t, b, key(1), testObject(9, 1, 10))
}

func TestTiersConcurrent(t *testing.T) {
	ctx := context.Background()
	for name, tier := range tiers(t) {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			errc := make(chan error, 8)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var buf []byte
					for i := 0; i < 50; i++ {
						k := key(i % 5)
						o := testObject(uint64(i%5), 3, 1000) // same content per key
						switch i % 3 {
						case 0:
							if err := tier.Put(ctx, k, o); err != nil {
								errc <- err
								return
							}
						case 1:
							r, err := tier.Open(ctx, k)
							if errors.Is(err, ErrNotFound) {
								continue
							}
							if err != nil {
								errc <- err
								return
							}
							for p := 0; p < r.NumParts(); p++ {
								if buf, err = r.ReadPart(ctx, p, buf); err != nil || !bytes.Equal(buf, o.Parts[p]) {
									errc <- fmt.Errorf("torn read of part %d: %v", p, err)
								}
							}
							r.Close()
						case 2:
							if err := tier.Delete(ctx, k); err != nil && !errors.Is(err, ErrNotFound) {
								errc <- err
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
		})
	}
}

func TestClosedTier(t *testing.T) {
	ctx := context.Background()
	b := openBadger(t, t.TempDir())
	b.Close()
	m := NewMemory()
	m.Close()
	for _, tier := range []Tier{b, m} {
		if err := tier.Put(ctx, key(1), testObject(1, 1, 1)); err == nil {
			t.Errorf("%s: put after close succeeded", tier.Name())
		}
		if _, err := tier.Open(ctx, key(1)); !errors.Is(err, ErrClosed) {
			t.Errorf("%s: open after close: %v", tier.Name(), err)
		}
	}
}

func TestDecodeRecordRejectsGarbage(t *testing.T) {
	rec := layout([]int64{7, 5, 9}, 12)
	rec.manifest = []byte("m")
	good := encodeRecord(&rec)
	if r, err := decodeRecord(good); err != nil || r.size != 22 || len(r.segs) != 2 || r.parts[2].seg != 1 || r.parts[1].off != 7 {
		t.Fatalf("good record: %+v %v", r, err)
	}
	for n := 0; n < len(good); n++ {
		if _, err := decodeRecord(good[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated record (%d bytes) accepted: %v", n, err)
		}
	}
	brec := blobLayout([]int64{7, 5, 9}, 0xfeed)
	brec.manifest = []byte("m")
	bgood := encodeRecord(&brec)
	if r, err := decodeRecord(bgood); err != nil || !r.blob || r.gen != 0xfeed || r.size != 22 || r.data != 21 || r.parts[2].off != 12 {
		t.Fatalf("good blob record: %+v %v", r, err)
	}
	for n := 0; n < len(bgood); n++ {
		if _, err := decodeRecord(bgood[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated blob record (%d bytes) accepted: %v", n, err)
		}
	}
}

func FuzzDecodeRecord(f *testing.F) {
	rec := layout([]int64{7, 0, 30}, 16)
	rec.manifest = []byte("m")
	f.Add(encodeRecord(&rec))
	f.Add([]byte(recordMagic))
	brec := blobLayout([]int64{7, 0, 30}, 0xfeed)
	brec.manifest = []byte("m")
	f.Add(encodeRecord(&brec))
	f.Add([]byte(recordMagicV3))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatal(err)
			}
			return
		}
		if int64(len(r.manifest)) > int64(len(b)) {
			t.Fatal("manifest longer than input")
		}
		if !bytes.Equal(encodeRecord(&r), b) {
			t.Fatal("decode/encode is not the identity")
		}
	})
}
