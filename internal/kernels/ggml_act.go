package kernels

import (
	"encoding/binary"
	"math"
)

// ggml-exact activation quantization (Pool.SetGGMLActivations).
//
// ggml's CPU backend multiplies quantized weights by activations quantized to the weight
// type's vec_dot_type (ggml-cpu.c type_traits_cpu): q8_0 and q4_0 weights by q8_0 blocks
// (32 elements; quantize_row_q8_0: d = amax/127 stored as fp16, q = round-half-even(x·127/
// amax)), the k-quants by q8_K blocks (256 elements; quantize_row_q8_K_ref: iscale =
// −127/max, q = nearest_int(x·iscale), d = 1/iscale in float32). The default here quantizes
// per 32 elements (16 for q6_K) with a float32 scale, which is as accurate or more, but not
// the same numbers: on random-weight models that amplify small differences it moves the
// logits about half as far from llama.cpp's as llama.cpp's own quantization does (see
// model's oracle tests). The ggml form reuses the same dot-product kernels: for q8_0/q4_0
// weights the activations are replaced by their q8_0 dequantization d·q (exact in float32,
// and re-quantized to the same q and d by every packer here); for the k-quants the packers
// write q8_K's q with its per-256 scale into each sub-block, and the float kernels get the
// q8_K dequantization.

// ggmlKind is how ggml quantizes the activations of weights of type t: 1 q8_0, 2 q8_K,
// 0 not at all (float weights).
func ggmlKind(t DType) int {
	switch t {
	case Q8_0, Q4_0:
		return 1
	case Q4_K, Q5_K, Q6_K:
		return 2
	}
	return 0
}

// SetGGMLActivations makes MatMul quantize activations exactly as ggml's CPU backend does
// (q8_0 blocks with an fp16 scale for q8_0/q4_0 weights, q8_K blocks of 256 for the
// k-quants; see ggml_act.go), for comparisons with llama.cpp. The quantization runs in Go,
// which costs some prefill speed. Ignored while SetFloatActivations is on.
func (p *Pool) SetGGMLActivations(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ggmlAct = on
}

// ggmlPrepare returns the activations to use for a call on weights of type t in ggml mode
// (q8_0's dequantization for q8_0/q4_0 weights, else x) and whether the k-quant (q8_K)
// packers apply. Called with p.mu held.
func (p *Pool) ggmlPrepare(x []float32, n, k int, t DType) ([]float32, bool) {
	if !p.ggmlAct || p.floatAct {
		return x, false
	}
	switch ggmlKind(t) {
	case 1:
		p.shared.xg = growF32(p.shared.xg, n*k)
		for i := range n {
			fakeQ8_0(p.shared.xg[i*k:(i+1)*k], x[i*k:(i+1)*k])
		}
		return p.shared.xg[:n*k], false
	case 2:
		return x, true
	}
	return x, false
}

// ggmlFakeK replaces x by its q8_K dequantization, for the float kernels of a ggml-mode
// k-quant call.
func (p *Pool) ggmlFakeK(x []float32, n, k int) []float32 {
	p.shared.xg = growF32(p.shared.xg, n*k)
	for i := range n {
		fakeQ8_K(p.shared.xg[i*k:(i+1)*k], x[i*k:(i+1)*k])
	}
	return p.shared.xg[:n*k]
}

// fakeQ8_0 writes ggml's q8_0 quantization of x (x86 form of quantize_row_q8_0),
// dequantized: fp16(amax/127)·round-half-even(x·127/amax) per 32-block.
func fakeQ8_0(dst, x []float32) {
	for b := 0; b+32 <= len(x); b += 32 {
		blk := x[b : b+32]
		var amax float32
		for _, v := range blk {
			amax = max(amax, absf(v))
		}
		if amax == 0 {
			clear(dst[b : b+32])
			continue
		}
		d := F16ToF32(F32ToF16(amax / 127))
		id := 127 / amax
		for i, v := range blk {
			dst[b+i] = d * float32(math.RoundToEven(float64(v*id)))
		}
	}
}

// quantQ8K quantizes one 256-block as quantize_row_q8_K_ref does, returning its scale (up
// to sign: q and d are both negated there when the largest-magnitude value is positive,
// which leaves every product d·q unchanged).
func quantQ8K(q *[256]int8, x []float32) float32 {
	var amax float32
	for _, v := range x[:256] {
		amax = max(amax, absf(v))
	}
	if amax == 0 {
		*q = [256]int8{}
		return 0
	}
	iscale := 127 / amax
	for i, v := range x[:256] {
		q[i] = int8(min(127, max(-127, int(math.RoundToEven(float64(v*iscale))))))
	}
	return 1 / iscale
}

// fakeQ8_K writes ggml's q8_K quantization of x (len a multiple of 256), dequantized.
func fakeQ8_K(dst, x []float32) {
	var q [256]int8
	for b := 0; b+256 <= len(x); b += 256 {
		d := quantQ8K(&q, x[b:b+256])
		for i, v := range q {
			dst[b+i] = d * float32(v)
		}
	}
}

// packXQ8K is packXQ8 with ggml's q8_K quantization: tokens [j0, j0+nrQ) of x (n×k, k a
// multiple of 256) into one panel of l-element sub-blocks, each with its 256-block's scale.
func packXQ8K(dst []byte, x []float32, n, k, j0, l int) {
	steps := l / 4
	xs := xSubBytes(l)
	var q [256]int8
	for j := range nrQ {
		if j0+j >= n {
			for g := range k / l {
				sub := dst[g*xs : (g+1)*xs]
				for s := range steps {
					binary.LittleEndian.PutUint32(sub[s*48+4*j:], 0)
				}
				binary.LittleEndian.PutUint32(sub[steps*48+4*j:], 0)
				binary.LittleEndian.PutUint32(sub[steps*48+48+4*j:], 0)
			}
			continue
		}
		row := x[(j0+j)*k : (j0+j+1)*k]
		for b := 0; b < k; b += 256 {
			d := quantQ8K(&q, row[b:b+256])
			for e := 0; e < 256; e += l {
				sub := dst[(b+e)/l*xs : (b+e)/l*xs+xs]
				sum := 0
				for s := range steps {
					o := s*48 + 4*j
					for t := range 4 {
						v := q[e+4*s+t]
						sub[o+t] = byte(v)
						sum += int(v)
					}
				}
				binary.LittleEndian.PutUint32(sub[steps*48+4*j:], math.Float32bits(d))
				binary.LittleEndian.PutUint32(sub[steps*48+48+4*j:], math.Float32bits(d*float32(sum)))
			}
		}
	}
}

// quantXSubK is quantXSub with ggml's q8_K quantization: q per element, and per l-element
// sub-block its 256-block's scale d and d·Σq.
func quantXSubK(qb []byte, d, s []float32, x []float32, l int) {
	var q [256]int8
	for b := 0; b+256 <= len(x); b += 256 {
		db := quantQ8K(&q, x[b:b+256])
		for e := 0; e < 256; e += l {
			sum := 0
			for i := e; i < e+l; i++ {
				qb[b+i] = byte(q[i])
				sum += int(q[i])
			}
			g := (b + e) / l
			d[g], s[g] = db, db*float32(sum)
		}
	}
}
