package ann

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Sentinel errors.
var (
	ErrDimension      = errors.New("ann: wrong vector dimension")
	ErrInvalidOptions = errors.New("ann: invalid options")
	ErrInvalidK       = errors.New("ann: k must be positive")
	ErrTooFewVectors  = errors.New("ann: too few vectors for this index kind")
	ErrCorrupt        = errors.New("ann: corrupt index data")
	ErrVersion        = errors.New("ann: unsupported index format version")
	ErrNonFinite      = errors.New("ann: vector holds NaN or infinity")
)

// firstNonFinite is the index of the first NaN or infinite value of v, or -1.
func firstNonFinite(v []float32) int {
	for i, x := range v {
		if x-x != 0 { // NaN and ±Inf
			return i
		}
	}
	return -1
}

// Result is one search hit: the row index given to Build and its inner product with the
// query (exact when rescored, approximate otherwise). Higher is better.
type Result struct {
	ID    int
	Score float32
}

// Rescorer computes exact inner products against full vectors kept outside the index.
// It must be safe for concurrent use.
type Rescorer interface {
	// Rescore sets scores[i] to the exact inner product of query with vector ids[i]
	// (len(scores) == len(ids)). query is SearchParams.Full when set, else the search query.
	Rescore(query []float32, ids []int32, scores []float32)
}

// Vectors is a Rescorer over full vectors held row-major in memory (or in a
// memory-mapped file viewed as []float32).
type Vectors struct {
	data []float32
	dim  int
}

// NewVectors wraps data (len(data) a multiple of dim) as a Rescorer. data is not copied.
func NewVectors(data []float32, dim int) (*Vectors, error) {
	if dim <= 0 || len(data)%dim != 0 {
		return nil, fmt.Errorf("%w: %d floats are not rows of %d", ErrDimension, len(data), dim)
	}
	return &Vectors{data: data, dim: dim}, nil
}

// Len is the number of vectors.
func (v *Vectors) Len() int { return len(v.data) / v.dim }

// Rescore implements Rescorer. Ids out of range score -Inf; a query of another
// dimension scores -Inf everywhere.
func (v *Vectors) Rescore(query []float32, ids []int32, scores []float32) {
	d := v.dim
	if len(query) != d {
		for i := range scores {
			scores[i] = negInf
		}
		return
	}
	n := len(v.data) / d
	ahead := rescoreAhead // rows prefetched ahead of the dot products
	if ahead > 0 {
		prefetchRows(v.data, ids[:min(ahead, len(ids))], 4*d)
	}
	for i, id := range ids {
		if ahead > 0 && i%ahead == 0 && i+ahead < len(ids) {
			prefetchRows(v.data, ids[i+ahead:min(i+2*ahead, len(ids))], 4*d)
		}
		if id < 0 || int(id) >= n {
			scores[i] = negInf
			continue
		}
		scores[i] = dot(query, v.data[int(id)*d:int(id)*d+d])
	}
}

var rescoreAhead = 8

// SearchParams tune one search; zero fields take the index defaults.
type SearchParams struct {
	NProbe  int       // lists scanned (ivfpq); clamped to [1, NList]
	Rescore int       // candidates re-ranked (float tables, then the Rescorer); raised to k
	Full    []float32 // the query the Rescorer sees (e.g. before PCA); nil: the search query
}

// Index is a built vector index. Searches are safe for concurrent use; SetRescorer is too.
type Index struct {
	kind Kind
	dim  int
	n    int

	nprobe  int // defaults
	rescore int

	flat *flatIndex
	ivf  *ivfIndex

	rescorer atomic.Pointer[rescorerBox]
	scratch  sync.Pool // *scratch
}

type rescorerBox struct{ r Rescorer }

// Build indexes n = len(vecs)/dim vectors (row-major; ids are row indices). vecs is not
// retained (flat indexes copy it). Build honours ctx between training steps.
func Build(ctx context.Context, vecs []float32, dim int, opts Options) (*Index, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("%w: dimension %d must be positive", ErrDimension, dim)
	}
	if len(vecs)%dim != 0 {
		return nil, fmt.Errorf("%w: %d floats are not rows of %d", ErrDimension, len(vecs), dim)
	}
	n := len(vecs) / dim
	if i := firstNonFinite(vecs); i >= 0 {
		return nil, fmt.Errorf("%w: vector %d, dimension %d", ErrNonFinite, i/dim, i%dim)
	}
	opts.EnsureDefaults(n, dim)
	if err := opts.Validate(n, dim); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ix := &Index{kind: opts.Kind, dim: dim, n: n, rescore: opts.Rescore}
	switch opts.Kind {
	case KindFlat:
		ix.flat = newFlat(vecs, dim)
	case KindIVFPQ:
		iv, err := buildIVF(ctx, vecs, dim, &opts)
		if err != nil {
			return nil, err
		}
		ix.ivf = iv
		ix.nprobe = opts.NProbe
	}
	ix.SetRescorer(opts.Rescorer)
	return ix, nil
}

// SetRescorer sets (or, with nil, removes) the Rescorer used by later searches.
func (ix *Index) SetRescorer(r Rescorer) {
	if r == nil {
		ix.rescorer.Store(nil)
		return
	}
	ix.rescorer.Store(&rescorerBox{r})
}

