package kernels

import (
	"encoding/binary"
	"errors"
	"sync"

	"github.com/ragkv/ragkv/internal/cpu"
)

// KV decode: the dequantization of the chunk cache's grouped low-bit KV codes
// (chunkcache/internal/kvblob: q4, q2 and mixed, whose high-precision tokens are 4 or 8
// bits). Codes are unsigned, bits ∈ {2, 4, 8}, packed LSB first in a byte stream (code i
// at bit i·bits); a value is min + code·scale.
//
//   - DequantRow: one scale and minimum per element (K grouped per channel: a token row
//     of C values uses the C channels' parameters).
//   - DequantGroups: one (scale, minimum) pair per group of g consecutive values (V
//     grouped per token).
//   - DecodeF16: f16 to float32 (the groups' parameters, and the f16 KV dtype).
//
// As everywhere in this package there is one kernel table per path (kvdTables, indexed
// by cpu.Path: AVX-512 and AVX2 assembly on amd64, NEON on arm64, from asm_gen_kvdec.go),
// and the pure-Go kernels below (generic path, and every length the SIMD kernels do not
// cover: they take multiples of 16 values) beside the plain reference they are tested
// against (kvdRowRef, kvdGroupsRef). Every path gives the reference's bits: a code
// (≤ 255) times a scale with an f16 value (11 significant bits) is exact in float32, so a
// fused multiply-add and the reference's multiply-then-add round the same way.
// Nothing here allocates.

// kvdKernels is one path's SIMD kernels, by bit width (index kvdIndex(bits)); nil: none.
type kvdKernels struct {
	row    [3]func(n int, q *byte, s, m, out *float32)
	groups [3]func(ng, g int, q *byte, sm, out *float32)
	f16    func(n int, src *byte, dst *float32)
}

// kvdTables holds each path's kernels (the platform files fill in theirs at init).
var kvdTables [4]kvdKernels

func kvdIndex(bits int) int {
	switch bits {
	case 4:
		return 0
	case 2:
		return 1
	case 8:
		return 2
	}
	return -1
}

// kvdActive is the table of the active path (nil where it has no KV-decode kernels).
func kvdActive() *kvdKernels {
	p := int(cpu.Active())
	if p < len(kvdTables) {
		return &kvdTables[p]
	}
	return nil
}

// ErrKVBits is returned by DequantRow and DequantGroups for a code width other than 2, 4
// or 8 bits.
var ErrKVBits = errors.New("kernels: KV code width is not 2, 4 or 8 bits")

// KVCodeBits reports whether bits is a code width the KV-decode kernels take (2, 4, 8).
func KVCodeBits(bits int) bool { return kvdIndex(bits) >= 0 }

// DequantRow sets out[i] = min[i] + code_i·scale[i] for i < len(out), code_i the i-th
// bits-bit code of q (bits 2, 4 or 8). scale and min need len(out) values and q
// ⌈len(out)·bits/8⌉ bytes; shorter ones panic as indexing would
// (ErrKVBits for another width).
func DequantRow(out []float32, q []byte, bits int, scale, min []float32) error {
	x := kvdIndex(bits)
	if x < 0 {
		return ErrKVBits
	}
	n := len(out)
	if n == 0 {
		return nil
	}
	_ = q[(n*bits+7)/8-1]
	_, _ = scale[n-1], min[n-1]
	n16 := n &^ 15
	if k := kvdActive(); n16 > 0 && k != nil && k.row[x] != nil {
		k.row[x](n16, &q[0], &scale[0], &min[0], &out[0])
		if n16 == n {
			return nil
		}
		// 16 codes are 2·bits bytes: the tail starts on a byte.
		q, scale, min, out = q[n16*bits/8:], scale[n16:], min[n16:], out[n16:]
	}
	kvdRowGeneric(out, q, bits, scale, min)
	return nil
}

// DequantGroups sets out[j·g + i] = sm[2j+1] + code·sm[2j] for j < len(sm)/2, i < g:
// consecutive groups of g values, each with its (scale, minimum) pair in sm, code j·g + i
// of q. out needs len(sm)/2·g values and q ⌈len(out)·bits/8⌉ bytes (else a panic, as
// indexing would); bits as DequantRow's.
func DequantGroups(out []float32, q []byte, bits, g int, sm []float32) error {
	x := kvdIndex(bits)
	if x < 0 {
		return ErrKVBits
	}
	ng := len(sm) / 2
	if ng == 0 || g <= 0 {
		return nil
	}
	n := ng * g
	_ = out[n-1]
	_ = q[(n*bits+7)/8-1]
	if k := kvdActive(); g%16 == 0 && k != nil && k.groups[x] != nil {
		k.groups[x](ng, g, &q[0], &sm[0], &out[0])
		return nil
	}
	kvdGroupsGeneric(out[:n], q, bits, g, sm[:2*ng])
	return nil
}

