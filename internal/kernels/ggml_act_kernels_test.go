package kernels

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/kernels/cputime"
)

// ggmlTestRow is n random values with the shapes that matter to the quantizers: outliers,
// an all-zero 256-block, a zero 32-block, a block of one repeated value (exact ties of
// x·id at ±127) and one with halves (x·id on .5 boundaries for round-to-even).
func ggmlTestRow(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		if rng.IntN(50) == 0 {
			x[i] *= 20
		}
	}
	if n >= 512 {
		clear(x[256:512])
	}
	if n >= 64 {
		clear(x[32:64])
	}
	if n >= 96 {
		for i := 64; i < 96; i++ {
			x[i] = -3.25
		}
	}
	if n >= 128 {
		for i := 96; i < 128; i++ {
			x[i] = float32(i-112) / 2 * (127.0 / 8) / 127 // x·(127/amax) = (i−112)/2·127/8
		}
	}
	return x
}

func TestGGMLActKernels(t *testing.T) { forEachPath(t, testGGMLActKernels) }

// testGGMLActKernels: every ggml activation kernel of this path gives the bytes of its
// pure-Go reference (ggml_act.go), for rows of several lengths and panels with and
// without missing tokens; the dequantized forms also equal the independent references
// of ggml_act_test.go (refGGMLQ8_0, refGGMLQ8_K).
func testGGMLActKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, k := range []int{256, 768, 1536} {
		x := ggmlTestRow(rng, k)
		// q8_0 dequantized.
		got, want := make([]float32, k), make([]float32, k)
		fakeQ8_0(got, x)
		fakeQ8_0Go(want, x)
		// (Values, not bits: Go's rounding keeps the sign of a zero q, VCVTPS2DQ does not.)
		if !slices.Equal(got, want) || !slices.Equal(got, refGGMLQ8_0(x)) {
			t.Fatalf("k=%d: fakeQ8_0 differs from its reference", k)
		}
		// q8_K dequantized.
		fakeQ8_K(got, x)
		fakeQ8_KGo(want, x)
		if !slices.Equal(got, want) || !slices.Equal(got, refGGMLQ8_K(x)) {
			t.Fatalf("k=%d: fakeQ8_K differs from its reference", k)
		}
		// q8_0 in the matrix-vector layout (the padding is not compared).
		nblk := k / 32
		mg, mw := make([]byte, nblk*xqMatvecBytes), make([]byte, nblk*xqMatvecBytes)
		quantXMatvecG(mw, x)
		if cpu.HasAVX2() {
			ggmlXMatvecQ8_0AVX2(nblk, &x[0], &mg[0])
		} else {
			quantXMatvecG(mg, x)
		}
		for b := range nblk {
			if !bytes.Equal(mg[b*xqMatvecBytes:b*xqMatvecBytes+68], mw[b*xqMatvecBytes:b*xqMatvecBytes+68]) {
				t.Fatalf("k=%d: matrix-vector q8_0 block %d differs from quantXMatvecG", k, b)
			}
		}
		// q8_K with per-sub-block scales.
		for _, l := range []int{32, 16} {
			qg, qw := make([]byte, k), make([]byte, k)
			dg, dw, sg, sw := make([]float32, k/l), make([]float32, k/l), make([]float32, k/l), make([]float32, k/l)
			quantXSubK(qg, dg, sg, x, l, true)
			quantXSubK(qw, dw, sw, x, l, false)
			if !bytes.Equal(qg, qw) || !slices.Equal(f32Bits(dg), f32Bits(dw)) || !slices.Equal(f32Bits(sg), f32Bits(sw)) {
				t.Fatalf("k=%d l=%d: quantXSubK's kernel differs from its Go code", k, l)
			}
		}
	}
	// Packed X panels: 12-token panels of 12 and of 5 tokens (the rest zero).
	for _, k := range []int{256, 512, 1280} {
		for _, n := range []int{nrQ, 5} {
			x := make([]float32, 0, n*k)
			for range n {
				x = append(x, ggmlTestRow(rng, k)...)
			}
			for _, l := range []int{32, 16} {
				sz := (k / l) * xSubBytes(l)
				pg, pw := bytes.Repeat([]byte{0xa5}, sz), bytes.Repeat([]byte{0x5a}, sz)
				packXQ8K(pg, x, n, k, 0, l, true)
				packXQ8K(pw, x, n, k, 0, l, false)
				if !bytes.Equal(pg, pw) {
					t.Fatalf("k=%d n=%d l=%d: packXQ8K's kernel differs from its Go code", k, n, l)
				}
			}
			sz := (k / 32) * xSubBytes(32)
			pg, pw := bytes.Repeat([]byte{0xa5}, sz), bytes.Repeat([]byte{0x5a}, sz)
			packXQ8G(pg, x, n, k, 0, true)
			packXQ8G(pw, x, n, k, 0, false)
			if !bytes.Equal(pg, pw) {
				t.Fatalf("k=%d n=%d: packXQ8G's kernel differs from its Go code", k, n)
			}
		}
	}
}

