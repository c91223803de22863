package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// ValueThreshold: values of at least this many bytes go to the value log (default
	// 512). Parts are large, so nearly all of them do, and the LSM tree holds only keys
	// and small records.
	ValueThreshold int64
	// ValueLogFileSize is the size of one value-log file (default 512 MiB); space is
	// reclaimed per file by value-log GC. A part may be at most half of it.
	ValueLogFileSize int64
	// SegmentBytes is the most bytes of consecutive parts stored as one Badger value
	// (default 64 MiB; see the key layout).
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
}

// EnsureDefaults fills in zero fields.
func (o *BadgerOptions) EnsureDefaults() {
	if o.ValueThreshold == 0 {
		o.ValueThreshold = 512
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
//	'r' key(32)              → record: "RSR2", u32 parts, per part (u32 segment, u64
//	                           size), manifest, CRC-32C
//	's' key(32) u32be(seg)   → segment: consecutive parts concatenated
//
// Parts are packed in order into segments of at most SegmentBytes (a larger part gets
// a segment of its own), so a typical chunk is one Badger value: opening it costs one
// LSM lookup per segment, and each part is then copied straight out of the value log's
// memory map at its offset. Storing every part as its own value would cost an LSM
// lookup per layer, which `ragkv bench store` showed to be about 30% of the read time
// for 128 KiB layers.
const (
	prefixRecord  = 'r'
	prefixSegment = 's'
	recordMagic   = "RSR2"
)

// Badger is the local-disk tier.
type Badger struct {
	db   *badger.DB
	opts BadgerOptions
	log  *slog.Logger

	stop chan struct{}
	wg   sync.WaitGroup

	// inflight is the bytes of puts between their free-space check and their commit.
	inflight atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

var _ Tier = (*Badger)(nil)

// OpenBadger opens (or creates) the disk tier in opts.Dir and repairs it: segments
// without a record and records with missing segments are deleted (see the package
// doc). The returned tier runs value-log GC in a goroutine that Close stops.
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
	b := &Badger{db: db, opts: opts, log: opts.Logger, stop: make(chan struct{})}
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

// Name returns "disk".
func (b *Badger) Name() string { return "disk" }

// Persistent returns true.
func (b *Badger) Persistent() bool { return true }

// DB exposes the Badger handle (for tests and tools).
func (b *Badger) DB() *badger.DB { return b.db }

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

// partLoc is where a part lives: segment, offset in it, size.
type partLoc struct {
	seg       int
	off, size int64
}

type record struct {
	parts    []partLoc
	segs     []int64 // segment sizes
	manifest []byte
	size     int64
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

func encodeRecord(rec *record) []byte {
	out := make([]byte, 0, 8+12*len(rec.parts)+len(rec.manifest)+4)
	out = append(out, recordMagic...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(rec.parts)))
	for _, p := range rec.parts {
		out = binary.LittleEndian.AppendUint32(out, uint32(p.seg))
		out = binary.LittleEndian.AppendUint64(out, uint64(p.size))
	}
	out = append(out, rec.manifest...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) < 12 || string(b[:4]) != recordMagic {
		return r, fmt.Errorf("%w: bad record header", ErrCorrupt)
	}
	if got, want := crc32.Checksum(b[:len(b)-4], castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return r, fmt.Errorf("%w: record checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	n := binary.LittleEndian.Uint32(b[4:])
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

// Put writes every segment and then the record in one transaction.
func (b *Badger) Put(ctx context.Context, key Key, obj Object) error {
	if err := obj.Validate(); err != nil {
		return err
	}
	sizes := make([]int64, len(obj.Parts))
	for i, p := range obj.Parts {
		if int64(len(p)) > b.opts.ValueLogFileSize/2 {
			return fmt.Errorf("%w: part %d of %d bytes exceeds the disk tier's limit of %d", ErrInvalid, i, len(p), b.opts.ValueLogFileSize/2)
		}
		sizes[i] = int64(len(p))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := fpBadgerPut.Inject(); err != nil {
		return b.wrap("put", key, err)
	}
	release, err := b.reserveSpace(key, obj.Size())
	if err != nil {
		return err
	}
	defer release()
	rec := layout(sizes, b.opts.SegmentBytes)
	rec.manifest = obj.Manifest
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	// An overwrite with fewer segments must not leave the old tail behind.
	if item, err := txn.Get(recordKey(key)); err == nil {
		var old record
		if err := item.Value(func(v []byte) error {
			var derr error
			old, derr = decodeRecord(v)
			return derr
		}); err == nil {
			for i := len(rec.segs); i < len(old.segs); i++ {
				if err := txn.Delete(segKey(nil, key, i)); err != nil {
					return b.wrap("put", key, err)
				}
			}
		}
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return b.wrap("put", key, err)
	}
	next := 0
	for seg, segSize := range rec.segs {
		v := make([]byte, 0, segSize)
		for next < len(obj.Parts) && rec.parts[next].seg == seg {
			v = append(v, obj.Parts[next]...)
			next++
		}
		if err := txn.Set(segKey(nil, key, seg), v); err != nil {
			return b.wrap("put", key, err)
		}
	}
	if err := txn.Set(recordKey(key), encodeRecord(&rec)); err != nil {
		return b.wrap("put", key, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fpBadgerPutStaged.Hit()
	if err := txn.Commit(); err != nil {
		return b.wrap("put", key, err)
	}
	fpBadgerPutCommitted.Hit()
	return nil
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
	if errors.Is(err, badger.ErrDBClosed) {
		return fmt.Errorf("store: %s %x: %w", op, key[:8], ErrClosed)
	}
	return fmt.Errorf("store: %s %x: %w", op, key[:8], err)
}

// Open starts a read-only transaction (a snapshot) and reads the record.
func (b *Badger) Open(ctx context.Context, key Key) (Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	txn, err := b.newReadTxn()
	if err != nil {
		return nil, b.wrap("open", key, err)
	}
	item, err := txn.Get(recordKey(key))
	if err != nil {
		txn.Discard()
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: %x in disk tier", ErrNotFound, key[:8])
		}
		return nil, b.wrap("open", key, err)
	}
	raw, err := item.ValueCopy(nil)
	if err != nil {
		txn.Discard()
		return nil, b.wrap("open", key, err)
	}
	rec, err := decodeRecord(raw)
	if err != nil {
		txn.Discard()
		return nil, fmt.Errorf("store: open %x: %w", key[:8], err)
	}
	return &badgerReader{txn: txn, key: key, rec: rec, items: make([]*badger.Item, len(rec.segs))}, nil
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

// Delete removes the record and its segments in one transaction.
func (b *Badger) Delete(ctx context.Context, key Key) error {
	if b.db.IsClosed() {
		return ErrClosed
	}
	txn := b.db.NewTransaction(true)
	defer txn.Discard()
	item, err := txn.Get(recordKey(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("%w: %x in disk tier", ErrNotFound, key[:8])
	}
	if err != nil {
		return b.wrap("delete", key, err)
	}
	n := 0
	_ = item.Value(func(v []byte) error {
		if r, err := decodeRecord(v); err == nil {
			n = len(r.segs)
		}
		return nil
	})
	if err := txn.Delete(recordKey(key)); err != nil {
		return b.wrap("delete", key, err)
	}
	for i := 0; i < n; i++ {
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
	return nil
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

// RunGC runs value-log GC until no file is worth rewriting.
func (b *Badger) RunGC() {
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
