package lexical

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"path/filepath"

	"github.com/ragkv/ragkv/retrieval/internal/mmapfile"
)

// BM25 parameters (Robertson; Lucene and Anserini defaults).
const (
	K1 = 1.2
	B  = 0.75
)

// ErrCorrupt marks a shard whose files are inconsistent.
var ErrCorrupt = errors.New("lexical: corrupt shard")

// Shard is an open, immutable shard index (memory-mapped: its postings, dictionary
// and document lengths stay in the page cache). It is safe for concurrent use.
type Shard struct {
	f        *mmapfile.File
	b        []byte
	docs     uint32
	nterms   uint32
	stats    Stats
	lengths  []byte // docs × u32
	postOff  uint64
	dictOff  uint64
	indexOff uint64
}

// Open opens a shard built by Build, read-only.
func Open(dir string) (*Shard, error) {
	f, err := mmapfile.Open(filepath.Join(dir, indexFile))
	if err != nil {
		return nil, fmt.Errorf("lexical: %w", err)
	}
	s, err := newShard(f.Bytes())
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	s.f = f
	return s, nil
}

// newShard validates the header and section bounds of an index file.
func newShard(b []byte) (*Shard, error) {
	if len(b) < headerSize || string(b[:8]) != magic {
		return nil, fmt.Errorf("%w: not a lexical index (bad magic or %d bytes)", ErrCorrupt, len(b))
	}
	if crc32.Checksum(b[:56], castagnoli) != binary.LittleEndian.Uint32(b[56:]) {
		return nil, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	s := &Shard{b: b}
	s.docs = binary.LittleEndian.Uint32(b[8:])
	s.nterms = binary.LittleEndian.Uint32(b[12:])
	total := binary.LittleEndian.Uint64(b[16:])
	s.postOff = binary.LittleEndian.Uint64(b[24:])
	s.dictOff = binary.LittleEndian.Uint64(b[32:])
	s.indexOff = binary.LittleEndian.Uint64(b[40:])
	fileLen := binary.LittleEndian.Uint64(b[48:])
	nIndex := (uint64(s.nterms) + indexEvery - 1) / indexEvery
	switch {
	case fileLen != uint64(len(b)):
		return nil, fmt.Errorf("%w: file holds %d bytes, header says %d", ErrCorrupt, len(b), fileLen)
	case s.postOff != headerSize+4*uint64(s.docs):
		return nil, fmt.Errorf("%w: postings offset %d for %d documents", ErrCorrupt, s.postOff, s.docs)
	case s.dictOff < s.postOff || s.indexOff < s.dictOff || s.indexOff > fileLen || fileLen-s.indexOff != 8*nIndex:
		return nil, fmt.Errorf("%w: section offsets %d/%d/%d of %d bytes", ErrCorrupt, s.postOff, s.dictOff, s.indexOff, fileLen)
	case total > math.MaxInt64:
		return nil, fmt.Errorf("%w: total length %d", ErrCorrupt, total)
	}
	s.lengths = b[headerSize:s.postOff]
	s.stats = Stats{Docs: int64(s.docs), TotalLength: int64(total)}
	return s, nil
}

// Stats returns the shard's document count and total token count.
func (s *Shard) Stats() Stats { return s.stats }

// Len returns the analyzed length of document ord.
func (s *Shard) Len(ord int) int { return int(binary.LittleEndian.Uint32(s.lengths[4*ord:])) }

func (s *Shard) length(ord uint32) uint32 { return binary.LittleEndian.Uint32(s.lengths[4*ord:]) }

// Terms returns the number of distinct terms.
func (s *Shard) Terms() int { return int(s.nterms) }

// Close unmaps the index. No search may use the shard afterwards.
func (s *Shard) Close() error {
	if s.f == nil {
		return nil
	}
	return s.f.Close()
}

// termInfo is a dictionary entry.
type termInfo struct {
	df            uint32
	maxTF, minLen uint32
	skip          []byte // ⌈df/128⌉ × 16 bytes
	post          []byte
}

// entry decodes the dictionary entry at off: its term, its info and the offset of the
// next entry.
func (s *Shard) entry(off uint64) (term []byte, ti termInfo, next uint64, err error) {
	if off < s.dictOff || off >= s.indexOff {
		return nil, ti, 0, fmt.Errorf("%w: dictionary entry at %d", ErrCorrupt, off)
	}
	d := s.b[off:s.indexOff]
	var vals [6]uint64
	p := 0
	for i := range vals {
		v, k := binary.Uvarint(d[p:])
		if k <= 0 {
			return nil, ti, 0, fmt.Errorf("%w: dictionary entry at %d", ErrCorrupt, off)
		}
		p += k
		vals[i] = v
		if i == 0 {
			if v > uint64(len(d)-p) {
				return nil, ti, 0, fmt.Errorf("%w: dictionary entry at %d", ErrCorrupt, off)
			}
			term = d[p : p+int(v)]
			p += int(v)
		}
	}
	df, toff, plen, maxTF, minLen := vals[1], vals[2], vals[3], vals[4], vals[5]
	nb := (df + blockSize - 1) / blockSize
	if df == 0 || df > uint64(s.docs) || maxTF == 0 || maxTF > math.MaxUint32 || minLen > math.MaxUint32 ||
		toff < s.postOff || toff > s.dictOff || nb*skipEntry > s.dictOff-toff || plen > s.dictOff-toff-nb*skipEntry || plen > math.MaxUint32 {
		return nil, ti, 0, fmt.Errorf("%w: dictionary entry of %q", ErrCorrupt, term)
	}
	ti = termInfo{df: uint32(df), maxTF: uint32(maxTF), minLen: uint32(minLen)}
	ti.skip = s.b[toff : toff+nb*skipEntry]
	ti.post = s.b[toff+nb*skipEntry : toff+nb*skipEntry+plen]
	return term, ti, off + uint64(p), nil
}

// lookup finds a term in the dictionary.
func (s *Shard) lookup(term string) (termInfo, bool, error) {
	nIndex := int((s.nterms + indexEvery - 1) / indexEvery)
	if nIndex == 0 {
		return termInfo{}, false, nil
	}
	at := func(i int) uint64 { return binary.LittleEndian.Uint64(s.b[s.indexOff+8*uint64(i):]) }
	// The last index entry whose term is ≤ term.
	lo, hi := 0, nIndex // invariant: entries < lo are ≤ term, entries ≥ hi are > term
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		t, _, _, err := s.entry(at(mid))
		if err != nil {
			return termInfo{}, false, err
		}
		if bytes.Compare(t, []byte(term)) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == 0 {
		return termInfo{}, false, nil
	}
	off := at(lo - 1)
	first := (lo - 1) * indexEvery
	for k := first; k < first+indexEvery && k < int(s.nterms); k++ {
		t, ti, next, err := s.entry(off)
		if err != nil {
			return termInfo{}, false, err
		}
		switch c := bytes.Compare(t, []byte(term)); {
		case c == 0:
			return ti, true, nil
		case c > 0:
			return termInfo{}, false, nil
		}
		off = next
	}
	return termInfo{}, false, nil
}

// noMore is the ordinal of an exhausted cursor.
const noMore = math.MaxUint32

// cursor iterates one term's postings in ordinal order.
type cursor struct {
	ti   termInfo
	docs uint32 // ordinals of the shard (bound check)
	blk  int    // loaded block (−1: none)
	n, i int
	doc  uint32 // current ordinal (noMore: exhausted)
	tf   uint32
	err  error
	// loads counts the blocks decoded (benchmarks).
	loads int
	od    [blockSize]uint32
	otf   [blockSize]uint32
}

func (c *cursor) init(ti termInfo, docs uint32) {
	c.ti, c.docs, c.blk, c.n, c.i, c.doc, c.err, c.loads = ti, docs, -1, 0, 0, 0, nil, 0
	c.load(0)
}

func (c *cursor) nblocks() int { return len(c.ti.skip) / skipEntry }

func (c *cursor) skipAt(b int) (last, end, maxTF, minLen uint32) {
	e := c.ti.skip[b*skipEntry:]
	return binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:]), binary.LittleEndian.Uint32(e[8:]), binary.LittleEndian.Uint32(e[12:])
}

