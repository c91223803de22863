package blend

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/ragkv/ragkv/model"
)

// Continuous batched decode. Every active generation is a seq owned by the engine's
// decode loop, one goroutine that runs while any seq is active (started by the first
// to join, returning when the last leaves). Each iteration samples the next token of
// every seq whose caller has room for events, sends the events, and feeds all those
// tokens in one batched forward pass (model.Batch: the rows go through the weight
// matrices together, each attends to its own KV) under an engine slot of the decode
// class (sched.go), kept across steps until its quantum is spent and a prefill should
// go. A seq joins at the next iteration and leaves when it
// ends (EOS, max tokens, end of the context), when its context is cancelled or when its
// caller stops taking events. At temperature 0 the tokens are those of a generation
// decoded alone: model.Batch computes each row as State.Feed does (bit for bit below
// the kernels' GEMM threshold, see model.Batch).

// seqBuffer is the events a seq may have waiting for its caller.
const seqBuffer = 16

type seqEvent struct {
	ev  GenerateEvent
	err error
}

type seq struct {
	ctx        context.Context
	st         *model.State
	smp        *model.Sampler
	logits     []float32 // the distribution of the next token
	prev       int
	maxTok     int
	ignoreEOS  bool
	wantLogits bool
	text       utf8Buffer
	done       GenerateDone
	t0         time.Time
	out        chan seqEvent
	gone       atomic.Bool // the caller has left
	finished   bool
}

// decode runs a generation on the decode loop and emits its events.
func (e *Engine) decode(ctx context.Context, in *GenerateInput, h *handle, maxTok int, emit func(GenerateEvent) error) error {
	m := e.st.m
	q := &seq{ctx: ctx, st: m.NewState(h.kv, maxTok), smp: model.NewSampler(in.Temperature, in.TopP, in.Seed),
		logits: append([]float32(nil), h.logits...), prev: h.last, maxTok: maxTok, ignoreEOS: in.IgnoreEOS,
		wantLogits: in.Logits, t0: time.Now(), out: make(chan seqEvent, seqBuffer)}
	e.join(q)
	defer func() {
		q.gone.Store(true)
		e.poke()
	}()
	for {
		select {
		case se := <-q.out:
			e.poke() // room for more events
			if se.err != nil {
				return se.err
			}
			if d := se.ev.Done; d != nil && e.met != nil {
				e.met.generated.Add(float64(d.Tokens))
				e.met.decodeSeconds.Add(d.Decode.Seconds())
			}
			if err := emit(se.ev); err != nil || se.ev.Done != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// join adds q to the decode loop (starting it if it is not running).
func (e *Engine) join(q *seq) {
	e.dmu.Lock()
	e.joining = append(e.joining, q)
	if !e.decoding {
		e.decoding = true
		go e.decodeLoop()
	}
	e.dmu.Unlock()
	e.poke()
}

// poke wakes the decode loop if it waits.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// decodeLoop steps the active seqs until none is left.
func (e *Engine) decodeLoop() {
	m := e.st.m
	if e.batch == nil {
		e.batch = m.NewBatch(min(e.o.MaxBatch, 16))
	}
	gate := e.arb.newTicket(true, 0)
	var active, ready, fed []*seq
	var states []*model.State
	var toks []int
	rr := 0
	for {
		e.dmu.Lock()
		active = append(active, e.joining...)
		clear(e.joining)
		e.joining = e.joining[:0]
		kept := active[:0]
		for _, q := range active {
			if !q.finished {
				kept = append(kept, q)
			}
		}
		clear(active[len(kept):])
		active = kept
		if len(active) == 0 {
			e.decoding = false
			e.dmu.Unlock()
			gate.release()
			return
		}
		e.dmu.Unlock()

		// The seqs to step: those whose caller is still there and has room for a token
		// and the end (at most MaxBatch, taking turns beyond).
		ready = ready[:0]
		for _, q := range active {
			switch {
			case q.gone.Load():
				q.finished = true
			case q.ctx.Err() != nil:
				q.fail(q.ctx.Err())
			case cap(q.out)-len(q.out) >= 2:
				ready = append(ready, q)
			}
		}
		if len(ready) == 0 {
			gate.release() // not while waiting for callers
			<-e.wake
			continue
		}
		if len(ready) > e.o.MaxBatch {
			rr %= len(ready)
			ready = append(ready[rr:], ready[:rr]...)[:e.o.MaxBatch]
			rr += e.o.MaxBatch
		}
		fed, states, toks = fed[:0], states[:0], toks[:0]
		for _, q := range ready {
			if tok, ok := q.next(m); ok {
				fed, states, toks = append(fed, q), append(states, q.st), append(toks, tok)
			}
		}
		if len(fed) == 0 {
			continue
		}
		// The slot is kept across steps (and sampling) until the quantum is spent and a
		// prefill should go (cannot fail: no deadline).
		_ = gate.yield(context.Background())
		err := e.batch.Feed(context.Background(), states, toks)
		if e.met != nil {
			e.met.decodeSteps.Inc()
			e.met.decodeRows.Add(float64(len(fed)))
		}
		for _, q := range fed {
			if err != nil {
				q.fail(fmt.Errorf("blend: decode step: %w", err))
				continue
			}
			q.logits = q.st.Logits()
		}
	}
}

// next samples q's next token and sends its events; ok reports that the token must be
// fed (the generation goes on).
func (q *seq) next(m *model.Model) (tok int, ok bool) {
	tok = q.smp.Sample(q.logits)
	if !q.ignoreEOS && (tok == m.Tok.EOS() || tok == m.Tok.BOS()) {
		q.end("eos")
		return 0, false
	}
	q.done.Tokens++
	ev := GenerateEvent{Token: tok, Text: q.text.add(m.Tok.Piece(q.prev, tok))}
	if q.wantLogits {
		ev.Logits = append([]float32(nil), q.logits...)
	}
	q.out <- seqEvent{ev: ev}
	q.prev = tok
	switch {
	case q.done.Tokens >= q.maxTok:
		q.end("max_tokens")
		return 0, false
	case q.st.NextPos() >= m.Config.Ctx:
		q.end("context")
		return 0, false
	}
	return tok, true
}

func (q *seq) end(reason string) {
	q.done.Reason = reason
	q.done.Decode = time.Since(q.t0)
	d := q.done
	q.out <- seqEvent{ev: GenerateEvent{Done: &d, Text: q.text.flush()}}
	q.finished = true
}

// fail ends q with err (the channel has room: its caller takes events until an error).
func (q *seq) fail(err error) {
	select {
	case q.out <- seqEvent{err: err}:
	default:
	}
	q.finished = true
}
