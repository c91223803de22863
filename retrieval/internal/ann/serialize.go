package ann

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
)

// Serialized layout (little-endian), version 1:
//
//	magic   [8]byte "RKVANN\x00\x01"
//	version u32 (1)
//	kind    u8  (1 flat, 2 ivfpq)
//	dim, n, rescore, nprobe u32
//	payload (kind-specific; see flatIndex.encode, ivfIndex.encode)
//	crc     u32 CRC-32C (Castagnoli) of every byte before it
const (
	formatVersion = 1
	kindCodeFlat  = 1
	kindCodeIVFPQ = 2
)

var (
	magic     = [8]byte{'R', 'K', 'V', 'A', 'N', 'N', 0, 1}
	castagnol = crc32.MakeTable(crc32.Castagnoli)
)

// WriteTo writes the index in the versioned, checksummed format Read parses.
func (ix *Index) WriteTo(w io.Writer) (int64, error) {
	e := newEncoder(w)
	e.bytes(magic[:])
	e.u32(formatVersion)
	switch {
	case ix.flat != nil || ix.n == 0 && ix.ivf == nil:
		e.u8(kindCodeFlat)
	default:
		e.u8(kindCodeIVFPQ)
	}
	e.u32(uint32(ix.dim))
	e.u32(uint32(ix.n))
	e.u32(uint32(ix.rescore))
	e.u32(uint32(ix.nprobe))
	switch {
	case ix.ivf != nil:
		ix.ivf.encode(e)
	case ix.flat != nil:
		e.f32s(ix.flat.vecs)
	}
	return e.finish()
}

// Read parses an index written by WriteTo. Corrupt or truncated input yields ErrCorrupt,
// an unknown version ErrVersion; no Rescorer is attached (see SetRescorer).
func Read(r io.Reader) (*Index, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("ann: read index: %w", err)
	}
	if len(data) < len(magic)+4+4 {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(data))
	}
	if [8]byte(data[:8]) != magic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(data[8:]); v != formatVersion {
		return nil, fmt.Errorf("%w: %d (this build reads %d)", ErrVersion, v, formatVersion)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnol) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := &decoder{b: body, off: 12}
	kind := d.u8()
	dim, n, rescore, nprobe := int(d.u32()), int(d.u32()), int(d.u32()), int(d.u32())
	if d.err != nil {
		return nil, d.err
	}
	if dim <= 0 || dim > maxDim || n > maxVectors || rescore < 1 || rescore > maxK {
		return nil, fmt.Errorf("%w: header dim=%d n=%d rescore=%d", ErrCorrupt, dim, n, rescore)
	}
	ix := &Index{dim: dim, n: n, rescore: rescore, nprobe: nprobe}
	switch kind {
	case kindCodeFlat:
		if nprobe != 0 {
			return nil, fmt.Errorf("%w: flat index with nprobe %d", ErrCorrupt, nprobe)
		}
		if uint64(n)*uint64(dim) > uint64(d.remaining()/4) {
			return nil, fmt.Errorf("%w: %d×%d vectors exceed the data", ErrCorrupt, n, dim)
		}
		ix.kind = KindFlat
		ix.flat = &flatIndex{dim: dim, vecs: makeHuge[float32](n * dim)}
		d.f32sInto(ix.flat.vecs)
	case kindCodeIVFPQ:
		ix.kind = KindIVFPQ
		iv, err := decodeIVF(d, dim, n)
		if err != nil {
			return nil, err
		}
		if nprobe < 1 || nprobe > iv.nlist {
			return nil, fmt.Errorf("%w: nprobe %d with %d lists", ErrCorrupt, nprobe, iv.nlist)
		}
		ix.ivf = iv
	default:
		return nil, fmt.Errorf("%w: unknown kind code %d", ErrCorrupt, kind)
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.remaining() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, d.remaining())
	}
	return ix, nil
}

// encoder streams little-endian values through a CRC; the first error sticks.
type encoder struct {
	w   *bufio.Writer
	crc hash.Hash32
	n   int64
	err error
	tmp [8]byte
}

func newEncoder(w io.Writer) *encoder {
	return &encoder{w: bufio.NewWriterSize(w, 1<<16), crc: crc32.New(castagnol)}
}

func (e *encoder) bytes(b []byte) {
	if e.err != nil {
		return
	}
	e.crc.Write(b)
	m, err := e.w.Write(b)
	e.n += int64(m)
	e.err = err
}

func (e *encoder) u8(v uint8) { e.tmp[0] = v; e.bytes(e.tmp[:1]) }

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.tmp[:4], v)
	e.bytes(e.tmp[:4])
}

func (e *encoder) f32s(v []float32) {
	var buf [1024]byte
	for len(v) > 0 && e.err == nil {
		k := min(len(v), len(buf)/4)
		for i := 0; i < k; i++ {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v[i]))
		}
		e.bytes(buf[:4*k])
		v = v[k:]
	}
}

func (e *encoder) i32s(v []int32) {
	var buf [1024]byte
	for len(v) > 0 && e.err == nil {
		k := min(len(v), len(buf)/4)
		for i := 0; i < k; i++ {
			binary.LittleEndian.PutUint32(buf[4*i:], uint32(v[i]))
		}
		e.bytes(buf[:4*k])
		v = v[k:]
	}
}

func (e *encoder) finish() (int64, error) {
	if e.err != nil {
		return e.n, fmt.Errorf("ann: write index: %w", e.err)
	}
	binary.LittleEndian.PutUint32(e.tmp[:4], e.crc.Sum32())
	m, err := e.w.Write(e.tmp[:4])
	e.n += int64(m)
	if err == nil {
		err = e.w.Flush()
	}
	if err != nil {
		return e.n, fmt.Errorf("ann: write index: %w", err)
	}
	return e.n, nil
}

// decoder reads little-endian values with bounds checks; the first error sticks and
// later reads return zero values.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > d.remaining() {
		d.err = fmt.Errorf("%w: truncated at offset %d (need %d bytes)", ErrCorrupt, d.off, n)
		return nil
	}
	b := d.b[d.off : d.off+n]
	d.off += n
	return b
}

func (d *decoder) u8() uint8 {
	if b := d.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

// f32s reads n floats; callers check n against remaining() first to bound allocation.
func (d *decoder) f32s(n int) []float32 {
	b := d.take(4 * n)
	if b == nil {
		return nil
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func (d *decoder) i32s(n int) []int32 {
	b := d.take(4 * n)
	if b == nil {
		return nil
	}
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func (d *decoder) i32sInto(v []int32) {
	b := d.take(4 * len(v))
	if b == nil {
		return
	}
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
}

func (d *decoder) f32sInto(v []float32) {
	b := d.take(4 * len(v))
	if b == nil {
		return
	}
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
}
