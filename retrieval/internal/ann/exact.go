package ann

import (
	"context"
	"fmt"
	"sync"
)

// ExactSearch returns, for every row of queries, the exact k best rows of vecs by inner
// product (best first, ties by ascending id). It scores each database row against all
// queries at once (the queries packed like coarse centroids), so a batch of queries costs
// one pass over vecs; rows are split across threads. Used for ground truth.
func ExactSearch(ctx context.Context, vecs []float32, dim int, queries []float32, k, threads int) ([][]Result, error) {
	if dim <= 0 || len(vecs)%dim != 0 || len(queries)%dim != 0 {
		return nil, fmt.Errorf("%w: %d and %d floats are not rows of %d", ErrDimension, len(vecs), len(queries), dim)
	}
	if k <= 0 || k > maxK {
		return nil, fmt.Errorf("%w: k = %d", ErrInvalidK, k)
	}
	n, nq := len(vecs)/dim, len(queries)/dim
	threads = max(1, threads)
	dp := dim + dim%2
	blk := packT8(queries, nq, dim, dp)
	nqp := (nq + 7) / 8 * 8
	zero := make([]float32, nqp)
	tops := make([][]topK, threads)
	var wg sync.WaitGroup
	per := (n + threads - 1) / threads
	for t := 0; t < threads; t++ {
		tops[t] = make([]topK, nq)
		for i := range tops[t] {
			tops[t][i].reset(k)
		}
		lo, hi := t*per, min(n, (t+1)*per)
		wg.Add(1)
		go func(top []topK) {
			defer wg.Done()
			row := make([]float32, dp)
			sc := make([]float32, nqp)
			for i := lo; i < hi; i++ {
				if (i-lo)%4096 == 0 && ctx.Err() != nil {
					return
				}
				copy(row, vecs[i*dim:(i+1)*dim])
				dotsT(sc, row, blk, zero, dp)
				for q := 0; q < nq; q++ {
					if s := sc[q]; s >= top[q].min() {
						top[q].push(s, int32(i))
					}
				}
			}
		}(tops[t])
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]Result, nq)
	for q := 0; q < nq; q++ {
		all := &tops[0][q]
		for t := 1; t < threads; t++ {
			ids, scores := tops[t][q].sorted()
			for j, id := range ids {
				all.push(scores[j], id)
			}
		}
		ids, scores := all.sorted()
		out[q] = appendTopK(nil, ids, scores, k)
	}
	return out, nil
}
