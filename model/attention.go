package model

import (
	"math"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/internal/vmath"
)

// gemmAttnMin is the number of query tokens from which attention runs as matrix
// products (per KV head and block of queries: scores = Q·Kᵀ, then P·V) instead of
// per-query dot products.
const gemmAttnMin = 8

// attnScoreBudget bounds the scores buffer (floats) of one worker's attention block.
const attnScoreBudget = 1 << 20

// attnBlock is the largest query block of GEMM attention.
const attnBlock = 128

// attnItem is one unit of GEMM attention: the queries [b0, b1) of KV head g against the
// first tb KV rows.
type attnItem struct{ b0, b1, tb, g int }

// attnSlot is one worker's GEMM attention scratch.
type attnSlot struct {
	gemm               kernels.SerialGemm
	qg, sc, og, rowInv []float32
	err                error
}

// attnGEMM computes attention for the current call (s.aN queries) with matrix products.
// The work is cut into (query block, KV head) items that the workers take in turn, each
// running its products, softmax and copies on its own (kernels.SerialGemm): no
// hand-off between the two products, and no serial copying on the calling goroutine.
func (s *scratch) attnGEMM() error {
	c := &s.m.Config
	G := c.Heads / c.KVHeads
	n, pos, kv := s.aN, s.aPos, s.aKV
	T := kv.Len()
	// Query blocks of at most 128 tokens keep the causal trimming effective (keys after a
	// block's last position are skipped) while the products stay large enough to be fast;
	// smaller blocks when there would be too few items to share among the workers.
	B := max(1, min(n, attnBlock, attnScoreBudget/max(1, G*T)))
	if perHead := (2*s.slots + c.KVHeads - 1) / c.KVHeads; perHead > 1 {
		B = min(B, max(16, (n+perHead-1)/perHead))
	}
	s.aItems = s.aItems[:0]
	for b0 := 0; b0 < n; b0 += B {
		b1 := min(b0+B, n)
		maxPos := pos[b0]
		for _, p := range pos[b0:b1] {
			maxPos = max(maxPos, p)
		}
		// Rows at or beyond Tb are masked for every query of the block.
		Tb := 0
		for j := T - 1; j >= 0; j-- {
			if kv.Pos[j] <= maxPos {
				Tb = j + 1
				break
			}
		}
		for g := 0; g < c.KVHeads; g++ {
			s.aItems = append(s.aItems, attnItem{b0, b1, Tb, g})
		}
	}
	// Largest first (cost ∝ queries × keys), so that the last items taken are small.
	items := s.aItems
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && cost(items[j]) > cost(items[j-1]); j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
	if len(s.aSlots) < s.slots {
		s.aSlots = make([]attnSlot, s.slots)
	}
	s.aNext.Store(0)
	s.m.pool.Parallel(s.slots, s.attnItemsFn)
	for i := range s.aSlots {
		if err := s.aSlots[i].err; err != nil {
			s.aSlots[i].err = nil
			return err
		}
	}
	return nil
}

