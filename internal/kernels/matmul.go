package kernels

import "fmt"

// workerScratch is one worker's private scratch memory.
type workerScratch struct {
	row  []float32 // one dequantized weight row
	wf   []float32 // packed float W panels
	tile []float32 // one micro-tile, for edge tiles
	wq   []byte    // packed quantized W panels
	ut   []byte    // unpacked quantized rows, before interleaving
}

// sharedScratch is scratch memory shared by the workers of one call.
type sharedScratch struct {
	xf []float32 // packed float X panels
	xq []byte    // quantized, packed X panels
}

// call describes the kernel call in progress, for the workers (see Pool.run).
type call struct {
	kind   jobKind
	out, x []float32
	n      int
	w      *Mat
	npan   int // token panels (GEMM)
}

type jobKind int

const (
	jobPackXF32 jobKind = iota
	jobGemmFloatRows
	jobGemmFloatPanels
	jobPackXQ8
	jobGemmQuantRows
	jobGemmQuantPanels
	jobMatVec
	jobMatVecK
)

// do runs worker wid's share [lo, hi) of the current job.
func (p *Pool) do(wid, lo, hi int) {
	c := &p.cur
	switch c.kind {
	case jobPackXF32:
		p.packXF32Range(lo, hi)
	case jobGemmFloatRows:
		p.gemmFloatRange(wid, lo, hi, 0, c.npan)
	case jobGemmFloatPanels:
		p.gemmFloatRange(wid, 0, c.w.Rows, lo, hi)
	case jobPackXQ8:
		p.packXQ8Range(lo, hi)
	case jobGemmQuantRows:
		p.gemmQuantRange(wid, lo, hi, 0, c.npan)
	case jobGemmQuantPanels:
		p.gemmQuantRange(wid, 0, c.w.Rows, lo, hi)
	case jobMatVec:
		p.matVecRange(wid, lo, hi)
	case jobMatVecK:
		p.matVecKRange(lo, hi)
	}
}

func growF32(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// MatMul computes out[i*w.Rows + r] = Σ_c x[i*w.Cols + c] · W[r][c] for i in [0,n): x is
// n×w.Cols row-major float32 activations (n = tokens; n == 1 is the decode matvec), out is
// caller-owned with len ≥ n*w.Rows. Every supported w.Type works. It returns ErrShape or
// ErrUnsupportedType (wrapped) on bad input and writes nothing then.
func (p *Pool) MatMul(out, x []float32, n int, w *Mat) error {
	if err := w.Validate(); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("%w: negative token count %d", ErrShape, n)
	}
	if len(x) < n*w.Cols {
		return fmt.Errorf("%w: x has %d values, need %d×%d", ErrShape, len(x), n, w.Cols)
	}
	if len(out) < n*w.Rows {
		return fmt.Errorf("%w: out has %d values, need %d×%d", ErrShape, len(out), n, w.Rows)
	}
	if n == 0 || w.Rows == 0 {
		return nil
	}
	if w.Cols == 0 {
		clear(out[:n*w.Rows]) // empty sums
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur = call{out: out, x: x, n: n, w: w}
	defer func() { p.cur = call{} }() // keep no reference to the caller's buffers
	switch {
	case n < p.gemmThreshold(w.Type):
		p.matVec(out, x, n, w)
	case w.Type.BlockElems() == 1 || p.floatAct:
		p.gemmFloat(out, x, n, w)
	default:
		p.gemmQuant(out, x, n, w)
	}
	return nil
}
