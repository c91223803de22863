package kernels

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/ragkv/ragkv/internal/cpu"
)

// edgyF32 returns n normal samples with zeros, tiny and huge magnitudes and ties after
// scaling mixed in, and an all-zero first 32-block.
func edgyF32(rng *rand.Rand, n int) []float32 {
	x := randomF32(rng, n)
	for i := range x {
		switch rng.IntN(40) {
		case 0:
			x[i] = 0
		case 1:
			x[i] *= 1e-30
		case 2:
			x[i] *= 1e30
		case 3:
			x[i] = float32(rng.IntN(255)-127) / 2
		}
	}
	clear(x[:min(32, n)])
	return x
}

// TestQuantActivationsAVX2Exact: the AVX2 quantizers of activations for the matrix-vector
// kernels write exactly the bytes (and float bits) of the pure-Go loops.
func TestQuantActivationsAVX2Exact(t *testing.T) {
	withPath(t, cpu.AVX2)
	rng := rand.New(rand.NewPCG(41, 42))
	for _, k := range []int{32, 64, 576, 1536} {
		x := edgyF32(rng, k)
		nblk := k / 32
		got, want := make([]byte, nblk*xqMatvecBytes), make([]byte, nblk*xqMatvecBytes)
		quantXMatvecAVX2(nblk, &x[0], &got[0])
		quantXMatvec(want, x)
		for b := range nblk {
			g, w := got[b*xqMatvecBytes:b*xqMatvecBytes+68], want[b*xqMatvecBytes:b*xqMatvecBytes+68]
			if !bytes.Equal(g, w) {
				t.Fatalf("quantXMatvec k=%d block %d:\n got %x\nwant %x", k, b, g, w)
			}
		}
		for _, l := range []int{32, 16} {
			nsub := k / l
			gq, wq := make([]byte, k), make([]byte, k)
			gd, gs, wd, ws := make([]float32, nsub), make([]float32, nsub), make([]float32, nsub), make([]float32, nsub)
			if l == 32 {
				quantXSub32AVX2(nblk, &x[0], &gq[0], &gd[0], &gs[0])
			} else {
				quantXSub16AVX2(nblk, &x[0], &gq[0], &gd[0], &gs[0])
			}
			quantXSub(wq, wd, ws, x, l)
			if !bytes.Equal(gq, wq) {
				t.Fatalf("quantXSub l=%d k=%d: q differs", l, k)
			}
			for i := range nsub {
				if math.Float32bits(gd[i]) != math.Float32bits(wd[i]) || math.Float32bits(gs[i]) != math.Float32bits(ws[i]) {
					t.Fatalf("quantXSub l=%d k=%d sub %d: d, s = %g, %g, pure Go %g, %g", l, k, i, gd[i], gs[i], wd[i], ws[i])
				}
			}
		}
	}
}

// interleaveRef is the pure-Go form of interleave16S<steps>: 4-byte group j of row r of
// each 64-byte chunk goes to sub-block j/steps, step j%steps, offset 4r.
func interleaveRef(dst, src []byte, nchunk, lds, steps int) {
	wsb := steps*64 + 128
	for ch := range nchunk {
		for r := range 16 {
			for j := range 16 {
				o := ch*16/steps*wsb + (j/steps)*wsb + (j%steps)*64 + 4*r
				copy(dst[o:o+4], src[r*lds+64*ch+4*j:])
			}
		}
	}
}

// TestInterleave16 compares the AVX2 (and AVX-512) panel interleaves with the reference,
// leaving the scale and offset bytes alone.
func TestInterleave16(t *testing.T) {
	if !cpu.Supports(cpu.AVX2) {
		t.Skip(cpu.Missing(cpu.AVX2))
	}
	rng := rand.New(rand.NewPCG(43, 44))
	for _, steps := range []int{8, 4} {
		for _, nchunk := range []int{1, 3, 16} {
			lds := 64*nchunk + 32
			src := make([]byte, 16*lds)
			for i := range src {
				src[i] = byte(rng.IntN(256))
			}
			size := nchunk * 16 / steps * (steps*64 + 128)
			want := bytes.Repeat([]byte{0xa5}, size)
			interleaveRef(want, src, nchunk, lds, steps)
			kernels := map[string]func(int, unsafe.Pointer, int, unsafe.Pointer){"avx2": interleave16AVX2S8}
			if steps == 4 {
				kernels["avx2"] = interleave16AVX2S4
			}
			if cpu.Supports(cpu.AVX512) {
				kernels["avx512"] = map[int]func(int, unsafe.Pointer, int, unsafe.Pointer){8: interleave16S8, 4: interleave16S4}[steps]
			}
			for name, fn := range kernels {
				got := bytes.Repeat([]byte{0xa5}, size)
				fn(nchunk, unsafe.Pointer(&src[0]), lds, unsafe.Pointer(&got[0]))
				if !bytes.Equal(got, want) {
					t.Fatalf("%s steps=%d nchunk=%d: panel differs", name, steps, nchunk)
				}
			}
		}
	}
}

