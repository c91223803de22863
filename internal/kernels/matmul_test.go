package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
)

var allTypes = []DType{F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K}

// randomMat returns a rows×cols matrix of type typ with random contents and its
// dequantized values. Float and q8_0/q4_0 weights are quantized from normal samples with
// occasional outliers; q5_0 and k-quant blocks get random bytes with small random scales.
func randomMat(rng *rand.Rand, typ DType, rows, cols int) (Mat, []float32) {
	rb, err := RowBytes(typ, cols)
	if err != nil {
		panic(err)
	}
	data := make([]byte, rows*rb)
	src := make([]float32, cols)
	for r := range rows {
		row := data[r*rb : (r+1)*rb]
		switch typ {
		case Q5_0:
			for i := range row {
				row[i] = byte(rng.IntN(256))
			}
			for b := 0; b < len(row); b += blockQ5_0Bytes {
				binary.LittleEndian.PutUint16(row[b:], F32ToF16(float32(rng.Float64()*0.2+1e-3)))
			}
		case Q4_K, Q5_K, Q6_K:
			for i := range row {
				row[i] = byte(rng.IntN(256))
			}
			bb := typ.BlockBytes()
			for b := 0; b < len(row); b += bb {
				d := F32ToF16(float32(rng.Float64()*0.02 + 1e-4))
				if typ == Q6_K {
					binary.LittleEndian.PutUint16(row[b+208:], d)
				} else {
					binary.LittleEndian.PutUint16(row[b:], d)
					binary.LittleEndian.PutUint16(row[b+2:], F32ToF16(float32(rng.Float64()*0.02)))
				}
			}
		default:
			for i := range src {
				src[i] = float32(rng.NormFloat64())
				if rng.IntN(50) == 0 {
					src[i] *= 8
				}
			}
			if err := Quantize(row, src, typ); err != nil {
				panic(err)
			}
		}
	}
	deq := make([]float32, rows*cols)
	if err := Dequantize(deq, data, typ); err != nil {
		panic(err)
	}
	return Mat{Type: typ, Rows: rows, Cols: cols, Data: data}, deq
}

