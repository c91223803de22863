package kernels

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/ragkv/ragkv/internal/cpu"
)

// The Go side of the arm64 NEON kernels (kernels_arm64.s): what the matrix-vector and
// vector dispatch sites call on the neon path. Thresholds and tile shapes follow the
// AVX-512 kernels'; they are not tuned on arm64 hardware (the tests run under qemu).

// neonMatVec reports whether a NEON matrix-vector kernel covers type t (every type; the
// k-quants with integer sums per sub-block in assembly and their scales applied in Go).
func neonMatVec(t DType) bool {
	switch t {
	case F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K:
		return true
	}
	return false
}

// quantXNEONAll quantizes the n activation rows (k each) per 32-block for the NEON int8
// kernels: int8 values in p.shared.xq (k per row), and per sub-block of l elements (32, or
// 16 for q6_K) the scale in p.shared.xs and scale·Σq in p.shared.xqd.
func (p *Pool) quantXNEONAll(x []float32, n, k, l int) {
	nsub := k / l
	p.shared.xq = growBytes(p.shared.xq, n*k)
	p.shared.xs = growF32(p.shared.xs, n*nsub)
	p.shared.xqd = growF32(p.shared.xqd, n*nsub)
	for i := range n {
		quantXSub(p.shared.xq[i*k:(i+1)*k], p.shared.xs[i*nsub:(i+1)*nsub], p.shared.xqd[i*nsub:(i+1)*nsub], x[i*k:(i+1)*k], l)
	}
}

// matVecNEON computes rows [lo, hi) of out = x·wᵀ with the NEON matrix-vector kernels
// (neonMatVec(w.Type) holds). A short last group of rows runs the four-row kernel on its
// own row four times (row stride 0).
func (p *Pool) matVecNEON(wid int, out []float32, w *Mat, lo, hi int) {
	x, n := p.cur.x, p.cur.n
	k, m := w.Cols, w.Rows
	rb := w.RowBytes()
	if w.Type == Q4_K || w.Type == Q5_K || w.Type == Q6_K {
		p.matVecKNEON(&p.scratch[wid], out, w, lo, hi)
		return
	}
	nblk := k / 32
	k8 := k &^ 7
	base := unsafe.Pointer(unsafe.SliceData(w.Data))
	var res [4]float32
	r := lo
	for ; r+4 <= hi; r += 4 {
		p.matVecNEON4(&res, w, unsafe.Add(base, r*rb), rb, r, 4, x, n, k, k8, nblk, out, m)
	}
	for ; r < hi; r++ {
		p.matVecNEON4(&res, w, unsafe.Add(base, r*rb), 0, r, 1, x, n, k, k8, nblk, out, m)
	}
}

// matVecNEON4 runs the four-row kernel for rows r.. (row stride ld; nv of them stored) for
// every token.
func (p *Pool) matVecNEON4(res *[4]float32, w *Mat, wp unsafe.Pointer, ld, r, nv int, x []float32, n, k, k8, nblk int, out []float32, m int) {
	xq, xd := p.shared.xq, p.shared.xs
	for i := range n {
		xi := x[i*k : (i+1)*k]
		switch w.Type {
		case F32, F16, BF16:
			*res = [4]float32{}
			if k8 > 0 {
				switch w.Type {
				case F32:
					matvecF32x4NEON(k8, wp, ld, &xi[0], &res[0])
				case F16:
					matvecF16x4NEON(k8, wp, ld, &xi[0], &res[0])
				case BF16:
					matvecBF16x4NEON(k8, wp, ld, &xi[0], &res[0])
				}
			}
			if k8 < k {
				for j := range nv {
					res[j] += floatTail(w.Type, unsafe.Add(wp, j*ld), xi, k8)
				}
			}
		case Q8_0, Q4_0:
			q, d := unsafe.Pointer(&xq[i*k]), &xd[i*nblk]
			switch {
			case w.Type == Q8_0 && cpu.HasDotProd():
				matvecQ8_0x4NEON(nblk, wp, ld, q, d, &res[0])
			case w.Type == Q8_0:
				matvecQ8_0x4NEONnd(nblk, wp, ld, q, d, &res[0])
			case cpu.HasDotProd():
				matvecQ4_0x4NEON(nblk, wp, ld, q, d, &res[0])
			default:
				matvecQ4_0x4NEONnd(nblk, wp, ld, q, d, &res[0])
			}
		}
		copy(out[i*m+r:i*m+r+nv], res[:nv])
	}
}

