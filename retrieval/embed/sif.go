package embed

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/ragkv/ragkv/internal/kernels"
)

// SIFOptions configure a SIF embedder.
type SIFOptions struct {
	// A is the SIF smoothing constant a in a/(a + p(w)). Default 1e-3 (the paper's
	// recommended range is 1e-4 … 1e-3).
	A float64
	// CorpusFrequencies estimates p(w) from the fitted corpus (add-one smoothed over
	// the vocabulary) instead of from the word's GloVe rank. Default false: rank-based
	// Zipf estimates, which need no per-corpus table.
	CorpusFrequencies bool
	// RemoveComponents is how many leading principal components Fit removes (default 1,
	// as in the paper; −1 disables removal).
	RemoveComponents int
	// Name overrides the embedder name (default "glove-sif-<dim>d").
	Name string
}

// EnsureDefaults fills zero fields.
func (o *SIFOptions) EnsureDefaults() {
	if o.A == 0 {
		o.A = 1e-3
	}
	if o.RemoveComponents == 0 {
		o.RemoveComponents = 1
	}
}

// Validate reports invalid options.
func (o *SIFOptions) Validate() error {
	if o.A <= 0 || math.IsNaN(o.A) {
		return fmt.Errorf("embed: SIF a must be positive, got %v", o.A)
	}
	if o.RemoveComponents < -1 || o.RemoveComponents > 16 {
		return fmt.Errorf("embed: SIF components to remove must be in [-1, 16], got %d", o.RemoveComponents)
	}
	return nil
}

// SIF embeds a text as the SIF-weighted average of its words' GloVe vectors minus its
// projection on the fitted common components, normalized to unit length. An unfitted
// SIF uses rank-based word weights and removes nothing.
type SIF struct {
	wv     *WordVectors
	opts   SIFOptions
	weight []float32 // per word rank: a/(a+p(w))
	comps  [][]float32
	counts []uint32 // corpus counts when fitted with CorpusFrequencies
}

// NewSIF returns an unfitted SIF embedder over wv.
func NewSIF(wv *WordVectors, opts SIFOptions) (*SIF, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &SIF{wv: wv, opts: opts}
	s.weight = rankWeights(wv.Len(), opts.A)
	return s, nil
}

// rankWeights estimates p(w) for the word of rank r by Zipf's law, p = 1/((r+1)·H_n).
func rankWeights(n int, a float64) []float32 {
	h := 0.0
	for r := 1; r <= n; r++ {
		h += 1 / float64(r)
	}
	w := make([]float32, n)
	for r := range w {
		p := 1 / (float64(r+1) * h)
		w[r] = float32(a / (a + p))
	}
	return w
}

// Name implements Embedder.
func (s *SIF) Name() string {
	if s.opts.Name != "" {
		return s.opts.Name
	}
	return fmt.Sprintf("glove-sif-%dd", s.wv.Dim())
}

// Dim implements Embedder.
func (s *SIF) Dim() int { return s.wv.Dim() }

// Embed implements Embedder.
func (s *SIF) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	flat := make([]float32, len(texts)*s.Dim())
	var ids []int32
	for i, t := range texts {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		v := flat[i*s.Dim() : (i+1)*s.Dim() : (i+1)*s.Dim()]
		ids = s.raw(t, v, ids[:0])
		s.removeComponents(v)
		Normalize(v)
		out[i] = v
	}
	return out, nil
}

// raw writes the weighted average of the known words' vectors into v.
func (s *SIF) raw(text string, v []float32, ids []int32) []int32 {
	clear(v)
	ids = s.wv.Words(text, ids)
	if len(ids) == 0 {
		return ids
	}
	for _, id := range ids {
		kernels.Axpy(v, s.weight[id], s.wv.Vector(int(id))) // SIMD: the weighted sum is most of SIF's time
	}
	inv := 1 / float32(len(ids))
	for j := range v {
		v[j] *= inv
	}
	return ids
}

func (s *SIF) removeComponents(v []float32) {
	for _, u := range s.comps {
		p := Dot(u, v)
		for j := range v {
			v[j] -= p * u[j]
		}
	}
}

