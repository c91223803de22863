package kernels

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Dequantize converts the first len(dst) elements stored in src with type t to float32,
// bit for bit as ggml's reference dequantizers (dequantize_row_*) do. len(dst) must be a
// multiple of t.BlockElems() and src must hold at least that many elements.
func Dequantize(dst []float32, src []byte, t DType) error {
	need, err := RowBytes(t, len(dst))
	if err != nil {
		return err
	}
	if len(src) < need {
		return fmt.Errorf("%w: %d %v elements need %d bytes, have %d", ErrShape, len(dst), t, need, len(src))
	}
	dequantizeRow(dst, src[:need], t)
	return nil
}

// dequantizeRow is Dequantize without checks: len(src) == RowBytes(t, len(dst)).
func dequantizeRow(dst []float32, src []byte, t DType) {
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case Q8_0:
		for b := 0; b < len(dst)/qk8_0; b++ {
			dequantQ8_0Block(dst[b*qk8_0:(b+1)*qk8_0], src[b*blockQ8_0Bytes:(b+1)*blockQ8_0Bytes])
		}
	case Q4_0:
		for b := 0; b < len(dst)/qk4_0; b++ {
			dequantQ4_0Block(dst[b*qk4_0:(b+1)*qk4_0], src[b*blockQ4_0Bytes:(b+1)*blockQ4_0Bytes])
		}
	case Q5_0:
		for b := 0; b < len(dst)/qk5_0; b++ {
			dequantQ5_0Block(dst[b*qk5_0:(b+1)*qk5_0], src[b*blockQ5_0Bytes:(b+1)*blockQ5_0Bytes])
		}
	case Q5_1:
		for b := 0; b < len(dst)/qk5_1; b++ {
			dequantQ5_1Block(dst[b*qk5_1:(b+1)*qk5_1], src[b*blockQ5_1Bytes:(b+1)*blockQ5_1Bytes])
		}
	case Q4_K:
		for b := 0; b < len(dst)/qkK; b++ {
			dequantQ4_KBlock(dst[b*qkK:(b+1)*qkK], src[b*blockQ4_KBytes:(b+1)*blockQ4_KBytes])
		}
	case Q5_K:
		for b := 0; b < len(dst)/qkK; b++ {
			dequantQ5_KBlock(dst[b*qkK:(b+1)*qkK], src[b*blockQ5_KBytes:(b+1)*blockQ5_KBytes])
		}
	case Q6_K:
		for b := 0; b < len(dst)/qkK; b++ {
			dequantQ6_KBlock(dst[b*qkK:(b+1)*qkK], src[b*blockQ6_KBytes:(b+1)*blockQ6_KBytes])
		}
	}
}

func f16At(b []byte, off int) float32 { return F16ToF32(binary.LittleEndian.Uint16(b[off:])) }

// block_q8_0 { ggml_half d; int8_t qs[32]; }: x = qs·d.
func dequantQ8_0Block(y []float32, b []byte) {
	d := f16At(b, 0)
	qs := b[2 : 2+qk8_0]
	for j := range qk8_0 {
		y[j] = float32(int8(qs[j])) * d
	}
}

// block_q4_0 { ggml_half d; uint8_t qs[16]; }: low nibbles are elements 0..15, high
// nibbles 16..31, x = (q-8)·d.
func dequantQ4_0Block(y []float32, b []byte) {
	d := f16At(b, 0)
	qs := b[2 : 2+qk4_0/2]
	for j := range qk4_0 / 2 {
		y[j] = float32(int(qs[j]&0xf)-8) * d
		y[j+qk4_0/2] = float32(int(qs[j]>>4)-8) * d
	}
}

// block_q5_0 { ggml_half d; uint8_t qh[4]; uint8_t qs[16]; }: element j takes the low
// (j < 16) or high (j ≥ 16) nibble of qs[j%16] and, as its fifth bit, bit j of the
// little-endian qh word; x = (q−16)·d.
func dequantQ5_0Block(y []float32, b []byte) {
	d := f16At(b, 0)
	qh := binary.LittleEndian.Uint32(b[2:])
	qs := b[6 : 6+qk5_0/2]
	for j := range qk5_0 / 2 {
		x0 := int(qs[j]&0xf) | int((qh>>j)&1)<<4
		x1 := int(qs[j]>>4) | int((qh>>(j+16))&1)<<4
		y[j] = float32(x0-16) * d
		y[j+qk5_0/2] = float32(x1-16) * d
	}
}