// visibleEnd returns the number of leading positions ≤ p of the non-decreasing kvPos
// (for other orders, meaningless).
func visibleEnd(kvPos []int, p int) int {
	lo, hi := 0, len(kvPos)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if kvPos[mid] <= p {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func cost(it attnItem) int { return (it.b1 - it.b0) * it.tb }

// attnItems runs worker slots [lo, hi): each takes items until none is left.
func (s *scratch) attnItems(lo, hi int) {
	for slot := lo; slot < hi; slot++ {
		sl := &s.aSlots[slot]
		for {
			i := int(s.aNext.Add(1) - 1)
			if i >= len(s.aItems) {
				break
			}
			if err := s.attnItem(sl, s.aItems[i]); err != nil && sl.err == nil {
				sl.err = err
			}
		}
	}
}

// attnChunkRows is about how many score rows (queries × the query heads of a KV head)
// one pair of products covers inside an item: with keys in position order, each chunk
// multiplies only by the keys its last query can see, which keeps the work wasted on the
// causal mask to half a chunk per query.
const attnChunkRows = 96

// attnItem computes the attention output of queries [b0, b1) for the query heads of KV
// head g. Score rows are ordered (query i, head hh): row i·G + hh.
func (s *scratch) attnItem(sl *attnSlot, it attnItem) error {
	c := &s.m.Config
	hd, qd, kd := c.HeadDim, c.QDim(), c.KVDim()
	G := c.Heads / c.KVHeads
	b0, nb, Tb, g := it.b0, it.b1-it.b0, it.tb, it.g
	rowsN := G * nb
	if Tb == 0 {
		for i := b0; i < it.b1; i++ {
			clear(s.att[i*qd+g*G*hd : i*qd+(g+1)*G*hd])
			clear(s.mass[i*c.Heads+g*G : i*c.Heads+(g+1)*G])
		}
		return nil
	}
	// Q rows of the block for the G query heads sharing KV head g (contiguous in q,
	// already scaled by 1/√d).
	sl.qg = growF32(sl.qg, rowsN*hd)
	for i := 0; i < nb; i++ {
		copy(sl.qg[i*G*hd:(i+1)*G*hd], s.q[(b0+i)*qd+g*G*hd:(b0+i)*qd+(g+1)*G*hd])
	}
	K, V := s.aKV.K[s.aLayer], s.aKV.V[s.aLayer]
	sl.sc = growF32(sl.sc, rowsN*Tb)
	sl.rowInv = growF32(sl.rowInv, rowsN)
	sl.og = growF32(sl.og, rowsN*hd)
	qc := max(1, attnChunkRows/G)
	for i0 := 0; i0 < nb; i0 += qc {
		i1 := min(i0+qc, nb)
		// Keys [tStart, tEnd) are visible to some query of the chunk (with keys in
		// position order: up to its last query's position, and from its first query's
		// window on).
		tStart, tEnd := 0, Tb
		if s.aSorted {
			maxPos, minPos := s.aPos[b0+i0], s.aPos[b0+i0]
			for _, p := range s.aPos[b0+i0 : b0+i1] {
				maxPos, minPos = max(maxPos, p), min(minPos, p)
			}
			tEnd = visibleEnd(s.aKV.Pos[:Tb], maxPos)
			tStart = min(visibleStart(s.aKV.Pos[:Tb], minPos, s.aWin), tEnd)
		}
		r0, rows := i0*G, (i1-i0)*G
		sc := sl.sc[r0*Tb : (r0+rows)*Tb]
		if tEnd > tStart {
			if err := sl.gemm.MulABt(sc[tStart:], Tb, sl.qg[r0*hd:], hd, K[g*hd+tStart*kd:], kd, rows, tEnd-tStart, hd); err != nil {
				return err
			}
		}
		s.softmaxRows(sl, b0, r0, rows, Tb, tStart, tEnd, g)
		og := sl.og[r0*hd : (r0+rows)*hd]
		if tEnd == tStart {
			clear(og)
			continue
		}
		if err := sl.gemm.MulAB(og, hd, sc[tStart:], Tb, V[g*hd+tStart*kd:], kd, rows, hd, tEnd-tStart); err != nil {
			return err
		}
	}
	for i := 0; i < nb; i++ {
		dst := s.att[(b0+i)*qd+g*G*hd : (b0+i)*qd+(g+1)*G*hd]
		copy(dst, sl.og[i*G*hd:(i+1)*G*hd])
		for hh := 0; hh < G; hh++ {
			kernels.Scale(dst[hh*hd:(hh+1)*hd], sl.rowInv[i*G+hh])
		}
	}
	return nil
}

// softmaxRows normalizes score rows [r0, r0+rows) of one item (query b0 + r/G, head
// r%G of KV head g; row stride Tb, columns [tStart, tEnd) computed) with the causal mask
// by absolute position (and the layer's sliding window), after the soft-cap if the model
// has one, leaving exp(score − max) in sl.sc (zero where masked) and 1/Σ in sl.rowInv
// (P·V is normalized afterwards: n×hd work instead of n×T), and records outside-span
// mass. A row that sees no key gets zero weights.
func (s *scratch) softmaxRows(sl *attnSlot, b0, r0, rows, Tb, tStart, tEnd, g int) {
	c := &s.m.Config
	G := c.Heads / c.KVHeads
	kvPos := s.aKV.Pos[:tEnd]
	for r := r0; r < r0+rows; r++ {
		i, hh := r/G, r%G
		q := b0 + i
		p := s.aPos[q]
		full := sl.sc[r*Tb : r*Tb+tEnd]
		row := full[tStart:]
		lo := tStart // row[j] is the key at kvPos[lo+j]
		var maxv float32
		if s.aSorted {
			// Keys in position order: the visible ones are a run.
			end := visibleEnd(kvPos, p)
			lo = min(max(tStart, visibleStart(kvPos, p, s.aWin)), end)
			clear(full[tStart:lo])
			clear(full[end:])
			row = full[lo:end]
			if c.AttnSoftcap > 0 {
				softcap(row, c.AttnSoftcap)
			}
			maxv = float32(math.Inf(-1))
			if len(row) > 0 {
				maxv = vmath.Max(row)
			}
		} else {
			maxv = float32(math.Inf(-1))
			for j, kp := range kvPos[tStart:] {
				if visible(kp, p, s.aWin) {
					v := row[j]
					if c.AttnSoftcap > 0 {
						v = c.AttnSoftcap * float32(math.Tanh(float64(v*(1/c.AttnSoftcap))))
						row[j] = v
					}
					if v > maxv {
						maxv = v
					}
				} else {
					row[j] = float32(math.Inf(-1))
				}
			}
		}
		if math.IsInf(float64(maxv), -1) {
			clear(full[tStart:])
			sl.rowInv[r] = 0
			s.mass[q*c.Heads+g*G+hh] = 0
			continue
		}
		sum := vmath.ExpSum(row, maxv)
		inv := 1 / sum
		sl.rowInv[r] = inv
		if s.aSpan != nil {
			var outside float32
			for j := range row {
				if kp := kvPos[lo+j]; kp < s.aSpan.Lo || kp >= s.aSpan.Hi {
					outside += row[j]
				}
			}
			s.mass[q*c.Heads+g*G+hh] = outside * inv
		}
	}
}

func growF32(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}
