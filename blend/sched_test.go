package blend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// genResult is what one Generate call produced.
type genResult struct {
	tokens []int
	logits [][]float32
	text   string
	done   GenerateDone
}

func runGenerate(ctx context.Context, e *Engine, in *GenerateInput) (*genResult, error) {
	r := &genResult{}
	err := e.Generate(ctx, in, func(ev GenerateEvent) error {
		switch {
		case ev.Prefill != nil:
		case ev.Done != nil:
			r.done = *ev.Done
			r.text += ev.Text
		default:
			r.tokens = append(r.tokens, ev.Token)
			r.text += ev.Text
			r.logits = append(r.logits, append([]float32(nil), ev.Logits...))
		}
		return nil
	})
	return r, err
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var v float64
			for _, m := range mf.GetMetric() {
				v += metricValue(m)
			}
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// generateInputs are n greedy generations over different prompts and lengths.
func generateInputs(n int) []*GenerateInput {
	var ins []*GenerateInput
	for i := range n {
		ins = append(ins, &GenerateInput{
			Prefill: &PrefillInput{System: "A story.", Chunks: []ChunkRef{{Text: fmt.Sprintf("Tom had %d red balls.", i+1)}, {Text: "The dog was big."}},
				Query: []string{"The dog", "Tom", "Once upon a time", "Lily"}[i%4], Method: []Method{CacheBlend, Full, CacheCraft}[i%3]},
			MaxTokens: 12 + 5*(i%4), IgnoreEOS: i%2 == 0, Logits: true,
		})
	}
	return ins
}

// TestConcurrentGenerateEqualsAlone: greedy generations running at once — decoded
// together in batched steps — produce the tokens and logits (bit for bit: fewer rows
// than the f32 GEMM threshold) that each produces alone, on the serial engine.
func TestConcurrentGenerateEqualsAlone(t *testing.T) {
	const n = 8
	ctx := context.Background()
	alone := testEngine(t, EngineOptions{Serial: true})
	reg := prometheus.NewRegistry()
	e := testEngine(t, EngineOptions{Registerer: reg})
	// Every chunk cached in both engines first (a chunk computed now is f32, one read
	// from the cache f16): the generations then see the same KVs in any order.
	for _, eng := range []*Engine{alone, e} {
		for _, in := range generateInputs(n) {
			if _, err := eng.Prefill(ctx, in.Prefill); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := make([]*genResult, n)
	for i, in := range generateInputs(n) {
		r, err := runGenerate(ctx, alone, in)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = r
	}
	// Equality is checked on every attempt; batching (which needs the generations to
	// overlap in time) gets up to 3 attempts.
	for attempt := range 3 {
		steps0 := counterValue(t, reg, "ragkv_blend_decode_steps_total")
		rows0 := counterValue(t, reg, "ragkv_blend_decode_rows_total")
		got := make([]*genResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, in := range generateInputs(n) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[i], errs[i] = runGenerate(ctx, e, in)
			}()
		}
		close(start)
		wg.Wait()
		total := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("generation %d: %v", i, errs[i])
			}
			g, w := got[i], want[i]
			if fmt.Sprint(g.tokens) != fmt.Sprint(w.tokens) || g.text != w.text || g.done.Reason != w.done.Reason || g.done.Tokens != w.done.Tokens {
				t.Fatalf("generation %d: %v %q (%s) batched, %v %q (%s) alone", i, g.tokens, g.text, g.done.Reason, w.tokens, w.text, w.done.Reason)
			}
			for j := range g.logits {
				if d := maxAbsDiff(g.logits[j], w.logits[j]); d != 0 {
					t.Fatalf("generation %d token %d: logits differ by %g", i, j, d)
				}
			}
			total += len(g.tokens)
		}
		steps := counterValue(t, reg, "ragkv_blend_decode_steps_total")
		rows := counterValue(t, reg, "ragkv_blend_decode_rows_total")
		steps -= steps0
		rows -= rows0
		if rows > float64(total) {
			t.Fatalf("%g rows stepped for %d tokens", rows, total)
		}
		if steps > 0 && rows/steps > 1.5 {
			t.Logf("%d generations, %d tokens: %g steps, mean batch %.1f (attempt %d)", n, total, steps, rows/steps, attempt+1)
			return
		}
		t.Logf("attempt %d: decode steps %g, rows %g: not batched (a loaded machine can run the generations one after another)", attempt+1, steps, rows)
	}
	t.Fatalf("the generations were not batched in 3 attempts")
}