// block_q5_1 { ggml_half d; ggml_half m; uint8_t qh[4]; uint8_t qs[16]; }: q as in q5_0,
// x = q·d + m (the product rounded before the sum, as ggml's dequantize_row_q5_1).
func dequantQ5_1Block(y []float32, b []byte) {
	d, m := f16At(b, 0), f16At(b, 2)
	qh := binary.LittleEndian.Uint32(b[4:])
	qs := b[8 : 8+qk5_1/2]
	for j := range qk5_1 / 2 {
		x0 := int(qs[j]&0xf) | int((qh>>j)&1)<<4
		x1 := int(qs[j]>>4) | int((qh>>(j+16))&1)<<4
		y[j] = float32(float32(x0)*d) + m
		y[j+qk5_1/2] = float32(float32(x1)*d) + m
	}
}

// scaleMinK4 unpacks the j-th 6-bit scale and min of a q4_K/q5_K block (get_scale_min_k4).
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return (q[j+4] & 0xf) | ((q[j-4] >> 6) << 4), (q[j+4] >> 4) | ((q[j] >> 6) << 4)
}

// block_q4_K { ggml_half d, dmin; uint8_t scales[12]; uint8_t qs[128]; }: 8 sub-blocks of
// 32; x = d·sc·q − dmin·m.
func dequantQ4_KBlock(y []float32, b []byte) {
	d := f16At(b, 0)
	dmin := f16At(b, 2)
	scales := b[4:16]
	q := b[16 : 16+qkK/2]
	is := 0
	for j := 0; j < qkK; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := range 32 {
			y[j+l] = float32(d1*float32(q[l]&0xf)) - m1
		}
		for l := range 32 {
			y[j+32+l] = float32(d2*float32(q[l]>>4)) - m2
		}
		q = q[32:]
		is += 2
	}
}

// block_q5_K { ggml_half d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; }.
func dequantQ5_KBlock(y []float32, b []byte) {
	d := f16At(b, 0)
	dmin := f16At(b, 2)
	scales := b[4:16]
	qh := b[16 : 16+qkK/8]
	ql := b[48 : 48+qkK/2]
	is := 0
	u1, u2 := uint8(1), uint8(2)
	for j := 0; j < qkK; j += 64 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		for l := range 32 {
			v := int(ql[l] & 0xf)
			if qh[l]&u1 != 0 {
				v += 16
			}
			y[j+l] = float32(d1*float32(v)) - m1
		}
		for l := range 32 {
			v := int(ql[l] >> 4)
			if qh[l]&u2 != 0 {
				v += 16
			}
			y[j+32+l] = float32(d2*float32(v)) - m2
		}
		ql = ql[32:]
		is += 2
		u1 <<= 2
		u2 <<= 2
	}
}

// block_q6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; ggml_half d; }: 16
// sub-blocks of 16; x = d·sc·(q−32).
func dequantQ6_KBlock(y []float32, b []byte) {
	ql := b[0:128]
	qh := b[128:192]
	sc := b[192:208]
	d := f16At(b, 208)
	for n := 0; n < qkK; n += 128 {
		for l := range 32 {
			is := l / 16
			q1 := int8((ql[l]&0xf)|((qh[l]>>0)&3)<<4) - 32
			q2 := int8((ql[l+32]&0xf)|((qh[l]>>2)&3)<<4) - 32
			q3 := int8((ql[l]>>4)|((qh[l]>>4)&3)<<4) - 32
			q4 := int8((ql[l+32]>>4)|((qh[l]>>6)&3)<<4) - 32
			y[n+l] = float32(d*float32(int8(sc[is]))) * float32(q1)
			y[n+l+32] = float32(d*float32(int8(sc[is+2]))) * float32(q2)
			y[n+l+64] = float32(d*float32(int8(sc[is+4]))) * float32(q3)
			y[n+l+96] = float32(d*float32(int8(sc[is+6]))) * float32(q4)
		}
		ql = ql[64:]
		qh = qh[32:]
		sc = sc[8:]
	}
}