// Len is the number of indexed vectors.
func (ix *Index) Len() int { return ix.n }

// Dim is the dimension of indexed vectors and queries.
func (ix *Index) Dim() int { return ix.dim }

// Kind is the index structure that was built.
func (ix *Index) Kind() Kind { return ix.kind }

// Params reports the index parameters (NList, M, NProbe, Rescore) as built, for logs and
// benchmark reports. Zero fields do not apply to the kind.
func (ix *Index) Params() Options {
	o := Options{Kind: ix.kind, Rescore: ix.rescore, NProbe: ix.nprobe}
	if ix.ivf != nil {
		o.NList = ix.ivf.nlist
		o.M = ix.ivf.m
	}
	return o
}

// BytesPerVector is the memory the index keeps per vector: codes, ids, list padding and
// the amortized quantizer tables (flat: the float vectors). Full vectors reached through
// a Rescorer are not counted.
func (ix *Index) BytesPerVector() float64 {
	if ix.n == 0 {
		return 0
	}
	switch {
	case ix.flat != nil:
		return float64(4 * ix.dim)
	case ix.ivf != nil:
		return float64(ix.ivf.memBytes()) / float64(ix.n)
	}
	return 0
}

// Search returns the k best vectors for query by inner product, best first, appended to
// dst[:0] (reuse dst across calls to search without allocating). It returns dst[:0] on
// bad input (wrong dimension, k ≤ 0); SearchWith reports why.
func (ix *Index) Search(query []float32, k int, dst []Result) []Result {
	res, err := ix.SearchWith(query, k, SearchParams{}, dst)
	if err != nil {
		return dst[:0]
	}
	return res
}

// SearchWith is Search with per-query parameters and error reporting.
func (ix *Index) SearchWith(query []float32, k int, p SearchParams, dst []Result) ([]Result, error) {
	dst = dst[:0]
	if len(query) != ix.dim {
		return dst, fmt.Errorf("%w: query has %d dimensions, index %d", ErrDimension, len(query), ix.dim)
	}
	if k <= 0 || k > maxK {
		return dst, fmt.Errorf("%w: k = %d (want 1..%d)", ErrInvalidK, k, maxK)
	}
	if i := firstNonFinite(query); i >= 0 {
		return dst, fmt.Errorf("%w: query dimension %d", ErrNonFinite, i)
	}
	if p.NProbe < 0 || p.Rescore < 0 || p.Rescore > maxK {
		return dst, fmt.Errorf("%w: search params nprobe=%d rescore=%d", ErrInvalidOptions, p.NProbe, p.Rescore)
	}
	if ix.n == 0 {
		return dst, nil
	}
	r := p.Rescore
	if r == 0 {
		r = ix.rescore
	}
	r = max(r, k)
	rb := ix.rescorer.Load()
	s := ix.getScratch()
	defer ix.scratch.Put(s)
	s.top.reset(r)
	switch {
	case ix.flat != nil:
		ix.flat.search(query, s)
	case ix.ivf != nil:
		np := p.NProbe
		if np == 0 {
			np = ix.nprobe
		}
		np = min(max(np, 1), ix.ivf.nlist)
		for {
			ix.ivf.search(query, np, s, rb == nil && r > k)
			// Lists are uneven: probe more when these held too few vectors.
			if len(s.top.ids) >= min(r, ix.n) || np >= ix.ivf.nlist {
				break
			}
			np = min(2*np, ix.ivf.nlist)
			s.top.reset(r)
		}
	}
	s.top.compact()
	ids, scores := s.top.ids, s.top.scores
	if rb != nil && (ix.ivf != nil || p.Full != nil) {
		full := p.Full
		if full == nil {
			full = query
		}
		rb.r.Rescore(full, ids, scores)
	}
	if len(ids) > k {
		selectTop(ids, scores, k)
		ids, scores = ids[:k], scores[:k]
	}
	sortBest(ids, scores)
	for i, id := range ids {
		dst = append(dst, Result{ID: int(id), Score: scores[i]})
	}
	return dst, nil
}

// appendTopK appends the k best (ids, scores), best first, ties by ascending id.
func appendTopK(dst []Result, ids []int32, scores []float32, k int) []Result {
	base := len(dst)
	for i, id := range ids {
		dst = append(dst, Result{ID: int(id), Score: scores[i]})
	}
	out := dst[base:]
	slices.SortFunc(out, func(a, b Result) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return a.ID - b.ID
	})
	if len(out) > k {
		dst = dst[:base+k]
	}
	return dst
}

func (ix *Index) getScratch() *scratch {
	if s, ok := ix.scratch.Get().(*scratch); ok {
		return s
	}
	return &scratch{}
}

// scratch is the per-search working memory, pooled.
type scratch struct {
	top    cands
	buf    []float32 // flat: scores of a block of rows; ivf: coarse scores
	lists  topK      // ivf: best lists
	gmax   []float32 // ivf: maxima of groups of 32 coarse scores
	gidx   []int32
	gtmp   []float32
	lut    []float32 // ivf: float lookup tables
	qlut   []uint8   // ivf: quantized lookup tables
	acc    []uint16  // ivf: per-block sums
	masks  []uint32  // ivf: per-block candidate masks
	padded []float32 // ivf: query padded to M·dsub
}
