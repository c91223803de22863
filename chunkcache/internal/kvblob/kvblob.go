package kvblob

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strings"
)

var (
	// ErrCorrupt marks input that is not a valid blob, header or layer section:
	// truncated, a bad magic or version, a size that does not match the layout, or a
	// checksum mismatch.
	ErrCorrupt = errors.New("kvblob: corrupt or truncated")
	// ErrInvalid marks a bad argument: an unknown dtype or scale mode, a layout out of
	// bounds, or buffers whose lengths do not match the layout.
	ErrInvalid = errors.New("kvblob: invalid argument")
)

// Version is the format version this package writes and reads.
const Version = 1

// Magic starts every blob.
const Magic = "RKVB"

// Bounds on layout fields. They keep every size computation far from overflow and let
// the decoder reject absurd headers before it trusts them.
const (
	MaxLayers  = 4096
	MaxKVHeads = 4096
	MaxHeadDim = 65536
	MaxTokens  = 1 << 24
	// MaxLayerBytes bounds one layer section (K + V + scales).
	MaxLayerBytes = 1 << 36
)

// DType is the element type of stored K/V values.
type DType uint8

// DTypes. The zero value is invalid, so an unset field is caught.
const (
	DTypeInvalid DType = 0
	F32          DType = 1
	F16          DType = 2
	BF16         DType = 3
	Int8         DType = 4
)

// Size is the element size in bytes (0 for an invalid dtype).
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	case Int8:
		return 1
	}
	return 0
}

// Valid reports whether d is F32, F16, BF16 or Int8.
func (d DType) Valid() bool { return d.Size() != 0 }

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// ParseDType parses "f32", "f16", "bf16" or "int8" (case-insensitive; "float32",
// "float16", "bfloat16" are accepted too).
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "f32", "float32", "fp32":
		return F32, nil
	case "f16", "float16", "fp16":
		return F16, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "int8", "i8", "q8":
		return Int8, nil
	}
	return DTypeInvalid, fmt.Errorf("%w: unknown dtype %q (want f32, f16, bf16 or int8)", ErrInvalid, s)
}

// ScaleMode says how int8 values are scaled.
type ScaleMode uint8

// Scale modes. ScaleNone is the only valid mode for float dtypes.
const (
	ScaleNone       ScaleMode = 0
	ScalePerToken   ScaleMode = 1
	ScalePerChannel ScaleMode = 2
)

func (m ScaleMode) String() string {
	switch m {
	case ScaleNone:
		return "none"
	case ScalePerToken:
		return "per-token"
	case ScalePerChannel:
		return "per-channel"
	}
	return fmt.Sprintf("scale(%d)", uint8(m))
}

// Layout is the shape and encoding of a chunk's KV cache.
type Layout struct {
	Layers  int
	KVHeads int
	HeadDim int
	DType   DType
	// KScale and VScale apply to int8 only and must be ScaleNone otherwise. For int8,
	// ScaleNone is replaced by the defaults (per-channel K, per-token V) by
	// EnsureDefaults.
	KScale ScaleMode
	VScale ScaleMode
}

// EnsureDefaults sets the int8 scale modes that were left at ScaleNone.
func (l *Layout) EnsureDefaults() {
	if l.DType == Int8 {
		if l.KScale == ScaleNone {
			l.KScale = ScalePerChannel
		}
		if l.VScale == ScaleNone {
			l.VScale = ScalePerToken
		}
	}
}

// Validate checks every field against its bounds.
func (l Layout) Validate() error {
	switch {
	case !l.DType.Valid():
		return fmt.Errorf("%w: unknown dtype %d (want f32, f16, bf16 or int8)", ErrInvalid, uint8(l.DType))
	case l.Layers <= 0 || l.Layers > MaxLayers:
		return fmt.Errorf("%w: layers %d (want 1..%d)", ErrInvalid, l.Layers, MaxLayers)
	case l.KVHeads <= 0 || l.KVHeads > MaxKVHeads:
		return fmt.Errorf("%w: kv heads %d (want 1..%d)", ErrInvalid, l.KVHeads, MaxKVHeads)
	case l.HeadDim <= 0 || l.HeadDim > MaxHeadDim:
		return fmt.Errorf("%w: head dim %d (want 1..%d)", ErrInvalid, l.HeadDim, MaxHeadDim)
	}
	if l.DType == Int8 {
		if l.KScale != ScalePerToken && l.KScale != ScalePerChannel {
			return fmt.Errorf("%w: int8 K scale mode %v (want per-token or per-channel)", ErrInvalid, l.KScale)
		}
		if l.VScale != ScalePerToken && l.VScale != ScalePerChannel {
			return fmt.Errorf("%w: int8 V scale mode %v (want per-token or per-channel)", ErrInvalid, l.VScale)
		}
	} else if l.KScale != ScaleNone || l.VScale != ScaleNone {
		return fmt.Errorf("%w: scale modes apply to int8 only, dtype is %v", ErrInvalid, l.DType)
	}
	return nil
}

