package model

import (
	"context"
	"fmt"
)

// Batch steps several decoding sessions (States) by one token each in one forward pass:
// their rows go through every weight matrix together (one matrix product per layer for
// all of them, so each weight is read once per step, not once per session), while each
// row attends only to its own session's KV. It is how a server interleaves the decode
// steps of concurrent requests (continuous batching).
//
// With fewer rows than the kernels' GEMM threshold (40 for q8_0, 28 for q4_0, 12 for
// float weights on AVX-512) the matrix-vector kernels compute every row exactly as for
// one token, so each session's logits are bit-identical to State.Feed's; from the
// threshold on, the packed GEMM sums in another order (float rounding, relative
// differences of order 1e-6). A Batch is not safe for concurrent use; the States it
// steps must not be used concurrently with Feed either.
type Batch struct {
	m      *Model
	s      *scratch
	x      []float32
	logits []float32
	pos    []int
	rows   []int
	base   []int
	kvs    []*KV
	sorted []bool
}

// NewBatch returns a Batch with buffers for up to maxRows sessions (they grow as
// needed).
func (m *Model) NewBatch(maxRows int) *Batch {
	b := &Batch{m: m, s: m.newScratch(max(maxRows, 1))}
	b.grow(max(maxRows, 1))
	return b
}

func (b *Batch) grow(n int) {
	if n <= len(b.pos) {
		return
	}
	c := &b.m.Config
	b.x = make([]float32, n*c.Dim)
	b.logits = make([]float32, n*c.Vocab)
	b.pos, b.rows, b.base = make([]int, n), make([]int, n), make([]int, n)
	b.kvs, b.sorted = make([]*KV, n), make([]bool, n)
	b.s.grow(n)
}

// Feed appends tokens[i] to states[i] for every i, in one forward pass, and leaves each
// state's logits after its new token in states[i].Logits(). The states must be distinct
// sessions of this model. On an error no state has advanced.
func (b *Batch) Feed(ctx context.Context, states []*State, tokens []int) error {
	n := len(states)
	if n == 0 || len(tokens) != n {
		return fmt.Errorf("%w: Batch.Feed of %d states and %d tokens", ErrInvalid, n, len(tokens))
	}
	c := &b.m.Config
	seen := make(map[*KV]bool, n)
	for i, st := range states {
		switch {
		case st == nil || st.m != b.m:
			return fmt.Errorf("%w: Batch.Feed state %d is not a session of this model", ErrInvalid, i)
		case seen[st.KV]:
			return fmt.Errorf("%w: Batch.Feed state %d shares its KV with another", ErrInvalid, i)
		case st.next >= c.Ctx:
			return fmt.Errorf("%w: Batch.Feed state %d is at the end of the context (%d)", ErrInvalid, i, c.Ctx)
		case tokens[i] < 0 || tokens[i] >= c.Vocab:
			return fmt.Errorf("%w: token id %d outside vocabulary of %d", ErrInvalid, tokens[i], c.Vocab)
		}
		seen[st.KV] = true
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.grow(n)
	x := b.x[:n*c.Dim]
	if err := b.m.Embed(x, tokens); err != nil {
		return err
	}
	pos, rows, base, kvs, sorted := b.pos[:n], b.rows[:n], b.base[:n], b.kvs[:n], b.sorted[:n]
	for i, st := range states {
		kv := st.KV
		kv.Reserve(1)
		base[i] = kv.Len()
		rows[i], pos[i] = kv.Len(), st.next
		kv.Pos = append(kv.Pos, st.next)
		kvs[i], sorted[i] = kv, sortedPos(kv.Pos)
	}
	undo := func() {
		for i, kv := range kvs {
			kv.Pos = kv.Pos[:base[i]]
		}
	}
	s := b.s
	s.kvs, s.kvSorted = kvs, sorted
	defer func() { s.kvs, s.kvSorted = nil, nil; clear(b.kvs) }()
	var so StepOptions
	for l := 0; l < c.Layers; l++ {
		if err := ctx.Err(); err != nil {
			undo()
			return err
		}
		if err := s.layer(l, x, pos, rows, nil, &so); err != nil {
			undo()
			return err
		}
	}
	if err := b.m.logits(b.logits[:n*c.Vocab], x, s.xb, n); err != nil {
		undo()
		return err
	}
	for i, st := range states {
		copy(st.logits, b.logits[i*c.Vocab:(i+1)*c.Vocab])
		st.next++
	}
	return nil
}

// Logits returns the logits after the session's last token (aliasing the State, valid
// until the next Feed or Batch.Feed; zero before any).
func (st *State) Logits() []float32 { return st.logits }