func (c *cursor) fail(err error) {
	c.err, c.doc = err, noMore
}

// load decodes block b and positions the cursor on its first posting.
func (c *cursor) load(b int) {
	if b >= c.nblocks() {
		c.doc = noMore
		return
	}
	var start uint32
	prev := int64(-1)
	if b > 0 {
		var last uint32
		last, start, _, _ = c.skipAt(b - 1)
		prev = int64(last)
	}
	last, end, _, _ := c.skipAt(b)
	cnt := blockSize
	if b == c.nblocks()-1 {
		cnt = int(c.ti.df) - blockSize*b
	}
	if start > end || int(end) > len(c.ti.post) || cnt <= 0 {
		c.fail(fmt.Errorf("%w: block %d of a posting list", ErrCorrupt, b))
		return
	}
	c.loads++
	d := c.ti.post[start:end]
	p := 0
	for k := 0; k < cnt; k++ {
		var g, tf uint64
		// One-byte varints (small gaps, almost every tf) without the general decoder.
		if p+1 < len(d) && d[p] < 0x80 && d[p+1] < 0x80 {
			g, tf = uint64(d[p]), uint64(d[p+1])
			p += 2
		} else {
			var n1, n2 int
			g, n1 = binary.Uvarint(d[p:])
			if n1 <= 0 {
				c.fail(fmt.Errorf("%w: block %d of a posting list", ErrCorrupt, b))
				return
			}
			tf, n2 = binary.Uvarint(d[p+n1:])
			if n2 <= 0 {
				c.fail(fmt.Errorf("%w: block %d of a posting list", ErrCorrupt, b))
				return
			}
			p += n1 + n2
		}
		if tf == 0 || tf > math.MaxUint32 || g >= uint64(c.docs) {
			c.fail(fmt.Errorf("%w: block %d of a posting list", ErrCorrupt, b))
			return
		}
		prev += int64(g) + 1
		if prev >= int64(c.docs) {
			c.fail(fmt.Errorf("%w: posting for ordinal %d of %d", ErrCorrupt, prev, c.docs))
			return
		}
		c.od[k], c.otf[k] = uint32(prev), uint32(tf)
	}
	if p != len(d) || prev != int64(last) {
		c.fail(fmt.Errorf("%w: block %d of a posting list", ErrCorrupt, b))
		return
	}
	c.blk, c.n, c.i = b, cnt, 0
	c.doc, c.tf = c.od[0], c.otf[0]
}

