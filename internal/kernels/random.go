package kernels

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// RandomMat returns a deterministic rows×cols matrix of type t for tests and benchmarks.
// Float, q8_0 and q4_0 weights are quantized from N(0, scale²) samples; q5_0 and k-quant
// blocks get uniformly random bytes with (super-)block scales drawn so that values are of
// order scale.
func RandomMat(t DType, rows, cols int, scale float32, seed uint64) (Mat, error) {
	rb, err := RowBytes(t, cols)
	if err != nil {
		return Mat{}, err
	}
	if rows < 0 {
		return Mat{}, fmt.Errorf("%w: %d rows", ErrShape, rows)
	}
	rng := rand.New(rand.NewPCG(seed, 0x6b65726e656c73))
	data := make([]byte, rows*rb)
	src := make([]float32, cols)
	for r := range rows {
		row := data[r*rb : (r+1)*rb]
		switch t {
		case Q5_0:
			for i := range row {
				row[i] = byte(rng.Uint32())
			}
			for b := 0; b < len(row); b += blockQ5_0Bytes {
				binary.LittleEndian.PutUint16(row[b:], F32ToF16(scale*float32(0.5+rng.Float64())/8))
			}
		case Q4_K, Q5_K, Q6_K:
			for i := 0; i+8 <= len(row); i += 8 {
				binary.LittleEndian.PutUint64(row[i:], rng.Uint64())
			}
			for i := len(row) &^ 7; i < len(row); i++ {
				row[i] = byte(rng.Uint32())
			}
			bb := t.BlockBytes()
			for b := 0; b < len(row); b += bb {
				// Scales are 6-bit (q4_K/q5_K) or int8 (q6_K) and quants up to 63.
				d := F32ToF16(scale * float32(0.5+rng.Float64()) / 1000)
				if t == Q6_K {
					binary.LittleEndian.PutUint16(row[b+208:], d)
				} else {
					binary.LittleEndian.PutUint16(row[b:], d)
					binary.LittleEndian.PutUint16(row[b+2:], F32ToF16(scale*float32(rng.Float64())/250))
				}
			}
		default:
			for i := range src {
				src[i] = scale * float32(rng.NormFloat64())
			}
			if err := Quantize(row, src, t); err != nil {
				return Mat{}, err
			}
		}
	}
	return Mat{Type: t, Rows: rows, Cols: cols, Data: data}, nil
}
