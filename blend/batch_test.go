package blend

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model"
)

func openStoriesQ8(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.Open(filepath.Join(shared.Path(t), "models/stories260K/stories260K-q8_0.gguf"), model.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// batchInputs are n prefills whose layer steps join batches: full prefills of 100 to
// 300 tokens and CacheBlend ones recomputing half of theirs, over different chunks.
func batchInputs(m *model.Model, n int) []*PrefillInput {
	ratio := 0.5
	var ins []*PrefillInput
	for i := range n {
		var chunks []ChunkRef
		for c := range 2 + i%3 {
			toks := make([]int, 50)
			for j := range toks {
				toks[j] = 3 + (j*7919+c*104729+i*31)%(m.Config.Vocab-3)
			}
			chunks = append(chunks, ChunkRef{Tokens: toks})
		}
		meth := []Method{Full, CacheBlend}[i%2]
		ins = append(ins, &PrefillInput{Chunks: chunks, QueryTokens: []int{5 + i, 9, 11 + i}, Method: meth, Ratio: &ratio})
	}
	return ins
}

// TestConcurrentPrefillsBatched: prefills running at once, their layer steps batched
// (several prefills' rows through each weight matrix together), produce bit for bit the
// logits and KV each produces alone; batches of more than one step happened.
func TestConcurrentPrefillsBatched(t *testing.T) {
	if cpu.Active() == cpu.Generic {
		t.Skip("bit-identity of batched steps needs the int8 GEMM of the SIMD paths")
	}
	const n = 6
	ctx := context.Background()
	m := openStoriesQ8(t)
	alone := engineOver(t, m, EngineOptions{NoPrefillBatch: true})
	e := engineOver(t, m, EngineOptions{})
	for _, eng := range []*Engine{alone, e} { // chunks cached in both
		for _, in := range batchInputs(m, n) {
			if _, err := eng.Prefill(ctx, in); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := make([]*PrefillOutput, n)
	for i, in := range batchInputs(m, n) {
		out, err := alone.Prefill(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = out
	}
	// Steps meet at a layer only when the prefills overlap in time. On an idle machine
	// the first prefill in key order can run every layer before the others have posted
	// a step (lockstep ordering is not built), so each attempt loads the CPUs with
	// spinning goroutines, as a busy server would be, until the prefills are done.
	for attempt := range 8 {
		stop := make(chan struct{})
		var spin sync.WaitGroup
		for range 2 * runtime.GOMAXPROCS(0) {
			spin.Add(1)
			go func() {
				defer spin.Done()
				for x := 0; ; x++ {
					select {
					case <-stop:
						return
					default:
					}
					for range 1 << 12 {
						x ^= x << 1
					}
				}
			}()
		}
		b0, s0 := e.pb.counts()
		got := make([]*PrefillOutput, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, in := range batchInputs(m, n) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[i], errs[i] = e.Prefill(ctx, in)
			}()
		}
		close(start)
		wg.Wait()
		close(stop)
		spin.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("prefill %d: %v", i, errs[i])
			}
			if d := maxAbsDiff(got[i].Logits, want[i].Logits); d != 0 || got[i].FirstToken != want[i].FirstToken {
				t.Fatalf("prefill %d (%s): logits differ by %g batched", i, want[i].Stats.Method, d)
			}
			kvEqual(t, "prefill "+string(want[i].Stats.Method), got[i].kv, want[i].kv)
		}
		b1, s1 := e.pb.counts()
		if batches, steps := b1-b0, s1-s0; steps > batches {
			t.Logf("%d prefills: %d steps in %d batches (attempt %d)", n, steps, batches, attempt+1)
			return
		}
		t.Logf("attempt %d: no batch of more than one step", attempt+1)
	}
	t.Fatal("the prefills' steps were not batched in 8 attempts")
}

// TestBatchedPrefillCancel: a prefill cancelled while its steps are batched with others
// fails with its context's error; the others finish with the logits they get alone.
func TestBatchedPrefillCancel(t *testing.T) {
	if cpu.Active() == cpu.Generic {
		t.Skip("bit-identity of batched steps needs the int8 GEMM of the SIMD paths")
	}
	const n = 5
	ctx := context.Background()
	m := openStoriesQ8(t)
	alone := engineOver(t, m, EngineOptions{NoPrefillBatch: true})
	e := engineOver(t, m, EngineOptions{})
	want := make([]*PrefillOutput, n)
	for _, eng := range []*Engine{alone, e, alone} { // chunks cached first, then want
		for i, in := range batchInputs(m, n) {
			out, err := eng.Prefill(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			want[i] = out
		}
	}
	cancelledOnce := false
	for attempt := 0; attempt < 5 && !cancelledOnce; attempt++ {
		cctx, cancel := context.WithCancel(ctx)
		got := make([]*PrefillOutput, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		b0, s0 := e.pb.counts()
		for i, in := range batchInputs(m, n) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c := ctx
				if i == 1 {
					c = cctx
				}
				got[i], errs[i] = e.Prefill(c, in)
			}()
		}
		close(start)
		// Cancel once the first batch of several steps ran (the prefills are under way).
		for {
			b, s := e.pb.counts()
			if s-s0 > b-b0 || s-s0 > 3*n {
				break
			}
			runtimeYield()
		}
		cancel()
		wg.Wait()
		for i := range n {
			if i == 1 {
				if errs[i] != nil {
					if !errors.Is(errs[i], context.Canceled) {
						t.Fatalf("cancelled prefill: %v", errs[i])
					}
					cancelledOnce = true
				}
				continue
			}
			if errs[i] != nil {
				t.Fatalf("prefill %d: %v", i, errs[i])
			}
			if d := maxAbsDiff(got[i].Logits, want[i].Logits); d != 0 {
				t.Fatalf("prefill %d: logits differ by %g after another was cancelled", i, d)
			}
		}
	}
	if !cancelledOnce {
		t.Fatal("the cancelled prefill finished before its cancellation in 5 attempts")
	}
	// Nothing is left posted.
	e.pb.mu.Lock()
	left := len(e.pb.pending)
	e.pb.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d steps left posted", left)
	}
}

// TestBatchRunFallsBack: a batch with a bad step (rows outside its KV) runs every step
// alone: the good ones get their results, the bad one its own error.
func TestBatchRunFallsBack(t *testing.T) {
	m := openStoriesQ8(t)
	ctx := context.Background()
	c := &m.Config
	var steps []*batchStep
	var wantX [][]float32
	for i := range 3 {
		toks := make([]int, 80)
		for j := range toks {
			toks[j] = 1 + (j*13+i*7)%(c.Vocab-1)
		}
		kv, _, err := m.Prefill(ctx, toks, 0, 0, model.ExtendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rows := make([]int, 70)
		for j := range rows {
			rows[j] = j + 10
		}
		if i == 2 {
			rows[5] = 500 // not a row of the KV
		}
		x := make([]float32, len(rows)*c.Dim)
		for j := range x {
			x[j] = float32(j%17)/17 - 0.5
		}
		if i < 2 {
			w := append([]float32(nil), x...)
			if err := m.LayerStep(ctx, 2, w, rows, rows, kv.Clone(), nil); err != nil {
				t.Fatal(err)
			}
			wantX = append(wantX, w)
		}
		steps = append(steps, &batchStep{ctx: ctx, l: 2, g: model.StepGroup{X: x, Pos: rows, Rows: rows, KV: kv}, done: make(chan struct{})})
	}
	newPrefillBatcher().run(m.NewStepper(8), 2, steps, nil)
	for i, s := range steps {
		<-s.done
		if i == 2 {
			if !errors.Is(s.err, model.ErrInvalid) {
				t.Fatalf("bad step: %v", s.err)
			}
			continue
		}
		if s.err != nil {
			t.Fatalf("step %d: %v", i, s.err)
		}
		if d := maxAbsDiff(s.g.X, wantX[i]); d != 0 {
			t.Fatalf("step %d: differs by %g from LayerStep alone", i, d)
		}
	}
}

func runtimeYield() { runtime.Gosched() }
