package kernels

import (
	"github.com/ragkv/ragkv/internal/cpu"

	"encoding/binary"
	"math"
	"unsafe"
)

// Quantized GEMM (q8_0, q4_0, q4_K, q5_K, q6_K weights) with int8 dot products.
//
// Every block format is rewritten while packing into one form: sub-blocks of L elements
// (L = 32, or 16 for q6_K whose scales cover 16 elements) of unsigned bytes u with a float
// scale s and a negated offset o per (row, sub-block), so that w = s·u + o:
// q8_0 u = q+128, o = −128·d; q4_0 u = q, o = −8·d; q5_0 u = q, o = −16·d; q4_K/q5_K u = q,
// s = d·sc, o = −dmin·m; q6_K u = q, s = d·sc, o = −32·s. The activations are quantized per
// L-block to int8 (x ≈ dx·q, as ggml's q8_0 does) once per call, with sx = dx·Σq, so that
// Σ w·x ≈ Σ_sub s·dx·Σ(u·q) + o·sx; the integer sums Σ(u·q) are what VPDPBUSD computes
// (unsigned × signed bytes).
//
// Without VNNI (the AVX2 kernels, asm_gen_avx2q.go) the sums come from VPMADDUBSW, which
// adds pairs of products into int16 with saturation, then VPMADDWD by ones (int32). For
// u ≤ 15 (q4_0, q4_K) a pair is at most 2·15·127 = 3810, so a whole 32-element sub-block
// (8 steps) adds up in int16; u ≤ 31 (q5_0, q5_K) allows runs of 4 steps, u ≤ 63 (q6_K) of
// 2. q8_0's u = q+128 would saturate, so on that path q8_0 is packed in a signed form
// (u = q as a signed byte, o = 0, q8Signed) and the kernel multiplies |q| by sign(x, q)
// (VPSIGNB; |q| ≤ 128, so a pair stays below 2¹⁵) as ggml's AVX2 q8_0 dot product does.
// Measured against the alternatives (Sapphire Rapids, avx2 forced, micro-kernels in L1):
// the int8 kernels reach about 210 (u ≤ 15), 190 (u ≤ 31), 140 (q6_K) and 100 (q8_0)
// GOP/s per core, all at or above what an AVX2 FMA kernel on dequantized weights can do
// (2×8 MACs per cycle, about 90 GFLOP/s here, with 4× larger W panels); q8_0 on 16-bit
// operands (VPMADDWD, no sign trick) measured no faster (85-98) and needs its own X form.
//
// Packed W panel of mrQ rows, per sub-block: L/4 steps × 64 bytes (row r's 4 bytes at
// 4r), then mrQ float32 scales, then mrQ float32 offsets. Packed X panel of nrQ tokens, per
// sub-block: L/4 steps × 48 bytes (token j's 4 bytes at 4j), then nrQ float32 dx, then nrQ
// float32 sx.
const (
	mrQ = 16   // W rows per micro-tile
	nrQ = 12   // tokens per micro-tile
	kcQ = 1024 // inner-dimension slice (a multiple of 256)
	mcQ = 256  // W rows packed at a time
)

// subLen is the sub-block length L of a quantized type in the packed form.
func subLen(t DType) int {
	if t == Q6_K {
		return 16
	}
	return 32
}

func wSubBytes(l int) int { return l/4*64 + 2*4*mrQ }
func xSubBytes(l int) int { return l/4*48 + 2*4*nrQ }

