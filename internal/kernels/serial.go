package kernels

import (
	"github.com/ragkv/ragkv/internal/cpu"

	"fmt"
	"unsafe"
)

// SerialGemm multiplies float32 matrices given with row strides (BLAS-style) on the
// calling goroutine, with the same packing and micro-kernel as the Pool's float GEMM. It is
// for callers that parallelize at a coarser grain than one product (the engine's
// attention runs one (KV head, query block) per worker). Its packing scratch belongs to
// it and only grows, so steady-state calls allocate nothing. Not safe for concurrent use;
// the zero value is ready.
type SerialGemm struct {
	xf, wf, tile []float32
}

// MulABt computes C = A·Bᵀ: c[i*ldc+r] = Σ_t a[i*lda+t]·b[r*ldb+t] for i < n, r < m,
// t < k. It returns ErrShape (wrapped) if a buffer is too short for its stride and writes
// nothing then.
func (g *SerialGemm) MulABt(c []float32, ldc int, a []float32, lda int, b []float32, ldb int, n, m, k int) error {
	if err := checkStrided(c, ldc, a, lda, b, ldb, n, m, k, false); err != nil {
		return err
	}
	g.mul(c, ldc, a, lda, b, ldb, n, m, k, false)
	return nil
}

// MulAB computes C = A·B: c[i*ldc+r] = Σ_t a[i*lda+t]·b[t*ldb+r] for i < n, r < m, t < k.
// It returns ErrShape (wrapped) if a buffer is too short for its stride and writes
// nothing then.
func (g *SerialGemm) MulAB(c []float32, ldc int, a []float32, lda int, b []float32, ldb int, n, m, k int) error {
	if err := checkStrided(c, ldc, a, lda, b, ldb, n, m, k, true); err != nil {
		return err
	}
	g.mul(c, ldc, a, lda, b, ldb, n, m, k, true)
	return nil
}

func checkStrided(c []float32, ldc int, a []float32, lda int, b []float32, ldb int, n, m, k int, bkMajor bool) error {
	if n < 0 || m < 0 || k < 0 {
		return fmt.Errorf("%w: negative dimensions %d×%d×%d", ErrShape, n, m, k)
	}
	if n == 0 || m == 0 {
		return nil
	}
	need := func(rows, cols, ld int) int { return (rows-1)*ld + cols }
	bRows, bCols := m, k
	if bkMajor {
		bRows, bCols = k, m
	}
	switch {
	case ldc < m || len(c) < need(n, m, ldc):
		return fmt.Errorf("%w: C of %d values with stride %d for %d×%d", ErrShape, len(c), ldc, n, m)
	case k == 0:
		return nil
	case lda < k || len(a) < need(n, k, lda):
		return fmt.Errorf("%w: A of %d values with stride %d for %d×%d", ErrShape, len(a), lda, n, k)
	case ldb < bCols || len(b) < need(bRows, bCols, ldb):
		return fmt.Errorf("%w: B of %d values with stride %d for %d×%d", ErrShape, len(b), ldb, bRows, bCols)
	}
	return nil
}

// mul is the blocked product (see gemm.go): A packed once into panels of nrF rows, B
// packed per kcF×mcF block into panels of mrF columns of C.
func (g *SerialGemm) mul(c []float32, ldc int, a []float32, lda int, b []float32, ldb int, n, m, k int, bkMajor bool) {
	if n == 0 || m == 0 {
		return
	}
	if k == 0 {
		for i := range n {
			clear(c[i*ldc : i*ldc+m])
		}
		return
	}
	npan := (n + nrF - 1) / nrF
	g.xf = growF32(g.xf, npan*k*nrF)
	for jp := range npan {
		packXF32(g.xf[jp*k*nrF:(jp+1)*k*nrF], a, lda, n, k, jp*nrF)
	}
	g.wf = growF32(g.wf, mcF*kcF)
	g.tile = growF32(g.tile, nrF*mrF)
	for pc := 0; pc < k; pc += kcF {
		kc := min(kcF, k-pc)
		for ic := 0; ic < m; ic += mcF {
			mc := min(mcF, m-ic)
			if bkMajor {
				packWF32KMajor(g.wf, b, ldb, ic, mc, pc, kc)
			} else {
				packWF32Strided(g.wf, b, ldb, ic, mc, pc, kc)
			}
			macroF32(c, ldc, g.wf, g.xf, g.tile, n, k, ic, mc, pc, kc, 0, npan)
		}
	}
}

// packWF32Strided packs rows [r0, r0+mc) × columns [c0, c0+kc) of b (row r at b[r*ldb:])
// into panels of mrF rows, as packWFloat does; rows past mc are zero.
func packWF32Strided(dst, b []float32, ldb, r0, mc, c0, kc int) {
	npan := (mc + mrF - 1) / mrF
	for pi := range npan {
		pan := dst[pi*kc*mrF : (pi+1)*kc*mrF]
		nv := min(mrF, mc-pi*mrF)
		cdone := 0
		if cpu.HasAVX512() && nv == mrF && kc >= 16 {
			nblk := kc / 16
			for half := range 2 {
				row := r0 + pi*mrF + 16*half
				_ = b[(row+15)*ldb+c0+nblk*16-1]
				packF32T16(nblk, unsafe.Pointer(&b[row*ldb+c0]), 4*ldb, &pan[16*half])
			}
			cdone = nblk * 16
			if cdone == kc {
				continue
			}
		} else if cpu.HasAVX2() && nv == mrF && kc >= 8 {
			nblk := kc / 8
			for q := range 4 {
				row := r0 + pi*mrF + 8*q
				_ = b[(row+7)*ldb+c0+nblk*8-1]
				packF32T8AVX2(nblk, unsafe.Pointer(&b[row*ldb+c0]), 4*ldb, &pan[8*q])
			}
			cdone = nblk * 8
			if cdone == kc {
				continue
			}
		}
		for rr := range mrF {
			if rr >= nv {
				for cc := cdone; cc < kc; cc++ {
					pan[cc*mrF+rr] = 0
				}
				continue
			}
			src := b[(r0+pi*mrF+rr)*ldb+c0 : (r0+pi*mrF+rr)*ldb+c0+kc]
			for cc := cdone; cc < kc; cc++ {
				pan[cc*mrF+rr] = src[cc]
			}
		}
	}
}

// packWF32KMajor packs the panels of packWF32Strided for the matrix whose element (r, t)
// is b[t*ldb + r]: each panel row is a contiguous run of b.
func packWF32KMajor(dst, b []float32, ldb, r0, mc, c0, kc int) {
	npan := (mc + mrF - 1) / mrF
	for pi := range npan {
		pan := dst[pi*kc*mrF : (pi+1)*kc*mrF]
		nv := min(mrF, mc-pi*mrF)
		r := r0 + pi*mrF
		for cc := range kc {
			d := pan[cc*mrF : (cc+1)*mrF]
			copy(d, b[(c0+cc)*ldb+r:(c0+cc)*ldb+r+nv])
			clear(d[nv:])
		}
	}
}
