package blend

import (
	"context"
	"sync"
	"time"

	"github.com/ragkv/ragkv/model"
)

// Batched prefill. Concurrent prefills take turns on the engine slots layer by layer
// (sched.go); with a batcher, a prefill about to run a layer step posts it, and whichever
// prefill gets a slot runs every posted step of the same layer together in one
// model.Stepper.LayerStepMulti call — the rows of several requests' recompute sets (and
// their query tokens) through each weight matrix in one matrix product, each request
// attending to its own KV — then signals their owners, which go on to their next step
// without having held the slot. A step whose owner gets the slot before another runs it
// runs it itself (with whatever else is posted at its layer), after running the steps
// posted at lower layers, layer by layer, until those prefills have caught up with it. Steps larger than
// batchGroupRows (full prefills: their matrix products are large already), smaller than
// batchGroupMin and steps with Outside run alone.
//
// batchGroupMin is above every kernel GEMM threshold (at most 40 rows): a step that joins
// a batch takes the GEMM path alone too, so that with int8-GEMM weights (q8_0 on the SIMD
// paths) its results are bit for bit those of the step alone (model.LayerStepMulti);
// with float weights they differ by float rounding (the GEMM's tail panels, relative
// differences of order 1e-8).

const (
	// batchGroupMin and batchGroupRows bound the steps that join a batch; batchRows
	// bounds a batch.
	batchGroupMin  = 64
	batchGroupRows = 512
	batchRows      = 4096
	// batchWait is how long a prefill holding a slot waits for the members of its last
	// batch to post their next step (they go on without a slot and are woken by the
	// batch's end: without the wait it would run its next step alone before they post).
	batchWait = 2 * time.Millisecond
)

type prefillBatcher struct {
	mu      sync.Mutex
	posted  chan struct{} // signalled at each post (cap 1)
	pending []*batchStep
	// Counters (tests, metrics): batches run and the steps they held.
	batches, steps int
}

// batchStep is one posted layer step; done is closed once it ran (err its outcome).
type batchStep struct {
	ctx   context.Context
	gate  *ticket // the owner's
	l     int
	g     model.StepGroup
	taken bool
	done  chan struct{}
	err   error
}

// joinable reports whether a step of n rows with o may join a batch.
func joinable(n int, o *model.StepOptions) bool {
	return n >= batchGroupMin && n <= batchGroupRows && (o == nil || o.Outside == nil)
}

func newPrefillBatcher() *prefillBatcher {
	return &prefillBatcher{posted: make(chan struct{}, 1)}
}

// step runs layer l for g (the prefill's rows, on its own KV) holding gate or, if
// another prefill holding a slot runs it first, without it; st is the caller's Stepper.
// *last is the size of the last batch this caller ran (updated): holding a slot, it
// waits up to batchWait for as many steps to be posted at layer l.
func (b *prefillBatcher) step(ctx context.Context, gate *ticket, st *model.Stepper, l int, g model.StepGroup, last *int) error {
	s := &batchStep{ctx: ctx, gate: gate, l: l, g: g, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, s)
	b.mu.Unlock()
	select {
	case b.posted <- struct{}{}:
	default:
	}
	granted, err := gate.yieldOr(ctx, s.done)
	if err != nil {
		// Cancelled while waiting: withdraw the step, or wait until the prefill running
		// it is done with the buffers.
		b.mu.Lock()
		if !s.taken {
			b.remove(s)
			b.mu.Unlock()
			return err
		}
		b.mu.Unlock()
		<-s.done
		return err
	}
	if !granted {
		<-s.done // ran by another (closed already)
		return s.err
	}
	// Holding a slot: first let the prefills behind (posted at lower layers) catch up,
	// running their steps layer by layer, so that they then go on in one batch with this
	// one (lockstep: without it the first prefill in order runs every layer before the
	// others start theirs, and steps seldom meet at a layer).
	for ctx.Err() == nil {
		lo := b.lowestBelow(l)
		if lo < 0 {
			break
		}
		batch := b.take(lo, nil)
		if len(batch) == 0 {
			break
		}
		b.run(st, lo, batch, gate)
		b.await(lo+1, len(batch))
	}
	// Then run the steps posted at layer l (this one among them, unless another holder
	// has taken it meanwhile).
	if *last > 1 {
		b.await(l, *last)
	}
	if batch := b.take(l, s); len(batch) > 0 {
		*last = len(batch)
		b.run(st, l, batch, gate)
	}
	<-s.done
	return s.err
}

