package pca

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// ErrFormat marks a malformed serialized projection or quantizer.
var ErrFormat = errors.New("pca: malformed state")

// Projection maps dim-dimensional vectors onto their Out() leading principal
// components (after subtracting the sample mean) and re-normalizes them.
type Projection struct {
	in, out int
	mean    []float32 // in
	comps   []float32 // out × in, row c = c-th component
	// Variance[c] is the sample variance along component c (for reports).
	Variance []float64
}

// Fit computes the projection onto the leading dims principal components of sample
// (every vector of the same length > dims).
func Fit(ctx context.Context, sample [][]float32, dims int) (*Projection, error) {
	if len(sample) < 2 {
		return nil, fmt.Errorf("pca: need at least 2 sample vectors, got %d", len(sample))
	}
	in := len(sample[0])
	if dims <= 0 || dims > in {
		return nil, fmt.Errorf("pca: dims must be in [1, %d], got %d", in, dims)
	}
	mean := make([]float64, in)
	for _, v := range sample {
		if len(v) != in {
			return nil, fmt.Errorf("pca: sample vectors of lengths %d and %d", in, len(v))
		}
		for j, x := range v {
			mean[j] += float64(x)
		}
	}
	for j := range mean {
		mean[j] /= float64(len(sample))
	}
	cov := mat.NewSymDense(in, nil)
	row := make([]float64, in)
	for i, v := range sample {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		for j, x := range v {
			row[j] = float64(x) - mean[j]
		}
		cov.SymRankOne(cov, 1/float64(len(sample)-1), mat.NewVecDense(in, row))
	}
	var eig mat.EigenSym
	if !eig.Factorize(cov, true) {
		return nil, errors.New("pca: eigendecomposition failed")
	}
	vals := eig.Values(nil) // ascending
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	p := &Projection{in: in, out: dims, mean: make([]float32, in), comps: make([]float32, dims*in)}
	for j, m := range mean {
		p.mean[j] = float32(m)
	}
	for c := 0; c < dims; c++ {
		col := in - 1 - c
		p.Variance = append(p.Variance, vals[col])
		for j := 0; j < in; j++ {
			p.comps[c*in+j] = float32(vecs.At(j, col))
		}
	}
	return p, nil
}

// In is the input dimension.
func (p *Projection) In() int { return p.in }

// Out is the projected dimension.
func (p *Projection) Out() int { return p.out }

// Project writes the normalized projection of v (len In()) into dst (len Out()); buf
// is scratch of len In(). It allocates nothing.
func (p *Projection) Project(v, dst, buf []float32) {
	buf = buf[:p.in]
	for j, x := range v[:p.in] {
		buf[j] = x - p.mean[j]
	}
	var ss float64
	for c := 0; c < p.out; c++ {
		row := p.comps[c*p.in : (c+1)*p.in]
		var s float32
		for j, x := range buf {
			s += x * row[j]
		}
		dst[c] = s
		ss += float64(s) * float64(s)
	}
	if ss > 0 {
		inv := float32(1 / math.Sqrt(ss))
		for c := range dst[:p.out] {
			dst[c] *= inv
		}
	}
}

const projMagic = "PCA1"

// MarshalBinary serializes the projection.
func (p *Projection) MarshalBinary() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(projMagic)
	_ = binary.Write(&b, binary.LittleEndian, [2]uint32{uint32(p.in), uint32(p.out)})
	_ = binary.Write(&b, binary.LittleEndian, p.mean)
	_ = binary.Write(&b, binary.LittleEndian, p.comps)
	_ = binary.Write(&b, binary.LittleEndian, p.Variance)
	return b.Bytes(), nil
}

// UnmarshalProjection parses MarshalBinary's output.
func UnmarshalProjection(data []byte) (*Projection, error) {
	if len(data) < 12 || string(data[:4]) != projMagic {
		return nil, fmt.Errorf("%w: bad projection header", ErrFormat)
	}
	in := int(binary.LittleEndian.Uint32(data[4:]))
	out := int(binary.LittleEndian.Uint32(data[8:]))
	if in <= 0 || out <= 0 || out > in || in > 1<<16 {
		return nil, fmt.Errorf("%w: projection %d → %d", ErrFormat, in, out)
	}
	want := 12 + 4*in + 4*out*in + 8*out
	if len(data) != want {
		return nil, fmt.Errorf("%w: projection holds %d bytes, want %d", ErrFormat, len(data), want)
	}
	p := &Projection{in: in, out: out, mean: make([]float32, in), comps: make([]float32, out*in), Variance: make([]float64, out)}
	r := bytes.NewReader(data[12:])
	_ = binary.Read(r, binary.LittleEndian, p.mean)
	_ = binary.Read(r, binary.LittleEndian, p.comps)
	_ = binary.Read(r, binary.LittleEndian, p.Variance)
	return p, nil
}