// gemmQuant multiplies the current call's matrices (p.cur.ws, all with the same sub-block
// length) by its activations, quantized and packed once for all of them.
func (p *Pool) gemmQuant() {
	c := &p.cur
	k := c.ws[0].Cols
	l := subLen(c.ws[0].Type)
	if !int8Gemm() {
		// No int8 micro-kernel on this path: the float GEMM on dequantized weights, with
		// the activations quantized and dequantized as the int8 kernels quantize them.
		p.ggmlUndirect()
		npan := (c.n + nrF - 1) / nrF
		c.npan, c.qdq = npan, l
		if c.ggmlK { // ggml's q8_K values of x, packed as they are
			c.x, c.qdq = p.ggmlFakeK(c.x, c.n, k), 0
		}
		p.shared.xf = growF32(p.shared.xf, npan*k*nrF)
		p.run(npan, 1, jobPackXF32)
		p.gemmFloatPacked()
		return
	}
	npan := (c.n + nrQ - 1) / nrQ
	c.npan = npan
	p.shared.xq = growBytes(p.shared.xq, npan*(k/l)*xSubBytes(l))
	p.run(npan, 1, jobPackXQ8)
	if rows := c.virtualRows(mrQ); rows/mrQ >= p.threads || npan < p.threads {
		p.run(rows, mrQ, jobGemmQuantRows)
	} else {
		p.run(npan, 1, jobGemmQuantPanels)
	}
}

func (p *Pool) packXQ8Range(lo, hi int) {
	c := &p.cur
	k := c.ws[0].Cols
	l := subLen(c.ws[0].Type)
	sz := (k / l) * xSubBytes(l)
	for jp := lo; jp < hi; jp++ {
		switch {
		case c.ggmlK:
			packXQ8K(p.shared.xq[jp*sz:(jp+1)*sz], c.x, c.n, k, jp*nrQ, l, true)
			continue
		case c.ggml0: // l = 32 (q8_0, q4_0, q5_0)
			packXQ8G(p.shared.xq[jp*sz:(jp+1)*sz], c.x, c.n, k, jp*nrQ, true)
			continue
		}
		packXQ8(p.shared.xq[jp*sz:(jp+1)*sz], c.x, c.n, k, jp*nrQ, l)
	}
}

