package kernels

import (
	"github.com/ragkv/ragkv/internal/cpu"

	"encoding/binary"
	"math"
	"unsafe"
)

// Float GEMM (f32, f16 and bf16 weights), blocked as in BLIS: X is packed once per call
// into panels of nrF tokens (k-major: panel[c*nrF + j] = x[j][c]); each worker owns a range
// of output rows (or, when there are few rows, of token panels), and for every kcF-wide
// slice of the inner dimension packs mcF rows of W, converted to float32, into panels of
// mrF rows (panel[c*mrF + r] = W[r][c]). The micro-kernel multiplies one W panel by one X
// panel into an nrF×mrF tile of out.
const (
	mrF = 32  // W rows per micro-tile (two 16-lane vectors)
	nrF = 12  // tokens per micro-tile
	kcF = 256 // inner-dimension slice
	mcF = 256 // W rows packed at a time
)

// gemmMinTokens, when positive, overrides gemmThreshold (tests use it to force a path).
var gemmMinTokens = 0

// gemmThreshold is the smallest n that takes the packed GEMM path for type t; below it the
// matrix-vector kernels run (they stream each weight row once and reuse it, from cache,
// for every token). The crossovers were measured on Zen 4 (go test -bench MatMul).
func (p *Pool) gemmThreshold(t DType) int {
	switch {
	case gemmMinTokens > 0:
		return gemmMinTokens
	case !p.matVecFast(t):
		return genericGemmThreshold(t)
	case int8AVX2() && t.BlockElems() > 1:
		return gemmThresholdAVX2(t)
	case t == Q8_0:
		return 40
	case t == Q4_0 || ((t == Q4_K || t == Q5_K) && p.useKQ8(t)):
		return 28
	case t == Q4_K || t == Q5_K:
		return 20
	}
	return 12
}

// gemmFloat multiplies the current call's matrices (p.cur.ws) by its activations, packed
// once for all of them.
func (p *Pool) gemmFloat() {
	c := &p.cur
	k := c.ws[0].Cols
	npan := (c.n + nrF - 1) / nrF
	c.npan = npan
	p.shared.xf = growF32(p.shared.xf, npan*k*nrF)
	p.run(npan, 1, jobPackXF32)
	p.gemmFloatPacked()
}

// gemmFloatPacked runs the float GEMM of the current call on its packed X panels.
func (p *Pool) gemmFloatPacked() {
	c := &p.cur
	npan := c.npan
	if rows := c.virtualRows(mrF); rows/mrF >= p.threads || npan < p.threads {
		p.run(rows, mrF, jobGemmFloatRows)
	} else {
		p.run(npan, 1, jobGemmFloatPanels)
	}
}

func (p *Pool) packXF32Range(lo, hi int) {
	c := &p.cur
	k := c.ws[0].Cols
	xp := p.shared.xf
	for jp := lo; jp < hi; jp++ {
		if c.qdq > 0 {
			packXF32QDQ(xp[jp*k*nrF:(jp+1)*k*nrF], c.x, c.n, k, jp*nrF, c.qdq)
			continue
		}
		packXF32(xp[jp*k*nrF:(jp+1)*k*nrF], c.x, k, c.n, k, jp*nrF)
	}
}

// packXF32 packs tokens [j0, j0+nrF) of x (n×k, token j at x[j*ldx:]) into one k-major
// panel, zero-padding tokens past n.
func packXF32(dst, x []float32, ldx, n, k, j0 int) {
	if cpu.HasAVX512() && j0+nrF <= n && k >= 16 {
		nblk := k / 16
		_ = x[(j0+nrF-1)*ldx+k-1]
		_ = dst[k*nrF-1]
		packX12T16(nblk, unsafe.Pointer(&x[j0*ldx]), 4*ldx, &dst[0])
		packXF32Tail(dst, x, ldx, j0, nblk*16, k)
		return
	}
	if cpu.HasAVX2() && j0+nrF <= n && k >= 8 {
		nblk := k / 8
		_ = x[(j0+nrF-1)*ldx+k-1]
		_ = dst[k*nrF-1]
		packX12T8AVX2(nblk, unsafe.Pointer(&x[j0*ldx]), 4*ldx, &dst[0])
		packXF32Tail(dst, x, ldx, j0, nblk*8, k)
		return
	}
	for j := range nrF {
		if j0+j >= n {
			for c := range k {
				dst[c*nrF+j] = 0
			}
			continue
		}
		row := x[(j0+j)*ldx : (j0+j)*ldx+k]
		for c, v := range row {
			dst[c*nrF+j] = v
		}
	}
}