// TestGenerateCancelLeavesBatch: a generation whose context is cancelled, and one whose
// caller stops taking events, leave the batch; the others finish unchanged.
func TestGenerateCancelLeavesBatch(t *testing.T) {
	ctx := context.Background()
	e := testEngine(t, EngineOptions{})
	alone := testEngine(t, EngineOptions{Serial: true})
	ins := generateInputs(3)
	for _, in := range ins {
		in.MaxTokens, in.IgnoreEOS = 40, true
	}
	want, err := runGenerate(ctx, alone, ins[0])
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var errCancel, errStop error
	var got *genResult
	stop := errors.New("client went away")
	wg.Add(3)
	go func() {
		defer wg.Done()
		n := 0
		errCancel = e.Generate(cctx, ins[1], func(ev GenerateEvent) error {
			if ev.Prefill == nil {
				if n++; n == 3 {
					cancel()
				}
			}
			return nil
		})
	}()
	go func() {
		defer wg.Done()
		n := 0
		errStop = e.Generate(ctx, ins[2], func(ev GenerateEvent) error {
			if ev.Prefill == nil {
				if n++; n == 5 {
					return stop
				}
			}
			return nil
		})
	}()
	go func() {
		defer wg.Done()
		var err error
		if got, err = runGenerate(ctx, e, ins[0]); err != nil {
			t.Error(err)
		}
	}()
	wg.Wait()
	if !errors.Is(errCancel, context.Canceled) || !errors.Is(errStop, stop) {
		t.Fatalf("cancelled: %v; stopped: %v", errCancel, errStop)
	}
	if got == nil || fmt.Sprint(got.tokens) != fmt.Sprint(want.tokens) {
		t.Fatalf("the remaining generation changed")
	}
	// The decode loop goes idle once everything left.
	deadline := time.Now().Add(5 * time.Second)
	for {
		e.dmu.Lock()
		idle := !e.decoding
		e.dmu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the decode loop still runs after every generation left")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestEngineBusy: beyond MaxQueue requests a request fails at once with ErrBusy.
func TestEngineBusy(t *testing.T) {
	ctx := context.Background()
	e := testEngine(t, EngineOptions{MaxQueue: 1})
	release := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		first := true
		done <- e.Generate(ctx, &GenerateInput{Prefill: &PrefillInput{Query: "Tom had a dog."}, MaxTokens: 4, IgnoreEOS: true},
			func(ev GenerateEvent) error {
				if first {
					first = false
					close(started)
					<-release // hold the engine's only queue place
				}
				return nil
			})
	}()
	<-started
	if _, err := e.Prefill(ctx, &PrefillInput{Query: "Lily"}); !errors.Is(err, ErrBusy) {
		t.Fatalf("prefill with a full queue: %v, want ErrBusy", err)
	}
	if err := e.Generate(ctx, &GenerateInput{Prefill: &PrefillInput{Query: "Lily"}}, func(GenerateEvent) error { return nil }); !errors.Is(err, ErrBusy) {
		t.Fatalf("generate with a full queue: %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := e.Prefill(ctx, &PrefillInput{Query: "Lily"}); err != nil {
		t.Fatalf("after the queue drained: %v", err)
	}
}

// TestArbiterOrder: a free slot goes to the waiting prefill with the smallest key
// (shortest with aging); a holder yields only to work that should go first; decode
// steps and prefills share the slot by the decode share.
func TestArbiterOrder(t *testing.T) {
	ctx := context.Background()
	a := newArbiter(1, 0.5, 0)
	hold := a.newTicket(false, 100)
	if err := hold.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int64
	var wg sync.WaitGroup
	waiting := func(n int) {
		for {
			a.mu.Lock()
			k := len(a.prefill) + len(a.decode)
			a.mu.Unlock()
			if k == n {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	for i, key := range []int64{300, 50, 200} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tk := a.newTicket(false, key)
			if err := tk.acquire(ctx); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, key)
			mu.Unlock()
			tk.release()
		}()
		waiting(i + 1)
	}
	// The holder (key 100) yields to key 50 only; then it holds again and is released.
	if err := hold.yield(ctx); err != nil {
		t.Fatal(err)
	}
	if !hold.held {
		t.Fatal("yield returned without the slot")
	}
	mu.Lock()
	if fmt.Sprint(order) != "[50]" {
		t.Fatalf("after the yield: %v ran, want [50]", order)
	}
	mu.Unlock()
	if err := hold.yield(ctx); err != nil { // nothing waiting orders before 100
		t.Fatal(err)
	}
	hold.release()
	wg.Wait()
	if fmt.Sprint(order) != "[50 200 300]" {
		t.Fatalf("order %v, want [50 200 300]", order)
	}

	// A cancelled waiter leaves the queue.
	if err := hold.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- a.newTicket(false, 1).acquire(cctx) }()
	waiting(1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	waiting(0)
	// Decode vs prefill: a decode step waiting while a prefill holds goes next when
	// decode is owed time; after decode had its share, a waiting prefill goes first.
	dec := a.newTicket(true, 0)
	decDone := make(chan struct{})
	go func() {
		_ = dec.acquire(ctx)
		close(decDone)
	}()
	waiting(1)
	yielded := make(chan struct{})
	go func() {
		_ = hold.yield(ctx) // the balance is ≤ 0 (prefill time only): decode is owed
		close(yielded)
	}()
	<-decDone
	waiting(1) // the prefill waits for its next turn
	time.Sleep(10 * time.Millisecond)
	a.mu.Lock()
	before := a.balance
	a.mu.Unlock()
	dec.release() // decode's hold counts for it (and it no longer waits): the prefill goes
	<-yielded
	if !hold.held {
		t.Fatal("the prefill did not get the slot back")
	}
	a.mu.Lock()
	bal := a.balance
	a.mu.Unlock()
	if bal <= before {
		t.Fatalf("balance %v after a decode hold, %v before: the hold did not count for decode", bal, before)
	}
	hold.release()
	if a.busy() != 0 {
		t.Fatalf("%d slots still held", a.busy())
	}
}

// TestArbiterDecodeOwedDuringHold: a prefill that took the slot while decode had more
// than its share yields to a waiting decode step once its own hold has used up that
// credit, even while other prefills (which it orders before) wait too.
func TestArbiterDecodeOwedDuringHold(t *testing.T) {
	ctx := context.Background()
	a := newArbiter(1, 0.5, 0)
	a.balance = 10 * time.Millisecond // decode ahead
	hold := a.newTicket(false, 100)
	if err := hold.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	later := a.newTicket(false, 200)
	laterDone := make(chan error, 1)
	go func() { laterDone <- later.acquire(ctx) }()
	dec := a.newTicket(true, 0)
	decGot := make(chan struct{})
	go func() {
		_ = dec.acquire(ctx)
		close(decGot)
	}()
	for {
		a.mu.Lock()
		k := len(a.prefill) + len(a.decode)
		a.mu.Unlock()
		if k == 2 {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	// Not yet: 5ms of this hold leave decode 7.5ms ahead. The check needs the host to
	// run the sleep roughly on time (a paused vCPU can make it last past the 20ms that
	// use the credit up; then the yield rightly hands over, and this step is skipped).
	time.Sleep(5 * time.Millisecond)
	if time.Since(hold.since) < 12*time.Millisecond {
		early := make(chan error, 1)
		go func() { early <- hold.yield(ctx) }()
		select {
		case err := <-early:
			if err != nil || !hold.held {
				t.Fatalf("early yield: %v, held %v", err, hold.held)
			}
		case <-decGot:
			if time.Since(hold.since) >= 20*time.Millisecond {
				t.Skip("the host paused this test past decode's credit; the early-yield check cannot run")
			}
			t.Fatal("decode got the slot while still ahead of its share")
		case <-time.After(5 * time.Second):
			t.Fatal("the early yield blocked")
		}
		select {
		case <-decGot:
			t.Fatal("decode got the slot while still ahead of its share")
		default:
		}
	}
	// 25ms of hold (12.5ms of decode's share) use the credit up: decode goes next.
	time.Sleep(20 * time.Millisecond)
	yielded := make(chan error, 1)
	go func() { yielded <- hold.yield(ctx) }()
	select {
	case <-decGot:
	case <-time.After(5 * time.Second):
		t.Fatal("decode owed time did not get the slot from the holding prefill")
	}
	dec.release()
	if err := <-yielded; err != nil || !hold.held {
		t.Fatalf("the prefill after decode: %v, held %v", err, hold.held)
	}
	hold.release()
	if err := <-laterDone; err != nil {
		t.Fatal(err)
	}
	later.release()
	if a.busy() != 0 {
		t.Fatalf("%d slots still held", a.busy())
	}
}
