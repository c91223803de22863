package encoder

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model"
	"github.com/ragkv/ragkv/model/internal/vmath"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// Pooling is how a sequence's final hidden states become one vector. The values are
// llama.cpp's llama_pooling_type (GGUF key ARCH.pooling_type).
type Pooling int

const (
	PoolDefault Pooling = 0 // the model's own (GGUF pooling_type, sentence-transformers config), else mean
	PoolMean    Pooling = 1
	PoolCLS     Pooling = 2
	PoolLast    Pooling = 3
)

func (p Pooling) String() string {
	switch p {
	case PoolMean:
		return "mean"
	case PoolCLS:
		return "cls"
	case PoolLast:
		return "last"
	}
	return "default"
}

// MarshalText writes the pooling's name.
func (p Pooling) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// ParsePooling parses "mean", "cls", "last" or "" (PoolDefault).
func ParsePooling(s string) (Pooling, error) {
	switch s {
	case "", "default":
		return PoolDefault, nil
	case "mean":
		return PoolMean, nil
	case "cls":
		return PoolCLS, nil
	case "last":
		return PoolLast, nil
	}
	return 0, fmt.Errorf("%w: pooling %q (want mean, cls or last)", model.ErrInvalid, s)
}

// Act is the feed-forward activation.
type Act int

const (
	ActGELU     Act = iota // 0.5·x·(1 + erf(x/√2)), HF "gelu"
	ActGELUTanh            // the tanh approximation (HF gelu_new, gelu_pytorch_tanh; ggml_gelu)
)

// MarshalText writes "gelu" or "gelu_tanh".
func (a Act) MarshalText() ([]byte, error) {
	if a == ActGELUTanh {
		return []byte("gelu_tanh"), nil
	}
	return []byte("gelu"), nil
}

// Config is a BERT encoder's shape.
type Config struct {
	Dim       int     `json:"dim"`
	Hidden    int     `json:"hidden"`
	Layers    int     `json:"layers"`
	Heads     int     `json:"heads"`
	Vocab     int     `json:"vocab"`
	MaxPos    int     `json:"positions"`   // position embeddings (the longest sequence)
	TypeVocab int     `json:"token_types"` // token-type (segment) embeddings
	NormEps   float32 `json:"norm_eps"`
	Pooling   Pooling `json:"pooling"` // the model's pooling (never PoolDefault after loading)
	Act       Act     `json:"act"`
}

// HeadDim is Dim/Heads.
func (c *Config) HeadDim() int { return c.Dim / c.Heads }

// Validate checks the shape.
func (c *Config) Validate() error {
	switch {
	case c.Dim <= 0 || c.Hidden <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.Vocab <= 0 || c.MaxPos <= 0 || c.TypeVocab <= 0:
		return fmt.Errorf("%w: encoder dim %d, hidden %d, layers %d, heads %d, vocab %d, positions %d, token types %d",
			model.ErrFormat, c.Dim, c.Hidden, c.Layers, c.Heads, c.Vocab, c.MaxPos, c.TypeVocab)
	case c.Dim%c.Heads != 0:
		return fmt.Errorf("%w: encoder dim %d not divisible by %d heads", model.ErrFormat, c.Dim, c.Heads)
	case c.Dim > 1<<16 || c.Hidden > 1<<18 || c.Layers > 1024 || c.MaxPos > 1<<20 || c.Vocab > 1<<24 || c.TypeVocab > 1<<16:
		return fmt.Errorf("%w: encoder dimensions out of range", model.ErrFormat)
	case !(c.NormEps > 0) || c.NormEps > 1:
		return fmt.Errorf("%w: layer norm epsilon %g", model.ErrFormat, c.NormEps)
	}
	return nil
}

type bertLayer struct {
	wq, wk, wv, wo       kernels.Mat
	bq, bk, bv, bo       []float32
	attnNormW, attnNormB []float32
	up, down             kernels.Mat
	upB, downB           []float32
	outNormW, outNormB   []float32
}

type bertWeights struct {
	tok, pos, typ      kernels.Mat
	embNormW, embNormB []float32
	layers             []bertLayer
}