// packXF32Tail packs columns [c0, k) of the full panel of tokens [j0, j0+nrF).
func packXF32Tail(dst, x []float32, ldx, j0, c0, k int) {
	for j := range nrF {
		row := x[(j0+j)*ldx : (j0+j)*ldx+k]
		for c := c0; c < k; c++ {
			dst[c*nrF+j] = row[c]
		}
	}
}

// gemmFloatRange computes output rows [r0, r1) of out = x·wᵀ for token panels [jp0, jp1).
func (p *Pool) gemmFloatRange(wid int, out []float32, w *Mat, r0, r1, jp0, jp1 int) {
	xp, n := p.shared.xf, p.cur.n
	ws := &p.scratch[wid]
	k, m := w.Cols, w.Rows
	ws.wf = growF32(ws.wf, mcF*kcF)
	ws.tile = growF32(ws.tile, nrF*mrF)
	for pc := 0; pc < k; pc += kcF {
		kc := min(kcF, k-pc)
		for ic := r0; ic < r1; ic += mcF {
			mc := min(mcF, r1-ic)
			if w.Type.BlockElems() > 1 {
				ws.row = growF32(ws.row, mrF*kcF)
				packWDequant(ws.wf, w, ic, mc, pc, kc, ws.row)
			} else {
				packWFloat(ws.wf, w, ic, mc, pc, kc)
			}
			macroF32(out, m, ws.wf, xp, ws.tile, n, k, ic, mc, pc, kc, jp0, jp1)
		}
	}
}

// macroF32 multiplies one packed block of W (mc rows from row ic, inner columns
// [pc, pc+kc), in wf as packWFloat lays it out) by token panels [jp0, jp1) of the packed X
// (xp: k×nrF floats per panel, packXF32's layout) for n tokens in all: c[j*ldc + ic + r]
// receives the product (added to it when pc > 0: an earlier inner slice is there). tile
// holds nrF×mrF floats for the edge tiles.
func macroF32(c []float32, ldc int, wf, xp, tile []float32, n, k, ic, mc, pc, kc, jp0, jp1 int) {
	for jp := jp0; jp < jp1; jp++ {
		xpan := xp[jp*k*nrF+pc*nrF : jp*k*nrF+(pc+kc)*nrF]
		ntok := min(nrF, n-jp*nrF)
		for ir := 0; ir < mc; ir += mrF {
			nr := min(mrF, mc-ir)
			wpan := wf[ir*kc : (ir+mrF)*kc]
			o := jp*nrF*ldc + ic + ir
			if genericF32() {
				microF32Generic(kc, wpan, xpan, c[o:], ldc, pc > 0, ntok, nr)
				continue
			}
			if ntok == nrF && nr == mrF {
				microF32(kc, wpan, xpan, c[o:o+(nrF-1)*ldc+mrF], ldc, pc > 0)
				continue
			}
			microF32(kc, wpan, xpan, tile, mrF, false)
			storeTile(c[o:], ldc, tile, mrF, ntok, nr, pc > 0)
		}
	}
}

// storeTile writes (accum: adds) the first ntok rows × nr columns of a micro-tile (row
// stride ldt) into c (row stride ldc): the edge tiles of the GEMMs.
func storeTile(c []float32, ldc int, tile []float32, ldt, ntok, nr int, accum bool) {
	for j := range ntok {
		dst := c[j*ldc : j*ldc+nr]
		src := tile[j*ldt : j*ldt+nr]
		if accum {
			for r := range dst {
				dst[r] += src[r]
			}
		} else {
			copy(dst, src)
		}
	}
}

