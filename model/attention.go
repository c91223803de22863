package model

import (
	"math"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/internal/vmath"
)

// gemmAttnMin is the number of query tokens from which attention runs as matrix
// products (per KV head: scores = Q·Kᵀ, then P·V, through kernels MatMul) instead of
// per-query dot products.
const gemmAttnMin = 8

// attnScoreBudget bounds the scores buffer (floats) of one GEMM attention block.
const attnScoreBudget = 1 << 22

// attnBlock is the largest query block of GEMM attention.
const attnBlock = 128

// attnGEMM computes attention for the current call (s.aN queries) with matrix products.
func (s *scratch) attnGEMM() error {
	m := s.m
	c := &m.Config
	hd, qd, kd := c.HeadDim, c.QDim(), c.KVDim()
	G := c.Heads / c.KVHeads
	n, pos, kv := s.aN, s.aPos, s.aKV
	T := kv.Len()
	K, V := kv.K[s.aLayer], kv.V[s.aLayer]
	// Query blocks of at most 128 tokens keep the causal trimming effective (keys after a
	// block's last position are skipped) while the products stay large enough to be fast.
	B := max(1, min(n, attnBlock, attnScoreBudget/max(1, G*T)))
	scale := float32(1 / math.Sqrt(float64(hd)))
	s.kh = growF32(s.kh, T*hd)
	s.vt = growF32(s.vt, T*hd)
	s.qg = growF32(s.qg, G*B*hd)
	s.og = growF32(s.og, G*B*hd)
	s.sc = growF32(s.sc, G*B*T)
	s.rowInv = growF32(s.rowInv, G*B)
	for b0 := 0; b0 < n; b0 += B {
		b1 := min(b0+B, n)
		nb := b1 - b0
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
			rowsN := G * nb
			if Tb == 0 {
				for hh := 0; hh < G; hh++ {
					for i := b0; i < b1; i++ {
						clear(s.att[i*qd+(g*G+hh)*hd : i*qd+(g*G+hh+1)*hd])
						s.mass[i*c.Heads+g*G+hh] = 0
					}
				}
				continue
			}
			kh, vt := s.kh[:Tb*hd], s.vt[:Tb*hd]
			for j := 0; j < Tb; j++ {
				src := K[j*kd+g*hd : j*kd+(g+1)*hd]
				copy(kh[j*hd:(j+1)*hd], src)
				vs := V[j*kd+g*hd : j*kd+(g+1)*hd]
				for d, x := range vs {
					vt[d*Tb+j] = x
				}
			}
			qg := s.qg[:rowsN*hd]
			for hh := 0; hh < G; hh++ {
				for i := 0; i < nb; i++ {
					h := g*G + hh
					dst := qg[(hh*nb+i)*hd : (hh*nb+i+1)*hd]
					for d, v := range s.q[(b0+i)*qd+h*hd : (b0+i)*qd+(h+1)*hd] {
						dst[d] = v * scale // the 1/√d scale folded into Q
					}
				}
			}
			sc := s.sc[:rowsN*Tb]
			km := kernels.F32Mat(Tb, hd, kh)
			if err := m.pool.MatMul(sc, qg, rowsN, &km); err != nil {
				return err
			}
			s.smB0, s.smNB, s.smTb, s.smG = b0, nb, Tb, g
			m.pool.Parallel(rowsN, s.softmaxFn)
			og := s.og[:rowsN*hd]
			vm := kernels.F32Mat(hd, Tb, vt)
			if err := m.pool.MatMul(og, sc, rowsN, &vm); err != nil {
				return err
			}
			for hh := 0; hh < G; hh++ {
				for i := 0; i < nb; i++ {
					h := g*G + hh
					inv := s.rowInv[hh*nb+i]
					dst := s.att[(b0+i)*qd+h*hd : (b0+i)*qd+(h+1)*hd]
					for d, v := range og[(hh*nb+i)*hd : (hh*nb+i+1)*hd] {
						dst[d] = v * inv
					}
				}
			}
		}
	}
	return nil
}

// softmaxRows normalizes score rows [lo, hi) of the current GEMM attention block, with
// the scale and the causal mask by absolute position, and records outside-span mass.
func (s *scratch) softmaxRows(lo, hi int) {
	c := &s.m.Config
	G := c.Heads / c.KVHeads
	Tb, nb := s.smTb, s.smNB
	kvPos := s.aKV.Pos[:Tb]
	for r := lo; r < hi; r++ {
		hh, i := r/nb, r%nb
		q := s.smB0 + i
		p := s.aPos[q]
		row := s.sc[r*Tb : (r+1)*Tb]
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
		s.rowInv[r] = inv // P·V is normalized afterwards (n×hd work instead of n×T)
		if s.aSpan != nil {
			var outside float32
			for j := range row {
				if kvPos[j] < s.aSpan.Lo || kvPos[j] >= s.aSpan.Hi {
					outside += row[j]
				}
			}
			s.mass[q*c.Heads+s.smG*G+hh] = outside * inv
		}
	}
}

func growF32(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}
