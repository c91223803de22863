package annbench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"gonum.org/v1/gonum/mat"
)

// Synthetic describes clustered vectors whose variance decays across directions as real
// embeddings' does: Clusters Gaussian centres (unit variance per dimension), a vector is
// a centre plus Gaussian noise of standard deviation Noise, every dimension i (from 0)
// is scaled by (i+1)^(-Decay/2) (variance ∝ (i+1)^-Decay), and the result is normalized
// to unit length. Rows are generated in chunks with their own seeds, so the data depend
// only on the seed, never on the number of threads.
type Synthetic struct {
	Dim      int
	Clusters int
	Noise    float64
	Decay    float64
	Seed     int64
}

const genChunk = 8192

func (s Synthetic) check(n int) error {
	if s.Dim <= 0 || s.Clusters <= 0 || n < 0 || s.Noise < 0 || math.IsNaN(s.Noise) || math.IsNaN(s.Decay) {
		return fmt.Errorf("annbench: bad synthetic spec %+v for %d rows", s, n)
	}
	return nil
}

func (s Synthetic) centres() []float64 {
	rng := rand.New(rand.NewPCG(uint64(s.Seed), 1))
	c := make([]float64, s.Clusters*s.Dim)
	for i := range c {
		c[i] = rng.NormFloat64()
	}
	return c
}

// Generate returns n rows; stream selects an independent sequence (database 0, queries 1).
func (s Synthetic) Generate(ctx context.Context, n int, stream uint64, threads int, progress func(int)) ([]float32, error) {
	if err := s.check(n); err != nil {
		return nil, err
	}
	return s.generate(ctx, n, stream, threads, progress, make([]float32, n*s.Dim))
}

func (s Synthetic) generate(ctx context.Context, n int, stream uint64, threads int, progress func(int), out []float32) ([]float32, error) {
	if err := s.check(n); err != nil {
		return nil, err
	}
	if len(out) != n*s.Dim {
		return nil, fmt.Errorf("annbench: output holds %d floats, want %d", len(out), n*s.Dim)
	}
	centres := s.centres()
	scale := make([]float64, s.Dim)
	for i := range scale {
		scale[i] = math.Pow(float64(i+1), -s.Decay/2)
	}
	nchunks := (n + genChunk - 1) / genChunk
	var wg sync.WaitGroup
	next := make(chan int)
	for t := 0; t < max(1, threads); t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := make([]float64, s.Dim)
			for c := range next {
				rng := rand.New(rand.NewPCG(uint64(s.Seed)^0x5bd1e995, stream<<40|uint64(c)))
				for i := c * genChunk; i < min(n, (c+1)*genChunk); i++ {
					cl := rng.IntN(s.Clusters)
					var nn float64
					for d := range v {
						x := scale[d] * (centres[cl*s.Dim+d] + s.Noise*rng.NormFloat64())
						v[d] = x
						nn += x * x
					}
					inv := 1 / math.Sqrt(nn)
					row := out[i*s.Dim : (i+1)*s.Dim]
					for d := range v {
						row[d] = float32(v[d] * inv)
					}
				}
				if progress != nil {
					progress(min(n, (c+1)*genChunk) - c*genChunk)
				}
			}
		}()
	}
	var err error
	for c := 0; c < nchunks; c++ {
		if err = ctx.Err(); err != nil {
			break
		}
		next <- c
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PCA is a linear projection onto the leading eigenvectors of the (uncentred) second
// moment matrix E[x xᵀ]: for inner-product search this keeps the most of every
// vector's energy, so that projected inner products approximate the full ones.
type PCA struct {
	In, Out    int
	Components []float32 // Out×In, row-major
	Retained   float64   // fraction of the sample's energy the components keep
}

// FitPCA fits a PCA with out components on the rows of sample (dimension in).
func FitPCA(sample []float32, in, out int) (*PCA, error) {
	if out <= 0 || out > in {
		return nil, fmt.Errorf("annbench: pca to %d of %d dimensions", out, in)
	}
	n := len(sample) / in
	if n == 0 {
		return nil, fmt.Errorf("annbench: pca on an empty sample")
	}
	cov := make([]float64, in*in)
	row := make([]float64, in)
	for i := 0; i < n; i++ {
		for d := range row {
			row[d] = float64(sample[i*in+d])
		}
		for a := 0; a < in; a++ {
			xa := row[a]
			c := cov[a*in:]
			for b := a; b < in; b++ {
				c[b] += xa * row[b]
			}
		}
	}
	for a := 0; a < in; a++ {
		for b := 0; b < a; b++ {
			cov[a*in+b] = cov[b*in+a]
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(mat.NewSymDense(in, cov), true) {
		return nil, fmt.Errorf("annbench: eigendecomposition failed")
	}
	vals := eig.Values(nil) // ascending
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	p := &PCA{In: in, Out: out, Components: make([]float32, out*in)}
	var total, kept float64
	for _, v := range vals {
		total += v
	}
	for j := 0; j < out; j++ {
		col := in - 1 - j
		kept += vals[col]
		for d := 0; d < in; d++ {
			p.Components[j*in+d] = float32(vecs.At(d, col))
		}
	}
	p.Retained = kept / total
	return p, nil
}

// Project writes the projection of x (dimension In) into dst (dimension Out).
func (p *PCA) Project(dst, x []float32) {
	x = x[:p.In]
	for j := 0; j < p.Out; j++ {
		dst[j] = dot(x, p.Components[j*p.In:(j+1)*p.In])
	}
}

// ProjectAll projects n rows in parallel.
func (p *PCA) ProjectAll(x []float32, threads int) []float32 {
	n := len(x) / p.In
	out := make([]float32, n*p.Out)
	var wg sync.WaitGroup
	per := (n + threads - 1) / max(threads, 1)
	for t := 0; t < max(threads, 1); t++ {
		lo, hi := t*per, min(n, (t+1)*per)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				p.Project(out[i*p.Out:(i+1)*p.Out], x[i*p.In:(i+1)*p.In])
			}
		}()
	}
	wg.Wait()
	return out
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