// Channels is KVHeads·HeadDim, the width of one token's K (or V).
func (l Layout) Channels() int { return l.KVHeads * l.HeadDim }

// Elems is the number of K (or V) values of one layer: tokens·Channels.
func (l Layout) Elems(tokens int) int { return tokens * l.Channels() }

// TensorBytes is the size of one layer's K (or V) data, without scales.
func (l Layout) TensorBytes(tokens int) int64 {
	return int64(tokens) * int64(l.Channels()) * int64(l.DType.Size())
}

// ScaleCount is the number of float32 scales for one tensor in mode m.
func (l Layout) ScaleCount(m ScaleMode, tokens int) int {
	switch m {
	case ScalePerToken:
		return tokens
	case ScalePerChannel:
		return l.Channels()
	}
	return 0
}

// LayerBytes is the size of one layer section.
func (l Layout) LayerBytes(tokens int) int64 {
	return 2*l.TensorBytes(tokens) + 4*int64(l.ScaleCount(l.KScale, tokens)+l.ScaleCount(l.VScale, tokens))
}

// ValidateTokens checks a token count against the layout's bounds.
func (l Layout) ValidateTokens(tokens int) error {
	if tokens <= 0 || tokens > MaxTokens {
		return fmt.Errorf("%w: token count %d (want 1..%d)", ErrInvalid, tokens, MaxTokens)
	}
	if lb := l.LayerBytes(tokens); lb > MaxLayerBytes {
		return fmt.Errorf("%w: layer section of %d bytes exceeds %d", ErrInvalid, lb, int64(MaxLayerBytes))
	}
	return nil
}

// Header describes a blob. LayerCRC holds one CRC-32C per layer section.
type Header struct {
	Layout
	Tokens       int
	PositionBase int64
	LayerCRC     []uint32
}

// fixedHeaderBytes is the header size without the per-layer CRCs.
const fixedHeaderBytes = 52

// HeaderSize is the encoded header size for a blob of the given layer count.
func HeaderSize(layers int) int { return fixedHeaderBytes + 4*layers }

// Validate checks the layout, token count and CRC count.
func (h *Header) Validate() error {
	if err := h.Layout.Validate(); err != nil {
		return err
	}
	if err := h.Layout.ValidateTokens(h.Tokens); err != nil {
		return err
	}
	if len(h.LayerCRC) != h.Layers {
		return fmt.Errorf("%w: %d layer checksums for %d layers", ErrInvalid, len(h.LayerCRC), h.Layers)
	}
	return nil
}

// LayerBytes is the size of each layer section of this blob.
func (h *Header) LayerBytes() int64 { return h.Layout.LayerBytes(h.Tokens) }

// BlobBytes is the size of the whole blob: header plus every layer section.
func (h *Header) BlobBytes() int64 {
	return int64(HeaderSize(h.Layers)) + int64(h.Layers)*h.LayerBytes()
}

// LayerOffset is where layer i's section starts in the blob.
func (h *Header) LayerOffset(i int) int64 {
	return int64(HeaderSize(h.Layers)) + int64(i)*h.LayerBytes()
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum is the CRC-32C of b, the checksum used for layer sections and headers.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// AppendHeader appends the encoded header to dst. The header must be valid.
func AppendHeader(dst []byte, h *Header) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, Magic...)
	dst = binary.LittleEndian.AppendUint16(dst, Version)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(HeaderSize(h.Layers)))
	dst = append(dst, byte(h.DType), byte(h.KScale), byte(h.VScale), 0)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Layers))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.KVHeads))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.HeadDim))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Tokens))
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.PositionBase))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.LayerBytes()))
	for _, c := range h.LayerCRC {
		dst = binary.LittleEndian.AppendUint32(dst, c)
	}
	dst = binary.LittleEndian.AppendUint32(dst, Checksum(dst[start:]))
	return dst, nil
}

