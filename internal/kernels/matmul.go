package kernels

import "fmt"

// workerScratch is one worker's private scratch memory.
type workerScratch struct {
	row  []float32 // one dequantized weight row
	wf   []float32 // packed float W panels
	tile []float32 // one micro-tile, for edge tiles
	wq   []byte    // packed quantized W panels
	ut   []byte    // unpacked quantized rows, before interleaving
	isum []int32   // integer sums per sub-block of one row (NEON k-quant matrix-vector)
}

// sharedScratch is scratch memory shared by the workers of one call.
type sharedScratch struct {
	xf  []float32 // packed float X panels
	xq  []byte    // quantized, packed X panels
	xg  []float32 // activations after ggml's quantization (SetGGMLActivations)
	xqd []float32 // activations quantized and dequantized (generic matrix-vector)
	xs  []float32 // sums of the activations per 32-block (generic matrix-vector)
}

// call describes the kernel call in progress, for the workers (see Pool.run).
type call struct {
	kind   jobKind
	out, x []float32
	n      int
	w      *Mat
	npan   int  // token panels (GEMM)
	ggmlK  bool // quantize activations as ggml's q8_K (SetGGMLActivations, k-quants)
	ggml0  bool // x is raw; quantize it with ggml's q8_0 scales (SetGGMLActivations, ggml0Direct)
	qdq    int  // generic quantized GEMM: X is quantized and dequantized per qdq-block
	// The GEMM paths multiply x by every matrix of ws into the matching outs (MatMul:
	// one, aliasing one and oneOut). Their output rows form one range in which each
	// matrix starts at a multiple of the row alignment (see virtualRows).
	ws     []*Mat
	outs   [][]float32
	one    [1]*Mat
	oneOut [1][]float32
}

// virtualRows is the length of the concatenated row range of c.ws, each matrix's rows
// rounded up to a multiple of align.
func (c *call) virtualRows(align int) int {
	rows := 0
	for _, w := range c.ws {
		rows += (w.Rows + align - 1) / align * align
	}
	return rows
}

// gemmRows computes rows [lo, hi) of the concatenated row range of c.ws (boundaries
// multiples of align) for every token panel.
func (p *Pool) gemmRows(wid, lo, hi, align int, quant bool) {
	c := &p.cur
	base := 0
	for i, w := range c.ws {
		if r0, r1 := max(lo-base, 0), min(hi-base, w.Rows); r0 < r1 {
			if quant {
				p.gemmQuantRange(wid, c.outs[i], w, r0, r1, 0, c.npan)
			} else {
				p.gemmFloatRange(wid, c.outs[i], w, r0, r1, 0, c.npan)
			}
		}
		base += (w.Rows + align - 1) / align * align
		if base >= hi {
			return
		}
	}
}

// gemmPanels computes every row of every matrix for token panels [lo, hi).
func (p *Pool) gemmPanels(wid, lo, hi int, quant bool) {
	c := &p.cur
	for i, w := range c.ws {
		if quant {
			p.gemmQuantRange(wid, c.outs[i], w, 0, w.Rows, lo, hi)
		} else {
			p.gemmFloatRange(wid, c.outs[i], w, 0, w.Rows, lo, hi)
		}
	}
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
	jobMatVecMulti
)

