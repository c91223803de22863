package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pool owns a fixed set of worker goroutines that kernels split their work over. The
// engine creates one Pool and closes it when done. Calls on one Pool (MatMul, Parallel)
// are serialized: a call waits until the previous one has finished. Scratch buffers
// (packed weight panels, activations quantized to 8 bits) belong to the Pool and only
// grow, so steady-state calls allocate nothing. Between calls a worker polls for its next
// task for up to spinWait (yielding to other goroutines) before it blocks, so that a run
// of short calls keeps every core busy.
//
// A function passed to Parallel must not call back into the same Pool: that would wait
// for itself forever.
type Pool struct {
	threads int

	mu       sync.Mutex // serializes kernel calls; guards everything below
	closed   bool
	workers  []chan task // workers[w-1] feeds worker w; the caller runs share 0
	done     sync.WaitGroup
	pending  atomic.Int64 // shares of the current job not finished yet (see wait)
	exited   sync.WaitGroup
	floatAct bool            // see SetFloatActivations
	ggmlAct  bool            // see SetGGMLActivations
	scratch  []workerScratch // per worker, indexed by worker id
	shared   sharedScratch
	cur      call    // the kernel call in progress
	dyn      dynamic // its pieces, taken by the workers in turn
}

// task is one share of a parallel job: Parallel's function, or (ufn nil) the Pool's
// current kernel job p.cur.
type task struct {
	ufn    func(lo, hi int)
	lo, hi int
}

// NewPool starts a pool of threads workers (threads ≤ 0: runtime.GOMAXPROCS(0)). The
// calling goroutine counts as one of them: threads-1 goroutines are started.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, ggmlAct: defaultGGML(), scratch: make([]workerScratch, threads)}
	p.workers = make([]chan task, threads-1)
	for i := range p.workers {
		ch := make(chan task, 1)
		p.workers[i] = ch
		p.exited.Add(1)
		go p.worker(i+1, ch)
	}
	return p
}

func (p *Pool) worker(id int, ch chan task) {
	defer p.exited.Done()
	for {
		t, ok := next(ch)
		if !ok {
			return
		}
		switch {
		case t.ufn == nil && t.lo < 0:
			p.runDynamic(id)
		case t.ufn == nil:
			p.do(id, t.lo, t.hi)
		default:
			t.ufn(t.lo, t.hi)
		}
		p.pending.Add(-1)
		p.done.Done()
	}
}

// spinWait is how long a worker polls for its next task, and the caller for the workers
// to finish, before blocking. A blocked goroutine's thread goes to sleep, and waking it
// takes the OS tens of microseconds (about 50 µs on a 2-vCPU VM, measured): longer than
// many kernel calls of a small model's decode step, which then ran on one core.
const spinWait = 200 * time.Microsecond

// next returns the worker's next task from ch: it polls for up to spinWait (yielding to
// other goroutines as it goes) and then blocks.
func next(ch chan task) (task, bool) {
	var deadline time.Time
	for i := 1; ; i++ {
		select {
		case t, ok := <-ch:
			return t, ok
		default:
		}
		if i%64 == 0 {
			if deadline.IsZero() {
				deadline = time.Now().Add(spinWait)
			} else if time.Now().After(deadline) {
				break
			}
			runtime.Gosched()
		}
	}
	t, ok := <-ch
	return t, ok
}

// wait returns when every worker share of the current job is done, polling for up to
// spinWait before blocking.
func (p *Pool) wait() {
	var deadline time.Time
	for i := 1; p.pending.Load() > 0; i++ {
		if i%64 == 0 {
			if deadline.IsZero() {
				deadline = time.Now().Add(spinWait)
			} else if time.Now().After(deadline) {
				break
			}
			runtime.Gosched()
		}
	}
	p.done.Wait()
}

// Threads is the number of workers (including the calling goroutine).
func (p *Pool) Threads() int { return p.threads }

// Close stops the workers and waits for them to exit. Calls made after Close still work,
// on the calling goroutine only.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, ch := range p.workers {
		close(ch)
	}
	p.exited.Wait()
	p.workers = nil
}

// Parallel runs fn over [0,n) split into contiguous ranges, one per worker, and returns
// when all have finished. fn must not call methods of p.
func (p *Pool) Parallel(n int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.runTasks(n, 1, task{ufn: fn})
}

// run splits [0,n) into at most len(workers)+1 contiguous ranges whose boundaries are
// multiples of align (except n itself) and runs job kind of the current call (p.cur) on
// each, as p.do(worker, lo, hi). p.mu is held. Jobs are described by data in the Pool, not
// by closures, so that dispatching allocates nothing.
func (p *Pool) run(n, align int, kind jobKind) {
	p.cur.kind = kind
	p.runTasks(n, align, task{})
}

func (p *Pool) runTasks(n, align int, t task) {
	if n <= 0 {
		return
	}
	chunks := (n + align - 1) / align
	parts := min(len(p.workers)+1, chunks)
	if parts <= 1 {
		t.lo, t.hi = 0, n
		p.runLocal(t)
		return
	}
	if t.ufn == nil {
		// Kernel jobs are cut into up to dynChunks pieces per worker that the workers
		// take in turn, so that a worker whose core is busy with other work takes fewer.
		p.dyn.n, p.dyn.align = n, align
		p.dyn.pieces = min(chunks, parts*dynChunks)
		p.dyn.next.Store(0)
		t.lo, t.hi = -1, -1
	}
	p.done.Add(parts - 1)
	p.pending.Store(int64(parts - 1))
	for i := 1; i < parts; i++ {
		if t.ufn != nil {
			t.lo = min(n, chunks*i/parts*align)
			t.hi = min(n, chunks*(i+1)/parts*align)
		}
		p.workers[i-1] <- t
	}
	if t.ufn != nil {
		t.lo, t.hi = 0, min(n, chunks/parts*align)
	}
	p.runLocal(t)
	p.wait()
}

// dynChunks is how many pieces per worker a kernel job is cut into.
const dynChunks = 4

// dynamic describes the pieces of the kernel job in progress (see runTasks).
type dynamic struct {
	n, align, pieces int
	next             atomic.Int64
}

// runDynamic runs pieces of the current kernel job until none is left.
func (p *Pool) runDynamic(wid int) {
	d := &p.dyn
	chunks := (d.n + d.align - 1) / d.align
	for {
		i := int(d.next.Add(1) - 1)
		if i >= d.pieces {
			return
		}
		lo := min(d.n, chunks*i/d.pieces*d.align)
		hi := min(d.n, chunks*(i+1)/d.pieces*d.align)
		if lo < hi {
			p.do(wid, lo, hi)
		}
	}
}

func (p *Pool) runLocal(t task) {
	switch {
	case t.ufn == nil && t.lo < 0:
		p.runDynamic(0)
	case t.ufn == nil:
		p.do(0, t.lo, t.hi)
	default:
		t.ufn(t.lo, t.hi)
	}
}

// SetFloatActivations chooses how MatMul treats quantized weights. Off (the default, as
// in ggml), activations are quantized to int8 (ggml's way by default, or per 32-element
// block with SetGGMLActivations(false); see SetActivations) and multiplied with integer
// dot products: fastest, with an error bounded by Σ|w|·amax_block/254 per output.
// On, weights are dequantized to float32 and multiplied with the float32 activations
// (about half the speed for prefill; use it where results must match a float reference).
func (p *Pool) SetFloatActivations(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.floatAct = on
}