// BERT is a loaded BERT-family encoder. Safe for concurrent use (each call has its own
// buffers; the kernels pool serializes products).
type BERT struct {
	Config Config
	Tok    tokenizer.Tokenizer
	// Path is the file or directory loaded; Format "gguf" or "safetensors"; Name the
	// model's name (GGUF general.name, or the file name).
	Path, Format, Name string
	// MaxSeq is the checkpoint's own truncation (sentence-transformers'
	// sentence_bert_config.json max_seq_length), 0 for none: Tokenize's default.
	MaxSeq int

	w       bertWeights
	pool    *kernels.Pool
	ownPool bool
	closers []func() error
}

// Options configures Open.
type Options struct {
	// Threads of a pool the encoder creates (≤ 0: GOMAXPROCS); ignored with Pool.
	Threads int
	Pool    *kernels.Pool
}

// Close releases the weights and the pool the encoder created.
func (b *BERT) Close() error {
	var errs []error
	for _, c := range b.closers {
		errs = append(errs, c())
	}
	b.closers = nil
	if b.ownPool && b.pool != nil {
		b.pool.Close()
		b.pool = nil
	}
	return errors.Join(errs...)
}

// Tokenize returns a text's ids with [CLS] first and [SEP] last, truncated to at most
// maxTokens (≤ 0: MaxSeq if set; at most the positions) keeping the [SEP].
func (b *BERT) Tokenize(text string, maxTokens int) []int {
	if maxTokens <= 0 {
		maxTokens = b.MaxSeq
	}
	if maxTokens <= 0 || maxTokens > b.Config.MaxPos {
		maxTokens = b.Config.MaxPos
	}
	ids := b.Tok.Encode(text, true, true)
	if len(ids) > maxTokens {
		sep := ids[len(ids)-1]
		ids = append(ids[:maxTokens-1], sep)
	}
	return ids
}

// Hidden runs the encoder over sequences (each at most MaxPos tokens, ids < Vocab) and
// returns their final hidden states, concatenated: sequence s's token i is row
// off[s]+i of the returned (Σ len)×Dim matrix.
func (b *BERT) Hidden(ctx context.Context, seqs [][]int) (hidden []float32, off []int, err error) {
	c := &b.Config
	off = make([]int, len(seqs)+1)
	for s, q := range seqs {
		if len(q) == 0 || len(q) > c.MaxPos {
			return nil, nil, fmt.Errorf("%w: sequence %d has %d tokens (1 to %d)", model.ErrInvalid, s, len(q), c.MaxPos)
		}
		for _, t := range q {
			if t < 0 || t >= c.Vocab {
				return nil, nil, fmt.Errorf("%w: token id %d outside vocabulary of %d", model.ErrInvalid, t, c.Vocab)
			}
		}
		off[s+1] = off[s] + len(q)
	}
	n := off[len(seqs)]
	r := newRun(b, n)
	x := make([]float32, n*c.Dim)
	if err := b.embed(x, seqs, off); err != nil {
		return nil, nil, err
	}
	for l := range b.w.layers {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if err := r.layer(&b.w.layers[l], x, off); err != nil {
			return nil, nil, err
		}
	}
	return x, off, nil
}

// embed writes LayerNorm(token + position + type-0 embeddings) of every token into x.
func (b *BERT) embed(x []float32, seqs [][]int, off []int) error {
	c := &b.Config
	d := c.Dim
	pe := make([]float32, d)
	te := make([]float32, d)
	if err := kernels.Dequantize(te, b.w.typ.Row(0), b.w.typ.Type); err != nil {
		return err
	}
	for s, q := range seqs {
		for i, t := range q {
			row := x[(off[s]+i)*d : (off[s]+i+1)*d]
			if err := kernels.Dequantize(row, b.w.tok.Row(t), b.w.tok.Type); err != nil {
				return err
			}
			if err := kernels.Dequantize(pe, b.w.pos.Row(i), b.w.pos.Type); err != nil {
				return err
			}
			for j := range row {
				row[j] += te[j] + pe[j]
			}
			layerNorm(row, row, b.w.embNormW, b.w.embNormB, c.NormEps)
		}
	}
	return nil
}

