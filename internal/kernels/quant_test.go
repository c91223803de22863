package kernels

import (
	"bytes"
	"math"
	"testing"
)

// TestDequantizeBitExact reproduces every x.<type>.dequant tensor of quant_vectors.gguf
// (written by ggml's reference quantizers and dequantizers) bit for bit from x.<type>.
func TestDequantizeBitExact(t *testing.T) {
	tv := loadQuantVectors(t)
	for _, typ := range []DType{F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K} {
		t.Run(typ.String(), func(t *testing.T) {
			q, ok := tv["x."+typ.String()]
			if !ok {
				t.Fatalf("tensor x.%v missing", typ)
			}
			ref, ok := tv["x."+typ.String()+".dequant"]
			if !ok {
				t.Fatalf("tensor x.%v.dequant missing", typ)
			}
			if q.typ != typ || ref.typ != F32 {
				t.Fatalf("types %v/%v", q.typ, ref.typ)
			}
			want := f32s(ref.data)
			got := make([]float32, len(want))
			if err := Dequantize(got, q.data, typ); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					if bad < 5 {
						t.Errorf("element %d: got %g (%08x), want %g (%08x)", i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					}
					bad++
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d elements differ", bad, len(want))
			}
			// Row-wise dequantization of the same bytes gives the same values.
			cols := int(q.dims[0])
			rb, _ := RowBytes(typ, cols)
			row := make([]float32, cols)
			for r := 0; r < len(want)/cols; r++ {
				if err := Dequantize(row, q.data[r*rb:], typ); err != nil {
					t.Fatal(err)
				}
				for c := range row {
					if math.Float32bits(row[c]) != math.Float32bits(want[r*cols+c]) {
						t.Fatalf("row %d col %d differs", r, c)
					}
				}
			}
		})
	}
}

// TestQuantizeBitExact checks that Quantize(x) equals ggml's bytes x.<type> for the types
// with a reference quantizer here.
func TestQuantizeBitExact(t *testing.T) {
	tv := loadQuantVectors(t)
	x, ok := tv["x"]
	if !ok || x.typ != F32 {
		t.Fatal("tensor x (f32) missing")
	}
	src := f32s(x.data)
	for _, typ := range []DType{F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K} {
		t.Run(typ.String(), func(t *testing.T) {
			want := x.data
			if typ != F32 {
				want = tv["x."+typ.String()].data
			}
			got := make([]byte, len(want))
			if err := Quantize(got, src, typ); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("byte %d of %d differs: got %#x want %#x", i, len(got), got[i], want[i])
					}
				}
			}
		})
	}
}
