package kvblob

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strconv"
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

// Version is the newest format version this package writes and reads. Version 1
// blobs (f32, f16, bf16, int8) are still written as version 1, so they stay
// byte-identical; the grouped low-bit dtypes (q4, q2, mixed) need version 2's header
// extension.
const Version = 2

// VersionBase is the format version of blobs in the original dtypes.
const VersionBase = 1

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
	// Q4 and Q2 are asymmetric 4- and 2-bit values in groups with an f16 scale and
	// minimum each: K grouped per channel (Group consecutive tokens of one channel), V
	// per token (Group consecutive channels of one token), as in KIVI.
	Q4 DType = 5
	Q2 DType = 6
	// Mixed keeps the chunk's most important tokens (Layout.HiTokens of them, chosen
	// per layer) at Layout.HiBits and the rest at 2 bits, both grouped as Q4/Q2.
	Mixed DType = 7
)

// Size is the element size in bytes (0 for an invalid dtype and for the sub-byte
// dtypes Q4, Q2 and Mixed: use Layout.LayerBytes for those).
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

// Valid reports whether d is one of the dtypes above.
func (d DType) Valid() bool { return d.Size() != 0 || d.Grouped() }

// Grouped reports whether d is one of the grouped low-bit dtypes (Q4, Q2, Mixed).
func (d DType) Grouped() bool { return d == Q4 || d == Q2 || d == Mixed }

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
	case Q4:
		return "q4"
	case Q2:
		return "q2"
	case Mixed:
		return "mixed"
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
	case "q4":
		return Q4, nil
	case "q2":
		return Q2, nil
	case "mixed":
		return Mixed, nil
	}
	return DTypeInvalid, fmt.Errorf("%w: unknown dtype %q (want f32, f16, bf16, int8, q4, q2 or mixed)", ErrInvalid, s)
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
	// Group is the quantization group size of the grouped dtypes (Q4, Q2, Mixed):
	// tokens per K group (per channel), channels per V group (per token). Default
	// DefaultGroup; 0 for the other dtypes.
	Group int
	// Rotate applies the orthonormal Walsh–Hadamard transform to each head's head-dim
	// vector of K and V before quantization (grouped dtypes only; HeadDim must be a
	// power of two); decoding applies the inverse, so consumers see unrotated values.
	Rotate bool
	// KPerToken groups K per token like V (Group consecutive channels of one token)
	// instead of per channel (grouped dtypes only). Rotation suits it (RotateKV).
	KPerToken bool
	// HiBits (Mixed only: 4 or 8, default 4) is the precision of the important tokens.
	HiBits int
	// MixCentibits (Mixed only) is the target average bits per stored K/V element ×100
	// (default 250): HiTokens = ⌊tokens·(MixCentibits−200)/(100·(HiBits−2))⌋ tokens
	// are kept at HiBits, the rest at 2 bits.
	MixCentibits int
}

// DefaultGroup is the default group size of the grouped dtypes.
const DefaultGroup = 32

// MaxGroup bounds Layout.Group.
const MaxGroup = 1 << 15

// EnsureDefaults sets the int8 scale modes that were left at ScaleNone and the group
// size and mixed-precision parameters of the grouped dtypes left at 0.
func (l *Layout) EnsureDefaults() {
	if l.DType == Int8 {
		if l.KScale == ScaleNone {
			l.KScale = ScalePerChannel
		}
		if l.VScale == ScaleNone {
			l.VScale = ScalePerToken
		}
	}
	if l.DType.Grouped() && l.Group == 0 {
		l.Group = DefaultGroup
	}
	if l.DType == Mixed {
		if l.HiBits == 0 {
			l.HiBits = 4
		}
		if l.MixCentibits == 0 {
			l.MixCentibits = 250
		}
	}
}