// run holds the buffers of one Hidden call.
type run struct {
	b          *BERT
	q, k, v, a []float32 // n×Dim
	h          []float32 // n×Hidden
	outs       [3][]float32
	ws         [3]*kernels.Mat
}

func newRun(b *BERT, n int) *run {
	c := &b.Config
	return &run{b: b, q: make([]float32, n*c.Dim), k: make([]float32, n*c.Dim), v: make([]float32, n*c.Dim),
		a: make([]float32, n*c.Dim), h: make([]float32, n*c.Hidden)}
}

// layer runs one post-LayerNorm transformer block over x (n×Dim) in place.
func (r *run) layer(w *bertLayer, x []float32, off []int) error {
	b := r.b
	c := &b.Config
	d := c.Dim
	n := off[len(off)-1]
	r.outs = [3][]float32{r.q[:n*d], r.k[:n*d], r.v[:n*d]}
	r.ws = [3]*kernels.Mat{&w.wq, &w.wk, &w.wv}
	if err := b.pool.MatMulMulti(r.outs[:], x[:n*d], n, r.ws[:]); err != nil {
		return err
	}
	b.pool.Parallel(n, func(lo, hi int) {
		addBias(r.q[lo*d:hi*d], w.bq)
		addBias(r.k[lo*d:hi*d], w.bk)
		addBias(r.v[lo*d:hi*d], w.bv)
	})
	if err := r.attention(off); err != nil {
		return err
	}
	// a = Wo·att + bo + x, then LayerNorm; the attention output is in r.q.
	if err := b.pool.MatMul(r.a[:n*d], r.q[:n*d], n, &w.wo); err != nil {
		return err
	}
	b.pool.Parallel(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row, in := r.a[i*d:(i+1)*d], x[i*d:(i+1)*d]
			for j := range row {
				row[j] += w.bo[j] + in[j]
			}
			layerNorm(in, row, w.attnNormW, w.attnNormB, c.NormEps)
		}
	})
	hd := c.Hidden
	if err := b.pool.MatMul(r.h[:n*hd], x[:n*d], n, &w.up); err != nil {
		return err
	}
	act := c.Act
	b.pool.Parallel(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := r.h[i*hd : (i+1)*hd]
			addBias(row, w.upB)
			if act == ActGELUTanh {
				geluTanh(row)
			} else {
				geluErf(row)
			}
		}
	})
	if err := b.pool.MatMul(r.a[:n*d], r.h[:n*hd], n, &w.down); err != nil {
		return err
	}
	b.pool.Parallel(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row, in := r.a[i*d:(i+1)*d], x[i*d:(i+1)*d]
			for j := range row {
				row[j] += w.downB[j] + in[j]
			}
			layerNorm(in, row, w.outNormW, w.outNormB, c.NormEps)
		}
	})
	return nil
}

// attention computes softmax(q·kᵀ/√hd)·v per (sequence, head), bidirectionally within each
// sequence, writing the result over r.q (each item reads and writes only its own head's
// columns of its own rows, and q's columns are read before they are overwritten).
func (r *run) attention(off []int) error {
	c := &r.b.Config
	d, hd, heads := c.Dim, c.HeadDim(), c.Heads
	scale := float32(1 / math.Sqrt(float64(hd)))
	items := (len(off) - 1) * heads
	errs := make([]error, items)
	r.b.pool.Parallel(items, func(lo, hi int) {
		var g kernels.SerialGemm
		var sc, out []float32
		for it := lo; it < hi; it++ {
			s, h := it/heads, it%heads
			base, m := off[s], off[s+1]-off[s]
			if cap(sc) < m*m {
				sc = make([]float32, m*m)
			}
			if cap(out) < m*hd {
				out = make([]float32, m*hd)
			}
			sc, out = sc[:m*m], out[:m*hd]
			q := r.q[base*d+h*hd:]
			k := r.k[base*d+h*hd:]
			v := r.v[base*d+h*hd:]
			if err := g.MulABt(sc, m, q, d, k, d, m, m, hd); err != nil {
				errs[it] = err
				continue
			}
			for i := 0; i < m; i++ {
				row := sc[i*m : (i+1)*m]
				kernels.Scale(row, scale)
				mx := vmath.Max(row)
				kernels.Scale(row, 1/vmath.ExpSum(row, mx))
			}
			if err := g.MulAB(out, hd, sc, m, v, d, m, hd, m); err != nil {
				errs[it] = err
				continue
			}
			for i := 0; i < m; i++ {
				copy(r.q[(base+i)*d+h*hd:(base+i)*d+(h+1)*hd], out[i*hd:(i+1)*hd])
			}
		}
	})
	return errors.Join(errs...)
}

