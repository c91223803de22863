package kernels

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/ragkv/ragkv/internal/kernels/cputime"
)

func TestMicroMatvecCPU(t *testing.T) {
	runtime.LockOSThread()
	for _, sh := range []struct{ m, k int }{{1536, 576}, {4096, 4096}, {32768, 4096}} {
		for _, typ := range []DType{Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K} {
			if sh.k%typ.BlockElems() != 0 {
				continue
			}
			w, _ := RandomMat(typ, sh.m, sh.k, 0.05, 1)
			x := make([]float32, sh.k)
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			xq := make([]byte, sh.k/32*xqMatvecBytes)
			quantXMatvec(xq, x)
			l := subLen(typ)
			q8 := make([]byte, sh.k)
			xd, xs := make([]float32, sh.k/l), make([]float32, sh.k/l)
			quantXSub(q8, xd, xs, x, l)
			rb := w.RowBytes()
			var res [4]float32
			base := unsafe.Pointer(&w.Data[0])
			for _, avx2 := range []bool{true, false} {
				best := 0.0
				for rep := 0; rep < 5; rep++ {
					iters := max(1, 200_000_000/len(w.Data))
					t0, _ := cputime.Process()
					for it := 0; it < iters; it++ {
						for r := 0; r+4 <= sh.m; r += 4 {
							wp := unsafe.Add(base, r*rb)
							switch {
							case typ == Q8_0 && avx2:
								matvecQ8_0x4AVX2(sh.k/32, wp, rb, unsafe.Pointer(&xq[0]), &res[0])
							case typ == Q8_0:
								matvecQ8_0x4(sh.k/32, wp, rb, unsafe.Pointer(&xq[0]), &res[0])
							case typ == Q4_0 && avx2:
								matvecQ4_0x4AVX2(sh.k/32, wp, rb, unsafe.Pointer(&xq[0]), &res[0])
							case typ == Q4_0:
								matvecQ4_0x4(sh.k/32, wp, rb, unsafe.Pointer(&xq[0]), &res[0])
							case typ == Q5_0:
								matvecQ5_0x4AVX2(sh.k/32, wp, rb, unsafe.Pointer(&xq[0]), &res[0])
							default:
								for i := 0; i < 4; i++ {
									wr := unsafe.Add(wp, i*rb)
									switch {
									case typ == Q4_K && avx2:
										res[i] = matvecQ4KQ8AVX2(sh.k/256, wr, unsafe.Pointer(&q8[0]), &xd[0], &xs[0])
									case typ == Q4_K:
										res[i] = matvecQ4KQ8(sh.k/256, wr, unsafe.Pointer(&q8[0]), &xd[0], &xs[0])
									case typ == Q5_K && avx2:
										res[i] = matvecQ5KQ8AVX2(sh.k/256, wr, unsafe.Pointer(&q8[0]), &xd[0], &xs[0])
									case typ == Q5_K:
										res[i] = matvecQ5KQ8(sh.k/256, wr, unsafe.Pointer(&q8[0]), &xd[0], &xs[0])
									case avx2:
										res[i] = matvecQ6KQ8AVX2(sh.k/256, wr, unsafe.Pointer(&q8[0]), &xd[0], &xs[0])
									default:
										res[i] = matvecQ6KQ8(sh.k/256, wr, unsafe.Pointer(&q8[0]), &xd[0], &xs[0])
									}
								}
							}
						}
					}
					t1, _ := cputime.Process()
					best = max(best, float64(len(w.Data))*float64(iters)/(t1-t0).Seconds()/1e9)
				}
				fmt.Printf("%v %dx%d avx2=%v: %.1f GB/s per CPU-second\n", typ, sh.m, sh.k, avx2, best)
			}
		}
	}
}
