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
	pqTrainMax   = 16384
	pqIters      = 12
	scanBlocksAt = 8 // blocks per kernel call, so that the threshold tightens within a list
	prefetchHead = 256
)

// ivfIndex is an inverted file whose lists hold 4-bit PQ codes of residuals in the
// fast-scan block layout (see fastscan.go).
type ivfIndex struct {
	dim, dp    int       // vector dimension; padded to even for dotsT
	nlist, m   int       // lists; sub-quantizers
	cents      []float32 // nlist×dim, row-major
	coarse     *coarseTable
	probeBias  []float32 // coarse.bias (lists probed by L2 distance), -Inf on empty lists
	slots      []pqSlot  // m 4-bit sub-quantizers (see pq.go)
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

	// Product quantizer on residuals of a sample, bits allocated by expected
	// inner-product error (queries follow the data: E[q_d²] ≈ E[x_d²]).
	ps := min(n, pqTrainMax)
	pidx := rng.Perm(n)[:ps]
	sort.Ints(pidx)
	res := make([]float32, ps*dim)
	imp := make([]float64, dim)
	energy := make([]float64, dim)
	for j, i := range pidx {
		x := vecs[i*dim : (i+1)*dim]
		r := res[j*dim : (j+1)*dim]
		iv.residual(r, x, int(assign[i]))
		for d := range r {
			imp[d] += float64(r[d]) * float64(r[d])
			energy[d] += float64(x[d]) * float64(x[d])
		}
	}
	for d := range imp {
		imp[d] *= energy[d] / float64(ps) / float64(ps)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	iv.slots = trainSlots(res, ps, dim, allocateSlots(imp, iv.m), rng)

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
	iv.ids = makeHuge[int32](nblocks * blockVecs)
	for i := range iv.ids {
		iv.ids[i] = -1
	}
	iv.codes = makeHuge[byte](nblocks * iv.blockBytes)
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
		r := make([]float32, dim)
		for i := lo; i < hi; i++ {
			iv.residual(r, vecs[i*dim:(i+1)*dim], int(assign[i]))
			iv.encodeAt(int(slot[i]), r)
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	iv.skipEmpty()
	return iv, nil
}

// finishCoarse derives the search tables from cents.
func (iv *ivfIndex) finishCoarse() {
	iv.coarse = newCoarseTable(iv.cents, iv.nlist, iv.dim)
	iv.probeBias = append([]float32(nil), iv.coarse.bias...)
	iv.skipEmpty()
}

// skipEmpty keeps empty lists (k-means can leave some, e.g. on duplicated data) from
// ever being probed.
func (iv *ivfIndex) skipEmpty() {
	for l, c := range iv.listLen {
		if c == 0 {
			iv.probeBias[l] = negInf
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

// residual writes x - centroid l into r.
func (iv *ivfIndex) residual(r, x []float32, l int) {
	c := iv.cents[l*iv.dim : (l+1)*iv.dim]
	for d := 0; d < iv.dim; d++ {
		r[d] = x[d] - c[d]
	}
}

// encodeAt quantizes residual r (modified) into slot pos (block pos/32, lane pos%32).
func (iv *ivfIndex) encodeAt(pos int, r []float32) {
	blk := iv.codes[pos/blockVecs*iv.blockBytes:]
	lane := pos % blockVecs
	var codes [128]byte
	encodeSlots(iv.slots, r, codes[:iv.m])
	for p := 0; p < iv.m/2; p++ {
		blk[p*chunkSize+lane] = codes[2*p] | codes[2*p+1]<<4
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
		4*int64(len(iv.cents)+len(iv.coarse.blk)+len(iv.coarse.bias)+len(iv.probeBias)) +
		iv.slotBytes() +
		4*int64(len(iv.listStart)+len(iv.listLen))
}

// search scans the nprobe best lists for q and leaves in s.top the best candidates with
// their ids (not slots); refine recomputes their scores with float tables.
func (iv *ivfIndex) search(q []float32, nprobe int, s *scratch, refine bool) {
	dp := iv.dp
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
	iv.selectLists(cs, nprobe, s)

	// Float tables and their uint8 quantization.
	nt := iv.m * pqCentroids
	if cap(s.lut) < nt {
		s.lut = make([]float32, nt)
		s.qlut = make([]uint8, nt)
	}
	lut, qlut := s.lut[:nt], s.qlut[:nt]
	slotTables(iv.slots, qp, lut)
	var biasSum, maxRange, sumRange float32
	var lows [128]float32
	for m := 0; m < iv.m; m++ {
		t := lut[m*pqCentroids : (m+1)*pqCentroids]
		lo, hi := t[0], t[0]
		for _, v := range t[1:] {
			if v < lo {
				lo = v
			}
			if v > hi {
				hi = v
			}
		}
		lows[m] = lo
		biasSum += lo
		if hi-lo > maxRange {
			maxRange = hi - lo
		}
		sumRange += hi - lo
	}
	scale := float32(1)
	if maxRange > 0 {
		scale = min(255/maxRange, 32000/sumRange)
	}
	// Entries round to nearest; the largest of a table rounds (hi-lo)·scale ≤ 255.
	var maxSum int
	for m := 0; m < iv.m; m++ {
		lo := lows[m]
		mx := uint8(0)
		for c, v := range lut[m*pqCentroids : (m+1)*pqCentroids] {
			x := uint8((v-lo)*scale + 0.5)
			qlut[m*pqCentroids+c] = x
			if x > mx {
				mx = x
			}
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
	// The lists are scattered over the code array: start fetching the head of each
	// one now (and its page-table entries), and each whole list one list ahead.
	lists := s.lists.ids
	for _, l32 := range lists {
		b0 := int(iv.listStart[l32]) * iv.blockBytes
		prefetchBytes(iv.codes[b0:min(b0+prefetchHead, int(iv.listStart[l32+1])*iv.blockBytes)])
	}
	for li, l32 := range lists {
		if li+1 < len(lists) {
			n := lists[li+1]
			prefetchBytes(iv.codes[int(iv.listStart[n])*iv.blockBytes : int(iv.listStart[n+1])*iv.blockBytes])
		}
		l := int(l32)
		if iv.listLen[l] == 0 {
			continue
		}
		base := cs[l] - iv.probeBias[l] + biasSum // q·centroid + Σ table minima
		b0, b1 := int(iv.listStart[l]), int(iv.listStart[l+1])
		remaining := int(iv.listLen[l])
		for b := b0; b < b1; b += scanBlocksAt {
			nb := min(scanBlocksAt, b1-b)
			thr := -1
			if top.thr > negInf {
				t := (top.thr - base) * scale
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
					if sc := base + float32(acc[j*blockVecs+i])*inv; sc > top.thr {
						top.add(sc, int32((b+j)*blockVecs+i))
					}
				}
			}
		}
		// A first threshold as soon as there are enough candidates: later lists are
		// farther, and the scan filter needs it to skip codes.
		if top.thr == negInf && len(top.ids) > top.r {
			top.compact()
		}
	}

	// Slots to ids; float re-ranking.
	top.compact()
	ids, scores := top.ids, top.scores
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
	e.u32(0) // flags: none defined
	e.f32s(iv.cents)
	for _, sl := range iv.slots {
		e.u32(uint32(len(sl.dims)))
		for _, d := range sl.dims {
			e.u32(uint32(d))
		}
		e.f32s(sl.cb)
	}
	e.i32s(iv.listLen)
	e.bytes(iv.codes)
	e.i32s(iv.ids)
}

func decodeIVF(d *decoder, dim, n int) (*ivfIndex, error) {
	nlist, m, flags := int(d.u32()), int(d.u32()), d.u32()
	if d.err != nil {
		return nil, d.err
	}
	if nlist < 1 || nlist > 1<<20 || nlist > n || m < 2 || m%2 != 0 || m > 128 || m > maxStages*dim || flags != 0 {
		return nil, fmt.Errorf("%w: ivf header nlist=%d m=%d flags=%d (n=%d dim=%d)", ErrCorrupt, nlist, m, flags, n, dim)
	}
	iv := &ivfIndex{dim: dim, dp: dim + dim%2, nlist: nlist, m: m}
	iv.blockBytes = m / 2 * chunkSize
	if uint64(nlist)*uint64(dim)+uint64(nlist) > uint64(d.remaining()/4) {
		return nil, fmt.Errorf("%w: ivf tables exceed the data", ErrCorrupt)
	}
	iv.cents = d.f32s(nlist * dim)
	finite := func(v []float32) bool {
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return false
			}
		}
		return true
	}
	if !finite(iv.cents) {
		return nil, fmt.Errorf("%w: non-finite centroid", ErrCorrupt)
	}
	iv.slots = make([]pqSlot, m)
	for s := range iv.slots {
		nd := int(d.u32())
		if d.err != nil {
			return nil, d.err
		}
		if nd < 1 || nd > maxGroup {
			return nil, fmt.Errorf("%w: slot %d encodes %d dimensions", ErrCorrupt, s, nd)
		}
		dims := make([]int32, nd)
		for j := range dims {
			v := d.u32()
			if v >= uint32(dim) {
				return nil, fmt.Errorf("%w: slot %d dimension %d out of range", ErrCorrupt, s, v)
			}
			dims[j] = int32(v)
		}
		cb := d.f32s(pqCentroids * nd)
		if d.err != nil {
			return nil, d.err
		}
		if !finite(cb) {
			return nil, fmt.Errorf("%w: non-finite codebook in slot %d", ErrCorrupt, s)
		}
		iv.slots[s] = pqSlot{dims: dims, cb: cb}
	}
	iv.listLen = d.i32s(nlist)
	if d.err != nil {
		return nil, d.err
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
	iv.codes = makeHuge[byte](nblocks * iv.blockBytes)
	copy(iv.codes, d.take(len(iv.codes)))
	iv.ids = makeHuge[int32](nblocks * blockVecs)
	d.i32sInto(iv.ids)
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

func (iv *ivfIndex) slotBytes() int64 {
	var b int64
	for _, sl := range iv.slots {
		b += 4*int64(len(sl.cb)) + 4*int64(len(sl.dims))
	}
	return b
}

// selectLists leaves in s.lists the nprobe best lists by coarse score cs, best first
// (ties: lower list first). With many lists it first bounds the nprobe-th best score
// from below by the nprobe-th best maximum of groups of 32 lists (nprobe distinct lists
// reach it), so that only the groups reaching that bound are examined.
func (iv *ivfIndex) selectLists(cs []float32, nprobe int, s *scratch) {
	s.lists.reset(nprobe)
	groups := iv.nlist / 32
	if groups < 2*nprobe {
		lthr := negInf // the worst kept list score once nprobe lists are kept
		for l, c := range cs[:iv.nlist] {
			if c >= lthr {
				s.lists.push(c, int32(l))
				if s.lists.full() {
					lthr = s.lists.scores[0]
				}
			}
		}
		s.lists.sortDesc()
		return
	}
	if cap(s.gmax) < groups {
		s.gmax = make([]float32, groups)
		s.gidx = make([]int32, groups)
	}
	gmax, gidx := s.gmax[:groups], s.gidx[:groups]
	groupMax32(cs, gmax)
	tmp := s.gtmp[:0]
	tmp = append(tmp, gmax...)
	for g := range gidx {
		gidx[g] = int32(g)
	}
	selectTop(gidx, tmp, nprobe)
	bound := tmp[0]
	for _, v := range tmp[1:nprobe] {
		bound = min(bound, v)
	}
	s.gtmp = tmp
	lthr := bound
	for g, m := range gmax {
		if m < lthr {
			continue
		}
		for l := 32 * g; l < 32*g+32; l++ {
			if c := cs[l]; c >= lthr {
				s.lists.push(c, int32(l))
				if s.lists.full() {
					lthr = max(bound, s.lists.scores[0])
				}
			}
		}
	}
	// Lists past the last full group.
	for l := 32 * groups; l < iv.nlist; l++ {
		if c := cs[l]; c >= lthr {
			s.lists.push(c, int32(l))
			if s.lists.full() {
				lthr = max(bound, s.lists.scores[0])
			}
		}
	}
	s.lists.sortDesc()
}