// Fit implements Fitter: word probabilities (when CorpusFrequencies) and the leading
// principal components of the texts' weighted averages (uncentered, as the paper's
// TruncatedSVD).
func (s *SIF) Fit(ctx context.Context, texts []string) ([]byte, error) {
	if len(texts) == 0 {
		return nil, errors.New("embed: SIF fit needs at least one text")
	}
	f := &SIF{wv: s.wv, opts: s.opts, weight: s.weight}
	if s.opts.CorpusFrequencies {
		f.counts = make([]uint32, s.wv.Len())
		var ids []int32
		for _, t := range texts {
			ids = s.wv.Words(t, ids[:0])
			for _, id := range ids {
				f.counts[id]++
			}
		}
		f.weight = countWeights(f.counts, s.opts.A)
	}
	if s.opts.RemoveComponents > 0 {
		d := s.Dim()
		cov := mat.NewSymDense(d, nil)
		v := make([]float32, d)
		vf := make([]float64, d)
		var ids []int32
		for i, t := range texts {
			if i%256 == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			ids = f.raw(t, v, ids[:0])
			for j, x := range v {
				vf[j] = float64(x)
			}
			cov.SymRankOne(cov, 1, mat.NewVecDense(d, vf))
		}
		var eig mat.EigenSym
		if !eig.Factorize(cov, true) {
			return nil, errors.New("embed: SIF fit: eigendecomposition failed")
		}
		var vecs mat.Dense
		eig.VectorsTo(&vecs)
		vals := eig.Values(nil) // ascending
		for c := 0; c < s.opts.RemoveComponents && c < d; c++ {
			col := len(vals) - 1 - c
			u := make([]float32, d)
			for j := range u {
				u[j] = float32(vecs.At(j, col))
			}
			Normalize(u)
			f.comps = append(f.comps, u)
		}
	}
	return f.marshal(), nil
}

func countWeights(counts []uint32, a float64) []float32 {
	total := float64(len(counts))
	for _, c := range counts {
		total += float64(c)
	}
	w := make([]float32, len(counts))
	for i, c := range counts {
		p := (float64(c) + 1) / total
		w[i] = float32(a / (a + p))
	}
	return w
}

const sifStateMagic = "SIF1"

// marshal: magic, dim u32, vocab u32, ncomp u32, hasCounts u8, comps, counts.
func (s *SIF) marshal() []byte {
	var b bytes.Buffer
	b.WriteString(sifStateMagic)
	_ = binary.Write(&b, binary.LittleEndian, uint32(s.Dim()))
	_ = binary.Write(&b, binary.LittleEndian, uint32(s.wv.Len()))
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(s.comps)))
	has := uint8(0)
	if s.counts != nil {
		has = 1
	}
	b.WriteByte(has)
	for _, u := range s.comps {
		_ = binary.Write(&b, binary.LittleEndian, u)
	}
	if s.counts != nil {
		_ = binary.Write(&b, binary.LittleEndian, s.counts)
	}
	return b.Bytes()
}

// WithState implements Fitter.
func (s *SIF) WithState(state []byte) (Embedder, error) {
	r := bytes.NewReader(state)
	magic := make([]byte, 4)
	if _, err := r.Read(magic); err != nil || string(magic) != sifStateMagic {
		return nil, fmt.Errorf("%w: SIF state: bad magic", ErrFormat)
	}
	var hdr struct{ Dim, Vocab, NComp uint32 }
	if err := binary.Read(r, binary.LittleEndian, &hdr); err != nil {
		return nil, fmt.Errorf("%w: SIF state: %v", ErrFormat, err)
	}
	if int(hdr.Dim) != s.Dim() || int(hdr.Vocab) != s.wv.Len() {
		return nil, fmt.Errorf("%w: SIF state was fitted on %d words × %d dims, these word vectors are %d × %d",
			ErrFormat, hdr.Vocab, hdr.Dim, s.wv.Len(), s.Dim())
	}
	if hdr.NComp > 16 {
		return nil, fmt.Errorf("%w: SIF state: %d components", ErrFormat, hdr.NComp)
	}
	has, err := r.ReadByte()
	if err != nil || has > 1 {
		return nil, fmt.Errorf("%w: SIF state: bad flags", ErrFormat)
	}
	f := &SIF{wv: s.wv, opts: s.opts, weight: s.weight}
	for c := 0; c < int(hdr.NComp); c++ {
		u := make([]float32, hdr.Dim)
		if err := binary.Read(r, binary.LittleEndian, u); err != nil {
			return nil, fmt.Errorf("%w: SIF state: %v", ErrFormat, err)
		}
		f.comps = append(f.comps, u)
	}
	if has == 1 {
		f.counts = make([]uint32, hdr.Vocab)
		if err := binary.Read(r, binary.LittleEndian, f.counts); err != nil {
			return nil, fmt.Errorf("%w: SIF state: %v", ErrFormat, err)
		}
		f.weight = countWeights(f.counts, s.opts.A)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: SIF state: %d trailing bytes", ErrFormat, r.Len())
	}
	return f, nil
}

var (
	_ Embedder = (*SIF)(nil)
	_ Fitter   = (*SIF)(nil)
)
