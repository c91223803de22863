package ann

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"sort"
)

const (
	pqCentroids  = 16
	pqTrainMax   = 65536
	pqIters      = 20
	scanBlocksAt = 8 // blocks per kernel call, so that the threshold tightens within a list
)

// ivfIndex is an inverted file whose lists hold 4-bit PQ codes of residuals in the
// fast-scan block layout (see fastscan.go).
type ivfIndex struct {
	dim, dp    int // vector dimension; padded to even for dotsT
	nlist, m   int // lists; sub-quantizers
	dsub, dpq  int // dimensions per sub-quantizer; m·dsub
	probeIP    bool
	cents      []float32 // nlist×dim, row-major
	coarse     *coarseTable
	probeBias  []float32 // bias for probing (L2: -|c|²/2; IP: 0), padded like coarse.bias
	codebook   []float32 // m × 16 × dsub
	listStart  []int32   // nlist+1, in blocks
	listLen    []int32   // nlist, vectors
	codes      []byte    // blocks × (m/2 × 32)
	ids        []int32   // blocks × 32, -1 on padding
	blockBytes int
}

func buildIVF(ctx context.Context, vecs []float32, dim int, o *Options) (*ivfIndex, error) {
	n := len(vecs) / dim
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x9e3779b97f4a7c15))
	iv := &ivfIndex{dim: dim, dp: dim + dim%2, nlist: o.NList, m: o.M}
	iv.dsub = (dim + o.M - 1) / o.M
	iv.dpq = iv.m * iv.dsub
	iv.blockBytes = iv.m / 2 * chunkSize

	// Coarse quantizer on a sample.
	ts := min(o.TrainSize, n)
	sample := sampleRows(vecs, n, dim, ts, rng)
	cents, err := kmeans(ctx, sample, ts, dim, iv.nlist, o.KMeansIters, o.Threads, rng)
	if err != nil {
		return nil, err
	}
	iv.cents = cents
	iv.finishCoarse()
	assign, err := iv.coarse.assignAll(ctx, vecs, n, o.Threads)
	if err != nil {
		return nil, err
	}

	// Product quantizer on residuals of a sample.
	ps := min(n, pqTrainMax)
	pidx := rng.Perm(n)[:ps]
	sort.Ints(pidx)
	res := make([]float32, ps*iv.dpq)
	for j, i := range pidx {
		iv.residual(res[j*iv.dpq:(j+1)*iv.dpq], vecs[i*dim:(i+1)*dim], int(assign[i]))
	}
	iv.codebook = make([]float32, iv.m*pqCentroids*iv.dsub)
	sub := make([]float32, ps*iv.dsub)
	for m := 0; m < iv.m; m++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for j := 0; j < ps; j++ {
			copy(sub[j*iv.dsub:(j+1)*iv.dsub], res[j*iv.dpq+m*iv.dsub:])
		}
		cb := kmeansSmall(sub, ps, iv.dsub, pqCentroids, pqIters, rng)
		copy(iv.codebook[m*pqCentroids*iv.dsub:], cb)
	}

	// Lists: ids in increasing order within each list, codes in block layout.
	iv.listLen = make([]int32, iv.nlist)
	for _, a := range assign {
		iv.listLen[a]++
	}
	iv.listStart = make([]int32, iv.nlist+1)
	for l := 0; l < iv.nlist; l++ {
		iv.listStart[l+1] = iv.listStart[l] + (iv.listLen[l]+blockVecs-1)/blockVecs
	}
	nblocks := int(iv.listStart[iv.nlist])
	iv.ids = make([]int32, nblocks*blockVecs)
	for i := range iv.ids {
		iv.ids[i] = -1
	}
	iv.codes = make([]byte, nblocks*iv.blockBytes)
	fill := make([]int32, iv.nlist)
	slot := make([]int32, n)
	for i, a := range assign {
		slot[i] = iv.listStart[a]*blockVecs + fill[a]
		fill[a]++
		iv.ids[slot[i]] = int32(i)
	}
	parallelFor(n, o.Threads, 4096, func(lo, hi int) {
		if ctx.Err() != nil {
			return
		}
		r := make([]float32, iv.dpq)
		for i := lo; i < hi; i++ {
			iv.residual(r, vecs[i*dim:(i+1)*dim], int(assign[i]))
			iv.encodeAt(int(slot[i]), r)
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return iv, nil
}

// finishCoarse derives the search tables from cents.
func (iv *ivfIndex) finishCoarse() {
	iv.coarse = newCoarseTable(iv.cents, iv.nlist, iv.dim)
	iv.probeBias = append([]float32(nil), iv.coarse.bias...)
	if iv.probeIP {
		for c := 0; c < iv.nlist; c++ {
			iv.probeBias[c] = 0
		}
	}
}

func sampleRows(vecs []float32, n, dim, k int, rng *rand.Rand) []float32 {
	if k >= n {
		return vecs[:n*dim]
	}
	idx := rng.Perm(n)[:k]
	sort.Ints(idx)
	out := make([]float32, k*dim)
	for j, i := range idx {
		copy(out[j*dim:(j+1)*dim], vecs[i*dim:(i+1)*dim])
	}
	return out
}

// residual writes x - centroid l, zero-padded to dpq, into r.
func (iv *ivfIndex) residual(r, x []float32, l int) {
	c := iv.cents[l*iv.dim : (l+1)*iv.dim]
	for d := 0; d < iv.dim; d++ {
		r[d] = x[d] - c[d]
	}
	clear(r[iv.dim:])
}

// encodeAt quantizes residual r into slot pos (block pos/32, lane pos%32).
func (iv *ivfIndex) encodeAt(pos int, r []float32) {
	blk := iv.codes[pos/blockVecs*iv.blockBytes:]
	lane := pos % blockVecs
	ds := iv.dsub
	for m := 0; m < iv.m; m++ {
		c := nearest(r[m*ds:(m+1)*ds], iv.codebook[m*pqCentroids*ds:(m+1)*pqCentroids*ds], pqCentroids, ds)
		b := &blk[(m/2)*chunkSize+lane]
		if m%2 == 0 {
			*b = *b&0xf0 | byte(c)
		} else {
			*b = *b&0x0f | byte(c)<<4
		}
	}
}

// codeAt returns sub-quantizer m's code of slot pos.
func (iv *ivfIndex) codeAt(pos, m int) int {
	b := iv.codes[pos/blockVecs*iv.blockBytes+(m/2)*chunkSize+pos%blockVecs]
	if m%2 == 0 {
		return int(b & 15)
	}
	return int(b >> 4)
}

func (iv *ivfIndex) memBytes() int64 {
	return int64(len(iv.codes)) + 4*int64(len(iv.ids)) +
		4*int64(len(iv.cents)+len(iv.coarse.blk)+len(iv.coarse.bias)+len(iv.probeBias)+len(iv.codebook)) +
		4*int64(len(iv.listStart)+len(iv.listLen))
}

// search scans the nprobe best lists for q and leaves in s.top the best candidates with
// their ids (not slots); refine recomputes their scores with float tables.
func (iv *ivfIndex) search(q []float32, nprobe int, s *scratch, refine bool) {
	dp := max(iv.dp, iv.dpq)
	if cap(s.padded) < dp {
		s.padded = make([]float32, dp)
	}
	qp := s.padded[:dp]
	copy(qp, q)
	clear(qp[iv.dim:])

	// Coarse scores and the best lists, best first.
	nl := len(iv.probeBias)
	if cap(s.buf) < nl {
		s.buf = make([]float32, nl)
	}
	cs := s.buf[:nl]
	dotsT(cs, qp[:iv.dp], iv.coarse.blk, iv.probeBias, iv.dp)
	s.lists.reset(nprobe)
	for l := 0; l < iv.nlist; l++ {
		s.lists.push(cs[l], int32(l))
	}
	s.lists.sortDesc()

	// Float tables and their uint8 quantization.
	ds := iv.dsub
	nt := iv.m * pqCentroids
	if cap(s.lut) < nt {
		s.lut = make([]float32, nt)
		s.qlut = make([]uint8, nt)
	}
	lut, qlut := s.lut[:nt], s.qlut[:nt]
	var biasSum, maxRange, sumRange float32
	for m := 0; m < iv.m; m++ {
		qs := qp[m*ds : (m+1)*ds]
		lo, hi := float32(math.MaxFloat32), float32(-math.MaxFloat32)
		for c := 0; c < pqCentroids; c++ {
			cb := iv.codebook[(m*pqCentroids+c)*ds : (m*pqCentroids+c+1)*ds]
			var v float32
			for d := 0; d < ds; d++ {
				v += qs[d] * cb[d]
			}
			lut[m*pqCentroids+c] = v
			lo, hi = min(lo, v), max(hi, v)
		}
		biasSum += lo
		maxRange = max(maxRange, hi-lo)
		sumRange += hi - lo
	}
	scale := float32(1)
	if maxRange > 0 {
		scale = min(255/maxRange, 32000/sumRange)
	}
	for m := 0; m < iv.m; m++ {
		lo := lut[m*pqCentroids]
		for c := 1; c < pqCentroids; c++ {
			lo = min(lo, lut[m*pqCentroids+c])
		}
		for c := 0; c < pqCentroids; c++ {
			qlut[m*pqCentroids+c] = uint8(min(255, (lut[m*pqCentroids+c]-lo)*scale+0.5))
		}
	}
	var maxSum int
	for m := 0; m < iv.m; m++ {
		mx := uint8(0)
		for c := 0; c < pqCentroids; c++ {
			mx = max(mx, qlut[m*pqCentroids+c])
		}
		maxSum += int(mx)
	}
	inv := 1 / scale

	if cap(s.acc) < scanBlocksAt*blockVecs {
		s.acc = make([]uint16, scanBlocksAt*blockVecs)
		s.masks = make([]uint32, scanBlocksAt)
	}
	acc, masks := s.acc[:scanBlocksAt*blockVecs], s.masks[:scanBlocksAt]
	m2 := iv.m / 2
	top := &s.top
	for _, l32 := range s.lists.ids {
		l := int(l32)
		base := cs[l] - iv.probeBias[l] + biasSum // q·centroid + Σ table minima
		b0, b1 := int(iv.listStart[l]), int(iv.listStart[l+1])
		remaining := int(iv.listLen[l])
		for b := b0; b < b1; b += scanBlocksAt {
			nb := min(scanBlocksAt, b1-b)
			thr := -1
			if top.full() {
				t := (top.min() - base) * scale
				switch {
				case t >= float32(maxSum):
					thr = maxSum // nothing can pass
				case t >= 0:
					thr = int(t)
				}
			}
			if thr >= maxSum {
				break
			}
			scanBlocks(iv.codes[b*iv.blockBytes:], nb, m2, qlut, thr, acc, masks)
			for j := 0; j < nb; j++ {
				mask := masks[j]
				if remaining < blockVecs {
					mask &= uint32(1)<<remaining - 1
				}
				remaining -= blockVecs
				for mask != 0 {
					i := bits.TrailingZeros32(mask)
					mask &= mask - 1
					top.push(base+float32(acc[j*blockVecs+i])*inv, int32((b+j)*blockVecs+i))
				}
			}
		}
	}

	// Slots to ids; float re-ranking.
	ids, scores := top.sorted()
	for i, pos := range ids {
		if refine {
			l := iv.listOf(int(pos))
			v := cs[l] - iv.probeBias[l]
			for m := 0; m < iv.m; m++ {
				v += lut[m*pqCentroids+iv.codeAt(int(pos), m)]
			}
			scores[i] = v
		}
		ids[i] = iv.ids[pos]
	}
}

// listOf is the list holding slot pos.
func (iv *ivfIndex) listOf(pos int) int {
	b := int32(pos / blockVecs)
	lo, hi := 0, iv.nlist // first l with listStart[l+1] > b
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if iv.listStart[mid+1] > b {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

func (iv *ivfIndex) encode(e *encoder) {
	e.u32(uint32(iv.nlist))
	e.u32(uint32(iv.m))
	var flags uint32
	if iv.probeIP {
		flags |= 1
	}
	e.u32(flags)
	e.f32s(iv.cents)
	e.f32s(iv.codebook)
	e.i32s(iv.listLen)
	e.bytes(iv.codes)
	e.i32s(iv.ids)
}

func decodeIVF(d *decoder, dim, n int) (*ivfIndex, error) {
	nlist, m, flags := int(d.u32()), int(d.u32()), d.u32()
	if d.err != nil {
		return nil, d.err
	}
	if nlist < 1 || nlist > 1<<20 || nlist > n || m < 2 || m%2 != 0 || m > 128 || m > dim+dim%2 || flags > 1 {
		return nil, fmt.Errorf("%w: ivf header nlist=%d m=%d flags=%d (n=%d dim=%d)", ErrCorrupt, nlist, m, flags, n, dim)
	}
	iv := &ivfIndex{dim: dim, dp: dim + dim%2, nlist: nlist, m: m, probeIP: flags&1 != 0}
	iv.dsub = (dim + m - 1) / m
	iv.dpq = m * iv.dsub
	iv.blockBytes = m / 2 * chunkSize
	if uint64(nlist)*uint64(dim)+uint64(m*pqCentroids*iv.dsub)+uint64(nlist) > uint64(d.remaining()/4) {
		return nil, fmt.Errorf("%w: ivf tables exceed the data", ErrCorrupt)
	}
	iv.cents = d.f32s(nlist * dim)
	iv.codebook = d.f32s(m * pqCentroids * iv.dsub)
	iv.listLen = d.i32s(nlist)
	if d.err != nil {
		return nil, d.err
	}
	for _, v := range append(append([]float32(nil), iv.cents...), iv.codebook...) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("%w: non-finite quantizer value", ErrCorrupt)
		}
	}
	iv.listStart = make([]int32, nlist+1)
	total := 0
	for l, c := range iv.listLen {
		if c < 0 || int(c) > n-total {
			return nil, fmt.Errorf("%w: list %d has %d vectors", ErrCorrupt, l, c)
		}
		total += int(c)
		iv.listStart[l+1] = iv.listStart[l] + (c+blockVecs-1)/blockVecs
	}
	if total != n {
		return nil, fmt.Errorf("%w: lists hold %d vectors, header says %d", ErrCorrupt, total, n)
	}
	nblocks := int(iv.listStart[nlist])
	if uint64(nblocks)*uint64(iv.blockBytes+4*blockVecs) > uint64(d.remaining()) {
		return nil, fmt.Errorf("%w: %d code blocks exceed the data", ErrCorrupt, nblocks)
	}
	iv.codes = d.raw(nblocks * iv.blockBytes)
	iv.ids = d.i32s(nblocks * blockVecs)
	if d.err != nil {
		return nil, d.err
	}
	seen := make([]uint64, (n+63)/64)
	for l := 0; l < nlist; l++ {
		start := int(iv.listStart[l]) * blockVecs
		end := int(iv.listStart[l+1]) * blockVecs
		for p := start; p < end; p++ {
			id := iv.ids[p]
			if p-start >= int(iv.listLen[l]) {
				if id != -1 {
					return nil, fmt.Errorf("%w: padding slot %d holds id %d", ErrCorrupt, p, id)
				}
				continue
			}
			if id < 0 || int(id) >= n || seen[id/64]>>(id%64)&1 == 1 {
				return nil, fmt.Errorf("%w: slot %d holds id %d", ErrCorrupt, p, id)
			}
			seen[id/64] |= 1 << (id % 64)
		}
	}
	iv.finishCoarse()
	return iv, nil
}
