package blend

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Meta is what blend stores with a chunk's KV (in the chunk cache's metadata under
// MetaKey): the context the KV was computed in and Cache-Craft's attention statistics.
type Meta struct {
	// KVPrev are the hashes of the segments that preceded the chunk when its KV was
	// computed, in order (the system prefix, if any; empty: computed alone).
	KVPrev []Hash
	// Stats are the chunk's attention statistics from a pass where it was seen in a
	// context (nil: none).
	Stats *CraftStats
}

// CraftStats are Cache-Craft's statistics of a chunk seen in a context.
type CraftStats struct {
	// CtxPrev are the hashes of the segments that preceded the chunk in that context.
	CtxPrev []Hash
	// Inter[l] is the mean over the chunk's tokens of the attention mass (averaged over
	// heads) paid at layer l to tokens outside the chunk; 1 − Inter[l] is the
	// intra-chunk share.
	Inter []float32
	// Outside[l][t] is token t's outside-chunk attention mass at layer l.
	Outside [][]float32
}

// Tokens is the number of tokens the statistics cover.
func (s *CraftStats) Tokens() int {
	if len(s.Outside) == 0 {
		return 0
	}
	return len(s.Outside[0])
}

// CCI is the cache-context impact: the mean over layers of the inter-chunk attention
// share.
func (s *CraftStats) CCI() float64 {
	if len(s.Inter) == 0 {
		return 0
	}
	var t float64
	for _, v := range s.Inter {
		t += float64(v)
	}
	return t / float64(len(s.Inter))
}

// NewCraftStats builds statistics from per-layer outside masses ([layer][token]).
func NewCraftStats(ctxPrev []Hash, outside [][]float32) *CraftStats {
	s := &CraftStats{CtxPrev: append([]Hash(nil), ctxPrev...), Outside: outside, Inter: make([]float32, len(outside))}
	for l, row := range outside {
		var t float64
		for _, v := range row {
			t += float64(v)
		}
		if len(row) > 0 {
			s.Inter[l] = float32(t / float64(len(row)))
		}
	}
	return s
}

// MetaKey is the chunk-cache metadata key under which Meta is stored.
const MetaKey = "blend/v1"

// Meta encoding (little-endian):
//
//	"RKBM" u16 version (1)
//	u32 k, k × 32-byte KVPrev hashes
//	u8 has stats; if 1:
//	  u32 c, c × 32-byte CtxPrev hashes
//	  u32 layers, u32 tokens
//	  layers × f32 Inter
//	  layers × tokens × u16 Outside, the mass × 65535 rounded
const (
	metaMagic    = "RKBM"
	metaVersion  = 1
	maxMetaPrev  = 1 << 16
	maxMetaCells = 1 << 24
)

// EncodeMeta serializes m.
func EncodeMeta(m *Meta) ([]byte, error) {
	if len(m.KVPrev) > maxMetaPrev {
		return nil, fmt.Errorf("%w: %d context hashes", ErrInvalid, len(m.KVPrev))
	}
	b := append([]byte(metaMagic), 0, 0)
	binary.LittleEndian.PutUint16(b[4:], metaVersion)
	b = appendHashes(b, m.KVPrev)
	if m.Stats == nil {
		return append(b, 0), nil
	}
	s := m.Stats
	layers, tokens := len(s.Outside), s.Tokens()
	if len(s.Inter) != layers || len(s.CtxPrev) > maxMetaPrev || layers*tokens > maxMetaCells {
		return nil, fmt.Errorf("%w: craft stats of %d layers × %d tokens with %d layer means", ErrInvalid, layers, tokens, len(s.Inter))
	}
	b = append(b, 1)
	b = appendHashes(b, s.CtxPrev)
	b = binary.LittleEndian.AppendUint32(b, uint32(layers))
	b = binary.LittleEndian.AppendUint32(b, uint32(tokens))
	for _, v := range s.Inter {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	for _, row := range s.Outside {
		if len(row) != tokens {
			return nil, fmt.Errorf("%w: ragged craft stats", ErrInvalid)
		}
		for _, v := range row {
			b = binary.LittleEndian.AppendUint16(b, quantMass(v))
		}
	}
	return b, nil
}

func quantMass(v float32) uint16 {
	if !(v > 0) { // also NaN
		return 0
	}
	if v >= 1 {
		return 65535
	}
	return uint16(math.Round(float64(v) * 65535))
}

func appendHashes(b []byte, hs []Hash) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hs)))
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

// DecodeMeta parses an encoded Meta. Errors wrap ErrCorrupt.
func DecodeMeta(b []byte) (*Meta, error) {
	d := metaDecoder{b: b}
	if string(d.bytes(4)) != metaMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	if v := d.u16(); d.err == nil && v != metaVersion {
		return nil, fmt.Errorf("%w: version %d (want %d)", ErrCorrupt, v, metaVersion)
	}
	m := &Meta{KVPrev: d.hashes()}
	switch has := d.u8(); {
	case d.err != nil:
	case has == 1:
		s := &CraftStats{CtxPrev: d.hashes()}
		layers, tokens := int(d.u32()), int(d.u32())
		if d.err == nil && (layers > maxMetaCells || tokens > maxMetaCells || layers*tokens > maxMetaCells ||
			len(d.b) != 4*layers+2*layers*tokens) {
			return nil, fmt.Errorf("%w: craft stats of %d layers × %d tokens in %d bytes", ErrCorrupt, layers, tokens, len(d.b))
		}
		if d.err != nil {
			break
		}
		s.Inter = make([]float32, layers)
		for l := range s.Inter {
			v := math.Float32frombits(d.u32())
			if !(v >= 0 && v <= 1) {
				return nil, fmt.Errorf("%w: inter-chunk share %v", ErrCorrupt, v)
			}
			s.Inter[l] = v
		}
		s.Outside = make([][]float32, layers)
		for l := range s.Outside {
			s.Outside[l] = make([]float32, tokens)
			for t := range s.Outside[l] {
				s.Outside[l][t] = float32(d.u16()) / 65535
			}
		}
		m.Stats = s
	case has != 0:
		return nil, fmt.Errorf("%w: stats flag %d", ErrCorrupt, has)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return m, nil
}

type metaDecoder struct {
	b   []byte
	err error
}

func (d *metaDecoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: truncated", ErrCorrupt)
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *metaDecoder) u8() uint8 {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *metaDecoder) u16() uint16 {
	if b := d.bytes(2); b != nil {
		return binary.LittleEndian.Uint16(b)
	}
	return 0
}

func (d *metaDecoder) u32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *metaDecoder) hashes() []Hash {
	n := int(d.u32())
	if d.err != nil {
		return nil
	}
	if n > maxMetaPrev || n*32 > len(d.b) {
		d.err = fmt.Errorf("%w: %d context hashes in %d bytes", ErrCorrupt, n, len(d.b))
		return nil
	}
	out := make([]Hash, n)
	for i := range out {
		copy(out[i][:], d.bytes(32))
	}
	return out
}
