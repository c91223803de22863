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

// attnItem computes the attention output of queries [b0, b1) for the query heads of KV
// head g.
func (s *scratch) attnItem(sl *attnSlot, it attnItem) error {
	c := &s.m.Config
	hd, qd, kd := c.HeadDim, c.QDim(), c.KVDim()
	G := c.Heads / c.KVHeads
	b0, nb, Tb, g := it.b0, it.b1-it.b0, it.tb, it.g
	rowsN := G * nb
	if Tb == 0 {
		for hh := 0; hh < G; hh++ {
			for i := b0; i < it.b1; i++ {
				clear(s.att[i*qd+(g*G+hh)*hd : i*qd+(g*G+hh+1)*hd])
				s.mass[i*c.Heads+g*G+hh] = 0
			}
		}
		return nil
	}
	scale := float32(1 / math.Sqrt(float64(hd)))
	// Q rows (hh, i) of the block for the G query heads sharing KV head g, scaled by 1/√d.
	sl.qg = growF32(sl.qg, rowsN*hd)
	for hh := 0; hh < G; hh++ {
		h := g*G + hh
		for i := 0; i < nb; i++ {
			dst := sl.qg[(hh*nb+i)*hd : (hh*nb+i+1)*hd]
			for d, v := range s.q[(b0+i)*qd+h*hd : (b0+i)*qd+(h+1)*hd] {
				dst[d] = v * scale
			}
		}
	}
	K, V := s.aKV.K[s.aLayer], s.aKV.V[s.aLayer]
	sl.sc = growF32(sl.sc, rowsN*Tb)
	if err := sl.gemm.MulABt(sl.sc, Tb, sl.qg, hd, K[g*hd:], kd, rowsN, Tb, hd); err != nil {
		return err
	}
	sl.rowInv = growF32(sl.rowInv, rowsN)
	s.softmaxRows(sl, b0, nb, Tb, g)
	sl.og = growF32(sl.og, rowsN*hd)
	if err := sl.gemm.MulAB(sl.og, hd, sl.sc, Tb, V[g*hd:], kd, rowsN, hd, Tb); err != nil {
		return err
	}
	for hh := 0; hh < G; hh++ {
		h := g*G + hh
		for i := 0; i < nb; i++ {
			inv := sl.rowInv[hh*nb+i]
			dst := s.att[(b0+i)*qd+h*hd : (b0+i)*qd+(h+1)*hd]
			for d, v := range sl.og[(hh*nb+i)*hd : (hh*nb+i+1)*hd] {
				dst[d] = v * inv
			}
		}
	}
	return nil
}

// softmaxRows normalizes the score rows of one item (queries [b0, b0+nb) of the query
// heads of KV head g, against Tb keys) with the causal mask by absolute position, leaving
// exp(score − max) in sl.sc and 1/Σ in sl.rowInv (P·V is normalized afterwards: n×hd work
// instead of n×T), and records outside-span mass.
func (s *scratch) softmaxRows(sl *attnSlot, b0, nb, Tb, g int) {
	c := &s.m.Config
	G := c.Heads / c.KVHeads
	kvPos := s.aKV.Pos[:Tb]
	for r := 0; r < G*nb; r++ {
		hh, i := r/nb, r%nb
		q := b0 + i
		p := s.aPos[q]
		row := sl.sc[r*Tb : (r+1)*Tb]
		maxv := float32(math.Inf(-1))
		for j, kp := range kvPos {
			if kp <= p {
				if v := row[j]; v > maxv {
					maxv = v
				}
			} else {
				row[j] = float32(math.Inf(-1))
			}
		}
		sum := vmath.ExpSum(row, maxv)
		inv := 1 / sum
		sl.rowInv[r] = inv
		if s.aSpan != nil {
			var outside float32
			for j := range row {
				if kvPos[j] < s.aSpan.Lo || kvPos[j] >= s.aSpan.Hi {
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
