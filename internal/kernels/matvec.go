package kernels

import (
	"github.com/ragkv/ragkv/internal/cpu"

	"encoding/binary"
	"math"
	"unsafe"
)

// Matrix-vector products for few tokens (decode): each worker takes a range of weight rows
// and streams them once, four rows at a time, against every token; nothing is packed, so
// the speed is bounded by memory bandwidth.

// xqMatvecBytes is the size of one quantized 32-block of activations for matvecQ8_0x4:
// 32 int8 q, 8 int32 −128·(q[4i]+…+q[4i+3]), float32 dx, padding.
const xqMatvecBytes = 96

// matVecFast reports whether the fast matrix-vector kernels cover w's type here.
func (p *Pool) matVecFast(t DType) bool {
	if p.floatAct && (t == Q8_0 || t == Q4_0) {
		return false
	}
	if cpu.HasNEON() {
		// The k-quant kernels quantize the activations: not with float activations, nor
		// with ggml's q8_K activations (they would be quantized a second time).
		return neonMatVec(t) && !(t.BlockElems() == qkK && (p.floatAct || kFloat || p.cur.ggmlK))
	}
	switch t {
	case F32, F16, BF16:
		// AVX-512 kernels on avx512, the AVX2 ones on avx2.
		return cpu.HasAVX2()
	case Q8_0, Q4_0, Q5_0:
		// VNNI kernels on avx512 (q8_0, q4_0), the AVX2 ones otherwise.
		return cpu.HasAVX2() && !p.floatAct
	case Q4_K, Q5_K, Q6_K:
		// With float activations only AVX-512 has kernels (register dequantization).
		return cpu.HasAVX512() || (cpu.HasAVX2() && p.useKQ8(t))
	}
	return false
}

func (p *Pool) matVec(out, x []float32, n int, w *Mat) {
	if p.cur.ggml0 && !p.ggml0MatVec(w) {
		p.ggmlUndirect()
		x = p.cur.x
	}
	if p.cur.ggmlK && !(p.matVecFast(w.Type) && p.useKQ8(w.Type)) { // float kernels: q8_K's values
		x = p.ggmlFakeK(x, n, w.Cols)
		p.cur.x = x
	}
	if cpu.HasNEON() && p.matVecFast(w.Type) && w.Type.BlockElems() == qkK {
		p.quantXNEONAll(x, n, w.Cols, subLen(w.Type))
		p.run(w.Rows, 4, jobMatVec)
		return
	}
	if p.matVecFast(w.Type) {
		switch w.Type {
		case Q8_0, Q4_0, Q5_0:
			p.quantXMatvecAll(x, n, w.Cols)
		case Q4_K, Q5_K, Q6_K:
			p.matVecK(x, n, w)
			return
		}
	} else {
		if p.matVecQDQ(w.Type) {
			p.qdqMatvecAll(x, n, w.Cols)
			x = p.shared.xqd
		}
		if n == 1 && (w.Type == Q4_K || w.Type == Q5_K) {
			// Sums of the activations per sub-block, for the generic k-quant kernels.
			p.shared.xs = growF32(p.shared.xs, w.Cols/32)
			for g := range w.Cols / 32 {
				var s float32
				for _, v := range x[32*g : 32*g+32] {
					s += v
				}
				p.shared.xs[g] = s
			}
		}
	}
	p.run(w.Rows, 4, jobMatVec)
}

// qdqMatvecAll quantizes and dequantizes the n activation rows (k each) per 32-block for
// the generic matrix-vector kernels.
func (p *Pool) qdqMatvecAll(x []float32, n, k int) {
	p.shared.xqd = growF32(p.shared.xqd, n*k)
	qdqRows(p.shared.xqd, x, n, k, 32)
}

// ggml0MatVec reports whether a ggml0 call (raw activations, ggml's q8_0 scales applied
// by the packer) can run on w's matrix-vector kernels: the int8 ones, for every row (the
// float tail of rows past a multiple of 4 needs q8_0's dequantized values).
func (p *Pool) ggml0MatVec(w *Mat) bool {
	return !cpu.HasNEON() && p.matVecFast(w.Type) && w.Rows%4 == 0 && ggmlKind(w.Type) == 1
}

