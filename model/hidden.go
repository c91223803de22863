package model

import (
	"context"
	"fmt"
)

// HiddenStates runs tokens at positions 0, 1, ... through the model and writes each
// token's final hidden state after the output norm (the classifier's input; llama.cpp's
// result_norm, which decoder-style embedding models pool) into dst (len ≥ len(tokens)×Dim).
func (m *Model) HiddenStates(ctx context.Context, dst []float32, tokens []int) error {
	c := &m.Config
	n := len(tokens)
	if n == 0 || len(dst) < n*c.Dim {
		return fmt.Errorf("%w: HiddenStates of %d tokens into %d values", ErrInvalid, n, len(dst))
	}
	kv := NewKV(c, n)
	pos := make([]int, n)
	for i := range pos {
		pos[i] = i
	}
	s := m.newScratch(n)
	x := dst[:n*c.Dim]
	if err := s.forward(ctx, kv, tokens, pos, x, nil, nil); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		rmsnorm(x[i*c.Dim:(i+1)*c.Dim], x[i*c.Dim:(i+1)*c.Dim], m.w.norm, c.NormEps)
	}
	return nil
}