// Pool reduces hidden states (rows off[s]..off[s+1] per sequence) to one L2-normalized
// vector per sequence with pooling p (PoolDefault: the model's), written to dst
// (len ≥ sequences×dim).
func Pool(dst, hidden []float32, off []int, dim int, p Pooling) error {
	ns := len(off) - 1
	if len(dst) < ns*dim || len(hidden) < off[ns]*dim {
		return fmt.Errorf("%w: Pool buffers too small", model.ErrInvalid)
	}
	for s := 0; s < ns; s++ {
		out := dst[s*dim : (s+1)*dim]
		lo, hi := off[s], off[s+1]
		switch p {
		case PoolCLS:
			copy(out, hidden[lo*dim:(lo+1)*dim])
		case PoolLast:
			copy(out, hidden[(hi-1)*dim:hi*dim])
		case PoolMean, PoolDefault:
			acc := make([]float64, dim)
			for i := lo; i < hi; i++ {
				for j, v := range hidden[i*dim : (i+1)*dim] {
					acc[j] += float64(v)
				}
			}
			for j := range out {
				out[j] = float32(acc[j] / float64(hi-lo))
			}
		default:
			return fmt.Errorf("%w: pooling %d", model.ErrInvalid, p)
		}
		normalize(out)
	}
	return nil
}

// normalize scales v to unit L2 norm (a zero vector stays zero).
func normalize(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}

func addBias(x, b []float32) {
	d := len(b)
	for i := 0; i+d <= len(x); i += d {
		row := x[i : i+d]
		for j, v := range b {
			row[j] += v
		}
	}
}

// layerNorm writes w·(x − mean)/√(var + eps) + b into out (which may be x); mean and
// variance are accumulated in float64.
func layerNorm(out, x, w, b []float32, eps float32) {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	mean := s / float64(len(x))
	var ss float64
	for _, v := range x {
		dv := float64(v) - mean
		ss += dv * dv
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	out, w, b = out[:len(x)], w[:len(x)], b[:len(x)]
	for i, v := range x {
		out[i] = float32((float64(v)-mean)*inv)*w[i] + b[i]
	}
}

// geluErf applies 0.5·x·(1 + erf(x/√2)) in place, erf by Abramowitz & Stegun 7.1.26
// (|error| ≤ 1.5e-7) with the exponentials taken 256 at a time by vmath.ExpSum (AVX2):
// math.Erf made the feed-forward activation a third of the encoder's time, a scalar exp
// still 40 % with q8_0 weights.
func geluErf(x []float32) {
	const (
		p                          = 0.3275911
		a1, a2, a3, a4, a5         = 0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429
		invSqrt2           float32 = 0.70710678118654752
	)
	var e [256]float32
	for lo := 0; lo < len(x); lo += len(e) {
		blk := x[lo:min(lo+len(e), len(x))]
		eb := e[:len(blk)]
		for i, v := range blk {
			z := v * invSqrt2
			eb[i] = -z * z
		}
		vmath.ExpSum(eb, 0) // exp(−z²); every argument ≤ 0
		for i, v := range blk {
			az := v * invSqrt2
			if az < 0 {
				az = -az
			}
			t := 1 / (1 + p*az)
			erf := 1 - (((((a5*t+a4)*t)+a3)*t+a2)*t+a1)*t*eb[i]
			if v < 0 {
				erf = -erf
			}
			blk[i] = 0.5 * v * (1 + erf)
		}
	}
}

// geluTanh applies the tanh approximation 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func geluTanh(x []float32) {
	const k = 0.7978845608028654
	for i, v := range x {
		f := float64(v)
		x[i] = float32(0.5 * f * (1 + math.Tanh(k*(f+0.044715*f*f*f))))
	}
}