// quantXMatvecAll quantizes the n activation rows (k each) for the q8_0/q4_0/q5_0
// matrix-vector kernels.
func (p *Pool) quantXMatvecAll(x []float32, n, k int) {
	nblk := k / qk8_0
	if cpu.HasNEON() {
		p.quantXNEONAll(x, n, k, 32)
		return
	}
	p.shared.xq = growBytes(p.shared.xq, n*nblk*xqMatvecBytes)
	for i := range n {
		dst := p.shared.xq[i*nblk*xqMatvecBytes : (i+1)*nblk*xqMatvecBytes]
		switch {
		case p.cur.ggml0 && cpu.HasAVX2() && nblk > 0:
			_, _ = x[i*k+nblk*qk8_0-1], dst[nblk*xqMatvecBytes-1]
			ggmlXMatvecQ8_0AVX2(nblk, &x[i*k], &dst[0])
		case p.cur.ggml0:
			quantXMatvecG(dst, x[i*k:(i+1)*k])
		case cpu.HasAVX2() && nblk > 0:
			_ = x[i*k+nblk*qk8_0-1]
			quantXMatvecAVX2(nblk, &x[i*k], &dst[0])
		default:
			quantXMatvec(dst, x[i*k:(i+1)*k])
		}
	}
}

// matVecMultiOK reports whether the matrices can share one matrix-vector job (MatMulMulti
// with few tokens): float, q8_0, q4_0 and q5_0 weights, whose activations are used as they
// are or quantized in one layout.
func (p *Pool) matVecMultiOK(ws []*Mat) bool {
	for _, w := range ws {
		switch w.Type {
		case F32, F16, BF16, Q8_0, Q4_0, Q5_0:
		default:
			return false
		}
	}
	return true
}

// matVecMulti runs the current call's matrices (p.cur.ws) as one matrix-vector job over
// their concatenated rows (each starting at a multiple of 4).
func (p *Pool) matVecMulti() {
	c := &p.cur
	for _, w := range c.ws {
		if c.ggml0 && !p.ggml0MatVec(w) {
			p.ggmlUndirect()
		}
	}
	for _, w := range c.ws {
		if p.matVecFast(w.Type) && (w.Type == Q8_0 || w.Type == Q4_0 || w.Type == Q5_0) {
			p.quantXMatvecAll(c.x, c.n, w.Cols)
			break
		}
	}
	for _, w := range c.ws {
		if !p.matVecFast(w.Type) && p.matVecQDQ(w.Type) {
			p.qdqMatvecAll(c.x, c.n, w.Cols)
			break
		}
	}
	p.run(c.virtualRows(4), 4, jobMatVecMulti)
}

// matVecRange computes output rows [lo, hi) of the current call's matrix.
func (p *Pool) matVecRange(wid, lo, hi int) { p.matVecRows(wid, p.cur.out, p.cur.w, lo, hi) }

// matVecMultiRange computes rows [lo, hi) of the concatenated rows of p.cur.ws.
func (p *Pool) matVecMultiRange(wid, lo, hi int) {
	c := &p.cur
	base := 0
	for i, w := range c.ws {
		if r0, r1 := max(lo-base, 0), min(hi-base, w.Rows); r0 < r1 {
			p.matVecRows(wid, c.outs[i], w, r0, r1)
		}
		base += (w.Rows + 3) / 4 * 4
		if base >= hi {
			return
		}
	}
}

// matVecRows computes rows [lo, hi) of out = x·wᵀ.
func (p *Pool) matVecRows(wid int, out []float32, w *Mat, lo, hi int) {
	x, n := p.cur.x, p.cur.n
	k, m := w.Cols, w.Rows
	rb := w.RowBytes()
	nblk := k / qk8_0
	xq := p.shared.xq
	base := unsafe.Pointer(unsafe.SliceData(w.Data))
	fast := p.matVecFast(w.Type)
	if !fast {
		p.matVecGeneric(&p.scratch[wid], out, w, lo, hi)
		return
	}
	if cpu.HasNEON() {
		p.matVecNEON(wid, out, w, lo, hi)
		return
	}
	vnni := cpu.HasVNNI512()
	var res [4]float32
	r := lo
	for ; r+4 <= hi; r += 4 {
		wp := unsafe.Add(base, r*rb)
		for i := range n {
			switch w.Type {
			case F32, F16, BF16:
				matvecFloatx4(w.Type, k, wp, rb, x[i*k:(i+1)*k], &res)
			case Q8_0:
				if vnni {
					matvecQ8_0x4(nblk, wp, rb, unsafe.Pointer(&xq[i*nblk*xqMatvecBytes]), &res[0])
				} else {
					matvecQ8_0x4AVX2(nblk, wp, rb, unsafe.Pointer(&xq[i*nblk*xqMatvecBytes]), &res[0])
				}
			case Q4_0:
				if vnni {
					matvecQ4_0x4(nblk, wp, rb, unsafe.Pointer(&xq[i*nblk*xqMatvecBytes]), &res[0])
				} else {
					matvecQ4_0x4AVX2(nblk, wp, rb, unsafe.Pointer(&xq[i*nblk*xqMatvecBytes]), &res[0])
				}
			case Q5_0:
				matvecQ5_0x4AVX2(nblk, wp, rb, unsafe.Pointer(&xq[i*nblk*xqMatvecBytes]), &res[0])
			}
			copy(out[i*m+r:i*m+r+4], res[:])
		}
	}
	if r < hi { // the last rows
		s := &p.scratch[wid]
		s.row = growF32(s.row, k)
		for ; r < hi; r++ {
			dequantizeRow(s.row, w.Data[r*rb:(r+1)*rb], w.Type)
			for i := range n {
				out[i*m+r] = dot(x[i*k:(i+1)*k], s.row)
			}
		}
	}
}

