package pca

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// Quantizer is a per-dimension int8 scalar quantizer: x ≈ lo[j] + (c + 128)·step[j].
type Quantizer struct {
	lo, step []float32
}

// FitQuantizer fits per-dimension ranges on sample (vectors of equal length).
func FitQuantizer(sample [][]float32) (*Quantizer, error) {
	if len(sample) == 0 {
		return nil, fmt.Errorf("pca: quantizer needs a sample")
	}
	d := len(sample[0])
	q := &Quantizer{lo: make([]float32, d), step: make([]float32, d)}
	hi := make([]float32, d)
	for j := range q.lo {
		q.lo[j], hi[j] = float32(math.Inf(1)), float32(math.Inf(-1))
	}
	for _, v := range sample {
		if len(v) != d {
			return nil, fmt.Errorf("pca: quantizer sample vectors of lengths %d and %d", d, len(v))
		}
		for j, x := range v {
			q.lo[j] = min(q.lo[j], x)
			hi[j] = max(hi[j], x)
		}
	}
	for j := range q.step {
		q.step[j] = (hi[j] - q.lo[j]) / 255
		if q.step[j] <= 0 {
			q.step[j] = 1e-12
		}
	}
	return q, nil
}

// Dim is the vector length.
func (q *Quantizer) Dim() int { return len(q.lo) }

// Encode writes the int8 code of v into dst; values outside the fitted range clamp.
func (q *Quantizer) Encode(v []float32, dst []int8) {
	for j, x := range v[:len(q.lo)] {
		c := math.Round(float64((x-q.lo[j])/q.step[j])) - 128
		dst[j] = int8(max(-128, min(127, c)))
	}
}

// QueryWeights writes w[j] = query[j]·step[j]: then Σ w[j]·code[j] orders documents
// exactly as the inner product of the query with the decoded vectors (the rest is a
// per-query constant).
func (q *Quantizer) QueryWeights(query, w []float32) {
	for j := range q.step {
		w[j] = query[j] * q.step[j]
	}
}

const quantMagic = "SQ81"

// MarshalBinary serializes the quantizer.
func (q *Quantizer) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(quantMagic)
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(q.lo)))
	_ = binary.Write(&b, binary.LittleEndian, q.lo)
	_ = binary.Write(&b, binary.LittleEndian, q.step)
	return b.Bytes(), nil
}

// UnmarshalQuantizer parses MarshalBinary's output.
func UnmarshalQuantizer(data []byte) (*Quantizer, error) {
	if len(data) < 8 || string(data[:4]) != quantMagic {
		return nil, fmt.Errorf("%w: bad quantizer header", ErrFormat)
	}
	d := int(binary.LittleEndian.Uint32(data[4:]))
	if d <= 0 || d > 1<<16 || len(data) != 8+8*d {
		return nil, fmt.Errorf("%w: quantizer of dim %d in %d bytes", ErrFormat, d, len(data))
	}
	q := &Quantizer{lo: make([]float32, d), step: make([]float32, d)}
	r := bytes.NewReader(data[8:])
	_ = binary.Read(r, binary.LittleEndian, q.lo)
	_ = binary.Read(r, binary.LittleEndian, q.step)
	return q, nil
}

// DotF32 is Σ a[j]·b[j].
func DotF32(a, b []float32) float32 {
	var s0, s1, s2, s3 float32
	b = b[:len(a)]
	j := 0
	for ; j+4 <= len(a); j += 4 {
		s0 += a[j] * b[j]
		s1 += a[j+1] * b[j+1]
		s2 += a[j+2] * b[j+2]
		s3 += a[j+3] * b[j+3]
	}
	for ; j < len(a); j++ {
		s0 += a[j] * b[j]
	}
	return (s0 + s1) + (s2 + s3)
}

// DotI8 is Σ w[j]·code[j].
func DotI8(w []float32, code []int8) float32 {
	var s0, s1, s2, s3 float32
	code = code[:len(w)]
	j := 0
	for ; j+4 <= len(w); j += 4 {
		s0 += w[j] * float32(code[j])
		s1 += w[j+1] * float32(code[j+1])
		s2 += w[j+2] * float32(code[j+2])
		s3 += w[j+3] * float32(code[j+3])
	}
	for ; j < len(w); j++ {
		s0 += w[j] * float32(code[j])
	}
	return (s0 + s1) + (s2 + s3)
}