// floatTail returns Σ_{c ≥ c0} row[c]·x[c] for a float row of type t at wp (the columns
// the 8-wide NEON kernels leave).
func floatTail(t DType, wp unsafe.Pointer, x []float32, c0 int) float32 {
	var s float32
	for c := c0; c < len(x); c++ {
		var v float32
		switch t {
		case F32:
			v = math.Float32frombits(binary.LittleEndian.Uint32((*[4]byte)(unsafe.Add(wp, 4*c))[:]))
		case F16:
			v = F16ToF32(u16At(wp, 2*c))
		case BF16:
			v = BF16ToF32(u16At(wp, 2*c))
		}
		s += v * x[c]
	}
	return s
}

// dotRowsNEON is DotRows on the neon path: four rows at a time with the f32 matrix-vector
// kernel (8-column multiples), the rest in Go.
func dotRowsNEON(out, x, m []float32, ld int) {
	k := len(x)
	k8 := k &^ 7
	j := 0
	for ; j+4 <= len(out); j += 4 {
		var res [4]float32
		if k8 > 0 {
			matvecF32x4NEON(k8, unsafe.Pointer(&m[j*ld]), 4*ld, &x[0], &res[0])
		}
		for i := range 4 {
			row := m[(j+i)*ld : (j+i)*ld+k]
			res[i] += dotGeneric(row[k8:], x[k8:])
		}
		copy(out[j:j+4], res[:])
	}
	for ; j < len(out); j++ {
		out[j] = dot(x, m[j*ld:j*ld+k])
	}
}

// matVecKNEON computes rows [lo, hi) of out = x·wᵀ for k-quant weights: the assembly sums
// each sub-block's integer products (into s.isum), and the super-block and sub-block scales
// (and q4_K/q5_K's mins against scale·Σq) are applied here:
// q4_K/q5_K Σ d·sc·dx·Σ(u·q) − dmin·m·dx·Σq, q6_K Σ d·sc·dx·Σ((u−32)·q).
func (p *Pool) matVecKNEON(s *workerScratch, out []float32, w *Mat, lo, hi int) {
	n := p.cur.n
	k, m := w.Cols, w.Rows
	rb, bb := w.RowBytes(), w.Type.BlockBytes()
	nsb := k / qkK
	l := subLen(w.Type)
	nsub := k / l
	s.isum = growI32(s.isum, nsub)
	dp := cpu.HasDotProd()
	for r := lo; r < hi; r++ {
		row := w.Data[r*rb : (r+1)*rb]
		wp := unsafe.Pointer(unsafe.SliceData(row))
		for i := range n {
			q := unsafe.Pointer(&p.shared.xq[i*k])
			switch {
			case w.Type == Q4_K && dp:
				kdotQ4KNEON(nsb, wp, q, &s.isum[0])
			case w.Type == Q4_K:
				kdotQ4KNEONnd(nsb, wp, q, &s.isum[0])
			case w.Type == Q5_K && dp:
				kdotQ5KNEON(nsb, wp, q, &s.isum[0])
			case w.Type == Q5_K:
				kdotQ5KNEONnd(nsb, wp, q, &s.isum[0])
			case dp:
				kdotQ6KNEON(nsb, wp, q, &s.isum[0])
			default:
				kdotQ6KNEONnd(nsb, wp, q, &s.isum[0])
			}
			xd, xs := p.shared.xs[i*nsub:(i+1)*nsub], p.shared.xqd[i*nsub:(i+1)*nsub]
			var acc float32
			for sb := range nsb {
				blk := row[sb*bb : (sb+1)*bb]
				is := s.isum[sb*(qkK/l) : (sb+1)*(qkK/l)]
				if w.Type == Q6_K {
					sc := blk[192:208]
					var sum float32
					for j := range 16 {
						sum += float32(int8(sc[j])) * xd[sb*16+j] * float32(is[j])
					}
					acc += f16At(blk, 208) * sum
					continue
				}
				scales := blk[4:16]
				var sum, msum float32
				for j := range 8 {
					sc, mn := scaleMinK4(j, scales)
					sum += float32(sc) * xd[sb*8+j] * float32(is[j])
					msum += float32(mn) * xs[sb*8+j]
				}
				acc += f16At(blk, 0)*sum - f16At(blk, 2)*msum
			}
			out[i*m+r] = acc
		}
	}
}

func growI32(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}
