package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refGGMLQ8_0 is ggml's quantize_row_q8_0 (the x86 SIMD form, ggml-cpu-quants.c: d =
// max|x|/127 stored as fp16, q = round-to-nearest-even(x·(127/max|x|))) followed by its
// dequantization, written independently of ggml_act.go.
func refGGMLQ8_0(x []float32) []float32 {
	out := make([]float32, len(x))
	for b := 0; b < len(x); b += 32 {
		var amax float32
		for _, v := range x[b : b+32] {
			amax = float32(math.Max(float64(amax), math.Abs(float64(v))))
		}
		d := F16ToF32(F32ToF16(amax / 127))
		var id float32
		if amax != 0 {
			id = 127 / amax
		}
		for i, v := range x[b : b+32] {
			out[b+i] = d * float32(math.RoundToEven(float64(v*id)))
		}
	}
	return out
}

// refNearestInt is ggml's nearest_int (ggml-quants.c): the float-add rounding trick.
func refNearestInt(f float32) int {
	v := f + 12582912
	return int(math.Float32bits(v)&0x007fffff) - 0x00400000
}

// refGGMLQ8_K is ggml's quantize_row_q8_K_ref (ggml-quants.c) and its dequantization: per
// 256 values, max = the value of largest magnitude (signed), iscale = −127/max,
// q = min(127, nearest_int(iscale·x)), d = 1/iscale.
func refGGMLQ8_K(x []float32) []float32 {
	out := make([]float32, len(x))
	for b := 0; b < len(x); b += 256 {
		var mx, amax float32
		for _, v := range x[b : b+256] {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, mx = a, v
			}
		}
		if amax == 0 {
			continue
		}
		iscale := -127 / mx
		d := 1 / iscale
		for i, v := range x[b : b+256] {
			out[b+i] = d * float32(min(127, refNearestInt(iscale*v)))
		}
	}
	return out
}

func TestGGMLActivations(t *testing.T) { forEachPath(t, testGGMLActivations) }

// testGGMLActivations: with SetGGMLActivations every quantized type's product equals the
// float64 product of the dequantized weights with ggml's dequantized activations (q8_0 or
// q8_K, from the reference quantizers above) within float32 accumulation error, for decode
// (matrix-vector) and GEMM sizes, through MatMul and MatMulMulti (shared and mixed forms);
// for the k-quants the default quantization differs from it (the mode matters).
func testGGMLActivations(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p := NewPool(2)
	defer p.Close()
	const rows, cols = 36, 512
	for _, typ := range []DType{Q8_0, Q4_0, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K} {
		w, deq := randomMat(rng, typ, rows, cols)
		for _, n := range []int{1, 5, 40} {
			x := randomF32(rng, n*cols)
			for i := range x {
				if rng.IntN(40) == 0 {
					x[i] *= 10
				}
			}
			ref := make([]float32, len(x))
			for i := range n {
				var r []float32
				if ggmlKind(typ) == 1 {
					r = refGGMLQ8_0(x[i*cols : (i+1)*cols])
				} else {
					r = refGGMLQ8_K(x[i*cols : (i+1)*cols])
				}
				copy(ref[i*cols:], r)
			}
			out := make([]float32, n*rows)
			xc := append([]float32(nil), x...)
			p.SetGGMLActivations(true)
			if err := p.MatMul(out, x, n, &w); err != nil {
				t.Fatal(err)
			}
			checkMatMulTol(t, out, ref, n, &w, deq, false)
			if maxAbsDiff(x, xc) != 0 {
				t.Fatalf("%v n=%d: MatMul changed its input", typ, n)
			}
			multi := [][]float32{make([]float32, n*rows), make([]float32, n*rows)}
			if err := p.MatMulMulti(multi, x, n, []*Mat{&w, &w}); err != nil {
				t.Fatal(err)
			}
			checkMatMulTol(t, multi[0], ref, n, &w, deq, false)
			checkMatMulTol(t, multi[1], ref, n, &w, deq, false)
			p.SetGGMLActivations(false)
			if ggmlKind(typ) != 1 {
				def := make([]float32, n*rows)
				if err := p.MatMul(def, x, n, &w); err != nil {
					t.Fatal(err)
				}
				if maxAbsDiff(def, out) < 1e-4*maxAbs32(out) {
					t.Errorf("%v n=%d: the default quantization gives ggml's results (max diff %g)", typ, n, maxAbsDiff(def, out))
				}
			}
		}
	}
	// Mixed activation forms in one MatMulMulti (q8_0 and q8_K) and mixed sub-block
	// lengths (q4_K and q6_K).
	p.SetGGMLActivations(true)
	defer p.SetGGMLActivations(false)
	n := 40
	x := randomF32(rng, n*cols)
	w8, d8 := randomMat(rng, Q8_0, rows, cols)
	w4, d4 := randomMat(rng, Q4_K, rows, cols)
	w6, d6 := randomMat(rng, Q6_K, rows, cols)
	ref0, refK := make([]float32, len(x)), make([]float32, len(x))
	for i := range n {
		copy(ref0[i*cols:], refGGMLQ8_0(x[i*cols:(i+1)*cols]))
		copy(refK[i*cols:], refGGMLQ8_K(x[i*cols:(i+1)*cols]))
	}
	outs := [][]float32{make([]float32, n*rows), make([]float32, n*rows), make([]float32, n*rows)}
	if err := p.MatMulMulti(outs, x, n, []*Mat{&w8, &w4, &w6}); err != nil {
		t.Fatal(err)
	}
	checkMatMulTol(t, outs[0], ref0, n, &w8, d8, false)
	checkMatMulTol(t, outs[1], refK, n, &w4, d4, false)
	checkMatMulTol(t, outs[2], refK, n, &w6, d6, false)
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func maxAbs32(a []float32) float64 {
	var m float64
	for _, v := range a {
		m = math.Max(m, math.Abs(float64(v)))
	}
	return m
}
