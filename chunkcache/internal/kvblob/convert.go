package kvblob

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/ragkv/ragkv/internal/kernels"
)

// AppendLayer appends layer section built from float32 K and V (each tokens·channels
// values, [token][kv head][head dim]), converted to the layout's dtype. For int8 and
// the grouped dtypes the scales are computed from the data. Non-finite values are
// rejected for the quantized dtypes (they have no quantized form); the float dtypes
// keep them. Mixed ranks tokens by their key norm (see AppendLayerScored).
func (l Layout) AppendLayer(dst []byte, tokens int, k, v []float32) ([]byte, error) {
	return l.AppendLayerScored(dst, tokens, k, v, nil)
}

// AppendLayerScored is AppendLayer with an importance score per token for Mixed: the
// HiTokens highest-scoring tokens are kept at HiBits (nil: key norms). Other dtypes
// ignore score.
func (l Layout) AppendLayerScored(dst []byte, tokens int, k, v, score []float32) ([]byte, error) {
	n := l.Elems(tokens)
	if len(k) != n || len(v) != n {
		return dst, fmt.Errorf("%w: K has %d and V %d values, layout wants %d (%d tokens × %d kv heads × %d head dim)",
			ErrInvalid, len(k), len(v), n, tokens, l.KVHeads, l.HeadDim)
	}
	lb := int(l.LayerBytes(tokens))
	start := len(dst)
	dst = grow(dst, lb)
	sec := dst[start : start+lb]
	p, err := l.Split(sec, tokens)
	if err != nil {
		return dst[:start], err
	}
	if l.DType.Grouped() {
		if err := l.appendGrouped(p, tokens, k, v, score); err != nil {
			return dst[:start], err
		}
		return dst, nil
	}
	if l.DType == Int8 {
		if err := quantize(p.K, p.KScales, k, l.KScale, tokens, l.Channels()); err != nil {
			return dst[:start], fmt.Errorf("K: %w", err)
		}
		if err := quantize(p.V, p.VScales, v, l.VScale, tokens, l.Channels()); err != nil {
			return dst[:start], fmt.Errorf("V: %w", err)
		}
		return dst, nil
	}
	encodeFloat(p.K, l.DType, k)
	encodeFloat(p.V, l.DType, v)
	return dst, nil
}

// DecodeLayer converts a layer section into caller-owned K and V buffers of
// tokens·channels float32 values each. It does not check the CRC (Header.CheckLayer
// does); it checks sizes (and a Mixed layer's token bitmap: ErrCorrupt), so it never
// reads out of bounds.
func (l Layout) DecodeLayer(section []byte, tokens int, k, v []float32) error {
	n := l.Elems(tokens)
	if len(k) != n || len(v) != n {
		return fmt.Errorf("%w: K buffer has %d and V %d values, layout wants %d", ErrInvalid, len(k), len(v), n)
	}
	p, err := l.Split(section, tokens)
	if err != nil {
		return err
	}
	if l.DType.Grouped() {
		return l.decodeGrouped(p, tokens, k, v)
	}
	if l.DType == Int8 {
		dequantize(k, p.K, p.KScales, l.KScale, tokens, l.Channels())
		dequantize(v, p.V, p.VScales, l.VScale, tokens, l.Channels())
		return nil
	}
	decodeFloat(k, l.DType, p.K)
	decodeFloat(v, l.DType, p.V)
	return nil
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n)
	copy(nb, b)
	return nb
}

func encodeFloat(dst []byte, d DType, x []float32) {
	switch d {
	case F32:
		for i, f := range x {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
		}
	case F16:
		for i, f := range x {
			binary.LittleEndian.PutUint16(dst[2*i:], kernels.F32ToF16(f))
		}
	case BF16:
		for i, f := range x {
			binary.LittleEndian.PutUint16(dst[2*i:], kernels.F32ToBF16(f))
		}
	}
}

func decodeFloat(out []float32, d DType, src []byte) {
	switch d {
	case F32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		kernels.DecodeF16(out, src)
	case BF16:
		for i := range out {
			out[i] = kernels.BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	}
}

// quantize writes symmetric int8 values of x into q and their float32 scales into
// scales, per token or per channel.
func quantize(q, scales []byte, x []float32, mode ScaleMode, tokens, channels int) error {
	for i, f := range x {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("%w: value %v at index %d cannot be quantized to int8", ErrInvalid, f, i)
		}
	}
	switch mode {
	case ScalePerToken:
		for t := 0; t < tokens; t++ {
			row := x[t*channels : (t+1)*channels]
			var m float32
			for _, f := range row {
				m = max(m, abs32(f))
			}
			s := m / 127
			binary.LittleEndian.PutUint32(scales[4*t:], math.Float32bits(s))
			inv := float32(0)
			if s > 0 {
				inv = 1 / s
			}
			qrow := q[t*channels : (t+1)*channels]
			for c, f := range row {
				qrow[c] = byte(q8(f * inv))
			}
		}
	case ScalePerChannel:
		inv := make([]float32, channels)
		for t := 0; t < tokens; t++ {
			row := x[t*channels : (t+1)*channels]
			for c, f := range row {
				inv[c] = max(inv[c], abs32(f))
			}
		}
		for c, m := range inv {
			s := m / 127
			binary.LittleEndian.PutUint32(scales[4*c:], math.Float32bits(s))
			if s > 0 {
				inv[c] = 1 / s
			} else {
				inv[c] = 0
			}
		}
		for t := 0; t < tokens; t++ {
			row := x[t*channels : (t+1)*channels]
			qrow := q[t*channels : (t+1)*channels]
			for c, f := range row {
				qrow[c] = byte(q8(f * inv[c]))
			}
		}
	default:
		return fmt.Errorf("%w: int8 scale mode %v", ErrInvalid, mode)
	}
	return nil
}

func dequantize(out []float32, q, scales []byte, mode ScaleMode, tokens, channels int) {
	switch mode {
	case ScalePerToken:
		for t := 0; t < tokens; t++ {
			s := math.Float32frombits(binary.LittleEndian.Uint32(scales[4*t:]))
			row := out[t*channels : (t+1)*channels]
			qrow := q[t*channels : (t+1)*channels]
			for c := range row {
				row[c] = float32(int8(qrow[c])) * s
			}
		}
	case ScalePerChannel:
		for t := 0; t < tokens; t++ {
			row := out[t*channels : (t+1)*channels]
			qrow := q[t*channels : (t+1)*channels]
			for c := range row {
				row[c] = float32(int8(qrow[c])) * math.Float32frombits(binary.LittleEndian.Uint32(scales[4*c:]))
			}
		}
	}
}

func abs32(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// q8 rounds half away from zero and clamps to [-127, 127].
func q8(f float32) int8 {
	r := math.Round(float64(f))
	if r > 127 {
		r = 127
	} else if r < -127 {
		r = -127
	}
	return int8(r)
}

var (
	f16Once sync.Once
	f16Tab  *[1 << 16]float32
)

// f16Table is the 256 KiB f16 → f32 lookup table, built on first use.
func f16Table() *[1 << 16]float32 {
	f16Once.Do(func() {
		t := new([1 << 16]float32)
		for i := range t {
			t[i] = kernels.F16ToF32(uint16(i))
		}
		f16Tab = t
	})
	return f16Tab
}