func randomF32(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// checkMatMul compares out against a float64 product of x and the dequantized weights.
// The tolerance is 1e-5·Σ|x·w| (float32 accumulation) plus, for quantized weights, the
// exact worst-case effect of quantizing each 32-block of activations to 8 bits:
// Σ_c |w_c|·amax_block(c)/254.
func checkMatMul(t *testing.T, out, x []float32, n int, w *Mat, deq []float32) {
	t.Helper()
	checkMatMulTol(t, out, x, n, w, deq, w.Type.BlockElems() > 1)
}

func checkMatMulTol(t *testing.T, out, x []float32, n int, w *Mat, deq []float32, quantAct bool) {
	t.Helper()
	bad := 0
	for i := range n {
		xr := x[i*w.Cols : (i+1)*w.Cols]
		var amax []float64
		if quantAct {
			amax = make([]float64, (w.Cols+31)/32)
			for c, v := range xr {
				amax[c/32] = math.Max(amax[c/32], math.Abs(float64(v)))
			}
		}
		for r := range w.Rows {
			wr := deq[r*w.Cols : (r+1)*w.Cols]
			var want, mag, qerr float64
			for c := range xr {
				p := float64(xr[c]) * float64(wr[c])
				want += p
				mag += math.Abs(p)
				if quantAct {
					qerr += math.Abs(float64(wr[c])) * amax[c/32] / 254
				}
			}
			tol := 1e-5*mag + 1.0001*qerr + 1e-30
			got := float64(out[i*w.Rows+r])
			if math.Abs(got-want) > tol || math.IsNaN(got) {
				if bad < 5 {
					t.Errorf("%v %d×%d n=%d: out[%d][%d] = %g, want %g ± %g", w.Type, w.Rows, w.Cols, n, i, r, got, want, tol)
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d wrong outputs", bad)
	}
}

func TestMatMulAllTypes(t *testing.T) {
	forEachPath(t, testMatMulAllTypes)
	// Every shape through the GEMM too (edge tiles of every size).
	defer func() { gemmMinTokens = 0 }()
	gemmMinTokens = 1
	forEachPath(t, testMatMulAllTypes)
}

func testMatMulAllTypes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, threads := range testThreads() {
		p := NewPool(threads)
		defer p.Close()
		for _, typ := range allTypes {
			be := typ.BlockElems()
			colsList := []int{256, 512, 768}
			if be == 1 {
				colsList = []int{1, 7, 16, 33, 256, 300}
			} else if be == 32 {
				colsList = []int{32, 96, 256, 544}
			}
			for _, cols := range colsList {
				for _, rows := range []int{1, 5, 16, 33, 70} {
					for _, n := range []int{1, 3, 17} {
						name := fmt.Sprintf("t%d/%v/%dx%d/n%d", threads, typ, rows, cols, n)
						w, deq := randomMat(rng, typ, rows, cols)
						x := randomF32(rng, n*cols)
						out := make([]float32, n*rows+3)
						for i := range out {
							out[i] = float32(math.NaN())
						}
						if err := p.MatMul(out, x, n, &w); err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						for i := n * rows; i < len(out); i++ {
							if !math.IsNaN(float64(out[i])) {
								t.Fatalf("%s: wrote past n*rows", name)
							}
						}
						t.Run(name, func(t *testing.T) { checkMatMul(t, out, x, n, &w, deq) })
					}
				}
			}
		}
	}
}

// TestMatMulLarger exercises tile edges and multi-block inner loops at sizes closer to a
// model's (rows and tokens not multiples of any tile).
func TestMatMulLarger(t *testing.T) { forEachPath(t, testMatMulLarger) }

func testMatMulLarger(t *testing.T) {
	if !testing.Short() { // -short (make test-arm64, under qemu): the two forced passes only
		testMatMulShapes(t)
	}
	// Every shape through each path: all-GEMM, and all matrix-vector where it exists.
	defer func() { gemmMinTokens = 0 }()
	gemmMinTokens = 1
	testMatMulShapes(t)
	gemmMinTokens = 1 << 20
	testMatMulShapes(t)
}

func testMatMulShapes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := NewPool(2)
	defer p.Close()
	shapes := []struct{ rows, cols, n int }{{67, 1024, 37}, {130, 512, 64}, {33, 2048, 2}, {9, 1280, 1}, {40, 256, 13}, {290, 1280, 14}, {16, 256, 50}}
	if testing.Short() {
		shapes = []struct{ rows, cols, n int }{{67, 1024, 37}, {33, 2048, 2}, {9, 1280, 1}, {40, 256, 13}, {16, 256, 50}}
	}
	for _, typ := range allTypes {
		for _, sh := range shapes {
			w, deq := randomMat(rng, typ, sh.rows, sh.cols)
			x := randomF32(rng, sh.n*sh.cols)
			out := make([]float32, sh.n*sh.rows)
			if err := p.MatMul(out, x, sh.n, &w); err != nil {
				t.Fatal(err)
			}
			t.Run(fmt.Sprintf("%v/%dx%d/n%d", typ, sh.rows, sh.cols, sh.n), func(t *testing.T) {
				checkMatMul(t, out, x, sh.n, &w, deq)
			})
		}
	}
}

func TestMatMulErrors(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	w := F32Mat(4, 8, make([]float32, 32))
	out := make([]float32, 8)
	x := make([]float32, 16)
	if err := p.MatMul(out, x[:15], 2, &w); !errors.Is(err, ErrShape) {
		t.Errorf("short x: %v", err)
	}
	if err := p.MatMul(out[:7], x, 2, &w); !errors.Is(err, ErrShape) {
		t.Errorf("short out: %v", err)
	}
	bad := Mat{Type: Q8_0, Rows: 2, Cols: 48, Data: make([]byte, 200)}
	if err := p.MatMul(out, x, 1, &bad); !errors.Is(err, ErrShape) {
		t.Errorf("cols not a block multiple: %v", err)
	}
	short := Mat{Type: Q8_0, Rows: 2, Cols: 32, Data: make([]byte, 67)}
	if err := p.MatMul(out, make([]float32, 32), 1, &short); !errors.Is(err, ErrShape) {
		t.Errorf("short data: %v", err)
	}
	unk := Mat{Type: DType(99), Rows: 1, Cols: 1, Data: make([]byte, 4)}
	if err := p.MatMul(out, x, 1, &unk); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("unknown type: %v", err)
	}
	if err := p.MatMul(out, x, 0, &w); err != nil {
		t.Errorf("n=0: %v", err)
	}
	empty := F32Mat(4, 0, nil)
	big := make([]float32, 40)
	for i := range big {
		big[i] = 1
	}
	if err := p.MatMul(big, nil, 10, &empty); err != nil || big[39] != 0 || big[0] != 0 {
		t.Errorf("cols=0: err %v, out %v", err, big)
	}
}

func TestParallelCoverage(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 8} {
		p := NewPool(threads)
		if p.Threads() != threads {
			t.Fatalf("Threads() = %d", p.Threads())
		}
		for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 100, 1001} {
			hits := make([]atomic.Int32, n)
			var calls atomic.Int32
			p.Parallel(n, func(lo, hi int) {
				calls.Add(1)
				if lo >= hi {
					t.Errorf("empty range [%d,%d)", lo, hi)
				}
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			for i := range hits {
				if hits[i].Load() != 1 {
					t.Fatalf("threads=%d n=%d: index %d covered %d times", threads, n, i, hits[i].Load())
				}
			}
			if int(calls.Load()) > threads {
				t.Fatalf("threads=%d n=%d: %d calls", threads, n, calls.Load())
			}
		}
		p.Close()
		p.Close() // idempotent
		ran := 0
		p.Parallel(10, func(lo, hi int) { ran += hi - lo })
		if ran != 10 {
			t.Fatalf("after Close: covered %d", ran)
		}
	}
}

func TestPoolConcurrentCallers(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	w, deq := randomMat(rng, Q8_0, 40, 256)
	x := randomF32(rng, 3*256)
	outs := make([][]float32, 4)
	done := make(chan struct{})
	for g := range outs {
		outs[g] = make([]float32, 3*40)
		go func() {
			defer func() { done <- struct{}{} }()
			for range 20 {
				if err := p.MatMul(outs[g], x, 3, &w); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for range outs {
		<-done
	}
	for g := range outs {
		checkMatMul(t, outs[g], x, 3, &w, deq)
	}
}

// TestMatVecKQuantsExact checks the decode path of the k-quants with float32 activations
// (dequantized in registers, or by the generic kernels; int8 mode, in which kFloat leaves
// them unquantized) against the tight float tolerance.
func TestMatVecKQuantsExact(t *testing.T) { forEachPath(t, testMatVecKQuantsExact) }

func testMatVecKQuantsExact(t *testing.T) {
	kFloat = true
	defer func() { kFloat = false }()
	rng := rand.New(rand.NewPCG(9, 10))
	p := NewPool(2)
	defer p.Close()
	p.SetActivations(ActInt8) // float activations as they are (ggml's would be q8_K's values)
	for _, typ := range []DType{Q4_K, Q5_K, Q6_K} {
		for _, cols := range []int{256, 512, 2048} {
			for n := 1; n < p.gemmThreshold(typ); n += 3 {
				w, deq := randomMat(rng, typ, 13, cols)
				x := randomF32(rng, n*cols)
				out := make([]float32, n*13)
				if err := p.MatMul(out, x, n, &w); err != nil {
					t.Fatal(err)
				}
				checkMatMulTol(t, out, x, n, &w, deq, false)
			}
		}
	}
}

// TestPackWFloat compares the register-transposing packer with the scalar one.
func TestPackWFloat(t *testing.T) { forEachPath(t, testPackWFloat) }

func testPackWFloat(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, typ := range []DType{F32, F16, BF16} {
		for _, sh := range []struct{ mc, c0, kc int }{{64, 0, 256}, {64, 16, 100}, {40, 3, 37}, {32, 5, 16}, {64, 1, 8}, {64, 7, 23}, {33, 0, 9}} {
			w, deq := randomMat(rng, typ, 70, 300)
			got := make([]float32, (sh.mc+mrF-1)/mrF*mrF*sh.kc)
			packWFloat(got, &w, 2, sh.mc, sh.c0, sh.kc)
			for i := range got {
				pi, rem := i/(sh.kc*mrF), i%(sh.kc*mrF)
				c, rr := rem/mrF, rem%mrF
				r := pi*mrF + rr
				var want float32
				if r < sh.mc {
					want = deq[(2+r)*300+sh.c0+c]
				}
				if got[i] != want {
					t.Fatalf("%v %+v: panel %d c %d r %d: %g want %g", typ, sh, pi, c, rr, got[i], want)
				}
			}
		}
	}
}

// TestPackXF32 compares the register-transposing X packer with the scalar one, for full
// and partial panels and inner sizes around the vector widths.
func TestPackXF32(t *testing.T) { forEachPath(t, testPackXF32) }

func testPackXF32(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, k := range []int{1, 7, 8, 9, 16, 17, 24, 40, 100} {
		for _, n := range []int{5, 12, 30} {
			ldx := k + 3
			x := randomF32(rng, n*ldx)
			for j0 := 0; j0 < n; j0 += nrF {
				got := randomF32(rng, k*nrF)
				packXF32(got, x, ldx, n, k, j0)
				for c := range k {
					for j := range nrF {
						var want float32
						if j0+j < n {
							want = x[(j0+j)*ldx+c]
						}
						if g := got[c*nrF+j]; g != want {
							t.Fatalf("k=%d n=%d j0=%d: panel[%d][%d] = %g, want %g", k, n, j0, c, j, g, want)
						}
					}
				}
			}
		}
	}
}

// TestMatMulNoAllocs checks that steady-state calls allocate nothing, on every path.
func TestMatMulNoAllocs(t *testing.T) { forEachPath(t, testMatMulNoAllocs) }

func testMatMulNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	p := NewPool(2)
	defer p.Close()
	for _, typ := range allTypes {
		for _, n := range []int{1, 2, 64} {
			w, _ := randomMat(rng, typ, 64, 512)
			x := randomF32(rng, n*512)
			out := make([]float32, n*64)
			if err := p.MatMul(out, x, n, &w); err != nil {
				t.Fatal(err)
			}
			if a := testing.AllocsPerRun(5, func() { _ = p.MatMul(out, x, n, &w) }); a != 0 {
				t.Errorf("%v n=%d: %.1f allocations per call", typ, n, a)
			}
		}
	}
	ys := randomF32(rng, 100)
	if a := testing.AllocsPerRun(5, func() { p.Parallel(100, func(lo, hi int) { Scale(ys[lo:hi], 1) }) }); a > 1 {
		t.Errorf("Parallel: %.1f allocations per call", a)
	}
}

// TestMatMulFloatActivations checks that with float activations every quantized type
// matches the dequantized product to float tolerance, on both paths.
func TestMatMulFloatActivations(t *testing.T) { forEachPath(t, testMatMulFloatActivations) }

func testMatMulFloatActivations(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	p := NewPool(2)
	defer p.Close()
	p.SetFloatActivations(true)
	for _, typ := range []DType{Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K} {
		for _, sh := range []struct{ rows, cols, n int }{{67, 1024, 1}, {40, 512, 3}, {70, 768, 20}, {33, 1280, 13}} {
			w, deq := randomMat(rng, typ, sh.rows, sh.cols)
			x := randomF32(rng, sh.n*sh.cols)
			out := make([]float32, sh.n*sh.rows)
			if err := p.MatMul(out, x, sh.n, &w); err != nil {
				t.Fatal(err)
			}
			checkMatMulTol(t, out, x, sh.n, &w, deq, false)
		}
	}
}

// TestPackXQ8Exact checks that the assembly quantization of activations writes the same
// bytes as the pure-Go loop (zero blocks, tiny and huge magnitudes, ties, padding tokens).
func TestPackXQ8Exact(t *testing.T) {
	forEachPath(t, testPackXQ8Exact)
}

func testPackXQ8Exact(t *testing.T) {
	p := cpu.Active()
	if p == cpu.Generic {
		t.Skip("the generic path is the reference")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, l := range []int{32, 16} {
		for _, sh := range []struct{ n, k int }{{1, l}, {5, 256}, {12, 576}, {17, 1536}} {
			x := randomF32(rng, sh.n*sh.k)
			for i := range x {
				switch rng.IntN(40) {
				case 0:
					x[i] = 0
				case 1:
					x[i] *= 1e-30
				case 2:
					x[i] *= 1e30
				case 3:
					x[i] = float32(rng.IntN(255)-127) / 2 // ties after scaling
				}
			}
			clear(x[:l]) // an all-zero block
			sz := (sh.k / l) * xSubBytes(l)
			for j0 := 0; j0 < sh.n; j0 += nrQ {
				got, want := make([]byte, sz), make([]byte, sz)
				packXQ8(got, x, sh.n, sh.k, j0, l)
				cpu.Set(cpu.Generic)
				packXQ8(want, x, sh.n, sh.k, j0, l)
				cpu.Set(p)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("l=%d n=%d k=%d j0=%d: byte %d = %#x, pure Go %#x", l, sh.n, sh.k, j0, i, got[i], want[i])
					}
				}
			}
		}
	}
}
