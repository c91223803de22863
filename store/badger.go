package store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// BadgerOptions configures the disk tier.
type BadgerOptions struct {
	// Dir is the Badger directory (created if missing). Required.
	Dir string
	// SyncWrites makes Put fsync before it returns, so an acknowledged object survives
	// a power loss, not only a process crash. Default false here; `ragkv serve` turns
	// it on.
	SyncWrites bool
	// ValueThreshold: Badger values of at least this many bytes go to its value log
	// (default 64 KiB). The values are the object records (manifest and part sizes;
	// parts live in blob files, see the package doc), so they stay in the LSM tree.
	ValueThreshold int64
	// ValueLogFileSize is the size of one value-log file (default 512 MiB); space is
	// reclaimed per file by value-log GC. Only records larger than ValueThreshold and
	// the segments of objects written by earlier versions live there.
	ValueLogFileSize int64
	// SegmentBytes is the most bytes of consecutive parts stored as one Badger value in
	// the earlier layout (default 64 MiB; see the key layout). New objects go to blob
	// files; it is kept for tests of that layout.
	SegmentBytes int64
	// MemTableSize (default 32 MiB) and BlockCacheSize (default 64 MiB) tune Badger's
	// memory use.
	MemTableSize   int64
	BlockCacheSize int64
	// GCInterval is how often value-log GC runs (default 1 minute; negative disables
	// it). GCDiscardRatio is the garbage fraction at which a file is rewritten (0.5).
	GCInterval     time.Duration
	GCDiscardRatio float64
	// MinFreeBytes is the free space (of the filesystem holding Dir) a put must leave:
	// a put that would leave less fails with ErrNoSpace before Badger writes anything.
	// Badger writes its memtables and value log through memory maps, and a write
	// through a map into a full filesystem is a SIGBUS that kills the process, so the
	// tier refuses before the filesystem fills. The reserve also covers what Badger
	// writes on its own (memtable flushes, compactions, the next value-log file).
	// Default max(64 MiB, 4 × MemTableSize); negative: no check.
	MinFreeBytes int64
	// Logger receives Badger's own log lines (at debug level, warnings and errors at
	// their level). Default slog.Default().
	Logger *slog.Logger

	// segments: write new objects in the earlier layout (parts as Badger values), for
	// tests that such data dirs still read, repair and delete.
	segments bool
}

