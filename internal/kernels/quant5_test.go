package kernels

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"
)

// refQ5 is ggml's quantize_row_q5_0_ref / quantize_row_q5_1_ref (ggml-quants.c) written
// out independently of quant.go: per 32-block the scale(s), then each element's 5-bit q
// from the C expressions (MIN(31, (int8_t)(x·id + 16.5f)) or (uint8_t)((x−min)·id + 0.5f)),
// its low nibble into qs (elements j and j+16 share byte j) and its fifth bit into qh.
func refQ5(x []float32, typ DType) []byte {
	bb := typ.BlockBytes()
	out := make([]byte, len(x)/32*bb)
	for b := 0; b < len(x)/32; b++ {
		blk, y := x[32*b:32*b+32], out[b*bb:(b+1)*bb]
		q := make([]int, 32)
		hdr := 4
		if typ == Q5_0 {
			hdr = 2
			amax, mx := float32(0), float32(0)
			for _, v := range blk {
				if float32(math.Abs(float64(v))) > amax {
					amax, mx = float32(math.Abs(float64(v))), v
				}
			}
			d := mx / -16
			id := float32(0)
			if d != 0 {
				id = 1 / d
			}
			binary.LittleEndian.PutUint16(y, F32ToF16(d))
			for j, v := range blk {
				t := float32(v * id)
				q[j] = min(31, int(int8(float32(t+16.5))))
			}
		} else {
			mn, mx := blk[0], blk[0]
			for _, v := range blk {
				mn, mx = min(mn, v), max(mx, v)
			}
			d := (mx - mn) / 31
			id := float32(0)
			if d != 0 {
				id = 1 / d
			}
			binary.LittleEndian.PutUint16(y, F32ToF16(d))
			binary.LittleEndian.PutUint16(y[2:], F32ToF16(mn))
			for j, v := range blk {
				t := float32(float32(v-mn) * id)
				q[j] = int(uint8(float32(t + 0.5)))
			}
		}
		var qh uint32
		for j := range 32 {
			qh |= uint32(q[j]>>4&1) << j
			y[hdr+4+j%16] |= byte(q[j]&15) << (4 * (j / 16))
		}
		binary.LittleEndian.PutUint32(y[hdr:], qh)
	}
	return out
}

// TestQuantizeQ5: Quantize gives ggml's q5_0 and q5_1 bytes (refQ5) for normal data with
// outliers, constant blocks, zero blocks and blocks whose largest magnitude is negative,
// and Dequantize of them stays within the format's rounding error (plus fp16's) of the input.
func TestQuantizeQ5(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	x := make([]float32, 32*64)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
		if rng.IntN(30) == 0 {
			x[i] *= -12
		}
	}
	clear(x[32:64])
	for i := 64; i < 96; i++ {
		x[i] = 0.75
	}
	for i := 96; i < 128; i++ {
		x[i] = -float32(i-96) / 8
	}
	for _, typ := range []DType{Q5_0, Q5_1} {
		rb, _ := RowBytes(typ, len(x))
		got := make([]byte, rb)
		if err := Quantize(got, x, typ); err != nil {
			t.Fatal(err)
		}
		want := refQ5(x, typ)
		if !bytes.Equal(got, want) {
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%v: byte %d (block %d) is %#x, ggml's algorithm %#x", typ, i, i/typ.BlockBytes(), got[i], want[i])
				}
			}
		}
		deq := make([]float32, len(x))
		if err := Dequantize(deq, got, typ); err != nil {
			t.Fatal(err)
		}
		for b := 0; b < len(x)/32; b++ {
			lo, hi := x[32*b], x[32*b]
			for _, v := range x[32*b : 32*b+32] {
				lo, hi = min(lo, v), max(hi, v)
			}
			// q5_1: half a step of (max−min)/31. q5_0: step amax/16, and a value of the
			// other sign than the largest-magnitude one clamps to q = 31, up to one step off.
			step, tol := float64(hi-lo)/31, 0.51
			if typ == Q5_0 {
				step, tol = math.Max(math.Abs(float64(lo)), math.Abs(float64(hi)))/16, 1.01
			}
			for i := 32 * b; i < 32*b+32; i++ {
				if e := math.Abs(float64(deq[i] - x[i])); e > step*tol+2e-3*math.Abs(float64(x[i]))+1e-6 {
					t.Fatalf("%v block %d: element %d = %g dequantizes to %g (step %g)", typ, b, i, x[i], deq[i], step)
				}
			}
		}
	}
	if n, err := RowBytes(Q5_1, 64); err != nil || n != 48 {
		t.Errorf("RowBytes(q5_1, 64) = %d, %v", n, err)
	}
	if typ, err := ParseDType("q5_1"); err != nil || typ != Q5_1 || Q5_1.String() != "q5_1" || Q5_1 != 7 {
		t.Errorf("ParseDType(q5_1) = %v, %v", typ, err)
	}
}
