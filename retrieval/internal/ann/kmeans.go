package ann

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
)

// parallelFor runs fn over [0, n) in chunks of at most chunk items on up to threads
// goroutines and waits for them. Results must not depend on the split.
func parallelFor(n, threads, chunk int, fn func(lo, hi int)) {
	if n == 0 {
		return
	}
	nchunks := (n + chunk - 1) / chunk
	threads = max(1, min(threads, nchunks))
	if threads == 1 {
		fn(0, n)
		return
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
	)
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				c := next
				next++
				mu.Unlock()
				if c >= nchunks {
					return
				}
				fn(c*chunk, min((c+1)*chunk, n))
			}
		}()
	}
	wg.Wait()
}

// coarseTable is a set of centroids laid out for dotsT with L2 biases (-|c|²/2), so that
// the largest dotsT output is the nearest centroid.
type coarseTable struct {
	k, dim, dp int
	blk        []float32 // packT8 layout
	bias       []float32 // -|c|²/2, -Inf on padding
}

func newCoarseTable(cents []float32, k, dim int) *coarseTable {
	dp := dim + dim%2
	kp := (k + 7) / 8 * 8
	ct := &coarseTable{k: k, dim: dim, dp: dp, blk: packT8(cents, k, dim, dp), bias: make([]float32, kp)}
	for c := 0; c < kp; c++ {
		if c >= k {
			ct.bias[c] = negInf
			continue
		}
		var nn float64
		for _, v := range cents[c*dim : (c+1)*dim] {
			nn += float64(v) * float64(v)
		}
		ct.bias[c] = float32(-nn / 2)
	}
	return ct
}

// assign sets out[i] to the nearest centroid of row lo+i of x, for rows [lo, hi).
func (ct *coarseTable) assign(x []float32, lo, hi int, out []int32) {
	q := make([]float32, ct.dp)
	sc := make([]float32, len(ct.bias))
	for i := lo; i < hi; i++ {
		copy(q, x[i*ct.dim:(i+1)*ct.dim])
		dotsT(sc, q, ct.blk, ct.bias, ct.dp)
		out[i-lo] = int32(argmax(sc))
	}
}

// assignAll assigns every row of x (n rows of dim) to its nearest centroid in parallel.
func (ct *coarseTable) assignAll(ctx context.Context, x []float32, n, threads int) ([]int32, error) {
	out := make([]int32, n)
	const chunk = 2048
	parallelFor(n, threads, chunk, func(lo, hi int) {
		if ctx.Err() == nil {
			ct.assign(x, lo, hi, out[lo:hi])
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// kmeans runs Lloyd's algorithm on n rows of x (dimension dim) for k centroids, from k
// distinct rows drawn with rng; empty clusters take half of the largest cluster (as
// FAISS does). Deterministic for a given rng state, whatever threads is.
func kmeans(ctx context.Context, x []float32, n, dim, k, iters, threads int, rng *rand.Rand) ([]float32, error) {
	cents := make([]float32, k*dim)
	perm := rng.Perm(n)
	for c := 0; c < k; c++ {
		copy(cents[c*dim:(c+1)*dim], x[perm[c]*dim:(perm[c]+1)*dim])
	}
	sums := make([]float64, k*dim)
	counts := make([]int, k)
	for it := 0; it < iters; it++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ct := newCoarseTable(cents, k, dim)
		assign, err := ct.assignAll(ctx, x, n, threads)
		if err != nil {
			return nil, err
		}
		clear(sums)
		clear(counts)
		for i, a := range assign {
			counts[a]++
			s := sums[int(a)*dim : int(a+1)*dim]
			for d, v := range x[i*dim : (i+1)*dim] {
				s[d] += float64(v)
			}
		}
		for c := 0; c < k; c++ {
			if counts[c] == 0 {
				continue
			}
			inv := 1 / float64(counts[c])
			for d := 0; d < dim; d++ {
				cents[c*dim+d] = float32(sums[c*dim+d] * inv)
			}
		}
		splitEmpty(cents, counts, dim, rng)
	}
	return cents, nil
}

// splitEmpty gives every empty cluster a perturbed copy of the largest one and halves
// that one's count.
func splitEmpty(cents []float32, counts []int, dim int, rng *rand.Rand) {
	const eps = 1.0 / 1024
	for c := range counts {
		if counts[c] != 0 {
			continue
		}
		big := 0
		for j := range counts {
			if counts[j] > counts[big] {
				big = j
			}
		}
		if counts[big] < 2 {
			return
		}
		for d := 0; d < dim; d++ {
			v := cents[big*dim+d]
			sign := float32(1)
			if rng.IntN(2) == 0 {
				sign = -1
			}
			cents[c*dim+d] = v * (1 + sign*eps)
			cents[big*dim+d] = v * (1 - sign*eps)
		}
		counts[c] = counts[big] / 2
		counts[big] -= counts[c]
	}
}

// kmeansSmall clusters n rows of dimension dim into k centroids by brute force (for the
// 16-centroid sub-quantizers, where dim is 1 or 2).
func kmeansSmall(x []float32, n, dim, k, iters int, rng *rand.Rand) []float32 {
	cents := make([]float32, k*dim)
	perm := rng.Perm(n)
	for c := 0; c < k; c++ {
		copy(cents[c*dim:(c+1)*dim], x[perm[c%n]*dim:(perm[c%n]+1)*dim])
	}
	sums := make([]float64, k*dim)
	counts := make([]int, k)
	for it := 0; it < iters; it++ {
		clear(sums)
		clear(counts)
		for i := 0; i < n; i++ {
			a := nearest(x[i*dim:(i+1)*dim], cents, k, dim)
			counts[a]++
			for d := 0; d < dim; d++ {
				sums[a*dim+d] += float64(x[i*dim+d])
			}
		}
		for c := 0; c < k; c++ {
			if counts[c] == 0 {
				continue
			}
			for d := 0; d < dim; d++ {
				cents[c*dim+d] = float32(sums[c*dim+d] / float64(counts[c]))
			}
		}
		splitEmpty(cents, counts, dim, rng)
	}
	return cents
}

// nearest is the index of the centroid closest to v (ties: the lowest index).
func nearest(v, cents []float32, k, dim int) int {
	if dim == 1 {
		x := v[0]
		best, bi := float32(math.MaxFloat32), 0
		for c, cv := range cents[:k] {
			if t := (x - cv) * (x - cv); t < best {
				best, bi = t, c
			}
		}
		return bi
	}
	if dim == 2 {
		x, y := v[0], v[1]
		best, bi := float32(math.MaxFloat32), 0
		for c := 0; c < k; c++ {
			dx, dy := x-cents[2*c], y-cents[2*c+1]
			if t := dx*dx + dy*dy; t < best {
				best, bi = t, c
			}
		}
		return bi
	}
	best, bi := float32(math.MaxFloat32), 0
	for c := 0; c < k; c++ {
		var dd float32
		for d := 0; d < dim; d++ {
			t := v[d] - cents[c*dim+d]
			dd += t * t
		}
		if dd < best {
			best, bi = dd, c
		}
	}
	return bi
}