// DecodeF16 sets dst[i] to the little-endian f16 value src[2i:2i+2] as float32 (exactly;
// NaNs quiet, as F16ToF32). src needs 2·len(dst) bytes (else a panic, as indexing would).
func DecodeF16(dst []float32, src []byte) {
	n := len(dst)
	if n == 0 {
		return
	}
	_ = src[2*n-1]
	n16 := n &^ 15
	if k := kvdActive(); n16 > 0 && k != nil && k.f16 != nil {
		k.f16(n16, &src[0], &dst[0])
		dst, src = dst[n16:], src[2*n16:]
	}
	decodeF16Generic(dst, src)
}

// decodeF16Generic is DecodeF16 in Go, through a 65536-entry table of F16ToF32 (built on
// first use; about 3× faster than converting each value, measured).
func decodeF16Generic(dst []float32, src []byte) {
	t := f16Table()
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = t[binary.LittleEndian.Uint16(src[2*i:])]
	}
}

// f16Table is F16ToF32 of every f16 value.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = F16ToF32(uint16(i))
	}
	return &t
})

// kvdRowRef is the reference of DequantRow: one code at a time.
func kvdRowRef(out []float32, q []byte, bits int, scale, min []float32) {
	mask := byte(1)<<bits - 1
	for i := range out {
		bit := i * bits
		c := q[bit>>3] >> (bit & 7) & mask
		out[i] = min[i] + float32(c)*scale[i]
	}
}

// kvdGroupsRef is the reference of DequantGroups.
func kvdGroupsRef(out []float32, q []byte, bits, g int, sm []float32) {
	mask := byte(1)<<bits - 1
	for j := range len(sm) / 2 {
		for i := range g {
			e := j*g + i
			bit := e * bits
			c := q[bit>>3] >> (bit & 7) & mask
			out[e] = sm[2*j+1] + float32(c)*sm[2*j]
		}
	}
}

// kvdRowGeneric is DequantRow in Go: eight codes per step through fixed-size array
// pointers (no bounds checks), the rest by the reference.
func kvdRowGeneric(out []float32, q []byte, bits int, scale, min []float32) {
	n8 := len(out) &^ 7
	for i := 0; i < n8; i += 8 {
		o := (*[8]float32)(out[i : i+8])
		s := (*[8]float32)(scale[i : i+8])
		m := (*[8]float32)(min[i : i+8])
		kvdDecode8(o, s, m, q[i*bits/8:], bits)
	}
	if n8 < len(out) {
		kvdRowRef(out[n8:], q[n8*bits/8:], bits, scale[n8:], min[n8:])
	}
}

// kvdGroupsGeneric is DequantGroups in Go.
func kvdGroupsGeneric(out []float32, q []byte, bits, g int, sm []float32) {
	if g%8 != 0 {
		kvdGroupsRef(out, q, bits, g, sm)
		return
	}
	var s8, m8 [8]float32
	for j := range len(sm) / 2 {
		for i := range s8 {
			s8[i], m8[i] = sm[2*j], sm[2*j+1]
		}
		for i := 0; i < g; i += 8 {
			e := j*g + i
			kvdDecode8((*[8]float32)(out[e:e+8]), &s8, &m8, q[e*bits/8:], bits)
		}
	}
}

// kvdDecode8 decodes the first eight codes of q.
func kvdDecode8(o, s, m *[8]float32, q []byte, bits int) {
	switch bits {
	case 4:
		w := binary.LittleEndian.Uint32(q)
		o[0] = m[0] + float32(w&15)*s[0]
		o[1] = m[1] + float32(w>>4&15)*s[1]
		o[2] = m[2] + float32(w>>8&15)*s[2]
		o[3] = m[3] + float32(w>>12&15)*s[3]
		o[4] = m[4] + float32(w>>16&15)*s[4]
		o[5] = m[5] + float32(w>>20&15)*s[5]
		o[6] = m[6] + float32(w>>24&15)*s[6]
		o[7] = m[7] + float32(w>>28)*s[7]
	case 2:
		w := binary.LittleEndian.Uint16(q)
		o[0] = m[0] + float32(w&3)*s[0]
		o[1] = m[1] + float32(w>>2&3)*s[1]
		o[2] = m[2] + float32(w>>4&3)*s[2]
		o[3] = m[3] + float32(w>>6&3)*s[3]
		o[4] = m[4] + float32(w>>8&3)*s[4]
		o[5] = m[5] + float32(w>>10&3)*s[5]
		o[6] = m[6] + float32(w>>12&3)*s[6]
		o[7] = m[7] + float32(w>>14)*s[7]
	default: // 8
		b := (*[8]byte)(q[:8])
		for i := range 8 {
			o[i] = m[i] + float32(b[i])*s[i]
		}
	}
}
