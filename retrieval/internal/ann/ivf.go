package ann

import (
	"context"
	"fmt"
)

// ivfIndex is the inverted file with 4-bit PQ codes (work in progress).
type ivfIndex struct {
	nlist, m int
}

func buildIVF(ctx context.Context, vecs []float32, dim int, o *Options) (*ivfIndex, error) {
	return nil, fmt.Errorf("%w: ivfpq is not implemented yet", ErrInvalidOptions)
}

func (iv *ivfIndex) memBytes() int64 { return 0 }

func (iv *ivfIndex) search(q []float32, nprobe int, s *scratch, refine bool) {}

func (iv *ivfIndex) encode(e *encoder) {}

func decodeIVF(d *decoder, dim, n int) (*ivfIndex, error) {
	return nil, fmt.Errorf("%w: ivfpq is not implemented yet", ErrCorrupt)
}