// DecodeHeader decodes the header at the start of b and returns it with its size.
// Every field is checked; the header CRC must match.
func DecodeHeader(b []byte) (Header, int, error) {
	var h Header
	if len(b) < fixedHeaderBytes {
		return h, 0, fmt.Errorf("%w: header needs at least %d bytes, have %d", ErrCorrupt, fixedHeaderBytes, len(b))
	}
	if string(b[:4]) != Magic {
		return h, 0, fmt.Errorf("%w: bad magic %q", ErrCorrupt, b[:4])
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != Version {
		return h, 0, fmt.Errorf("%w: unsupported format version %d (this build reads %d)", ErrCorrupt, v, Version)
	}
	size := int(binary.LittleEndian.Uint16(b[6:]))
	layers := binary.LittleEndian.Uint32(b[12:])
	if layers == 0 || layers > MaxLayers {
		return h, 0, fmt.Errorf("%w: layer count %d out of range", ErrCorrupt, layers)
	}
	if size != HeaderSize(int(layers)) {
		return h, 0, fmt.Errorf("%w: header size %d does not match %d layers", ErrCorrupt, size, layers)
	}
	if len(b) < size {
		return h, 0, fmt.Errorf("%w: header of %d bytes truncated to %d", ErrCorrupt, size, len(b))
	}
	if got, want := Checksum(b[:size-4]), binary.LittleEndian.Uint32(b[size-4:]); got != want {
		return h, 0, fmt.Errorf("%w: header checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if b[11] != 0 || binary.LittleEndian.Uint32(b[28:]) != 0 {
		return h, 0, fmt.Errorf("%w: reserved header fields are not zero", ErrCorrupt)
	}
	h.Layout = Layout{
		Layers:  int(layers),
		KVHeads: int(binary.LittleEndian.Uint32(b[16:])),
		HeadDim: int(binary.LittleEndian.Uint32(b[20:])),
		DType:   DType(b[8]),
		KScale:  ScaleMode(b[9]),
		VScale:  ScaleMode(b[10]),
	}
	tokens := binary.LittleEndian.Uint32(b[24:])
	if tokens > MaxTokens {
		return h, 0, fmt.Errorf("%w: token count %d out of range", ErrCorrupt, tokens)
	}
	h.Tokens = int(tokens)
	h.PositionBase = int64(binary.LittleEndian.Uint64(b[32:]))
	if err := h.Layout.Validate(); err != nil {
		return h, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := h.Layout.ValidateTokens(h.Tokens); err != nil {
		return h, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if lb := binary.LittleEndian.Uint64(b[40:]); lb != uint64(h.LayerBytes()) {
		return h, 0, fmt.Errorf("%w: layer section size %d does not match layout (%d)", ErrCorrupt, lb, h.LayerBytes())
	}
	h.LayerCRC = make([]uint32, h.Layers)
	for i := range h.LayerCRC {
		h.LayerCRC[i] = binary.LittleEndian.Uint32(b[fixedHeaderBytes-4+4*i:])
	}
	return h, size, nil
}

// CheckLayer verifies that section is layer i of the blob described by h: right size
// and matching CRC.
func (h *Header) CheckLayer(i int, section []byte) error {
	if i < 0 || i >= h.Layers {
		return fmt.Errorf("%w: layer %d out of range (blob has %d layers)", ErrInvalid, i, h.Layers)
	}
	if int64(len(section)) != h.LayerBytes() {
		return fmt.Errorf("%w: layer %d section is %d bytes, want %d", ErrCorrupt, i, len(section), h.LayerBytes())
	}
	if got := Checksum(section); got != h.LayerCRC[i] {
		return fmt.Errorf("%w: layer %d checksum %08x, want %08x", ErrCorrupt, i, got, h.LayerCRC[i])
	}
	return nil
}

// Encode builds a whole blob from a header (LayerCRC is recomputed) and its layer
// sections.
func Encode(h Header, sections [][]byte) ([]byte, error) {
	if len(sections) != h.Layers {
		return nil, fmt.Errorf("%w: %d layer sections for %d layers", ErrInvalid, len(sections), h.Layers)
	}
	h.LayerCRC = make([]uint32, h.Layers)
	for i, s := range sections {
		if int64(len(s)) != h.Layout.LayerBytes(h.Tokens) {
			return nil, fmt.Errorf("%w: layer %d section is %d bytes, want %d", ErrInvalid, i, len(s), h.Layout.LayerBytes(h.Tokens))
		}
		h.LayerCRC[i] = Checksum(s)
	}
	if err := h.Validate(); err != nil {
		return nil, err
	}
	out := make([]byte, 0, h.BlobBytes())
	out, err := AppendHeader(out, &h)
	if err != nil {
		return nil, err
	}
	for _, s := range sections {
		out = append(out, s...)
	}
	return out, nil
}

// Decode parses a whole blob and checks every layer's CRC. The returned sections alias
// blob.
func Decode(blob []byte) (Header, [][]byte, error) {
	h, n, err := DecodeHeader(blob)
	if err != nil {
		return h, nil, err
	}
	if int64(len(blob)) != h.BlobBytes() {
		return h, nil, fmt.Errorf("%w: blob is %d bytes, header says %d", ErrCorrupt, len(blob), h.BlobBytes())
	}
	lb := int(h.LayerBytes())
	sections := make([][]byte, h.Layers)
	for i := range sections {
		s := blob[n+i*lb : n+(i+1)*lb : n+(i+1)*lb]
		if err := h.CheckLayer(i, s); err != nil {
			return h, nil, err
		}
		sections[i] = s
	}
	return h, sections, nil
}

// LayerParts are the four byte ranges of a layer section, aliasing it.
type LayerParts struct {
	K, V             []byte // tokens·channels elements of the dtype
	KScales, VScales []byte // float32 scales, int8 only
}

// Split cuts a layer section into its parts. The section must have the layout's size.
func (l Layout) Split(section []byte, tokens int) (LayerParts, error) {
	if int64(len(section)) != l.LayerBytes(tokens) {
		return LayerParts{}, fmt.Errorf("%w: layer section is %d bytes, want %d", ErrCorrupt, len(section), l.LayerBytes(tokens))
	}
	tb := int(l.TensorBytes(tokens))
	ks := 4 * l.ScaleCount(l.KScale, tokens)
	vs := 4 * l.ScaleCount(l.VScale, tokens)
	return LayerParts{
		K:       section[:tb:tb],
		V:       section[tb : 2*tb : 2*tb],
		KScales: section[2*tb : 2*tb+ks : 2*tb+ks],
		VScales: section[2*tb+ks : 2*tb+ks+vs : 2*tb+ks+vs],
	}, nil
}

// AppendRaw appends a layer section assembled from parts already in the layout's
// dtype (the form engines push over gRPC). Each part's length is checked; scales must
// be finite and non-negative.
func (l Layout) AppendRaw(dst []byte, tokens int, p LayerParts) ([]byte, error) {
	tb := l.TensorBytes(tokens)
	if int64(len(p.K)) != tb {
		return dst, fmt.Errorf("%w: K is %d bytes, layout wants %d (%d tokens × %d kv heads × %d head dim × %d-byte %v)",
			ErrInvalid, len(p.K), tb, tokens, l.KVHeads, l.HeadDim, l.DType.Size(), l.DType)
	}
	if int64(len(p.V)) != tb {
		return dst, fmt.Errorf("%w: V is %d bytes, layout wants %d (%d tokens × %d kv heads × %d head dim × %d-byte %v)",
			ErrInvalid, len(p.V), tb, tokens, l.KVHeads, l.HeadDim, l.DType.Size(), l.DType)
	}
	if want := 4 * l.ScaleCount(l.KScale, tokens); len(p.KScales) != want {
		return dst, fmt.Errorf("%w: K scales are %d bytes, layout wants %d (%v)", ErrInvalid, len(p.KScales), want, l.KScale)
	}
	if want := 4 * l.ScaleCount(l.VScale, tokens); len(p.VScales) != want {
		return dst, fmt.Errorf("%w: V scales are %d bytes, layout wants %d (%v)", ErrInvalid, len(p.VScales), want, l.VScale)
	}
	for _, sc := range [][]byte{p.KScales, p.VScales} {
		for i := 0; i < len(sc); i += 4 {
			f := math.Float32frombits(binary.LittleEndian.Uint32(sc[i:]))
			if !(f >= 0) || math.IsInf(float64(f), 0) {
				return dst, fmt.Errorf("%w: int8 scale %v is not a finite non-negative number", ErrInvalid, f)
			}
		}
	}
	dst = append(dst, p.K...)
	dst = append(dst, p.V...)
	dst = append(dst, p.KScales...)
	dst = append(dst, p.VScales...)
	return dst, nil
}