func f32Bits(x []float32) []uint32 {
	out := make([]uint32, len(x))
	for i, v := range x {
		out[i] = math.Float32bits(v)
	}
	return out
}

func TestGGMLDirectQ8_0(t *testing.T) { forEachPath(t, testGGMLDirectQ8_0) }

// testGGMLDirectQ8_0: in ggml mode, q8_0/q4_0/q5_0 products whose packers apply ggml's
// scales to the raw activations (ggml0Direct) equal, bit for bit, those computed from
// q8_0's dequantized activations (ggml0Faked), for matrix-vector and GEMM sizes, with row
// counts that leave a float tail, through MatMul and MatMulMulti.
func testGGMLDirectQ8_0(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	p := NewPool(2)
	defer p.Close()
	p.SetGGMLActivations(true)
	defer func() { ggml0Faked = false }()
	const cols = 512
	for _, typ := range []DType{Q8_0, Q4_0, Q5_0, Q5_1} {
		for _, rows := range []int{36, 38} {
			w, _ := randomMat(rng, typ, rows, cols)
			w2, _ := randomMat(rng, typ, 40, cols)
			for _, n := range []int{1, 3, 40} {
				var x []float32
				for range n {
					x = append(x, ggmlTestRow(rng, cols)...)
				}
				var res [2][3][]float32
				for f, faked := range []bool{false, true} {
					ggml0Faked = faked
					out := make([]float32, n*rows)
					if err := p.MatMul(out, x, n, &w); err != nil {
						t.Fatal(err)
					}
					m := [][]float32{make([]float32, n*rows), make([]float32, n*40)}
					if err := p.MatMulMulti(m, x, n, []*Mat{&w, &w2}); err != nil {
						t.Fatal(err)
					}
					res[f] = [3][]float32{out, m[0], m[1]}
				}
				for i := range 3 {
					if !slices.Equal(f32Bits(res[0][i]), f32Bits(res[1][i])) {
						t.Fatalf("%v rows=%d n=%d product %d: direct ggml q8_0 differs from the dequantized form (max %g)",
							typ, rows, n, i, maxAbsDiff(res[0][i], res[1][i]))
					}
				}
			}
		}
	}
}

// BenchmarkGGMLActivations: MatMul with the former default int8 activations against
// ggml's (one thread, smollm-135m's shapes: 576-wide rows for q8_0/q5_0, whose k-quant
// tensors fall back to q5_0, and ffn_down's 1536-wide rows for q4_K/q6_K; RAGKV_CPU picks
// the path), wall-clock and per CPU-second.
func BenchmarkGGMLActivations(b *testing.B) {
	p := NewPool(1)
	defer p.Close()
	for _, c := range []struct {
		typ     DType
		m, k, n int
	}{{Q8_0, 1536, 576, 512}, {Q8_0, 1536, 576, 1}, {Q5_0, 1536, 576, 512}, {Q5_0, 1536, 576, 1},
		{Q4_K, 576, 1536, 512}, {Q4_K, 576, 1536, 1}, {Q6_K, 576, 1536, 512}, {Q6_K, 576, 1536, 1}} {
		typ, sh := c.typ, struct{ m, k, n int }{c.m, c.k, c.n}
		{
			w, err := RandomMat(typ, sh.m, sh.k, 0.05, 1)
			if err != nil {
				b.Fatal(err)
			}
			x := randomF32(rand.New(rand.NewPCG(1, 1)), sh.n*sh.k)
			out := make([]float32, sh.n*sh.m)
			for _, act := range []Activations{ActInt8, ActGGML} {
				b.Run(fmt.Sprintf("%v/m%d_k%d_n%d/%v", typ, sh.m, sh.k, sh.n, act), func(b *testing.B) {
					p.SetActivations(act)
					_ = p.MatMul(out, x, sh.n, &w)
					c0, _ := cputime.Process()
					for b.Loop() {
						if err := p.MatMul(out, x, sh.n, &w); err != nil {
							b.Fatal(err)
						}
					}
					c1, _ := cputime.Process()
					flops := 2 * float64(sh.m*sh.k*sh.n) * float64(b.N)
					b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					b.ReportMetric(flops/(c1-c0).Seconds()/1e9, "cpuGFLOP/s")
				})
			}
		}
	}
}