// lowestBelow returns the lowest layer below l with a live posted step not taken (−1:
// none).
func (b *prefillBatcher) lowestBelow(l int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	lo := -1
	for _, p := range b.pending {
		if p.l < l && !p.taken && p.ctx.Err() == nil && (lo < 0 || p.l < lo) {
			lo = p.l
		}
	}
	return lo
}

// take marks the live steps posted at layer l (and own, live or not) taken, up to
// batchRows rows, and returns them.
func (b *prefillBatcher) take(l int, own *batchStep) []*batchStep {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch []*batchStep
	rows := 0
	for _, p := range b.pending {
		if p.l == l && !p.taken && rows+len(p.g.Pos) <= batchRows && (p == own || p.ctx.Err() == nil) {
			p.taken = true
			batch = append(batch, p)
			rows += len(p.g.Pos)
		}
	}
	if len(batch) > 0 {
		kept := b.pending[:0]
		for _, p := range b.pending {
			if !p.taken {
				kept = append(kept, p)
			}
		}
		clear(b.pending[len(kept):])
		b.pending = kept
		b.batches++
		b.steps += len(batch)
	}
	return batch
}

// await waits until want untaken steps are posted at layer l, at most batchWait.
func (b *prefillBatcher) await(l, want int) {
	var timer *time.Timer
	for {
		b.mu.Lock()
		n := 0
		for _, p := range b.pending {
			if p.l == l && !p.taken {
				n++
			}
		}
		b.mu.Unlock()
		if n >= want {
			break
		}
		if timer == nil {
			timer = time.NewTimer(batchWait)
			defer timer.Stop()
		}
		select {
		case <-b.posted:
		case <-timer.C:
			return
		}
	}
}

// run computes the batch's steps and signals their owners; holder (nil in tests) is the
// ticket holding the slot. Each step's owner is credited its share of the time (by rows)
// and the holder debited the others'.
func (b *prefillBatcher) run(st *model.Stepper, l int, batch []*batchStep, holder *ticket) {
	var err error
	t0 := time.Now()
	if len(batch) > 1 {
		groups := make([]model.StepGroup, len(batch))
		for i, p := range batch {
			groups[i] = p.g
		}
		err = st.LayerStepMulti(context.Background(), l, groups)
	}
	rows := 0
	for _, p := range batch {
		rows += len(p.g.Pos)
	}
	d := time.Since(t0)
	for _, p := range batch {
		if len(batch) == 1 || err != nil {
			// Alone (or, after a failed batch, each on its own for its own error).
			t := time.Now()
			p.err = st.LayerStep(p.ctx, l, p.g.X, p.g.Pos, p.g.Rows, p.g.KV, p.g.Opts)
			if len(batch) > 1 {
				d += time.Since(t)
			}
		}
	}
	for _, p := range batch {
		if holder != nil && p.gate != holder {
			share := time.Duration(float64(d) * float64(len(p.g.Pos)) / float64(rows))
			if len(batch) == 1 {
				share = d
			}
			p.gate.credit += share
			holder.credit -= share
		}
		close(p.done)
	}
}

func (b *prefillBatcher) remove(s *batchStep) {
	for i, p := range b.pending {
		if p == s {
			b.pending = append(b.pending[:i], b.pending[i+1:]...)
			return
		}
	}
}

// counts returns the batches run and the steps they held.
func (b *prefillBatcher) counts() (batches, steps int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batches, b.steps
}

// PrefillBatches reports the batches of prefill layer steps the engine ran and the steps
// they held (steps / batches: the mean batch; both 0 without batching).
func (e *Engine) PrefillBatches() (batches, steps int) {
	if e.pb == nil {
		return 0, 0
	}
	return e.pb.counts()
}
