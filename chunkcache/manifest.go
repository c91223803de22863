package chunkcache

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"sort"

	"github.com/ragkv/ragkv/chunkcache/internal/kvblob"
)

// Bounds on what a manifest carries.
const (
	// MaxTokens bounds a chunk's token count.
	MaxTokens = 1 << 20
	// MaxMetadataEntries, MaxMetadataKeyBytes and MaxMetadataBytes bound the free-form
	// metadata (the total counts keys and values).
	MaxMetadataEntries  = 1024
	MaxMetadataKeyBytes = 256
	MaxMetadataBytes    = 4 << 20
)

// manifest is what the cache stores next to a chunk's layer sections: the KV blob
// header (layout, token count, position base, per-layer CRCs) plus the chunk's identity
// and metadata. Encoding (little-endian; str = u32 length + bytes):
//
//	"RKVM" u16 version(1)
//	str namespace
//	str arch, str weights, str tokenizer, f64 theta, u32 dims, str style, str scaling,
//	f64 factor, u32 original context
//	f64 cost, i64 created (unix ns), u8 pin
//	u32 n, n × u32 token ids
//	u32 m, m × (str key, str value)   (keys sorted)
//	u32 h, kvblob header (h bytes)
//	u32 CRC-32C of everything before
type manifest struct {
	ns      string
	model   Fingerprint
	cost    float64
	created int64
	pin     uint8
	tokens  []uint32
	meta    map[string][]byte
	header  kvblob.Header
}

const manifestMagic = "RKVM"
const manifestVersion = 1

func validateMetadata(meta map[string][]byte) error {
	if len(meta) > MaxMetadataEntries {
		return fmt.Errorf("%w: %d metadata entries (max %d)", ErrInvalid, len(meta), MaxMetadataEntries)
	}
	total := 0
	for k, v := range meta {
		if k == "" || len(k) > MaxMetadataKeyBytes {
			return fmt.Errorf("%w: metadata key %.40q (want 1..%d bytes)", ErrInvalid, k, MaxMetadataKeyBytes)
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataBytes {
		return fmt.Errorf("%w: %d bytes of metadata (max %d)", ErrInvalid, total, MaxMetadataBytes)
	}
	return nil
}

func (m *manifest) encode() ([]byte, error) {
	var hdr []byte
	hdr, err := kvblob.AppendHeader(hdr, &m.header)
	if err != nil {
		return nil, asInvalid(err)
	}
	b := make([]byte, 0, 256+4*len(m.tokens)+len(hdr))
	b = append(b, manifestMagic...)
	b = binary.LittleEndian.AppendUint16(b, manifestVersion)
	str := func(s string) {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	f64 := func(f float64) { b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f)) }
	str(m.ns)
	str(m.model.Architecture)
	str(m.model.WeightsDigest)
	str(m.model.TokenizerDigest)
	f64(m.model.RoPE.Theta)
	b = binary.LittleEndian.AppendUint32(b, uint32(m.model.RoPE.Dims))
	str(m.model.RoPE.Style)
	str(m.model.RoPE.Scaling)
	f64(m.model.RoPE.Factor)
	b = binary.LittleEndian.AppendUint32(b, uint32(m.model.RoPE.OriginalContext))
	f64(m.cost)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.created))
	b = append(b, m.pin)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.tokens)))
	for _, t := range m.tokens {
		b = binary.LittleEndian.AppendUint32(b, t)
	}
	keys := make([]string, 0, len(m.meta))
	for k := range m.meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		str(k)
		str(string(m.meta[k]))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hdr)))
	b = append(b, hdr...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decodeManifest parses untrusted bytes (FuzzManifest).
func decodeManifest(b []byte) (*manifest, error) {
	if len(b) < 10 || string(b[:4]) != manifestMagic {
		return nil, fmt.Errorf("%w: manifest: bad magic", ErrCorrupt)
	}
	if got, want := crc32.Checksum(b[:len(b)-4], castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, fmt.Errorf("%w: manifest checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != manifestVersion {
		return nil, fmt.Errorf("%w: manifest version %d (this build reads %d)", ErrCorrupt, v, manifestVersion)
	}
	d := decoder{b: b[6 : len(b)-4]}
	m := &manifest{}
	m.ns = d.str()
	m.model.Architecture = d.str()
	m.model.WeightsDigest = d.str()
	m.model.TokenizerDigest = d.str()
	m.model.RoPE.Theta = d.f64()
	m.model.RoPE.Dims = int(d.u32())
	m.model.RoPE.Style = d.str()
	m.model.RoPE.Scaling = d.str()
	m.model.RoPE.Factor = d.f64()
	m.model.RoPE.OriginalContext = int(d.u32())
	m.cost = d.f64()
	m.created = int64(d.u64())
	m.pin = d.u8()
	n := d.u32()
	if n > MaxTokens || uint64(n)*4 > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: manifest: token count %d", ErrCorrupt, n)
	}
	m.tokens = make([]uint32, n)
	for i := range m.tokens {
		m.tokens[i] = d.u32()
	}
	nm := d.u32()
	if nm > MaxMetadataEntries {
		return nil, fmt.Errorf("%w: manifest: %d metadata entries", ErrCorrupt, nm)
	}
	if nm > 0 {
		m.meta = make(map[string][]byte, nm)
	}
	for i := uint32(0); i < nm && d.err == nil; i++ {
		k := d.str()
		m.meta[k] = []byte(d.str())
	}
	hl := d.u32()
	hdr := d.bytes(int(hl))
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: manifest: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	h, used, err := kvblob.DecodeHeader(hdr)
	if err != nil {
		return nil, asInvalid(err)
	}
	if used != len(hdr) {
		return nil, fmt.Errorf("%w: manifest: blob header is %d bytes, field is %d", ErrCorrupt, used, len(hdr))
	}
	m.header = h
	if h.Tokens != len(m.tokens) {
		return nil, fmt.Errorf("%w: manifest: %d token ids for a %d-token blob", ErrCorrupt, len(m.tokens), h.Tokens)
	}
	return m, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: manifest truncated", ErrCorrupt)
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u8() uint8 {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) f64() float64 { return math.Float64frombits(d.u64()) }

func (d *decoder) str() string {
	n := d.u32()
	return string(d.bytes(int(n)))
}