// matvecFloatx4 sets res[i] = Σ_c W_i[c]·x[c] for the four float rows W_i at wp + i·rb
// bytes (k = len(x) columns of type t): the AVX-512 kernels, or the AVX2 ones with the
// last k%8 columns added here.
func matvecFloatx4(t DType, k int, wp unsafe.Pointer, rb int, x []float32, res *[4]float32) {
	if k == 0 {
		*res = [4]float32{}
		return
	}
	if cpu.HasAVX512() {
		switch t {
		case F32:
			matvecF32x4(k, wp, rb, &x[0], &res[0])
		case F16:
			matvecF16x4(k, wp, rb, &x[0], &res[0])
		case BF16:
			matvecBF16x4(k, wp, rb, &x[0], &res[0])
		}
		return
	}
	k8 := k &^ 7
	if k8 == 0 {
		*res = [4]float32{}
	} else {
		switch t {
		case F32:
			matvecF32x4AVX2(k8, wp, rb, &x[0], &res[0])
		case F16:
			matvecF16x4AVX2(k8, wp, rb, &x[0], &res[0])
		case BF16:
			matvecBF16x4AVX2(k8, wp, rb, &x[0], &res[0])
		}
	}
	if k8 == k {
		return
	}
	esize := 4
	if t != F32 {
		esize = 2
	}
	for i := range 4 {
		row := unsafe.Slice((*byte)(unsafe.Add(wp, i*rb)), k*esize)
		s := res[i]
		for c := k8; c < k; c++ {
			var v float32
			switch t {
			case F32:
				v = math.Float32frombits(binary.LittleEndian.Uint32(row[4*c:]))
			case F16:
				v = F16ToF32(binary.LittleEndian.Uint16(row[2*c:]))
			default:
				v = math.Float32frombits(uint32(binary.LittleEndian.Uint16(row[2*c:])) << 16)
			}
			s += v * x[c]
		}
		res[i] = s
	}
}

