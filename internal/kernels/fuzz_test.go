package kernels

import (
	"errors"
	"math"
	"testing"
)

// FuzzDequantize feeds arbitrary bytes (as a model file could hold) to Dequantize and to
// MatMul on every path: they must return an error or a result, never panic, and where the
// weights are finite MatMul must agree with the dequantized product.
func FuzzDequantize(f *testing.F) {
	f.Add([]byte{0x00, 0x3c, 1, 2, 3}, uint8(3), uint16(32), uint8(1))
	f.Add(make([]byte, 210*2), uint8(7), uint16(512), uint8(3))
	f.Add(make([]byte, 144), uint8(5), uint16(256), uint8(13))
	f.Add([]byte{0xff, 0x7b, 0xff, 0xfb}, uint8(1), uint16(2), uint8(2))
	f.Add([]byte{}, uint8(0), uint16(0), uint8(0))
	p := NewPool(2)
	f.Cleanup(p.Close)
	f.Fuzz(func(t *testing.T, data []byte, ti uint8, cols uint16, n uint8) {
		typ := allTypes[int(ti)%len(allTypes)]
		dst := make([]float32, int(cols))
		err := Dequantize(dst, data, typ)
		if err != nil {
			if !errors.Is(err, ErrShape) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if cols == 0 {
			return
		}
		w := Mat{Type: typ, Rows: 1, Cols: int(cols), Data: data}
		for _, v := range dst {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || math.Abs(float64(v)) > 1e30 {
				return
			}
		}
		tokens := int(n%20) + 1
		x := make([]float32, tokens*int(cols))
		for i := range x {
			x[i] = float32(math.Sin(float64(i)))
		}
		out := make([]float32, tokens)
		for _, force := range []int{1, 1 << 20} {
			gemmMinTokens = force
			err := p.MatMul(out, x, tokens, &w)
			gemmMinTokens = 0
			if err != nil {
				t.Fatal(err)
			}
			checkMatMul(t, out, x, tokens, &w, dst)
		}
	})
}