func growBytes(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// packXQ8 quantizes tokens [j0, j0+nrQ) of x (n×k) per l-block to int8 and packs them
// into one panel; tokens past n are zero.
func packXQ8(dst []byte, x []float32, n, k, j0, l int) {
	steps := l / 4
	xs := xSubBytes(l)
	nsub := k / l
	var q [32]int8
	for j := range nrQ {
		if j0+j >= n {
			for g := range nsub {
				sub := dst[g*xs : (g+1)*xs]
				for s := range steps {
					binary.LittleEndian.PutUint32(sub[s*48+4*j:], 0)
				}
				binary.LittleEndian.PutUint32(sub[steps*48+4*j:], 0)
				binary.LittleEndian.PutUint32(sub[steps*48+48+4*j:], 0)
			}
			continue
		}
		row := x[(j0+j)*k : (j0+j+1)*k]
		if cpu.HasAVX2() && nsub > 0 {
			_ = dst[(nsub-1)*xs+steps*48+48+4*j+3]
			switch {
			case cpu.HasAVX512() && steps == 8:
				quantPanelS8(nsub, &row[0], &dst[4*j])
			case cpu.HasAVX512():
				quantPanelS4(nsub, &row[0], &dst[4*j])
			case steps == 8:
				quantPanelAVX2S8(nsub, &row[0], &dst[4*j])
			default:
				quantPanelAVX2S4(nsub, &row[0], &dst[4*j])
			}
			continue
		}
		for g := range nsub {
			blk := row[g*l : (g+1)*l]
			var amax float32
			for _, v := range blk {
				amax = max(amax, math.Float32frombits(math.Float32bits(v)&0x7fffffff))
			}
			d := amax / 127
			var id float32
			if d != 0 {
				id = 1 / d
			}
			sum := 0
			for i, v := range blk {
				qi := int(math.RoundToEven(float64(v * id)))
				qi = max(-127, min(127, qi))
				q[i] = int8(qi)
				sum += qi
			}
			sub := dst[g*xs : (g+1)*xs]
			for s := range steps {
				o := s*48 + 4*j
				sub[o], sub[o+1], sub[o+2], sub[o+3] = byte(q[4*s]), byte(q[4*s+1]), byte(q[4*s+2]), byte(q[4*s+3])
			}
			binary.LittleEndian.PutUint32(sub[steps*48+4*j:], math.Float32bits(d))
			binary.LittleEndian.PutUint32(sub[steps*48+48+4*j:], math.Float32bits(d*float32(sum)))
		}
	}
}

// gemmQuantRange computes output rows [r0, r1) of out = x·wᵀ for token panels [jp0, jp1).
func (p *Pool) gemmQuantRange(wid int, out []float32, w *Mat, r0, r1, jp0, jp1 int) {
	xq, n := p.shared.xq, p.cur.n
	ws := &p.scratch[wid]
	k, m := w.Cols, w.Rows
	l := subLen(w.Type)
	steps := l / 4
	nsubK := k / l
	xs, wsb := xSubBytes(l), wSubBytes(l)
	ws.wq = growBytes(ws.wq, mcQ/mrQ*(kcQ/l)*wsb)
	ws.ut = growBytes(ws.ut, mrQ*kcQ)
	ws.tile = growF32(ws.tile, nrF*mrF)
	for pc := 0; pc < k; pc += kcQ {
		kc := min(kcQ, k-pc)
		nsub := kc / l
		for ic := r0; ic < r1; ic += mcQ {
			mc := min(mcQ, r1-ic)
			packWQ(ws.wq, w, ic, mc, pc, kc, ws.ut)
			for jp := jp0; jp < jp1; jp++ {
				xo := (jp*nsubK + pc/l) * xs
				xpan := xq[xo : xo+nsub*xs]
				ntok := min(nrQ, n-jp*nrQ)
				for ir := 0; ir < mc; ir += mrQ {
					nr := min(mrQ, mc-ir)
					wpan := ws.wq[ir/mrQ*nsub*wsb : (ir/mrQ+1)*nsub*wsb]
					o := jp*nrQ*m + ic + ir
					if ntok == nrQ && nr == mrQ {
						microQ8(w.Type, nsub, steps, wpan, xpan, out[o:o+(nrQ-1)*m+mrQ], m, pc > 0)
						continue
					}
					microQ8(w.Type, nsub, steps, wpan, xpan, ws.tile, mrQ, false)
					storeTile(out[o:], m, ws.tile, mrQ, ntok, nr, pc > 0)
				}
			}
		}
	}
}

// int8AVX2 reports whether the int8 products run on the AVX2 kernels (avx2, or avx512
// without VNNI).
func int8AVX2() bool { return cpu.HasAVX2() && !cpu.HasVNNI512() }

// q8Signed reports whether q8_0 weights are packed in the signed form (u = q, o = 0) for
// the AVX2 micro-kernel.
func q8Signed() bool { return int8AVX2() }

// gemmThresholdAVX2 is gemmThreshold for quantized weights on the AVX2 int8 kernels: the
// token count from which the GEMM beats the matrix-vector kernels, measured on Sapphire
// Rapids with the avx2 path forced (one thread; smollm-135m's 576×1536 and 1536×576 and a
// 2048×2048 matrix agree within 4 tokens).
func gemmThresholdAVX2(t DType) int {
	switch t {
	case Q8_0:
		return 24
	case Q4_0, Q5_0, Q5_1:
		return 16
	}
	return 20
}

// unpackBlock rewrites one ggml block of type t into the packed form's unsigned values u
// (BlockElems of them) and per-sub-block scales sc and offsets of (q8_0 in the signed form
// when signed8). Bytes are processed eight at a time in uint64 words (SWAR).
func unpackBlock(t DType, b []byte, u []byte, sc, of []float32, signed8 bool) {
	const lo4, lo2, lo1 = 0x0f0f0f0f0f0f0f0f, 0x0303030303030303, 0x0101010101010101
	le := binary.LittleEndian
	switch t {
	case Q8_0:
		d := f16At(b, 0)
		if signed8 {
			copy(u[:32], b[2:34])
			sc[0], of[0] = d, 0
			return
		}
		for i := range 4 {
			le.PutUint64(u[8*i:], le.Uint64(b[2+8*i:])^0x8080808080808080)
		}
		sc[0], of[0] = d, -128*d
	case Q5_0:
		d := f16At(b, 0)
		qh := uint64(le.Uint32(b[2:]))
		for i := range 2 {
			v := le.Uint64(b[6+8*i:])
			// Bits 8i..8i+7 (low nibbles) and 16+8i.. (high nibbles) of qh, one per byte.
			hl, hh := spreadBits8(qh>>(8*i)), spreadBits8(qh>>(16+8*i))
			le.PutUint64(u[8*i:], v&lo4|hl<<4)
			le.PutUint64(u[16+8*i:], (v>>4)&lo4|hh<<4)
		}
		sc[0], of[0] = d, -16*d
	case Q5_1:
		d, m := f16At(b, 0), f16At(b, 2)
		qh := uint64(le.Uint32(b[4:]))
		for i := range 2 {
			v := le.Uint64(b[8+8*i:])
			hl, hh := spreadBits8(qh>>(8*i)), spreadBits8(qh>>(16+8*i))
			le.PutUint64(u[8*i:], v&lo4|hl<<4)
			le.PutUint64(u[16+8*i:], (v>>4)&lo4|hh<<4)
		}
		sc[0], of[0] = d, m
	case Q4_0:
		d := f16At(b, 0)
		for i := range 2 {
			v := le.Uint64(b[2+8*i:])
			le.PutUint64(u[8*i:], v&lo4)
			le.PutUint64(u[16+8*i:], (v>>4)&lo4)
		}
		sc[0], of[0] = d, -8*d
	case Q4_K, Q5_K:
		d := f16At(b, 0)
		dmin := f16At(b, 2)
		scales := b[4:16]
		var qh, ql []byte
		if t == Q4_K {
			ql = b[16 : 16+128]
		} else {
			qh = b[16:48]
			ql = b[48 : 48+128]
		}
		for t2 := range 4 {
			s1, m1 := scaleMinK4(2*t2, scales)
			s2, m2 := scaleMinK4(2*t2+1, scales)
			sc[2*t2], of[2*t2] = d*float32(s1), -(dmin * float32(m1))
			sc[2*t2+1], of[2*t2+1] = d*float32(s2), -(dmin * float32(m2))
			for i := range 4 {
				v := le.Uint64(ql[32*t2+8*i:])
				l, h := v&lo4, (v>>4)&lo4
				if qh != nil {
					hb := le.Uint64(qh[8*i:])
					l |= ((hb >> (2 * t2)) & lo1) << 4
					h |= ((hb >> (2*t2 + 1)) & lo1) << 4
				}
				le.PutUint64(u[64*t2+8*i:], l)
				le.PutUint64(u[64*t2+32+8*i:], h)
			}
		}
	case Q6_K:
		d := f16At(b, 208)
		for h := range 2 {
			ql := b[64*h : 64*h+64]
			qh := b[128+32*h : 128+32*h+32]
			y := u[128*h : 128*h+128]
			for i := range 4 {
				a, bb, hh := le.Uint64(ql[8*i:]), le.Uint64(ql[32+8*i:]), le.Uint64(qh[8*i:])
				le.PutUint64(y[8*i:], a&lo4|(hh&lo2)<<4)
				le.PutUint64(y[32+8*i:], bb&lo4|((hh>>2)&lo2)<<4)
				le.PutUint64(y[64+8*i:], (a>>4)&lo4|((hh>>4)&lo2)<<4)
				le.PutUint64(y[96+8*i:], (bb>>4)&lo4|((hh>>6)&lo2)<<4)
			}
		}
		for i := range 16 {
			s := d * float32(int8(b[192+i]))
			sc[i], of[i] = s, -32*s
		}
	}
}

// spreadBits8 returns the low 8 bits of v as the lowest bit of 8 bytes (bit i → byte i).
func spreadBits8(v uint64) uint64 {
	v &= 0xff
	v = (v | v<<28) & 0x0000000f0000000f
	v = (v | v<<14) & 0x0003000300030003
	v = (v | v<<7) & 0x0101010101010101
	return v
}

// packWQ packs rows [r0, r0+mc) × columns [c0, c0+kc) of the quantized w into panels of
// mrQ rows in the packed form; rows past mc are zero. tmp is scratch for mrQ·kc bytes.
func packWQ(dst []byte, w *Mat, r0, mc, c0, kc int, tmp []byte) {
	t := w.Type
	l := subLen(t)
	steps := l / 4
	wsb := wSubBytes(l)
	be, bb := t.BlockElems(), t.BlockBytes()
	nsub := kc / l
	subsPerBlock := be / l
	rb := w.RowBytes()
	var u [256]byte
	var sc, of [16]float32
	le := binary.LittleEndian
	npan := (mc + mrQ - 1) / mrQ
	signed8 := q8Signed()
	for pi := range npan {
		pan := dst[pi*nsub*wsb : (pi+1)*nsub*wsb]
		if cpu.HasAVX2() && pi*mrQ+mrQ <= mc {
			// Full panel: expand every row into tmp, then interleave 64-byte chunks of
			// 16 rows in registers.
			for rr := range mrQ {
				row := w.Data[(r0+pi*mrQ+rr)*rb : (r0+pi*mrQ+rr+1)*rb]
				ur := tmp[rr*kc : (rr+1)*kc]
				for bi := range kc / be {
					blk := row[(c0/be+bi)*bb : (c0/be+bi+1)*bb]
					unpackBlock(t, blk, ur[bi*be:(bi+1)*be], sc[:], of[:], signed8)
					for sb := range subsPerBlock {
						sub := pan[(bi*subsPerBlock+sb)*wsb:]
						le.PutUint32(sub[steps*64+4*rr:], math.Float32bits(sc[sb]))
						le.PutUint32(sub[steps*64+64+4*rr:], math.Float32bits(of[sb]))
					}
				}
			}
			nchunk := kc / 64
			if nchunk > 0 {
				src, d := unsafe.Pointer(&tmp[0]), unsafe.Pointer(&pan[0])
				switch {
				case cpu.HasAVX512() && steps == 8:
					interleave16S8(nchunk, src, kc, d)
				case cpu.HasAVX512():
					interleave16S4(nchunk, src, kc, d)
				case steps == 8:
					interleave16AVX2S8(nchunk, src, kc, d)
				default:
					interleave16AVX2S4(nchunk, src, kc, d)
				}
			}
			for g := nchunk * 64 / l; g < nsub; g++ {
				sub := pan[g*wsb : (g+1)*wsb]
				for rr := range mrQ {
					for s := range steps {
						le.PutUint32(sub[s*64+4*rr:], le.Uint32(tmp[rr*kc+g*l+4*s:]))
					}
				}
			}
			continue
		}
		for rr := range mrQ {
			r := pi*mrQ + rr
			if r >= mc {
				for g := range nsub {
					sub := pan[g*wsb : (g+1)*wsb]
					for s := range steps {
						le.PutUint32(sub[s*64+4*rr:], 0)
					}
					le.PutUint32(sub[steps*64+4*rr:], 0)
					le.PutUint32(sub[steps*64+64+4*rr:], 0)
				}
				continue
			}
			row := w.Data[(r0+r)*rb : (r0+r+1)*rb]
			for bi := range kc / be {
				blk := row[(c0/be+bi)*bb : (c0/be+bi+1)*bb]
				unpackBlock(t, blk, u[:be], sc[:], of[:], signed8)
				for sb := range subsPerBlock {
					sub := pan[(bi*subsPerBlock+sb)*wsb : (bi*subsPerBlock+sb+1)*wsb]
					for s := range steps {
						le.PutUint32(sub[s*64+4*rr:], le.Uint32(u[sb*l+4*s:]))
					}
					le.PutUint32(sub[steps*64+4*rr:], math.Float32bits(sc[sb]))
					le.PutUint32(sub[steps*64+64+4*rr:], math.Float32bits(of[sb]))
				}
			}
		}
		if cpu.HasDotProd() {
			signW(pan, nsub, steps)
		}
	}
}

// signW rewrites a packed W panel of nsub sub-blocks for signed × signed dot products
// (SDOT): every byte u becomes u−128 as int8 and every offset o becomes o + 128·s, since
// s·Σu·q + o·Σq·dx = s·Σ(u−128)·q + (o + 128·s)·Σq·dx per sub-block (dx folded into sx).
func signW(pan []byte, nsub, steps int) {
	wsb := wSubBytes(4 * steps)
	le := binary.LittleEndian
	for g := range nsub {
		sub := pan[g*wsb : (g+1)*wsb]
		for i := 0; i < steps*64; i += 8 {
			le.PutUint64(sub[i:], le.Uint64(sub[i:])^0x8080808080808080)
		}
		for r := range mrQ {
			s := math.Float32frombits(le.Uint32(sub[steps*64+4*r:]))
			o := math.Float32frombits(le.Uint32(sub[steps*64+64+4*r:]))
			le.PutUint32(sub[steps*64+64+4*r:], math.Float32bits(o+128*s))
		}
	}
}

// int8Gemm reports whether an int8 micro-kernel (microQ8) is active for the quantized
// GEMM; without one gemmQuant runs the float GEMM (see generic.go).
func int8Gemm() bool { return cpu.HasVNNI512() || cpu.HasDotProd() || int8AVX2() }

// microQ8 runs the quantized micro-kernel for weights of type t over nsub sub-blocks of
// 4·steps elements: c[j*ldc+r] (+)= Σ_sub s_r·dx_j·Σ(u·q) + o_r·sx_j for r < mrQ, j < nrQ.
func microQ8(t DType, nsub, steps int, a, b []byte, c []float32, ldc int, accum bool) {
	wsb, xs := steps*64+2*4*mrQ, steps*48+2*4*nrQ
	_ = a[nsub*wsb-1]
	_ = b[nsub*xs-1]
	_ = c[(nrQ-1)*ldc+mrQ-1]
	switch {
	case cpu.HasVNNI512():
		gemmQ8x16x12(nsub, steps, &a[0], &b[0], &c[0], ldc, accum)
		return
	case cpu.HasDotProd():
		gemmQ8NEON(nsub, steps, &a[0], &b[0], &c[0], ldc, accum)
		return
	}
	if cpu.HasAVX2() {
		switch t {
		case Q4_0, Q4_K:
			gemmQ4x16x12AVX2(nsub, &a[0], &b[0], &c[0], ldc, accum)
		case Q5_0, Q5_1, Q5_K:
			gemmQ5x16x12AVX2(nsub, &a[0], &b[0], &c[0], ldc, accum)
		case Q6_K:
			gemmQ6x16x12AVX2(nsub, &a[0], &b[0], &c[0], ldc, accum)
		case Q8_0:
			gemmQ8x16x12AVX2(nsub, &a[0], &b[0], &c[0], ldc, accum)
		}
		return
	}
	var acc [nrQ][mrQ]float32
	for g := range nsub {
		wa := a[g*wsb : (g+1)*wsb]
		xb := b[g*xs : (g+1)*xs]
		var isum [nrQ][mrQ]int32
		for s := range steps {
			for j := range nrQ {
				q0, q1 := int32(int8(xb[s*48+4*j])), int32(int8(xb[s*48+4*j+1]))
				q2, q3 := int32(int8(xb[s*48+4*j+2])), int32(int8(xb[s*48+4*j+3]))
				for r := range mrQ {
					o := s*64 + 4*r
					isum[j][r] += int32(wa[o])*q0 + int32(wa[o+1])*q1 + int32(wa[o+2])*q2 + int32(wa[o+3])*q3
				}
			}
		}
		for j := range nrQ {
			dx := math.Float32frombits(binary.LittleEndian.Uint32(xb[steps*48+4*j:]))
			sx := math.Float32frombits(binary.LittleEndian.Uint32(xb[steps*48+48+4*j:]))
			for r := range mrQ {
				s := math.Float32frombits(binary.LittleEndian.Uint32(wa[steps*64+4*r:]))
				o := math.Float32frombits(binary.LittleEndian.Uint32(wa[steps*64+64+4*r:]))
				acc[j][r] += float32(isum[j][r])*dx*s + o*sx
			}
		}
	}
	for j := range nrQ {
		dst := c[j*ldc : j*ldc+mrQ]
		if accum {
			for r := range dst {
				dst[r] += acc[j][r]
			}
		} else {
			copy(dst, acc[j][:])
		}
	}
}