// quantXMatvec quantizes one activation row per 32-block to int8 in the layout of
// matvecQ8_0x4.
func quantXMatvec(dst []byte, x []float32) {
	for b := 0; b < len(x)/qk8_0; b++ {
		blk := x[b*qk8_0 : (b+1)*qk8_0]
		o := dst[b*xqMatvecBytes : (b+1)*xqMatvecBytes]
		var amax float32
		for _, v := range blk {
			amax = max(amax, math.Float32frombits(math.Float32bits(v)&0x7fffffff))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		for g := range 8 {
			s := 0
			for t := range 4 {
				q := int(math.RoundToEven(float64(blk[4*g+t] * id)))
				q = max(-127, min(127, q))
				o[4*g+t] = byte(int8(q))
				s += q
			}
			binary.LittleEndian.PutUint32(o[32+4*g:], uint32(int32(-128*s)))
		}
		binary.LittleEndian.PutUint32(o[64:], math.Float32bits(d))
	}
}

// matVecK is matVec for the k-quants: with int8 activations (useKQ8: quantized per
// 32-block, integer dot products) or, with float activations, blocks dequantized in
// registers and dotted with the float32 activations.
func (p *Pool) matVecK(x []float32, n int, w *Mat) {
	k, m := w.Cols, w.Rows
	l := subLen(w.Type)
	nsub := k / l
	if p.useKQ8(w.Type) {
		// Activations quantized per 32-block for VPDPBUSD: xq, then per sub-block of l
		// elements the scale xd and xd·Σq in p.shared.xf.
		p.shared.xq = growBytes(p.shared.xq, n*k)
		p.shared.xf = growF32(p.shared.xf, 2*n*nsub)
		for i := range n {
			q, d, s := p.shared.xq[i*k:(i+1)*k], p.shared.xf[i*nsub:(i+1)*nsub], p.shared.xf[(n+i)*nsub:(n+i+1)*nsub]
			switch {
			case p.cur.ggmlK:
				quantXSubK(q, d, s, x[i*k:(i+1)*k], l, true)
			case k == 0 || !cpu.HasAVX2():
				quantXSub(q, d, s, x[i*k:(i+1)*k], l)
			case l == 32:
				_ = x[i*k+k-1]
				quantXSub32AVX2(k/32, &x[i*k], &q[0], &d[0], &s[0])
			default:
				_ = x[i*k+k-1]
				quantXSub16AVX2(k/32, &x[i*k], &q[0], &d[0], &s[0])
			}
		}
		p.run(m, 4, jobMatVecK)
		return
	}
	p.shared.xf = growF32(p.shared.xf, n*nsub)
	xs := p.shared.xf
	for i := range n {
		for g := range nsub {
			var s float32
			for _, v := range x[i*k+g*l : i*k+(g+1)*l] {
				s += v
			}
			xs[i*nsub+g] = s
		}
	}
	p.run(m, 4, jobMatVecK)
}

func (p *Pool) matVecKRange(lo, hi int) {
	out, x, n, w := p.cur.out, p.cur.x, p.cur.n, p.cur.w
	k, m := w.Cols, w.Rows
	rb := w.RowBytes()
	nsub := k / subLen(w.Type)
	xs := p.shared.xf
	nsb := k / qkK
	base := unsafe.Pointer(unsafe.SliceData(w.Data))
	if p.useKQ8(w.Type) {
		xq, xd, xsd := p.shared.xq, p.shared.xf[:n*nsub], p.shared.xf[n*nsub:]
		vnni := cpu.HasVNNI512()
		for r := lo; r < hi; r++ {
			wp := unsafe.Add(base, r*rb)
			for i := range n {
				q, d, s := unsafe.Pointer(&xq[i*k]), &xd[i*nsub], &xsd[i*nsub]
				var v float32
				switch {
				case w.Type == Q4_K && vnni:
					v = matvecQ4KQ8(nsb, wp, q, d, s)
				case w.Type == Q4_K:
					v = matvecQ4KQ8AVX2(nsb, wp, q, d, s)
				case w.Type == Q5_K && vnni:
					v = matvecQ5KQ8(nsb, wp, q, d, s)
				case w.Type == Q5_K:
					v = matvecQ5KQ8AVX2(nsb, wp, q, d, s)
				case vnni:
					v = matvecQ6KQ8(nsb, wp, q, d, s)
				default:
					v = matvecQ6KQ8AVX2(nsb, wp, q, d, s)
				}
				out[i*m+r] = v
			}
		}
		return
	}
	for r := lo; r < hi; r++ {
		wp := unsafe.Add(base, r*rb)
		for i := range n {
			var v float32
			switch w.Type {
			case Q4_K:
				v = matvecQ4K(nsb, wp, &x[i*k], &xs[i*nsub])
			case Q5_K:
				v = matvecQ5K(nsb, wp, &x[i*k], &xs[i*nsub])
			case Q6_K:
				v = matvecQ6K(nsb, wp, &x[i*k], &xs[i*nsub])
			}
			out[i*m+r] = v
		}
	}
}

// kFloat selects the float (register-dequantizing) k-quant decode kernels even where VNNI
// is available (tests use it to cover both).
var kFloat = false

// useKQ8 reports whether k-quant type t decodes with int8 activations: the VNNI kernels,
// or without VNNI the AVX2 ones (also on avx512, where they are the default as on VNNI CPUs,
// the AVX-512 float kernels remaining for float activations).
func (p *Pool) useKQ8(t DType) bool {
	return cpu.HasAVX2() && !kFloat && !p.floatAct && (t == Q4_K || t == Q5_K || t == Q6_K)
}

// quantXSub quantizes x per 32-block to int8 q and gives, per sub-block of l (32 or 16)
// elements, the scale d and s = d·Σq over the sub-block.
func quantXSub(q []byte, d, s []float32, x []float32, l int) {
	for b := range len(x) / 32 {
		blk := x[32*b : 32*b+32]
		var amax float32
		for _, v := range blk {
			amax = max(amax, math.Float32frombits(math.Float32bits(v)&0x7fffffff))
		}
		db := amax / 127
		var id float32
		if db != 0 {
			id = 1 / db
		}
		var sum [2]int
		for j, v := range blk {
			qi := int(math.RoundToEven(float64(v * id)))
			qi = max(-127, min(127, qi))
			q[32*b+j] = byte(int8(qi))
			sum[j/16] += qi
		}
		if l == 32 {
			d[b], s[b] = db, db*float32(sum[0]+sum[1])
		} else {
			d[2*b], s[2*b] = db, db*float32(sum[0])
			d[2*b+1], s[2*b+1] = db, db*float32(sum[1])
		}
	}
}