// next moves to the following posting.
func (c *cursor) next() {
	if c.doc == noMore {
		return
	}
	c.i++
	if c.i < c.n {
		c.doc, c.tf = c.od[c.i], c.otf[c.i]
		return
	}
	c.load(c.blk + 1)
}

// findBlock returns the first block at or after the loaded one whose last ordinal is ≥
// target (nblocks: none).
func (c *cursor) findBlock(target uint32) int {
	lo, hi := max(c.blk, 0), c.nblocks()
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if last, _, _, _ := c.skipAt(mid); last < target {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// advance moves to the first posting with ordinal ≥ target.
func (c *cursor) advance(target uint32) {
	if c.doc >= target {
		return
	}
	if last, _, _, _ := c.skipAt(c.blk); target > last {
		b := c.findBlock(target)
		if b >= c.nblocks() {
			c.doc = noMore
			return
		}
		c.load(b)
		if c.doc == noMore {
			return
		}
	}
	for c.i < c.n && c.od[c.i] < target {
		c.i++
	}
	if c.i == c.n { // impossible in a valid block (its last ordinal is ≥ target)
		c.fail(fmt.Errorf("%w: block %d of a posting list", ErrCorrupt, c.blk))
		return
	}
	c.doc, c.tf = c.od[c.i], c.otf[c.i]
}

// blockBound returns the (largest tf, smallest length) of the block that would hold
// target, without decoding it; ok is false when no posting ≥ target exists.
func (c *cursor) blockBound(target uint32) (maxTF, minLen uint32, ok bool) {
	if c.doc == noMore {
		return 0, 0, false
	}
	b := c.blk
	if last, _, _, _ := c.skipAt(b); target > last {
		b = c.findBlock(target)
		if b >= c.nblocks() {
			return 0, 0, false
		}
	}
	_, _, maxTF, minLen = c.skipAt(b)
	return maxTF, minLen, true
}

// Params are the collection-global quantities a shard scores with.
type Params struct {
	// Weights[i] is Counts[i] × idf(Terms[i]) with the collection-global idf.
	Weights []float64
	// AvgLen is the collection-global mean document length.
	AvgLen float64
}

// IDF is the BM25 idf with collection-global N and df.
func IDF(n, df int64) float64 {
	return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
}

// GlobalParams computes Params from collection-global statistics.
func GlobalParams(q Query, st Stats, df []int64) Params {
	p := Params{Weights: make([]float64, len(q.Terms))}
	if st.Docs > 0 {
		p.AvgLen = float64(st.TotalLength) / float64(st.Docs)
	}
	for i := range q.Terms {
		p.Weights[i] = float64(q.Counts[i]) * IDF(st.Docs, df[i])
	}
	return p
}

func (p Params) avg() float64 {
	if p.AvgLen <= 0 {
		return 1
	}
	return p.AvgLen
}

// termScore is one term's BM25 contribution to a document.
func termScore(w, tf, dl, avg float64) float64 {
	return w * tf * (K1 + 1) / (tf + K1*(1-B+B*dl/avg))
}

// Resolved is a query looked up in one shard's dictionary.
type Resolved struct {
	s     *Shard
	q     Query
	infos []termInfo
	found []bool
}

// Resolve looks the query's terms up.
func (s *Shard) Resolve(q Query) (*Resolved, error) {
	r := &Resolved{s: s, q: q, infos: make([]termInfo, len(q.Terms)), found: make([]bool, len(q.Terms))}
	for i, t := range q.Terms {
		ti, ok, err := s.lookup(t)
		if err != nil {
			return nil, err
		}
		r.infos[i], r.found[i] = ti, ok
	}
	return r, nil
}

// AddDocFreqs adds the shard's document frequency of every query term to df.
func (r *Resolved) AddDocFreqs(df []int64) {
	for i, ti := range r.infos {
		if r.found[i] {
			df[i] += int64(ti.df)
		}
	}
}

// DocFreqs adds the shard's document frequency of every query term to df.
func (s *Shard) DocFreqs(_ context.Context, q Query, df []int64) error {
	r, err := s.Resolve(q)
	if err != nil {
		return err
	}
	r.AddDocFreqs(df)
	return nil
}

// SubtractDeadDocFreqs subtracts from df, for every query term, how many of the
// shard's documents that contain it are dead (tombstoned by the caller), so that
// df counts live documents only: a shard with tombstones then scores exactly as a
// shard built without the dead documents would.
func (r *Resolved) SubtractDeadDocFreqs(ctx context.Context, dead func(ord uint32) bool, df []int64) error {
	var c cursor
	for i, ti := range r.infos {
		if !r.found[i] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for c.init(ti, r.s.docs); c.doc != noMore; c.next() {
			if dead(c.doc) {
				df[i]--
			}
		}
		if c.err != nil {
			return c.err
		}
	}
	return nil
}

// SubtractDeadDocFreqs is Resolved.SubtractDeadDocFreqs for an unresolved query.
func (s *Shard) SubtractDeadDocFreqs(ctx context.Context, q Query, dead func(ord uint32) bool, df []int64) error {
	r, err := s.Resolve(q)
	if err != nil {
		return err
	}
	return r.SubtractDeadDocFreqs(ctx, dead, df)
}

// Accumulate writes every document's BM25 score into acc (len ≥ Stats().Docs; zeroed
// here) and returns the ordinals of the documents that matched at least one term, in
// no particular order (appended to matched[:0]). Terms are added in query order, so a
// document's score is the same float64 in every shard layout and equals TopK's.
func (r *Resolved) Accumulate(ctx context.Context, p Params, acc []float64, matched []uint32) ([]uint32, error) {
	acc = acc[:r.s.docs]
	clear(acc)
	matched = matched[:0]
	avg := p.avg()
	var c cursor
	for i, ti := range r.infos {
		w := p.Weights[i]
		if !r.found[i] || w == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for c.init(ti, r.s.docs); c.doc != noMore; c.next() {
			if acc[c.doc] == 0 {
				matched = append(matched, c.doc)
			}
			acc[c.doc] += termScore(w, float64(c.tf), float64(r.s.length(c.doc)), avg)
		}
		if c.err != nil {
			return nil, c.err
		}
	}
	return matched, nil
}

// Accumulate is Resolved.Accumulate for an unresolved query.
func (s *Shard) Accumulate(ctx context.Context, q Query, p Params, acc []float64, matched []uint32) ([]uint32, error) {
	r, err := s.Resolve(q)
	if err != nil {
		return nil, err
	}
	return r.Accumulate(ctx, p, acc, matched)
}

// Scores writes the BM25 score of each listed document into out (0 where it matches
// no term): the same float64 as Accumulate and TopK.
func (r *Resolved) Scores(p Params, ords []uint32, out []float64) error {
	avg := p.avg()
	clear(out[:len(ords)])
	var c cursor
	for i, ti := range r.infos {
		w := p.Weights[i]
		if !r.found[i] || w == 0 {
			continue
		}
		for j, o := range ords {
			if o >= r.s.docs {
				return fmt.Errorf("%w: ordinal %d of %d", ErrCorrupt, o, r.s.docs)
			}
			if j == 0 || o < ords[j-1] { // restart for an ordinal behind the cursor
				c.init(ti, r.s.docs)
			}
			c.advance(o)
			if c.err != nil {
				return c.err
			}
			if c.doc == o {
				out[j] += termScore(w, float64(c.tf), float64(r.s.length(o)), avg)
			}
		}
	}
	return nil
}