// TestPackWQAVX2 checks that packWQ writes the pure-Go bytes on the avx2 path for every
// type but q8_0, and q8_0's signed form (u = q, o = 0) there.
func TestPackWQAVX2(t *testing.T) {
	withPath(t, cpu.AVX2)
	rng := rand.New(rand.NewPCG(45, 46))
	for _, typ := range []DType{Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K} {
		for _, sh := range []struct{ rows, r0, mc, c0, kc int }{{40, 3, 37, 0, 256}, {64, 0, 64, 256, 512}, {20, 2, 16, 0, 256}} {
			w, _ := randomMat(rng, typ, sh.rows, 1024)
			l := subLen(typ)
			size := (sh.mc + mrQ - 1) / mrQ * (sh.kc / l) * wSubBytes(l)
			got, want := make([]byte, size), make([]byte, size)
			tmp := make([]byte, mrQ*sh.kc)
			packWQ(got, &w, sh.r0, sh.mc, sh.c0, sh.kc, tmp)
			cpu.Set(cpu.Generic)
			packWQ(want, &w, sh.r0, sh.mc, sh.c0, sh.kc, tmp)
			cpu.Set(cpu.AVX2)
			if typ == Q8_0 {
				// Signed form: back to u = q+128 and o = −128·d for the rows < mc (rows
				// past mc are zero in both forms).
				steps, nsub, wsb := l/4, sh.kc/l, wSubBytes(l)
				for g := 0; g*wsb < len(got); g++ {
					sub := got[g*wsb : (g+1)*wsb]
					for r := range min(mrQ, sh.mc-g/nsub*mrQ) {
						for s := range steps {
							for i := range 4 {
								sub[s*64+4*r+i] ^= 0x80
							}
						}
						o := steps*64 + 64 + 4*r
						if binary.LittleEndian.Uint32(sub[o:]) != 0 {
							t.Fatalf("q8_0 signed form: offset of row %d not zero", r)
						}
						copy(sub[o:o+4], want[g*wsb+o:])
					}
				}
			}
			if !bytes.Equal(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%v %+v: byte %d = %#x, pure Go %#x", typ, sh, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestInt8AVX2MatchesVNNI: where the CPU has AVX-512 VNNI, the AVX2 int8 kernels (the
// avx512 path with VNNI switched off) give MatMul the same bits as the VNNI kernels, on
// the matrix-vector side and the GEMM side, for every type whose packed form they share
// (all quantized types but q8_0 on the GEMM side).
func TestInt8AVX2MatchesVNNI(t *testing.T) {
	withPath(t, cpu.AVX512)
	if !cpu.HasVNNI512() {
		t.Skip("no AVX-512 VNNI to compare with")
	}
	defer func() { gemmMinTokens = 0 }()
	rng := rand.New(rand.NewPCG(47, 48))
	p := NewPool(2)
	defer p.Close()
	for _, typ := range []DType{Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K} {
		for _, force := range []int{1 << 20, 1} {
			if force == 1 && typ == Q8_0 {
				continue
			}
			for _, sh := range []struct{ rows, cols, n int }{{37, 1024, 3}, {70, 2048, 14}, {16, 256, 1}} {
				w, _ := randomMat(rng, typ, sh.rows, sh.cols)
				x := randomF32(rng, sh.n*sh.cols)
				gemmMinTokens = force
				vnni := make([]float32, sh.n*sh.rows)
				if err := p.MatMul(vnni, x, sh.n, &w); err != nil {
					t.Fatal(err)
				}
				prev, prevDot := cpu.SetSubFeatures(false, true)
				avx2 := make([]float32, sh.n*sh.rows)
				err := p.MatMul(avx2, x, sh.n, &w)
				cpu.SetSubFeatures(prev, prevDot)
				if err != nil {
					t.Fatal(err)
				}
				for i := range vnni {
					if math.Float32bits(vnni[i]) != math.Float32bits(avx2[i]) {
						t.Fatalf("%v %+v gemm=%v: out[%d] = %g without VNNI, %g with", typ, sh, force == 1, i, avx2[i], vnni[i])
					}
				}
			}
		}
	}
}

// TestDequantizeQ5_0 checks q5_0 against ggml's dequantize_row_q5_0 written out as in
// ggml-quants.c (xh_0 = ((qh >> j) << 4) & 0x10, xh_1 = (qh >> (j + 12)) & 0x10).
func TestDequantizeQ5_0(t *testing.T) {
	rng := rand.New(rand.NewPCG(49, 50))
	const nb = 9
	src := make([]byte, nb*blockQ5_0Bytes)
	for i := range src {
		src[i] = byte(rng.IntN(256))
	}
	for b := range nb {
		binary.LittleEndian.PutUint16(src[b*blockQ5_0Bytes:], F32ToF16(float32(rng.NormFloat64())))
	}
	got := make([]float32, nb*32)
	if err := Dequantize(got, src, Q5_0); err != nil {
		t.Fatal(err)
	}
	for b := range nb {
		x := src[b*blockQ5_0Bytes:]
		d := F16ToF32(binary.LittleEndian.Uint16(x))
		qh := uint32(x[2]) | uint32(x[3])<<8 | uint32(x[4])<<16 | uint32(x[5])<<24
		for j := range 16 {
			xh0 := uint8((qh>>j)<<4) & 0x10
			xh1 := uint8(qh>>(j+12)) & 0x10
			x0 := int32((x[6+j]&0x0f)|xh0) - 16
			x1 := int32((x[6+j]>>4)|xh1) - 16
			for i, want := range []float32{float32(x0) * d, float32(x1) * d} {
				if g := got[b*32+j+16*i]; math.Float32bits(g) != math.Float32bits(want) {
					t.Fatalf("block %d element %d: %g, want %g", b, j+16*i, g, want)
				}
			}
		}
	}
	if n, err := RowBytes(Q5_0, 64); err != nil || n != 44 {
		t.Fatalf("RowBytes(q5_0, 64) = %d, %v", n, err)
	}
	if typ, err := ParseDType("q5_0"); err != nil || typ != Q5_0 || fmt.Sprint(Q5_0) != "q5_0" {
		t.Fatalf("ParseDType(q5_0) = %v, %v", typ, err)
	}
}

// extremeMat returns a rows×cols matrix of type typ whose quantized values are all at the
// top of their range (u = 15, 31 or 63; q8_0 alternating q = 127 and −128), with small
// scales: the largest integer sums the int8 kernels can meet, where an int16 overflow or
// saturation would show.
func extremeMat(typ DType, rows, cols int) (Mat, []float32) {
	rb, _ := RowBytes(typ, cols)
	data := bytes.Repeat([]byte{0xff}, rows*rb)
	bb := typ.BlockBytes()
	d := F32ToF16(1.0 / 4096)
	for b := 0; b < len(data); b += bb {
		blk := data[b : b+bb]
		switch typ {
		case Q8_0:
			for i := 2; i < bb; i++ {
				blk[i] = []byte{0x7f, 0x80}[(i/2)%2]
			}
			binary.LittleEndian.PutUint16(blk, d)
		case Q6_K:
			for i := 192; i < 208; i++ {
				blk[i] = 0x7f
			}
			binary.LittleEndian.PutUint16(blk[208:], d)
		case Q4_K, Q5_K:
			binary.LittleEndian.PutUint16(blk, d)
			binary.LittleEndian.PutUint16(blk[2:], d)
		case Q5_1:
			binary.LittleEndian.PutUint16(blk, d)
			binary.LittleEndian.PutUint16(blk[2:], F32ToF16(-1.0/256))
		default:
			binary.LittleEndian.PutUint16(blk, d)
		}
	}
	deq := make([]float32, rows*cols)
	if err := Dequantize(deq, data, typ); err != nil {
		panic(err)
	}
	return Mat{Type: typ, Rows: rows, Cols: cols, Data: data}, deq
}

// TestMatMulExtremeValues runs the largest integer sums through both sides (GEMM and
// matrix-vector) of every path, with activations all +1, all −1 and alternating.
func TestMatMulExtremeValues(t *testing.T) { forEachPath(t, testMatMulExtremeValues) }

func testMatMulExtremeValues(t *testing.T) {
	defer func() { gemmMinTokens = 0 }()
	p := NewPool(2)
	defer p.Close()
	for _, typ := range []DType{Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K} {
		const rows, cols, n = 33, 512, 13
		w, deq := extremeMat(typ, rows, cols)
		for xi, xf := range []func(i int) float32{
			func(int) float32 { return 1 },
			func(int) float32 { return -1 },
			func(i int) float32 { return float32(1 - 2*(i/2%2)) },
		} {
			x := make([]float32, n*cols)
			for i := range x {
				x[i] = xf(i)
			}
			for _, force := range []int{1, 1 << 20} {
				gemmMinTokens = force
				out := make([]float32, n*rows)
				if err := p.MatMul(out, x, n, &w); err != nil {
					t.Fatal(err)
				}
				t.Run(fmt.Sprintf("%v/x%d/gemm=%v", typ, xi, force == 1), func(t *testing.T) {
					checkMatMul(t, out, x, n, &w, deq)
				})
			}
		}
	}
}
