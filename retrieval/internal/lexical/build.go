package lexical

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// Shard directory files.
const indexFile = "index.bin"

// On-disk format (index.bin, little endian), version 1:
//
//	header     64 bytes: magic "RKVLEX\x00\x01", docs u32, terms u32, total length u64,
//	           postings offset u64, dictionary offset u64, index offset u64, file length
//	           u64, CRC-32C of the 56 bytes before it u32, zero u32
//	lengths    docs × u32: each document's analyzed length
//	postings   per term (dictionary order): a skip table of ⌈df/128⌉ entries of 4 × u32
//	           (last ordinal of the block, end offset of the block in the term's posting
//	           bytes, largest tf in the block, smallest document length in the block),
//	           then the postings: per document, ascending, uvarint(ordinal − previous
//	           ordinal − 1) (previous = −1 at the start) and uvarint(tf)
//	dictionary per term, sorted by bytes: uvarint length, term bytes, uvarint df,
//	           uvarint offset of its skip table, uvarint length of its posting bytes,
//	           uvarint largest tf, uvarint smallest document length
//	index      u64 offset of every 32nd dictionary entry (0, 32, 64, ...)
const (
	magic      = "RKVLEX\x00\x01"
	headerSize = 64
	blockSize  = 128
	skipEntry  = 16
	indexEvery = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Stats are a shard's (or, summed, a collection's) length statistics.
type Stats struct {
	Docs        int64 `json:"docs"`
	TotalLength int64 `json:"total_length"`
}

type termBuf struct {
	post  []byte // uvarint gap, uvarint tf per posting
	prev  int64  // last ordinal added (−1: none)
	df    uint32
	maxTF uint32
}

// Builder accumulates a shard's inverted index in memory (postings as varint bytes,
// a few bytes per posting) and writes it in one pass. Documents are added in ordinal
// order 0, 1, 2, .... Not safe for concurrent use.
type Builder struct {
	tc      *termCache
	ids     map[string]uint32
	terms   []string
	bufs    []termBuf
	tf      []uint32
	touched []uint32
	toks    []uint32
	lengths []uint32
	total   int64
}

// NewBuilder returns an empty Builder.
func NewBuilder() (*Builder, error) {
	tc, err := newTermCache()
	if err != nil {
		return nil, err
	}
	return &Builder{tc: tc, ids: map[string]uint32{}}, nil
}

// Len returns how many documents were added.
func (b *Builder) Len() int { return len(b.lengths) }

// Add indexes text as the next document ordinal.
func (b *Builder) Add(text string) error {
	if len(b.lengths) == math.MaxUint32-1 {
		return fmt.Errorf("lexical: a shard holds at most %d documents", math.MaxUint32-1)
	}
	doc := int64(len(b.lengths))
	b.toks = b.tc.ids(text, b.intern, b.toks[:0])
	b.lengths = append(b.lengths, uint32(len(b.toks)))
	b.total += int64(len(b.toks))
	b.touched = b.touched[:0]
	for _, id := range b.toks {
		if b.tf[id] == 0 {
			b.touched = append(b.touched, id)
		}
		b.tf[id]++
	}
	for _, id := range b.touched {
		tb := &b.bufs[id]
		tf := b.tf[id]
		b.tf[id] = 0
		tb.post = binary.AppendUvarint(tb.post, uint64(doc-tb.prev-1))
		tb.post = binary.AppendUvarint(tb.post, uint64(tf))
		tb.prev = doc
		tb.df++
		tb.maxTF = max(tb.maxTF, tf)
	}
	return nil
}

// intern returns the id of term, adding it when new.
func (b *Builder) intern(t string) uint32 {
	id, ok := b.ids[t]
	if !ok {
		id = uint32(len(b.terms))
		b.ids[t] = id
		b.terms = append(b.terms, t)
		b.bufs = append(b.bufs, termBuf{prev: -1})
		b.tf = append(b.tf, 0)
	}
	return id
}

// Build indexes texts[i] as document ordinal i into a new shard in dir (which must not
// exist or be empty). It returns the shard's statistics.
func Build(ctx context.Context, dir string, texts []string) (Stats, error) {
	b, err := NewBuilder()
	if err != nil {
		return Stats{}, err
	}
	for i, t := range texts {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return Stats{}, err
			}
		}
		if err := b.Add(t); err != nil {
			return Stats{}, err
		}
	}
	return b.Write(ctx, dir)
}