// Validate checks every field against its bounds.
func (l Layout) Validate() error {
	switch {
	case !l.DType.Valid():
		return fmt.Errorf("%w: unknown dtype %d (want f32, f16, bf16, int8, q4, q2 or mixed)", ErrInvalid, uint8(l.DType))
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
	if !l.DType.Grouped() {
		if l.Group != 0 || l.Rotate || l.KPerToken || l.HiBits != 0 || l.MixCentibits != 0 {
			return fmt.Errorf("%w: group, rotation and mixed-precision fields apply to q4, q2 and mixed only, dtype is %v", ErrInvalid, l.DType)
		}
		return nil
	}
	if l.Group < 1 || l.Group > MaxGroup {
		return fmt.Errorf("%w: %v group size %d (want 1..%d)", ErrInvalid, l.DType, l.Group, MaxGroup)
	}
	if l.Rotate && l.HeadDim&(l.HeadDim-1) != 0 {
		return fmt.Errorf("%w: Hadamard rotation needs a power-of-two head dim, have %d", ErrInvalid, l.HeadDim)
	}
	if l.DType == Mixed {
		if l.HiBits != 4 && l.HiBits != 8 {
			return fmt.Errorf("%w: mixed high precision %d bits (want 4 or 8)", ErrInvalid, l.HiBits)
		}
		if l.MixCentibits <= 200 || l.MixCentibits > 100*l.HiBits {
			return fmt.Errorf("%w: mixed average %d.%02d bits (want above 2 and at most %d)", ErrInvalid, l.MixCentibits/100, l.MixCentibits%100, l.HiBits)
		}
	} else if l.HiBits != 0 || l.MixCentibits != 0 {
		return fmt.Errorf("%w: mixed-precision fields apply to mixed only, dtype is %v", ErrInvalid, l.DType)
	}
	return nil
}

// Channels is KVHeads·HeadDim, the width of one token's K (or V).
func (l Layout) Channels() int { return l.KVHeads * l.HeadDim }

// Elems is the number of K (or V) values of one layer: tokens·Channels.
func (l Layout) Elems(tokens int) int { return tokens * l.Channels() }

// TensorBytes is the size of one layer's K (or V) data, without scales, for the
// byte-sized dtypes (0 for the grouped ones: see KBytes and VBytes).
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

// HiTokens is the number of tokens a Mixed layer keeps at HiBits (0 for the other
// dtypes).
func (l Layout) HiTokens(tokens int) int {
	if l.DType != Mixed || l.HiBits <= 2 {
		return 0
	}
	return min(tokens, int(int64(tokens)*int64(l.MixCentibits-200)/int64(100*(l.HiBits-2))))
}

// bitsOf is the element width of a plain grouped dtype.
func (l Layout) bitsOf() int {
	switch l.DType {
	case Q4:
		return 4
	case Q2:
		return 2
	}
	return 0
}

// packedBytes is the size of n values of b bits packed into bytes.
func packedBytes(n, b int) int64 { return (int64(n)*int64(b) + 7) / 8 }

// kGroupBytes and vGroupBytes are the sizes of the f16 (scale, min) pairs of n tokens.
func (l Layout) kGroupBytes(n int) int64 {
	if l.KPerToken {
		return l.vGroupBytes(n)
	}
	return 4 * int64(ceilDiv(n, l.Group)) * int64(l.Channels())
}

func (l Layout) vGroupBytes(n int) int64 {
	return 4 * int64(n) * int64(ceilDiv(l.Channels(), l.Group))
}

func ceilDiv(a, b int) int {
	if b <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// KBytes is the size of a layer's K part: the values (for Mixed: the token bitmap,
// then the high- and the low-precision tokens' values).
func (l Layout) KBytes(tokens int) int64 {
	switch l.DType {
	case Q4, Q2:
		return packedBytes(l.Elems(tokens), l.bitsOf())
	case Mixed:
		h := l.HiTokens(tokens)
		return int64(ceilDiv(tokens, 8)) + packedBytes(l.Elems(h), l.HiBits) + packedBytes(l.Elems(tokens-h), 2)
	}
	return l.TensorBytes(tokens)
}

// VBytes is the size of a layer's V values (for Mixed: high, then low precision).
func (l Layout) VBytes(tokens int) int64 {
	switch l.DType {
	case Q4, Q2:
		return packedBytes(l.Elems(tokens), l.bitsOf())
	case Mixed:
		h := l.HiTokens(tokens)
		return packedBytes(l.Elems(h), l.HiBits) + packedBytes(l.Elems(tokens-h), 2)
	}
	return l.TensorBytes(tokens)
}

// KScaleBytes is the size of a layer's K scales (int8: float32 scales; grouped: f16
// (scale, min) pairs, for Mixed the high-precision tokens' groups first).
func (l Layout) KScaleBytes(tokens int) int64 {
	switch l.DType {
	case Q4, Q2:
		return l.kGroupBytes(tokens)
	case Mixed:
		h := l.HiTokens(tokens)
		return l.kGroupBytes(h) + l.kGroupBytes(tokens-h)
	}
	return 4 * int64(l.ScaleCount(l.KScale, tokens))
}

// VScaleBytes is the size of a layer's V scales, as KScaleBytes.
func (l Layout) VScaleBytes(tokens int) int64 {
	switch l.DType {
	case Q4, Q2:
		return l.vGroupBytes(tokens)
	case Mixed:
		h := l.HiTokens(tokens)
		return l.vGroupBytes(h) + l.vGroupBytes(tokens-h)
	}
	return 4 * int64(l.ScaleCount(l.VScale, tokens))
}

// LayerBytes is the size of one layer section.
func (l Layout) LayerBytes(tokens int) int64 {
	return l.KBytes(tokens) + l.VBytes(tokens) + l.KScaleBytes(tokens) + l.VScaleBytes(tokens)
}

// AvgBits is the average precision of the stored K/V values in bits, without the
// group scales and minima (16 for f16, 2.5 for Mixed at the default).
func (l Layout) AvgBits(tokens int) float64 {
	switch l.DType {
	case Q4, Q2:
		return float64(l.bitsOf())
	case Mixed:
		if tokens <= 0 {
			return 0
		}
		h := l.HiTokens(tokens)
		return float64(h*l.HiBits+(tokens-h)*2) / float64(tokens)
	}
	return float64(8 * l.DType.Size())
}

// BytesPerToken is what one token costs in a stored blob's layer sections (K, V and
// scales of every layer, header excluded).
func (l Layout) BytesPerToken(tokens int) float64 {
	if tokens <= 0 {
		return 0
	}
	return float64(int64(l.Layers)*l.LayerBytes(tokens)) / float64(tokens)
}

// version is the format version a blob of this layout is written in.
func (l Layout) version() int {
	if l.DType.Grouped() {
		return 2
	}
	return VersionBase
}

// HeaderSize is the encoded header size of a blob in this layout (version 2 adds 8
// bytes of grouped-format fields).
func (l Layout) HeaderSize() int {
	if l.version() == 2 {
		return fixedHeaderBytesV2 + 4*l.Layers
	}
	return HeaderSize(l.Layers)
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
	// PreRoPE says K is stored without its rotary embedding (as if every token were
	// at position 0): a consumer rotates row t to its position instead of re-rotating
	// it from PositionBase+t. KIVI and KVQuant quantize K before RoPE because RoPE
	// mixes each channel pair across positions, which widens per-channel groups; the
	// writer (the engine, which knows the model's RoPE) chooses it, and it survives
	// re-encoding into any dtype. Byte 11 bit 0 of the header (0 in older blobs).
	PreRoPE  bool
	LayerCRC []uint32
}

// headerFlagPreRoPE is bit 0 of header byte 11 (Header.PreRoPE).
const headerFlagPreRoPE = 1

// fixedHeaderBytes is the version-1 header size without the per-layer CRCs;
// fixedHeaderBytesV2 the version-2 one.
const (
	fixedHeaderBytes   = 52
	fixedHeaderBytesV2 = 60
)

// HeaderSize is the encoded version-1 header size (f32, f16, bf16, int8) for a blob of
// the given layer count; Layout.HeaderSize covers every dtype.
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
	return int64(h.Layout.HeaderSize()) + int64(h.Layers)*h.LayerBytes()
}

// LayerOffset is where layer i's section starts in the blob.
func (h *Header) LayerOffset(i int) int64 {
	return int64(h.Layout.HeaderSize()) + int64(i)*h.LayerBytes()
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
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.version()))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.Layout.HeaderSize()))
	var hflags byte
	if h.PreRoPE {
		hflags |= headerFlagPreRoPE
	}
	dst = append(dst, byte(h.DType), byte(h.KScale), byte(h.VScale), hflags)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Layers))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.KVHeads))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.HeadDim))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Tokens))
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.PositionBase))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.LayerBytes()))
	if h.version() == 2 {
		var flags byte
		if h.Rotate {
			flags |= flagRotate
		}
		if h.KPerToken {
			flags |= flagKPerToken
		}
		dst = binary.LittleEndian.AppendUint16(dst, uint16(h.Group))
		dst = append(dst, flags, byte(h.HiBits))
		dst = binary.LittleEndian.AppendUint16(dst, uint16(h.MixCentibits))
		dst = binary.LittleEndian.AppendUint16(dst, 0)
	}
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
	version := binary.LittleEndian.Uint16(b[4:])
	if version != VersionBase && version != Version {
		return h, 0, fmt.Errorf("%w: unsupported format version %d (this build reads %d and %d)", ErrCorrupt, version, VersionBase, Version)
	}
	fixed := fixedHeaderBytes
	if version == 2 {
		fixed = fixedHeaderBytesV2
	}
	size := int(binary.LittleEndian.Uint16(b[6:]))
	layers := binary.LittleEndian.Uint32(b[12:])
	if layers == 0 || layers > MaxLayers {
		return h, 0, fmt.Errorf("%w: layer count %d out of range", ErrCorrupt, layers)
	}
	if size != fixed+4*int(layers) {
		return h, 0, fmt.Errorf("%w: header size %d does not match %d layers", ErrCorrupt, size, layers)
	}
	if len(b) < size {
		return h, 0, fmt.Errorf("%w: header of %d bytes truncated to %d", ErrCorrupt, size, len(b))
	}
	if got, want := Checksum(b[:size-4]), binary.LittleEndian.Uint32(b[size-4:]); got != want {
		return h, 0, fmt.Errorf("%w: header checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if b[11]&^headerFlagPreRoPE != 0 || binary.LittleEndian.Uint32(b[28:]) != 0 {
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
	if version == 2 {
		if b[50]&^(flagRotate|flagKPerToken) != 0 || binary.LittleEndian.Uint16(b[54:]) != 0 {
			return h, 0, fmt.Errorf("%w: unknown flags or reserved fields set in the version-2 header", ErrCorrupt)
		}
		h.Layout.Group = int(binary.LittleEndian.Uint16(b[48:]))
		h.Layout.Rotate = b[50]&flagRotate != 0
		h.Layout.KPerToken = b[50]&flagKPerToken != 0
		h.Layout.HiBits = int(b[51])
		h.Layout.MixCentibits = int(binary.LittleEndian.Uint16(b[52:]))
	}
	tokens := binary.LittleEndian.Uint32(b[24:])
	if tokens > MaxTokens {
		return h, 0, fmt.Errorf("%w: token count %d out of range", ErrCorrupt, tokens)
	}
	h.Tokens = int(tokens)
	h.PositionBase = int64(binary.LittleEndian.Uint64(b[32:]))
	h.PreRoPE = b[11]&headerFlagPreRoPE != 0
	if err := h.Layout.Validate(); err != nil {
		return h, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if h.version() != int(version) {
		return h, 0, fmt.Errorf("%w: dtype %v in a version-%d header", ErrCorrupt, h.DType, version)
	}
	if err := h.Layout.ValidateTokens(h.Tokens); err != nil {
		return h, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if lb := binary.LittleEndian.Uint64(b[40:]); lb != uint64(h.LayerBytes()) {
		return h, 0, fmt.Errorf("%w: layer section size %d does not match layout (%d)", ErrCorrupt, lb, h.LayerBytes())
	}
	h.LayerCRC = make([]uint32, h.Layers)
	for i := range h.LayerCRC {
		h.LayerCRC[i] = binary.LittleEndian.Uint32(b[fixed-4+4*i:])
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
	K, V             []byte // tokens·channels elements of the dtype (packed for the grouped dtypes)
	KScales, VScales []byte // float32 scales (int8) or f16 (scale, min) pairs (grouped)
}

// flagRotate is bit 0 of the version-2 flags byte: Walsh–Hadamard rotation.
// flagKPerToken is bit 1: K grouped per token.
const (
	flagRotate    = 1
	flagKPerToken = 2
)

// Split cuts a layer section into its parts. The section must have the layout's size.
func (l Layout) Split(section []byte, tokens int) (LayerParts, error) {
	if int64(len(section)) != l.LayerBytes(tokens) {
		return LayerParts{}, fmt.Errorf("%w: layer section is %d bytes, want %d", ErrCorrupt, len(section), l.LayerBytes(tokens))
	}
	a := int(l.KBytes(tokens))
	b := a + int(l.VBytes(tokens))
	c := b + int(l.KScaleBytes(tokens))
	d := c + int(l.VScaleBytes(tokens))
	return LayerParts{
		K:       section[:a:a],
		V:       section[a:b:b],
		KScales: section[b:c:c],
		VScales: section[c:d:d],
	}, nil
}

// AppendRaw appends a layer section assembled from parts already in the layout's
// dtype (the form engines push over gRPC). Each part's length is checked; scales must
// be finite (and non-negative for int8 and for the grouped dtypes' scales), and a
// Mixed layer's token bitmap must mark exactly HiTokens tokens.
func (l Layout) AppendRaw(dst []byte, tokens int, p LayerParts) ([]byte, error) {
	if want := l.KBytes(tokens); int64(len(p.K)) != want {
		return dst, fmt.Errorf("%w: K is %d bytes, layout wants %d (%d tokens × %d kv heads × %d head dim, %v)",
			ErrInvalid, len(p.K), want, tokens, l.KVHeads, l.HeadDim, l.DType)
	}
	if want := l.VBytes(tokens); int64(len(p.V)) != want {
		return dst, fmt.Errorf("%w: V is %d bytes, layout wants %d (%d tokens × %d kv heads × %d head dim, %v)",
			ErrInvalid, len(p.V), want, tokens, l.KVHeads, l.HeadDim, l.DType)
	}
	if want := l.KScaleBytes(tokens); int64(len(p.KScales)) != want {
		return dst, fmt.Errorf("%w: K scales are %d bytes, layout wants %d (%v %v)", ErrInvalid, len(p.KScales), want, l.DType, l.KScale)
	}
	if want := l.VScaleBytes(tokens); int64(len(p.VScales)) != want {
		return dst, fmt.Errorf("%w: V scales are %d bytes, layout wants %d (%v %v)", ErrInvalid, len(p.VScales), want, l.DType, l.VScale)
	}
	if l.DType.Grouped() {
		for _, sc := range [][]byte{p.KScales, p.VScales} {
			if err := checkGroups(sc); err != nil {
				return dst, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
		}
		if l.DType == Mixed {
			if _, err := l.checkBitmap(p.K[:ceilDiv(tokens, 8)], tokens); err != nil {
				return dst, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
		}
	} else {
		for _, sc := range [][]byte{p.KScales, p.VScales} {
			for i := 0; i < len(sc); i += 4 {
				f := math.Float32frombits(binary.LittleEndian.Uint32(sc[i:]))
				if !(f >= 0) || math.IsInf(float64(f), 0) {
					return dst, fmt.Errorf("%w: int8 scale %v is not a finite non-negative number", ErrInvalid, f)
				}
			}
		}
	}
	dst = append(dst, p.K...)
	dst = append(dst, p.V...)
	dst = append(dst, p.KScales...)
	dst = append(dst, p.VScales...)
	return dst, nil
}

// ParseFormat parses a storage format: a dtype name (see ParseDType; "q4r", "q2r"
// and "mixedr" add the Hadamard rotation) with optional ":key=value,..." options
// group=N, rot=0|1 (grouped dtypes) and, for mixed, bits=B (average bits, default
// 2.5) and hi=4|8. It returns a Layout with only the encoding fields set (the shape
// is the caller's), defaults applied.
func ParseFormat(s string) (Layout, error) {
	name, opts, _ := strings.Cut(strings.TrimSpace(s), ":")
	var l Layout
	lname := strings.ToLower(name)
	for _, r := range []string{"q4r", "q2r", "mixedr"} {
		if lname == r {
			l.Rotate = true
			lname = strings.TrimSuffix(lname, "r")
		}
	}
	d, err := ParseDType(lname)
	if err != nil {
		return Layout{}, fmt.Errorf("%w: format %q: unknown dtype %q (want f32, f16, bf16, int8, q4, q2, mixed, q4r, q2r or mixedr)", ErrInvalid, s, name)
	}
	l.DType = d
	if opts != "" {
		if !d.Grouped() {
			return Layout{}, fmt.Errorf("%w: format %q: options apply to q4, q2 and mixed only", ErrInvalid, s)
		}
		for _, kv := range strings.Split(opts, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				return Layout{}, fmt.Errorf("%w: format %q: %q is not key=value", ErrInvalid, s, kv)
			}
			switch k {
			case "group":
				n, err := strconv.Atoi(val)
				if err != nil || n < 1 || n > MaxGroup {
					return Layout{}, fmt.Errorf("%w: format %q: group %q (want 1..%d)", ErrInvalid, s, val, MaxGroup)
				}
				l.Group = n
			case "rot":
				l.Rotate = val == "1" || val == "true"
			case "ktok":
				l.KPerToken = val == "1" || val == "true"
			case "bits", "hi":
				if d != Mixed {
					return Layout{}, fmt.Errorf("%w: format %q: %s applies to mixed only", ErrInvalid, s, k)
				}
				f, err := strconv.ParseFloat(val, 64)
				if err != nil || !(f > 0 && f <= 16) {
					return Layout{}, fmt.Errorf("%w: format %q: %s %q is not a bit count", ErrInvalid, s, k, val)
				}
				if k == "bits" {
					l.MixCentibits = int(math.Round(100 * f))
				} else {
					l.HiBits = int(f)
				}
			default:
				return Layout{}, fmt.Errorf("%w: format %q: unknown option %q (group, rot, ktok, bits, hi)", ErrInvalid, s, k)
			}
		}
	}
	l.EnsureDefaults()
	probe := l
	probe.Layers, probe.KVHeads, probe.HeadDim = 1, 1, 1
	if err := probe.Validate(); err != nil {
		return Layout{}, fmt.Errorf("format %q: %w", s, err)
	}
	return l, nil
}

// Format is the layout's storage format in ParseFormat's syntax.
func (l Layout) Format() string {
	if !l.DType.Grouped() {
		return l.DType.String()
	}
	s := l.DType.String()
	if l.Rotate {
		s += "r"
	}
	s += fmt.Sprintf(":group=%d", l.Group)
	if l.KPerToken {
		s += ",ktok=1"
	}
	if l.DType == Mixed {
		s += fmt.Sprintf(",bits=%g,hi=%d", float64(l.MixCentibits)/100, l.HiBits)
	}
	return s
}

// WithFormat returns l with the encoding fields (dtype, scale modes, group, rotation,
// mixed precision) of f.
func (l Layout) WithFormat(f Layout) Layout {
	l.DType, l.KScale, l.VScale = f.DType, f.KScale, f.VScale
	l.Group, l.Rotate, l.KPerToken, l.HiBits, l.MixCentibits = f.Group, f.Rotate, f.KPerToken, f.HiBits, f.MixCentibits
	return l
}
