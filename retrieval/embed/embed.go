package embed

import (
	"context"
	"errors"
	"math"
)

var (
	// ErrDimension marks a vector whose length is not the expected dimension.
	ErrDimension = errors.New("embed: wrong vector dimension")
	// ErrFormat marks a malformed word-vector file or fitted state.
	ErrFormat = errors.New("embed: malformed input")
	// ErrRemote marks a failure of a remote embedding server.
	ErrRemote = errors.New("embed: embedding server error")
)

// Embedder maps texts to unit-length vectors of a fixed dimension. Implementations are
// safe for concurrent use.
type Embedder interface {
	// Name identifies the model; a collection records it and refuses queries embedded by
	// another model.
	Name() string
	// Dim is the vector dimension.
	Dim() int
	// Embed returns one vector per text, in order.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// QueryEmbedder is implemented by embedders that encode a search query differently
// from a passage: asymmetric models such as E5 ("query: " / "passage: " prefixes) or
// BGE (an instruction before the query only). Embed is then the passage encoding.
type QueryEmbedder interface {
	Embedder
	// EmbedQueries returns one vector per query, in order.
	EmbedQueries(ctx context.Context, queries []string) ([][]float32, error)
}

// EmbedQueries embeds search queries: with e's query encoding where it has one
// (QueryEmbedder), else with Embed, as passages are.
func EmbedQueries(ctx context.Context, e Embedder, queries []string) ([][]float32, error) {
	if qe, ok := e.(QueryEmbedder); ok {
		return qe.EmbedQueries(ctx, queries)
	}
	return e.Embed(ctx, queries)
}

// Fitter is implemented by embedders whose vectors depend on corpus statistics.
type Fitter interface {
	// Fit estimates the corpus-dependent state from texts and returns it serialized.
	Fit(ctx context.Context, texts []string) ([]byte, error)
	// WithState returns an Embedder that uses a state returned by Fit.
	WithState(state []byte) (Embedder, error)
}

// Normalize scales v to unit length in place; a zero vector stays zero.
func Normalize(v []float32) {
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

// Dot is the inner product of two equal-length vectors.
func Dot(a, b []float32) float32 {
	var s float32
	b = b[:len(a)]
	for i, x := range a {
		s += x * b[i]
	}
	return s
}