// Write writes the shard into dir (created; it must not hold a shard) and syncs it.
// The Builder must not be used afterwards.
func (b *Builder) Write(ctx context.Context, dir string) (Stats, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, fmt.Errorf("lexical: %w", err)
	}
	st := Stats{Docs: int64(len(b.lengths)), TotalLength: b.total}
	order := make([]uint32, len(b.terms))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(x, y uint32) int {
		switch {
		case b.terms[x] < b.terms[y]:
			return -1
		case b.terms[x] > b.terms[y]:
			return 1
		}
		return 0
	})
	path := filepath.Join(dir, indexFile)
	f, err := os.Create(path)
	if err != nil {
		return Stats{}, fmt.Errorf("lexical: %w", err)
	}
	fail := func(err error) (Stats, error) {
		_ = f.Close()
		return Stats{}, fmt.Errorf("lexical: write %s: %w", path, err)
	}
	w := &countingWriter{w: bufio.NewWriterSize(f, 1<<20)}
	if _, err := w.Write(make([]byte, headerSize)); err != nil {
		return fail(err)
	}
	var u4 [4]byte
	for _, l := range b.lengths {
		binary.LittleEndian.PutUint32(u4[:], l)
		if _, err := w.Write(u4[:]); err != nil {
			return fail(err)
		}
	}
	postingsOff := w.n
	type dictInfo struct {
		off, postLen uint64
		minLen       uint32
	}
	infos := make([]dictInfo, len(b.terms))
	var skip []byte
	for k, id := range order {
		if k%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
		}
		tb := &b.bufs[id]
		if len(tb.post) > math.MaxUint32 {
			return fail(fmt.Errorf("postings of %q exceed 4 GiB", b.terms[id]))
		}
		skip = skip[:0]
		var (
			doc            int64 = -1
			pos, end       int
			inBlock        int
			bMaxTF, bMinLn uint32
			minLen         uint32 = math.MaxUint32
		)
		for pos < len(tb.post) {
			g, n1 := binary.Uvarint(tb.post[pos:])
			tf, n2 := binary.Uvarint(tb.post[pos+n1:])
			pos += n1 + n2
			doc += int64(g) + 1
			if inBlock == 0 {
				bMaxTF, bMinLn = 0, math.MaxUint32
			}
			dl := b.lengths[doc]
			bMaxTF, bMinLn = max(bMaxTF, uint32(tf)), min(bMinLn, dl)
			minLen = min(minLen, dl)
			inBlock++
			end = pos
			if inBlock == blockSize || pos == len(tb.post) {
				skip = binary.LittleEndian.AppendUint32(skip, uint32(doc))
				skip = binary.LittleEndian.AppendUint32(skip, uint32(end))
				skip = binary.LittleEndian.AppendUint32(skip, bMaxTF)
				skip = binary.LittleEndian.AppendUint32(skip, bMinLn)
				inBlock = 0
			}
		}
		infos[id] = dictInfo{off: uint64(w.n), postLen: uint64(len(tb.post)), minLen: minLen}
		if _, err := w.Write(skip); err != nil {
			return fail(err)
		}
		if _, err := w.Write(tb.post); err != nil {
			return fail(err)
		}
		tb.post = nil // release as we go
	}
	dictOff := w.n
	index := make([]byte, 0, 8*((len(order)+indexEvery-1)/indexEvery))
	var e []byte
	for k, id := range order {
		if k%indexEvery == 0 {
			index = binary.LittleEndian.AppendUint64(index, uint64(w.n))
		}
		tb, in := &b.bufs[id], infos[id]
		e = binary.AppendUvarint(e[:0], uint64(len(b.terms[id])))
		e = append(e, b.terms[id]...)
		e = binary.AppendUvarint(e, uint64(tb.df))
		e = binary.AppendUvarint(e, in.off)
		e = binary.AppendUvarint(e, in.postLen)
		e = binary.AppendUvarint(e, uint64(tb.maxTF))
		e = binary.AppendUvarint(e, uint64(in.minLen))
		if _, err := w.Write(e); err != nil {
			return fail(err)
		}
	}
	indexOff := w.n
	if _, err := w.Write(index); err != nil {
		return fail(err)
	}
	fileLen := w.n
	if err := w.w.(*bufio.Writer).Flush(); err != nil {
		return fail(err)
	}
	hdr := make([]byte, headerSize)
	copy(hdr, magic)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(b.lengths)))
	binary.LittleEndian.PutUint32(hdr[12:], uint32(len(b.terms)))
	binary.LittleEndian.PutUint64(hdr[16:], uint64(b.total))
	binary.LittleEndian.PutUint64(hdr[24:], uint64(postingsOff))
	binary.LittleEndian.PutUint64(hdr[32:], uint64(dictOff))
	binary.LittleEndian.PutUint64(hdr[40:], uint64(indexOff))
	binary.LittleEndian.PutUint64(hdr[48:], uint64(fileLen))
	binary.LittleEndian.PutUint32(hdr[56:], crc32.Checksum(hdr[:56], castagnoli))
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return Stats{}, fmt.Errorf("lexical: close %s: %w", path, err)
	}
	b.bufs, b.ids, b.terms = nil, nil, nil
	return st, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("lexical: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		return fmt.Errorf("lexical: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("lexical: sync %s: %w", path, err)
	}
	return f.Close()
}