// do runs worker wid's share [lo, hi) of the current job.
func (p *Pool) do(wid, lo, hi int) {
	c := &p.cur
	switch c.kind {
	case jobPackXF32:
		p.packXF32Range(lo, hi)
	case jobGemmFloatRows:
		p.gemmRows(wid, lo, hi, mrF, false)
	case jobGemmFloatPanels:
		p.gemmPanels(wid, lo, hi, false)
	case jobPackXQ8:
		p.packXQ8Range(lo, hi)
	case jobGemmQuantRows:
		p.gemmRows(wid, lo, hi, mrQ, true)
	case jobGemmQuantPanels:
		p.gemmPanels(wid, lo, hi, true)
	case jobMatVec:
		p.matVecRange(wid, lo, hi)
	case jobMatVecK:
		p.matVecKRange(lo, hi)
	case jobMatVecMulti:
		p.matVecMultiRange(wid, lo, hi)
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
	if err := validateMatMul(out, x, n, w); err != nil {
		return err
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
	x, ggmlK, ggml0 := p.ggmlPrepare(x, n, w.Cols, w.Type)
	p.cur = call{out: out, x: x, n: n, w: w, ggmlK: ggmlK, ggml0: ggml0}
	defer func() { p.cur = call{} }() // keep no reference to the caller's buffers
	if n < p.gemmThreshold(w.Type) {
		p.matVec(out, x, n, w)
		return nil
	}
	p.cur.one[0], p.cur.oneOut[0] = w, out
	p.cur.ws, p.cur.outs = p.cur.one[:], p.cur.oneOut[:]
	if p.floatForm(w.Type) {
		p.gemmFloat()
	} else {
		p.gemmQuant()
	}
	return nil
}

// MatMulMulti computes outs[i] = MatMul(x, ws[i]) for matrices that share Cols (the
// attention's Q/K/V projections, the feed-forward's gate and up), in one call: when all
// take the GEMM path with one packed form of the activations (float, or quantized with
// one sub-block length), or all the matrix-vector path with float, q8_0 or q4_0 weights,
// x is packed (quantized) once for all of them and the workers share out the rows of all
// the matrices together; otherwise it is MatMul for each. The validation and results are
// those of MatMul; ws and outs are only read during the call.
func (p *Pool) MatMulMulti(outs [][]float32, x []float32, n int, ws []*Mat) error {
	if len(outs) != len(ws) {
		return fmt.Errorf("%w: %d outputs for %d matrices", ErrShape, len(outs), len(ws))
	}
	for i, w := range ws {
		if err := validateMatMul(outs[i], x, n, w); err != nil {
			return err
		}
		if w.Cols != ws[0].Cols {
			return fmt.Errorf("%w: matrices with %d and %d columns", ErrShape, ws[0].Cols, w.Cols)
		}
	}
	if len(ws) == 0 || n == 0 {
		return nil
	}
	p.mu.Lock() // the plan depends on floatAct
	gemm, matVec := ws[0].Cols > 0, ws[0].Cols > 0 && p.matVecMultiOK(ws)
	for _, w := range ws {
		if w.Rows == 0 || n < p.gemmThreshold(w.Type) || p.floatForm(w.Type) != p.floatForm(ws[0].Type) ||
			!p.floatForm(w.Type) && subLen(w.Type) != subLen(ws[0].Type) {
			gemm = false
		}
		if w.Rows == 0 || n >= p.gemmThreshold(w.Type) {
			matVec = false
		}
		if p.ggmlAct && ggmlKind(w.Type) != ggmlKind(ws[0].Type) { // one activation form per call
			gemm, matVec = false, false
		}
	}
	if !gemm && !matVec {
		p.mu.Unlock()
		for i, w := range ws {
			if err := p.MatMul(outs[i], x, n, w); err != nil {
				return err
			}
		}
		return nil
	}
	defer p.mu.Unlock()
	x, ggmlK, ggml0 := p.ggmlPrepare(x, n, ws[0].Cols, ws[0].Type)
	p.cur = call{x: x, n: n, ws: ws, outs: outs, ggmlK: ggmlK, ggml0: ggml0}
	defer func() { p.cur = call{} }()
	if matVec {
		p.matVecMulti()
		return nil
	}
	if p.floatForm(ws[0].Type) {
		p.gemmFloat()
	} else {
		p.gemmQuant()
	}
	return nil
}

// floatForm reports whether the GEMM multiplies weights of type t as float32 (else with
// activations quantized to int8).
func (p *Pool) floatForm(t DType) bool { return t.BlockElems() == 1 || p.floatAct }

func validateMatMul(out, x []float32, n int, w *Mat) error {
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
	return nil
}
