package model

import (
	"context"
	"fmt"
)

// StepGroup is one sequence's part of a Stepper.LayerStepMulti call: the arguments of
// a LayerStep (X: its rows' residual stream, in and out; Pos and Rows; its own KV; Opts,
// nil for none).
type StepGroup struct {
	X    []float32
	Pos  []int
	Rows []int
	KV   *KV
	Opts *StepOptions
}

// LayerStepMulti runs layer l for several sequences at once, each group as LayerStep
// would run it alone, but with the rows of every group going through each weight matrix
// together (one matrix product per projection for all of them, so each weight is read
// and packed once) while each group attends only to its own KV. It is how a server
// batches the prefills of concurrent requests (the prefill counterpart of Batch.Feed).
//
// Each group's outputs (X, its KV rows, FreshK/FreshV) are bit-identical to LayerStep's
// alone when the group and the batch are both below the kernels' GEMM threshold (40 rows
// for q8_0, 28 for q4_0, 12 for float weights on AVX-512) and, with int8-GEMM weights
// (q8_0 on the SIMD paths), when both are at or above it: that GEMM computes a row the
// same wherever it lies in the batch. Otherwise they differ by float rounding (relative
// differences of order 1e-8 to 1e-6: a small group in a batch above the threshold, the
// float GEMM's tail panels). Opts.Outside
// is not supported. Groups must not share a KV. On an error the groups' X and KV rows
// are unspecified (as after a failed LayerStep).
func (st *Stepper) LayerStepMulti(ctx context.Context, l int, groups []StepGroup) error {
	if len(groups) == 0 {
		return fmt.Errorf("%w: LayerStepMulti of no groups", ErrInvalid)
	}
	m := st.m
	c := &m.Config
	n, nOut := 0, 0
	for i := range groups {
		g := &groups[i]
		o := g.Opts
		if o == nil {
			o = &StepOptions{}
		}
		switch {
		case len(g.Pos) == 0:
			return fmt.Errorf("%w: LayerStepMulti group %d has no rows", ErrInvalid, i)
		case o.Outside != nil:
			return fmt.Errorf("%w: LayerStepMulti group %d: Outside is not supported", ErrInvalid, i)
		}
		for j := range i {
			if groups[j].KV == g.KV {
				return fmt.Errorf("%w: LayerStepMulti group %d shares its KV with group %d", ErrInvalid, i, j)
			}
		}
		if err := m.checkStep(ctx, l, g.X, g.Pos, g.Rows, g.KV, o); err != nil {
			return fmt.Errorf("group %d: %w", i, err)
		}
		n += len(g.Pos)
		if !o.KVOnly {
			nOut += len(g.Pos)
		}
	}
	// Rows of the groups that go through the whole layer first, then those that stop
	// after K/V (KVOnly): the output part of the layer runs on a prefix of the rows.
	order := st.order[:0]
	for pass := 0; pass < 2; pass++ {
		for i := range groups {
			if kvOnly := groups[i].Opts != nil && groups[i].Opts.KVOnly; kvOnly == (pass == 1) {
				order = append(order, i)
			}
		}
	}
	st.order = order
	s := st.s
	s.grow(n)
	d, qd, kd := c.Dim, c.QDim(), c.KVDim()
	if cap(st.x) < n*d {
		st.x = make([]float32, n*d)
	}
	x := st.x[:n*d]
	pos, rows := st.pos[:0], st.rows[:0]
	off := 0
	for _, i := range order {
		g := &groups[i]
		k := len(g.Pos)
		copy(x[off*d:(off+k)*d], g.X[:k*d])
		pos, rows = append(pos, g.Pos...), append(rows, g.Rows...)
		off += k
	}
	st.pos, st.rows = pos, rows
	// Q, K, V of every row together; K/V are written below, group by group.
	if err := s.layerQKV(l, x, pos, rows, nil, &StepOptions{SkipWrite: true}); err != nil {
		return err
	}
	off = 0
	for _, i := range order {
		g := &groups[i]
		k := len(g.Pos)
		o := g.Opts
		if o == nil {
			o = &StepOptions{}
		}
		gk, gv := s.k[off*kd:(off+k)*kd], s.v[off*kd:(off+k)*kd]
		if !o.SkipWrite {
			for j, r := range g.Rows {
				copy(g.KV.K[l][r*kd:(r+1)*kd], gk[j*kd:(j+1)*kd])
				copy(g.KV.V[l][r*kd:(r+1)*kd], gv[j*kd:(j+1)*kd])
			}
		}
		if o.FreshK != nil {
			copy(o.FreshK, gk)
		}
		if o.FreshV != nil {
			copy(o.FreshV, gv)
		}
		off += k
	}
	if nOut == 0 {
		return nil
	}
	// Attention group by group, each on its own KV: s.q, s.att and s.mass are moved to
	// the group's rows for the call.
	q, att, mass := s.q, s.att, s.mass
	off = 0
	var err error
	for _, i := range order {
		g := &groups[i]
		k := len(g.Pos)
		if g.Opts != nil && g.Opts.KVOnly {
			break
		}
		s.q, s.att, s.mass = q[off*qd:], att[off*qd:], mass[off*c.Heads:]
		err = s.attention(l, g.Pos, g.KV, nil)
		if err != nil {
			break
		}
		off += k
	}
	s.q, s.att, s.mass = q, att, mass
	if err != nil {
		return err
	}
	if err := s.layerOut(l, x, nOut); err != nil {
		return err
	}
	off = 0
	for _, i := range order {
		g := &groups[i]
		k := len(g.Pos)
		if g.Opts != nil && g.Opts.KVOnly {
			break
		}
		copy(g.X[:k*d], x[off*d:(off+k)*d])
		off += k
	}
	return nil
}