// EnsureDefaults fills in zero fields.
func (o *BadgerOptions) EnsureDefaults() {
	if o.ValueThreshold == 0 {
		o.ValueThreshold = 64 << 10
	}
	if o.ValueLogFileSize == 0 {
		o.ValueLogFileSize = 512 << 20
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 32 << 20
	}
	if o.BlockCacheSize == 0 {
		o.BlockCacheSize = 64 << 20
	}
	if o.GCInterval == 0 {
		o.GCInterval = time.Minute
	}
	if o.GCDiscardRatio == 0 {
		o.GCDiscardRatio = 0.5
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = max(64<<20, 4*o.MemTableSize)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate checks the options.
func (o *BadgerOptions) Validate() error {
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: badger directory is empty", ErrInvalid)
	case o.ValueThreshold < 1 || o.ValueThreshold > 1<<20:
		return fmt.Errorf("%w: value threshold %d (want 1..1MiB)", ErrInvalid, o.ValueThreshold)
	case o.ValueLogFileSize < 1<<20 || o.ValueLogFileSize >= 2<<30:
		return fmt.Errorf("%w: value log file size %d (want 1MiB..2GiB)", ErrInvalid, o.ValueLogFileSize)
	case o.SegmentBytes < 1 || o.SegmentBytes > o.ValueLogFileSize/2:
		return fmt.Errorf("%w: segment size %d (want 1..half the value log file size)", ErrInvalid, o.SegmentBytes)
	case o.MemTableSize < 1<<20:
		return fmt.Errorf("%w: memtable size %d (want ≥ 1MiB)", ErrInvalid, o.MemTableSize)
	case o.BlockCacheSize < 0:
		return fmt.Errorf("%w: block cache size %d", ErrInvalid, o.BlockCacheSize)
	case !(o.GCDiscardRatio > 0 && o.GCDiscardRatio < 1):
		return fmt.Errorf("%w: gc discard ratio %v (want 0 < r < 1)", ErrInvalid, o.GCDiscardRatio)
	}
	return nil
}

// Key layout inside Badger:
//
//	'r' key(32)              → record, either
//	                           "RSR3", u32 parts, u64 generation, per part u64 size,
//	                           manifest, CRC-32C: the parts are the blob file
//	                           blobs/<key[0] hex>/<key hex>-<generation hex> (the parts
//	                           concatenated, nothing else), or
//	                           "RSR2", u32 parts, per part (u32 segment, u64 size),
//	                           manifest, CRC-32C: the parts are segments in Badger
//	                           (written by earlier versions; still read and deleted)
//	's' key(32) u32be(seg)   → segment (RSR2 only): consecutive parts concatenated
//
// Why blob files: Badger reads and writes its value log through memory maps, so every
// page of a chunk that was put or read stays in the process's resident set (file-backed,
// counted in RSS) for as long as the value-log file exists, and value-log GC rewrites a
// file only when half of it is garbage. A disk tier under steady put/evict traffic then
// grows its RSS with the value log. Blob files are written with write(2) and read with
// pread(2): their pages are the kernel's page cache, not mapped into the process, and a
// deleted object's file is unlinked at once, so the tier's footprint follows what it
// holds. Badger keeps only the records (in its LSM tree: ValueThreshold is above a
// record's size), which makes a put one record commit, atomic as before.
//
// In the earlier layout, parts are packed in order into segments of at most
// SegmentBytes (a larger part gets a segment of its own), so a typical chunk is one
// Badger value.
const (
	prefixRecord   = 'r'
	prefixSegment  = 's'
	recordMagic    = "RSR2"
	recordMagicV3  = "RSR3"
	blobDirName    = "blobs"
	blobNameFormat = "%x-%016x"
)

// Badger is the local-disk tier.
type Badger struct {
	db   *badger.DB
	opts BadgerOptions
	log  *slog.Logger
	// blobs is the blob file directory (opts.Dir/blobs).
	blobs string

	// locks serialize puts and deletes of a key (by its first byte): a put reads the
	// record it replaces to unlink that blob after the commit, and two puts of one key
	// must not both see the same old record (one new blob would be left unreferenced).
	locks [256]sync.Mutex

	// unlinkMu guards pending: blob files whose unlink failed, retried on every GC tick
	// (and removed by repair at the next start anyway).
	unlinkMu sync.Mutex
	pending  []string

	stop chan struct{}
	wg   sync.WaitGroup

	// inflight is the bytes of puts between their free-space check and their commit.
	inflight atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

var _ Tier = (*Badger)(nil)

// OpenBadger opens (or creates) the disk tier in opts.Dir and repairs it: segments
// without a record, records whose segments or blob file are missing and blob files
// without a record are deleted (see the package doc). The returned tier runs value-log
// GC (and retries failed blob unlinks) in a goroutine that Close stops.
func OpenBadger(ctx context.Context, opts BadgerOptions) (*Badger, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(opts.Dir).
		WithSyncWrites(opts.SyncWrites).
		WithValueThreshold(opts.ValueThreshold).
		WithValueLogFileSize(opts.ValueLogFileSize).
		WithMemTableSize(opts.MemTableSize).
		WithNumMemtables(3).
		WithBlockCacheSize(opts.BlockCacheSize).
		WithCompression(options.None).
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithNumCompactors(2).
		WithLogger(badgerLogger{opts.Logger})
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open badger in %s: %w", opts.Dir, err)
	}
	b := &Badger{db: db, opts: opts, log: opts.Logger, stop: make(chan struct{}), blobs: filepath.Join(opts.Dir, blobDirName)}
	if err := b.makeBlobDirs(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := b.repair(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if opts.GCInterval > 0 {
		b.wg.Add(1)
		go b.gcLoop()
	}
	return b, nil
}

// makeBlobDirs creates blobs/00 … blobs/ff (synced into their parents, so that a
// blob's directory entry is durable once the blob and its directory are synced).
func (b *Badger) makeBlobDirs() error {
	if err := os.MkdirAll(b.blobs, 0o700); err != nil {
		return fmt.Errorf("store: blob directory: %w", err)
	}
	for i := 0; i < 256; i++ {
		if err := os.Mkdir(filepath.Join(b.blobs, fmt.Sprintf("%02x", i)), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("store: blob directory: %w", err)
		}
	}
	if b.opts.SyncWrites {
		for _, d := range []string{b.blobs, b.opts.Dir} {
			if err := syncDir(d); err != nil {
				return fmt.Errorf("store: blob directory: %w", err)
			}
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Name returns "disk".
func (b *Badger) Name() string { return "disk" }

// Persistent returns true.
func (b *Badger) Persistent() bool { return true }

// DB exposes the Badger handle (for tests and tools).
func (b *Badger) DB() *badger.DB { return b.db }

// BlobPath is the blob file that holds the parts of the object under key (for tests
// and tools); ok is false when there is no object or it is stored in the earlier
// layout (segments in Badger).
func (b *Badger) BlobPath(key Key) (path string, ok bool, err error) {
	rec, err := b.readRecord(key)
	if errors.Is(err, ErrNotFound) {
		return "", false, nil
	}
	if err != nil || !rec.blob {
		return "", false, err
	}
	return b.blobPath(key, rec.gen), true, nil
}

func (b *Badger) blobPath(key Key, gen uint64) string {
	return filepath.Join(b.blobs, fmt.Sprintf("%02x", key[0]), fmt.Sprintf(blobNameFormat, key[:], gen))
}

// parseBlobName is the key and generation of a blob file name.
func parseBlobName(name string) (Key, uint64, bool) {
	var k Key
	hexKey, hexGen, ok := strings.Cut(name, "-")
	if !ok || len(hexKey) != 64 || len(hexGen) != 16 {
		return k, 0, false
	}
	kb, err := hex.DecodeString(hexKey)
	if err != nil {
		return k, 0, false
	}
	gen, err := strconv.ParseUint(hexGen, 16, 64)
	if err != nil {
		return k, 0, false
	}
	copy(k[:], kb)
	return k, gen, true
}

func recordKey(k Key) []byte {
	out := make([]byte, 33)
	out[0] = prefixRecord
	copy(out[1:], k[:])
	return out
}

func segKey(dst []byte, k Key, seg int) []byte {
	dst = append(dst[:0], prefixSegment)
	dst = append(dst, k[:]...)
	return binary.BigEndian.AppendUint32(dst, uint32(seg))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// partLoc is where a part lives: segment, offset in it, size. In a blob record every
// part is in "segment" 0, the blob file.
type partLoc struct {
	seg       int
	off, size int64
}

type record struct {
	parts    []partLoc
	segs     []int64 // segment sizes (RSR2)
	manifest []byte
	size     int64
	// blob: the parts are the blob file of generation gen (RSR3); data is their size.
	blob bool
	gen  uint64
	data int64
}

// layout packs part sizes into segments of at most segBytes.
func layout(sizes []int64, segBytes int64) record {
	var r record
	r.parts = make([]partLoc, len(sizes))
	for i, sz := range sizes {
		if len(r.segs) == 0 || (r.segs[len(r.segs)-1] > 0 && r.segs[len(r.segs)-1]+sz > segBytes) {
			r.segs = append(r.segs, 0)
		}
		seg := len(r.segs) - 1
		r.parts[i] = partLoc{seg: seg, off: r.segs[seg], size: sz}
		r.segs[seg] += sz
		r.size += sz
	}
	return r
}

// blobLayout places the parts one after the other in one blob file.
func blobLayout(sizes []int64, gen uint64) record {
	r := record{blob: true, gen: gen, parts: make([]partLoc, len(sizes))}
	for i, sz := range sizes {
		r.parts[i] = partLoc{off: r.data, size: sz}
		r.data += sz
	}
	r.size = r.data
	return r
}

func encodeRecord(rec *record) []byte {
	out := make([]byte, 0, 16+12*len(rec.parts)+len(rec.manifest)+4)
	if rec.blob {
		out = append(out, recordMagicV3...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(rec.parts)))
		out = binary.LittleEndian.AppendUint64(out, rec.gen)
		for _, p := range rec.parts {
			out = binary.LittleEndian.AppendUint64(out, uint64(p.size))
		}
	} else {
		out = append(out, recordMagic...)
		out = binary.LittleEndian.AppendUint32(out, uint32(len(rec.parts)))
		for _, p := range rec.parts {
			out = binary.LittleEndian.AppendUint32(out, uint32(p.seg))
			out = binary.LittleEndian.AppendUint64(out, uint64(p.size))
		}
	}
	out = append(out, rec.manifest...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) < 12 || (string(b[:4]) != recordMagic && string(b[:4]) != recordMagicV3) {
		return r, fmt.Errorf("%w: bad record header", ErrCorrupt)
	}
	if got, want := crc32.Checksum(b[:len(b)-4], castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return r, fmt.Errorf("%w: record checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if string(b[:4]) == recordMagicV3 {
		if n > MaxParts || int64(len(b)) < 20+8*int64(n) {
			return r, fmt.Errorf("%w: record with %d parts is truncated", ErrCorrupt, n)
		}
		r.blob, r.gen = true, binary.LittleEndian.Uint64(b[8:])
		r.parts = make([]partLoc, n)
		for i := range r.parts {
			sz := binary.LittleEndian.Uint64(b[16+8*i:])
			if sz > 1<<40 {
				return r, fmt.Errorf("%w: part %d size %d", ErrCorrupt, i, sz)
			}
			r.parts[i] = partLoc{off: r.data, size: int64(sz)}
			r.data += int64(sz)
		}
		r.manifest = b[16+8*int(n) : len(b)-4]
		r.size = r.data + int64(len(r.manifest))
		return r, nil
	}
	if n > MaxParts || int64(len(b)) < 12+12*int64(n) {
		return r, fmt.Errorf("%w: record with %d parts is truncated", ErrCorrupt, n)
	}
	r.parts = make([]partLoc, n)
	for i := range r.parts {
		seg := int(binary.LittleEndian.Uint32(b[8+12*i:]))
		sz := binary.LittleEndian.Uint64(b[12+12*i:])
		if sz > 1<<40 {
			return r, fmt.Errorf("%w: part %d size %d", ErrCorrupt, i, sz)
		}
		switch {
		case seg == len(r.segs)-1:
		case seg == len(r.segs):
			r.segs = append(r.segs, 0)
		default:
			return r, fmt.Errorf("%w: part %d in segment %d after segment %d", ErrCorrupt, i, seg, len(r.segs)-1)
		}
		r.parts[i] = partLoc{seg: seg, off: r.segs[seg], size: int64(sz)}
		r.segs[seg] += int64(sz)
		r.size += int64(sz)
	}
	r.manifest = b[8+12*int(n) : len(b)-4]
	r.size += int64(len(r.manifest))
	return r, nil
}

// Put writes the blob file (outside any lock: its name is new), then, under the key's
// lock, commits the record and unlinks the blob of the record it replaced.
func (b *Badger) Put(ctx context.Context, key Key, obj Object) error {
	if err := obj.Validate(); err != nil {
		return err
	}
	sizes := make([]int64, len(obj.Parts))
	for i, p := range obj.Parts {
		if b.opts.segments && int64(len(p)) > b.opts.ValueLogFileSize/2 {
			return fmt.Errorf("%w: part %d of %d bytes exceeds the disk tier's limit of %d", ErrInvalid, i, len(p), b.opts.ValueLogFileSize/2)
		}
		sizes[i] = int64(len(p))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.db.IsClosed() {
		return b.wrap("put", key, ErrClosed)
	}
	if err := fpBadgerPut.Inject(); err != nil {
		return b.wrap("put", key, err)
	}
	release, err := b.reserveSpace(key, obj.Size())
	if err != nil {
		return err
	}
	defer release()
	var rec record
	if b.opts.segments {
		rec = layout(sizes, b.opts.SegmentBytes)
	} else {
		path, gen, err := b.writeBlob(key, obj.Parts)
		if err != nil {
			return b.wrap("put", key, err)
		}
		committed := false
		defer func() {
			if !committed {
				b.unlink(path)
			}
		}()
		if err := fpBadgerBlobWritten.Inject(); err != nil {
			return b.wrap("put", key, err)
		}
		rec = blobLayout(sizes, gen)
		rec.manifest = obj.Manifest
		mu := &b.locks[key[0]]
		mu.Lock()
		defer mu.Unlock()
		old, err := b.commitRecord(ctx, key, &rec, nil)
		if err != nil {
			return err
		}
		committed = true
		if old.blob {
			b.unlink(b.blobPath(key, old.gen))
		}
		return nil
	}
	rec.manifest = obj.Manifest
	mu := &b.locks[key[0]]
	mu.Lock()
	defer mu.Unlock()
	old, err := b.commitRecord(ctx, key, &rec, obj.Parts)
	if err != nil {
		return err
	}
	if old.blob {
		b.unlink(b.blobPath(key, old.gen))
	}
	return nil
}

// writeBlob writes parts to a new blob file (synced with its directory under
// SyncWrites) and returns its path and generation.
func (b *Badger) writeBlob(key Key, parts [][]byte) (string, uint64, error) {
	var f *os.File
	var path string
	var gen uint64
	for {
		gen = rand.Uint64()
		path = b.blobPath(key, gen)
		var err error
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", 0, blobErr(err)
		}
		break
	}
	fail := func(err error) (string, uint64, error) {
		_ = f.Close()
		_ = os.Remove(path)
		return "", 0, blobErr(err)
	}
	for _, p := range parts {
		if _, err := f.Write(p); err != nil {
			return fail(err)
		}
	}
	if b.opts.SyncWrites {
		if err := f.Sync(); err != nil {
			return fail(err)
		}
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return "", 0, blobErr(err)
	}
	if b.opts.SyncWrites {
		if err := syncDir(filepath.Dir(path)); err != nil {
			_ = os.Remove(path)
			return "", 0, blobErr(err)
		}
	}
	return path, gen, nil
}

// blobErr marks a full filesystem as ErrNoSpace.
func blobErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: blob file: %w", ErrNoSpace, err)
	}
	return fmt.Errorf("blob file: %w", err)
}

// commitRecord sets key's record (and, in the earlier layout, its segments from parts)
// in one transaction, deleting the segments of the record it replaces that the new one
// does not overwrite, and returns the replaced record (zero if none). The caller holds
// the key's lock.
func (b *Badger) commitRecord(ctx context.Context, key Key, rec *record, parts [][]byte) (record, error) {
	var old record
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	if item, err := txn.Get(recordKey(key)); err == nil {
		if err := item.Value(func(v []byte) error {
			var derr error
			old, derr = decodeRecord(v)
			return derr
		}); err != nil {
			old = record{}
		}
		for i := len(rec.segs); i < len(old.segs); i++ {
			if err := txn.Delete(segKey(nil, key, i)); err != nil {
				return record{}, b.wrap("put", key, err)
			}
		}
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return record{}, b.wrap("put", key, err)
	}
	next := 0
	for seg, segSize := range rec.segs {
		v := make([]byte, 0, segSize)
		for next < len(parts) && rec.parts[next].seg == seg {
			v = append(v, parts[next]...)
			next++
		}
		if err := txn.Set(segKey(nil, key, seg), v); err != nil {
			return record{}, b.wrap("put", key, err)
		}
	}
	if err := txn.Set(recordKey(key), encodeRecord(rec)); err != nil {
		return record{}, b.wrap("put", key, err)
	}
	if err := ctx.Err(); err != nil {
		return record{}, err
	}
	fpBadgerPutStaged.Hit()
	if err := txn.Commit(); err != nil {
		return record{}, b.wrap("put", key, err)
	}
	fpBadgerPutCommitted.Hit()
	return old, nil
}

// unlink removes a blob file that no record references (any more); a failure is
// logged and retried on the next GC tick.
func (b *Badger) unlink(path string) {
	err := fpBadgerBlobUnlink.Inject()
	if err == nil {
		err = os.Remove(path)
	}
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return
	}
	b.log.Warn("disk tier: unlink blob file (retried later)", "path", path, "err", err)
	b.unlinkMu.Lock()
	b.pending = append(b.pending, path)
	b.unlinkMu.Unlock()
}

// retryUnlinks retries the blob unlinks that failed.
func (b *Badger) retryUnlinks() {
	b.unlinkMu.Lock()
	paths := b.pending
	b.pending = nil
	b.unlinkMu.Unlock()
	for _, p := range paths {
		b.unlink(p)
	}
}

// PendingUnlinks is the number of blob files whose unlink failed and waits for a
// retry (the next GC tick or RunGC).
func (b *Badger) PendingUnlinks() int {
	b.unlinkMu.Lock()
	defer b.unlinkMu.Unlock()
	return len(b.pending)
}

// reserveSpace checks that the filesystem keeps MinFreeBytes free after this put and
// the others in flight, and counts this one in flight until release.
func (b *Badger) reserveSpace(key Key, size int64) (release func(), err error) {
	if b.opts.MinFreeBytes < 0 {
		return func() {}, nil
	}
	need := b.inflight.Add(size)
	release = func() { b.inflight.Add(-size) }
	free, err := FreeBytes(b.opts.Dir)
	if err != nil {
		release()
		return nil, fmt.Errorf("store: put %x: free space of %s: %w", key[:8], b.opts.Dir, err)
	}
	if free-need < b.opts.MinFreeBytes {
		release()
		return nil, fmt.Errorf("store: put %x (%d bytes): %w: %d bytes free on the disk tier's filesystem, a put must leave %d",
			key[:8], size, ErrNoSpace, free, b.opts.MinFreeBytes)
	}
	return release, nil
}

func (b *Badger) wrap(op string, key Key, err error) error {
	if errors.Is(err, badger.ErrDBClosed) && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("store: %s %x: %w", op, key[:8], ErrClosed)
	}
	return fmt.Errorf("store: %s %x: %w", op, key[:8], err)
}

// readRecord reads key's record in a transaction of its own.
func (b *Badger) readRecord(key Key) (record, error) {
	txn, err := b.newReadTxn()
	if err != nil {
		return record{}, b.wrap("open", key, err)
	}
	defer txn.Discard()
	rec, err := b.getRecord(txn, key)
	return rec, err
}

// getRecord reads and decodes key's record (a copy) in txn.
func (b *Badger) getRecord(txn *badger.Txn, key Key) (record, error) {
	item, err := txn.Get(recordKey(key))
	if err != nil {
		if errors.Is(err, badger.ErrKeyNotFound) {
			return record{}, fmt.Errorf("%w: %x in disk tier", ErrNotFound, key[:8])
		}
		return record{}, b.wrap("open", key, err)
	}
	raw, err := item.ValueCopy(nil)
	if err != nil {
		return record{}, b.wrap("open", key, err)
	}
	rec, err := decodeRecord(raw)
	if err != nil {
		return record{}, fmt.Errorf("store: open %x: %w", key[:8], err)
	}
	return rec, nil
}

// Open reads the record and opens its blob file (a blob reader holds the open file,
// so a concurrent Delete or overwrite, which unlinks it, never tears what it reads);
// an object in the earlier layout is read in a read-only transaction (a snapshot).
func (b *Badger) Open(ctx context.Context, key Key) (Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		txn, err := b.newReadTxn()
		if err != nil {
			return nil, b.wrap("open", key, err)
		}
		rec, err := b.getRecord(txn, key)
		if err != nil {
			txn.Discard()
			return nil, err
		}
		if !rec.blob {
			return &badgerReader{txn: txn, key: key, rec: rec, items: make([]*badger.Item, len(rec.segs))}, nil
		}
		txn.Discard()
		f, err := os.Open(b.blobPath(key, rec.gen))
		if errors.Is(err, fs.ErrNotExist) && attempt < 8 {
			// Replaced or deleted since the record was read (the writer unlinks the
			// old blob after its commit): read the record again.
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("store: open %x: %w: blob file of generation %016x is missing", key[:8], ErrCorrupt, rec.gen)
		}
		if err != nil {
			return nil, b.wrap("open", key, err)
		}
		st, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return nil, b.wrap("open", key, err)
		}
		if st.Size() != rec.data {
			_ = f.Close()
			return nil, fmt.Errorf("store: open %x: %w: blob file is %d bytes, record says %d", key[:8], ErrCorrupt, st.Size(), rec.data)
		}
		return &blobReader{f: f, key: key, rec: rec}, nil
	}
}

// newReadTxn opens a read-only transaction; badger panics on a closed DB, so check.
func (b *Badger) newReadTxn() (txn *badger.Txn, err error) {
	if b.db.IsClosed() {
		return nil, ErrClosed
	}
	return b.db.NewTransaction(false), nil
}

// Has reports whether a record exists for key.
func (b *Badger) Has(ctx context.Context, key Key) (bool, error) {
	txn, err := b.newReadTxn()
	if err != nil {
		return false, err
	}
	defer txn.Discard()
	_, err = txn.Get(recordKey(key))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, b.wrap("has", key, err)
}

// Delete removes the record (and its segments) in one transaction, then unlinks the
// blob file.
func (b *Badger) Delete(ctx context.Context, key Key) error {
	if b.db.IsClosed() {
		return ErrClosed
	}
	mu := &b.locks[key[0]]
	mu.Lock()
	defer mu.Unlock()
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	item, err := txn.Get(recordKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("%w: %x in disk tier", ErrNotFound, key[:8])
	}
	if err != nil {
		return b.wrap("delete", key, err)
	}
	var rec record
	_ = item.Value(func(v []byte) error {
		if r, err := decodeRecord(v); err == nil {
			rec = r
		}
		return nil
	})
	if err := txn.Delete(recordKey(key)); err != nil {
		return b.wrap("delete", key, err)
	}
	for i := range rec.segs {
		if err := txn.Delete(segKey(nil, key, i)); err != nil {
			return b.wrap("delete", key, err)
		}
	}
	if err := fpBadgerDelete.Inject(); err != nil {
		return b.wrap("delete", key, err)
	}
	if err := txn.Commit(); err != nil {
		return b.wrap("delete", key, err)
	}
	fpBadgerDeleteCommitted.Hit()
	if rec.blob {
		b.unlink(b.blobPath(key, rec.gen))
	}
	return nil
}

// Scan calls fn for every record.
func (b *Badger) Scan(ctx context.Context, fn func(Info) error) error {
	txn, err := b.newReadTxn()
	if err != nil {
		return err
	}
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: []byte{prefixRecord}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		item := it.Item()
		var k Key
		copy(k[:], item.Key()[1:])
		err := item.Value(func(v []byte) error {
			rec, err := decodeRecord(v)
			if err != nil {
				return fmt.Errorf("store: scan %x: %w", k[:8], err)
			}
			return fn(Info{Key: k, Size: rec.size, Parts: len(rec.parts), Manifest: rec.manifest})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// segSet lists the segment indexes found for one key.
type segSet map[int]bool

// repair deletes segments that have no record and records that are corrupt or whose
// segments are missing. A Badger commit is atomic, so a healthy store has none; this
// guards against damage from outside.
func (b *Badger) repair(ctx context.Context) error {
	segs := map[Key]segSet{}
	records := map[Key]record{}
	var bad []Key
	err := b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{prefixSegment}})
		for it.Rewind(); it.Valid(); it.Next() {
			kk := it.Item().Key()
			if len(kk) != 37 {
				continue
			}
			var k Key
			copy(k[:], kk[1:33])
			if segs[k] == nil {
				segs[k] = segSet{}
			}
			segs[k][int(binary.BigEndian.Uint32(kk[33:]))] = true
		}
		it.Close()
		it = txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{prefixRecord}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var k Key
			copy(k[:], it.Item().Key()[1:])
			err := it.Item().Value(func(v []byte) error {
				rec, err := decodeRecord(v)
				if err != nil {
					bad = append(bad, k)
					return nil
				}
				records[k] = rec
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: repair scan: %w", err)
	}
	for k, rec := range records {
		if rec.blob {
			if st, err := os.Stat(b.blobPath(k, rec.gen)); err != nil || st.Size() != rec.data {
				bad = append(bad, k)
			}
			continue
		}
		for i := range rec.segs {
			if !segs[k][i] {
				bad = append(bad, k)
				break
			}
		}
	}
	var orphans []Key
	for k := range segs {
		if _, ok := records[k]; !ok {
			orphans = append(orphans, k)
		}
	}
	for _, k := range bad {
		b.log.Warn("disk tier: deleting incomplete or corrupt object", "key", fmt.Sprintf("%x", k))
		if err := b.deleteAll(k, segs[k]); err != nil {
			return err
		}
	}
	for _, k := range orphans {
		b.log.Warn("disk tier: deleting segments without a record", "key", fmt.Sprintf("%x", k))
		if err := b.deleteAll(k, segs[k]); err != nil {
			return err
		}
	}
	for _, k := range bad {
		delete(records, k)
	}
	return b.removeStrayBlobs(ctx, records)
}

// removeStrayBlobs unlinks the blob files that no record references: what a put left
// when it crashed before its commit, or a delete or overwrite after its commit.
func (b *Badger) removeStrayBlobs(ctx context.Context, records map[Key]record) error {
	for i := 0; i < 256; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := filepath.Join(b.blobs, fmt.Sprintf("%02x", i))
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("store: repair: %w", err)
		}
		for _, e := range ents {
			k, gen, ok := parseBlobName(e.Name())
			if !ok || e.IsDir() {
				continue
			}
			if rec, has := records[k]; has && rec.blob && rec.gen == gen {
				continue
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("store: repair: remove a blob file without a record: %w", err)
			}
		}
	}
	return nil
}

// StrayBlobs counts the blob files that no record references (0 after a repair,
// unless an unlink failed since; for tests and tools).
func (b *Badger) StrayBlobs(ctx context.Context) (int, error) {
	refs := map[string]bool{}
	err := b.Scan(ctx, func(in Info) error {
		rec, err := b.readRecord(in.Key)
		if err == nil && rec.blob {
			refs[filepath.Base(b.blobPath(in.Key, rec.gen))] = true
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for i := 0; i < 256; i++ {
		ents, err := os.ReadDir(filepath.Join(b.blobs, fmt.Sprintf("%02x", i)))
		if err != nil {
			return 0, fmt.Errorf("store: %w", err)
		}
		for _, e := range ents {
			if _, _, ok := parseBlobName(e.Name()); ok && !refs[e.Name()] {
				n++
			}
		}
	}
	return n, nil
}

// deleteAll removes k's record and every segment in ss.
func (b *Badger) deleteAll(k Key, ss segSet) error {
	wb := b.db.NewWriteBatch()
	defer wb.Cancel()
	if err := wb.Delete(recordKey(k)); err != nil {
		return fmt.Errorf("store: repair %x: %w", k[:8], err)
	}
	for i := range ss {
		if err := wb.Delete(segKey(nil, k, i)); err != nil {
			return fmt.Errorf("store: repair %x: %w", k[:8], err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: repair %x: %w", k[:8], err)
	}
	return nil
}

// Close stops value-log GC and closes Badger.
func (b *Badger) Close() error {
	b.closeOnce.Do(func() {
		close(b.stop)
		b.wg.Wait()
		b.closeErr = b.db.Close()
	})
	return b.closeErr
}

func (b *Badger) gcLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.opts.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.RunGC()
		}
	}
}

// RunGC retries failed blob unlinks and runs value-log GC until no file is worth
// rewriting.
func (b *Badger) RunGC() {
	b.retryUnlinks()
	for i := 0; i < 16; i++ {
		select {
		case <-b.stop:
			return
		default:
		}
		if err := b.db.RunValueLogGC(b.opts.GCDiscardRatio); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				b.log.Warn("disk tier: value log gc", "err", err)
			}
			return
		}
	}
}

type badgerReader struct {
	txn   *badger.Txn
	key   Key
	rec   record
	items []*badger.Item // per segment, fetched on first use
	kbuf  []byte
}

func (r *badgerReader) Manifest() []byte { return r.rec.manifest }
func (r *badgerReader) NumParts() int    { return len(r.rec.parts) }
func (r *badgerReader) Size() int64      { return r.rec.size }

func (r *badgerReader) PartSize(i int) int64 {
	if i < 0 || i >= len(r.rec.parts) {
		return 0
	}
	return r.rec.parts[i].size
}

// ReadPart copies part i out of its segment's value (a view of the value log's memory
// map), so only the part's bytes are copied.
func (r *badgerReader) ReadPart(ctx context.Context, i int, dst []byte) ([]byte, error) {
	if i < 0 || i >= len(r.rec.parts) {
		return dst, fmt.Errorf("%w: part %d of %d", ErrInvalid, i, len(r.rec.parts))
	}
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	p := r.rec.parts[i]
	item := r.items[p.seg]
	if item == nil {
		r.kbuf = segKey(r.kbuf, r.key, p.seg)
		var err error
		item, err = r.txn.Get(r.kbuf)
		if err != nil {
			if errors.Is(err, badger.ErrKeyNotFound) {
				return dst, fmt.Errorf("%w: %x segment %d missing in disk tier", ErrCorrupt, r.key[:8], p.seg)
			}
			return dst, fmt.Errorf("store: read %x part %d: %w", r.key[:8], i, err)
		}
		r.items[p.seg] = item
	}
	if int64(cap(dst)) < p.size {
		dst = make([]byte, 0, p.size)
	}
	out := dst[:0]
	err := item.Value(func(v []byte) error {
		if int64(len(v)) != r.rec.segs[p.seg] {
			return fmt.Errorf("%w: %x segment %d is %d bytes, record says %d", ErrCorrupt, r.key[:8], p.seg, len(v), r.rec.segs[p.seg])
		}
		out = append(out, v[p.off:p.off+p.size]...)
		return nil
	})
	if err != nil {
		return dst, fmt.Errorf("store: read %x part %d: %w", r.key[:8], i, err)
	}
	return out, nil
}

func (r *badgerReader) Close() error {
	r.txn.Discard()
	return nil
}

// blobReader reads an object's parts from its open blob file with pread.
type blobReader struct {
	f   *os.File
	key Key
	rec record
}

func (r *blobReader) Manifest() []byte { return r.rec.manifest }
func (r *blobReader) NumParts() int    { return len(r.rec.parts) }
func (r *blobReader) Size() int64      { return r.rec.size }

func (r *blobReader) PartSize(i int) int64 {
	if i < 0 || i >= len(r.rec.parts) {
		return 0
	}
	return r.rec.parts[i].size
}

// ReadPart reads part i at its offset in the blob file into dst.
func (r *blobReader) ReadPart(ctx context.Context, i int, dst []byte) ([]byte, error) {
	if i < 0 || i >= len(r.rec.parts) {
		return dst, fmt.Errorf("%w: part %d of %d", ErrInvalid, i, len(r.rec.parts))
	}
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	p := r.rec.parts[i]
	if int64(cap(dst)) < p.size {
		dst = make([]byte, 0, p.size)
	}
	out := dst[:p.size]
	if _, err := r.f.ReadAt(out, p.off); err != nil {
		if errors.Is(err, io.EOF) {
			return dst, fmt.Errorf("%w: %x part %d: blob file is shorter than its record", ErrCorrupt, r.key[:8], i)
		}
		return dst, fmt.Errorf("store: read %x part %d: %w", r.key[:8], i, err)
	}
	return out, nil
}

func (r *blobReader) Close() error { return r.f.Close() }

// badgerLogger routes Badger's logging to slog; its info chatter goes to debug.
type badgerLogger struct{ l *slog.Logger }

func (g badgerLogger) Errorf(f string, a ...any) {
	g.l.Error("badger: " + trimNL(fmt.Sprintf(f, a...)))
}
func (g badgerLogger) Warningf(f string, a ...any) {
	g.l.Warn("badger: " + trimNL(fmt.Sprintf(f, a...)))
}
func (g badgerLogger) Infof(f string, a ...any) { g.l.Debug("badger: " + trimNL(fmt.Sprintf(f, a...))) }
func (g badgerLogger) Debugf(f string, a ...any) {
	g.l.Debug("badger: " + trimNL(fmt.Sprintf(f, a...)))
}

func trimNL(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	return s
}