// packWFloat packs rows [r0, r0+mc) × columns [c0, c0+kc) of w, converted to float32, into
// panels of mrF rows: dst[(r/mrF)*kc*mrF + c*mrF + r%mrF]; rows past mc are zero.
func packWFloat(dst []float32, w *Mat, r0, mc, c0, kc int) {
	npan := (mc + mrF - 1) / mrF
	esize := 4
	if w.Type != F32 {
		esize = 2
	}
	rb := w.Cols * esize
	for pi := range npan {
		pan := dst[pi*kc*mrF : (pi+1)*kc*mrF]
		cdone := 0
		if cpu.HasAVX512() && pi*mrF+mrF <= mc && kc >= 16 {
			// Full panel: 16×16 blocks converted and transposed in registers.
			nblk := kc / 16
			for half := range 2 {
				src := unsafe.Pointer(&w.Data[(r0+pi*mrF+16*half)*rb+c0*esize])
				d := &pan[16*half]
				switch w.Type {
				case F32:
					packF32T16(nblk, src, rb, d)
				case F16:
					packF16T16(nblk, src, rb, d)
				case BF16:
					packBF16T16(nblk, src, rb, d)
				}
			}
			cdone = nblk * 16
			if cdone == kc {
				continue
			}
		} else if cpu.HasAVX2() && pi*mrF+mrF <= mc && kc >= 8 {
			// Full panel: 8×8 blocks converted and transposed in registers.
			nblk := kc / 8
			for q := range 4 {
				src := unsafe.Pointer(&w.Data[(r0+pi*mrF+8*q)*rb+c0*esize])
				d := &pan[8*q]
				switch w.Type {
				case F32:
					packF32T8AVX2(nblk, src, rb, d)
				case F16:
					packF16T8AVX2(nblk, src, rb, d)
				case BF16:
					packBF16T8AVX2(nblk, src, rb, d)
				}
			}
			cdone = nblk * 8
			if cdone == kc {
				continue
			}
		}
		for rr := range mrF {
			r := pi*mrF + rr
			if r >= mc {
				for c := cdone; c < kc; c++ {
					pan[c*mrF+rr] = 0
				}
				continue
			}
			row := r0 + r
			switch w.Type {
			case F32:
				src := w.f32Data()[row*w.Cols+c0 : row*w.Cols+c0+kc]
				for c := cdone; c < kc; c++ {
					pan[c*mrF+rr] = src[c]
				}
			case F16:
				src := w.Data[(row*w.Cols+c0)*2 : (row*w.Cols+c0+kc)*2]
				for c := cdone; c < kc; c++ {
					pan[c*mrF+rr] = F16ToF32(binary.LittleEndian.Uint16(src[2*c:]))
				}
			case BF16:
				src := w.Data[(row*w.Cols+c0)*2 : (row*w.Cols+c0+kc)*2]
				for c := cdone; c < kc; c++ {
					pan[c*mrF+rr] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*c:])) << 16)
				}
			}
		}
	}
}

// microF32 runs the float micro-kernel: c[j*ldc+r] (+)= Σ_k a[k*mrF+r]·b[k*nrF+j].
func microF32(kc int, a, b, c []float32, ldc int, accum bool) {
	_ = a[kc*mrF-1]
	_ = b[kc*nrF-1]
	_ = c[(nrF-1)*ldc+mrF-1]
	switch {
	case cpu.HasAVX512():
		gemmF32x32x12(kc, &a[0], &b[0], &c[0], ldc, accum)
	case cpu.HasAVX2():
		gemmF32x32x12AVX2(kc, &a[0], &b[0], &c[0], ldc, accum)
	case cpu.HasNEON():
		gemmF32NEON(kc, &a[0], &b[0], &c[0], ldc, accum)
	default:
		microF32Generic(kc, a, b, c, ldc, accum, nrF, mrF)
	}
}

// packWDequant is packWFloat for quantized weights (the float-activation mode): each row's
// blocks in [c0, c0+kc) are dequantized into tmp (mrF·kc floats), then transposed.
func packWDequant(dst []float32, w *Mat, r0, mc, c0, kc int, tmp []float32) {
	t := w.Type
	be, bb := t.BlockElems(), t.BlockBytes()
	rb := w.RowBytes()
	npan := (mc + mrF - 1) / mrF
	for pi := range npan {
		pan := dst[pi*kc*mrF : (pi+1)*kc*mrF]
		nv := min(mrF, mc-pi*mrF)
		for rr := range nv {
			row := w.Data[(r0+pi*mrF+rr)*rb:]
			dequantizeRow(tmp[rr*kc:(rr+1)*kc], row[c0/be*bb:(c0+kc)/be*bb], t)
		}
		cdone := 0
		if cpu.HasAVX512() && nv == mrF && kc >= 16 {
			nblk := kc / 16
			for half := range 2 {
				packF32T16(nblk, unsafe.Pointer(&tmp[16*half*kc]), 4*kc, &pan[16*half])
			}
			cdone = nblk * 16
		} else if cpu.HasAVX2() && nv == mrF && kc >= 8 {
			nblk := kc / 8
			for q := range 4 {
				packF32T8AVX2(nblk, unsafe.Pointer(&tmp[8*q*kc]), 4*kc, &pan[8*q])
			}
			cdone = nblk * 8
		}
		for rr := range mrF {
			for c := cdone; c < kc; c++ {
				var v float32
				if rr < nv {
					v = tmp[rr*kc+c]
				}
				pan[c*mrF+rr] = v
			}
		}
	}
}