// Quantize encodes src with type t into dst, bit for bit as ggml's reference quantizers
// (quantize_row_*_ref) do. Supported: every DType (f32, f16, bf16, q8_0, q4_0, and the
// k-quants q4_K, q5_K, q6_K in quantk.go). len(src) must be a multiple of t.BlockElems()
// and dst must hold RowBytes(t, len(src)) bytes. It allocates nothing.
func Quantize(dst []byte, src []float32, t DType) error {
	need, err := RowBytes(t, len(src))
	if err != nil {
		return err
	}
	if len(dst) < need {
		return fmt.Errorf("%w: %d %v elements need %d bytes, have %d", ErrShape, len(src), t, need, len(dst))
	}
	switch t {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(v))
		}
	case Q8_0:
		for b := 0; b < len(src)/qk8_0; b++ {
			quantQ8_0Block(dst[b*blockQ8_0Bytes:], src[b*qk8_0:(b+1)*qk8_0])
		}
	case Q4_0:
		for b := 0; b < len(src)/qk4_0; b++ {
			quantQ4_0Block(dst[b*blockQ4_0Bytes:], src[b*qk4_0:(b+1)*qk4_0])
		}
	case Q5_0:
		for b := 0; b < len(src)/qk5_0; b++ {
			quantQ5_0Block(dst[b*blockQ5_0Bytes:], src[b*qk5_0:(b+1)*qk5_0])
		}
	case Q5_1:
		for b := 0; b < len(src)/qk5_1; b++ {
			quantQ5_1Block(dst[b*blockQ5_1Bytes:], src[b*qk5_1:(b+1)*qk5_1])
		}
	case Q4_K:
		for b := 0; b < len(src)/qkK; b++ {
			quantQ4_KBlock(dst[b*blockQ4_KBytes:], src[b*qkK:(b+1)*qkK])
		}
	case Q5_K:
		for b := 0; b < len(src)/qkK; b++ {
			quantQ5_KBlock(dst[b*blockQ5_KBytes:], src[b*qkK:(b+1)*qkK])
		}
	case Q6_K:
		for b := 0; b < len(src)/qkK; b++ {
			quantQ6_KBlock(dst[b*blockQ6_KBytes:], src[b*qkK:(b+1)*qkK])
		}
	default:
		return fmt.Errorf("%w: no quantizer for %v", ErrUnsupportedType, t)
	}
	return nil
}

// quantize_row_q8_0_ref: d = amax/127, q = roundf(x/d) (half away from zero).
func quantQ8_0Block(y []byte, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(y, F32ToF16(d))
	for j, v := range x {
		y[2+j] = byte(int8(math.Round(float64(float32(v * id)))))
	}
}

// quantize_row_q4_0_ref: d = max/−8 where max is the value of largest magnitude,
// q = min(15, trunc(x/d + 8.5)).
func quantQ4_0Block(y []byte, x []float32) {
	var amax, mx float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); amax < a {
			amax, mx = a, v
		}
	}
	d := mx / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(y, F32ToF16(d))
	for j := range qk4_0 / 2 {
		x0 := float32(x[j] * id)
		x1 := float32(x[qk4_0/2+j] * id)
		xi0 := min(15, int8(float32(x0+8.5)))
		xi1 := min(15, int8(float32(x1+8.5)))
		y[2+j] = byte(xi0) | byte(xi1)<<4
	}
}

// quantize_row_q5_0_ref: d = max/−16 where max is the value of largest magnitude (the
// first of equal magnitudes), q = min(31, trunc(x/d + 16.5)); the low nibbles in qs
// (elements j and j+16 share byte j), the fifth bits in the little-endian qh word.
func quantQ5_0Block(y []byte, x []float32) {
	var amax, mx float32
	for _, v := range x {
		if a := absf(v); amax < a {
			amax, mx = a, v
		}
	}
	d := mx / -16
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(y, F32ToF16(d))
	var qh uint32
	for j := range qk5_0 / 2 {
		x0 := float32(x[j] * id)
		x1 := float32(x[qk5_0/2+j] * id)
		xi0 := uint8(min(31, int8(float32(x0+16.5))))
		xi1 := uint8(min(31, int8(float32(x1+16.5))))
		y[6+j] = xi0&0xf | (xi1&0xf)<<4
		qh |= uint32(xi0&0x10)>>4<<j | uint32(xi1&0x10)>>4<<(j+qk5_0/2)
	}
	binary.LittleEndian.PutUint32(y[2:], qh)
}

// quantize_row_q5_1_ref: d = (max − min)/31, m = min, q = trunc((x − min)/d + 0.5)
// (as uint8), packed as in q5_0.
func quantQ5_1Block(y []byte, x []float32) {
	mn, mx := float32(math.MaxFloat32), float32(-math.MaxFloat32)
	for _, v := range x {
		if v < mn {
			mn = v
		}
		if v > mx {
			mx = v
		}
	}
	d := (mx - mn) / 31
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(y, F32ToF16(d))
	binary.LittleEndian.PutUint16(y[2:], F32ToF16(mn))
	var qh uint32
	for j := range qk5_1 / 2 {
		x0 := float32(float32(x[j]-mn) * id)
		x1 := float32(float32(x[qk5_1/2+j]-mn) * id)
		xi0 := uint8(float32(x0 + 0.5))
		xi1 := uint8(float32(x1 + 0.5))
		y[8+j] = xi0&0xf | (xi1&0xf)<<4
		qh |= uint32(xi0&0x10)>>4<<j | uint32(xi1&0x10)>>4<<(j+qk5_1/2)
	}
	binary.LittleEndian.PutUint32(y[4:], qh)
}
