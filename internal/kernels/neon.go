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

// neonMatVec reports whether a NEON matrix-vector kernel covers type t (the k-quants take
// the generic kernels for few tokens and the int8 GEMM beyond).
func neonMatVec(t DType) bool {
	switch t {
	case F32, F16, BF16, Q8_0, Q4_0:
		return true
	}
	return false
}

// quantXNEONAll quantizes the n activation rows (k each) per 32-block for the NEON q8_0
// and q4_0 kernels: int8 values in p.shared.xq (k per row), scales in p.shared.xs.
func (p *Pool) quantXNEONAll(x []float32, n, k int) {
	nblk := k / 32
	p.shared.xq = growBytes(p.shared.xq, n*k)
	p.shared.xs = growF32(p.shared.xs, n*nblk)
	p.shared.xg = growF32(p.shared.xg, n*nblk) // d·Σq, unused here
	quantXSub(p.shared.xq, p.shared.xs, p.shared.xg, x[:n*k], 32)
}

// matVecNEON computes rows [lo, hi) of out = x·wᵀ with the NEON matrix-vector kernels
// (neonMatVec(w.Type) holds). A short last group of rows runs the four-row kernel on its
// own row four times (row stride 0).
func (p *Pool) matVecNEON(out []float32, w *Mat, lo, hi int) {
	x, n := p.cur.x, p.cur.n
	k, m := w.Cols, w.Rows
	rb := w.RowBytes()
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
