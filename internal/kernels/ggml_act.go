package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/ragkv/ragkv/internal/cpu"
)

// ggml-exact activation quantization (Pool.SetGGMLActivations).
//
// ggml's CPU backend multiplies quantized weights by activations quantized to the weight
// type's vec_dot_type (ggml-cpu.c type_traits_cpu): q8_0 and q4_0 weights by q8_0 blocks
// (32 elements; quantize_row_q8_0: d = amax/127 stored as fp16, q = round-half-even(x·127/
// amax)), the k-quants by q8_K blocks (256 elements; quantize_row_q8_K_ref: iscale =
// −127/max, q = nearest_int(x·iscale), d = 1/iscale in float32). This is the default
// (ActGGML). The former default (ActInt8) quantizes per 32 elements (16 for q6_K) with a
// float32 scale, which is as accurate or more, but not the same numbers: on random-weight
// models that amplify small differences it moves the logits about 0.7× as far from
// llama.cpp's (q8_0) as llama.cpp's own quantization does, against 0.0–0.54 with ggml's
// (see model's oracle tests). The ggml form reuses the same dot-product kernels: for q8_0/q4_0
// weights the activations are replaced by their q8_0 dequantization d·q (exact in float32,
// and re-quantized to the same q and d by every packer here); for the k-quants the packers
// write q8_K's q with its per-256 scale into each sub-block, and the float kernels get the
// q8_K dequantization.
//
// Where the AVX2 kernels of asm_gen_ggmlact.go run (the avx2 and avx512 paths), the q8_0
// form is not faked: the packers of the int8 kernels (packXQ8G, quantXMatvecG) quantize
// the raw activations with ggml's scales directly, which gives the same q and d (call.ggml0);
// the other paths (and the rows the matrix-vector kernels leave to the float tail) get
// the dequantized activations as before. Each kernel's pure-Go reference is the function
// named in its comment; the tests compare them on every path.

// ggmlKind is how ggml quantizes the activations of weights of type t: 1 q8_0, 2 q8_K,
// 0 not at all (float weights).
func ggmlKind(t DType) int {
	switch t {
	case Q8_0, Q4_0, Q5_0, Q5_1:
		// (ggml multiplies q5_1 by q8_1 blocks: q8_0's q and d, and for the offset term
		// fp16(d·Σq) where this uses d·Σq.)
		return 1
	case Q4_K, Q5_K, Q6_K:
		return 2
	}
	return 0
}

// SetGGMLActivations makes MatMul quantize activations exactly as ggml's CPU backend does
// (q8_0 blocks with an fp16 scale for q8_0/q4_0/q5_0/q5_1 weights, q8_K blocks of 256 for
// the k-quants; see ggml_act.go): on by default except on the neon path (defaultGGML);
// off, they are quantized per 32-element block (16 for q6_K) with a float32 scale
// (ActInt8). Ignored while SetFloatActivations is on.
func (p *Pool) SetGGMLActivations(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ggmlAct = on
}

// ggmlPrepare returns the activations to use for a call on weights of type t in ggml mode
// and the call's ggml form: ggmlK (the k-quant q8_K packers apply) or ggml0 (x is raw and
// the q8_0 packers apply ggml's scales; ggml0Direct), else for q8_0/q4_0/q5_0 weights
// q8_0's dequantization of x. Called with p.mu held.
func (p *Pool) ggmlPrepare(x []float32, n, k int, t DType) (xs []float32, ggmlK, ggml0 bool) {
	if !p.ggmlAct || p.floatAct {
		return x, false, false
	}
	switch ggmlKind(t) {
	case 1:
		if ggml0Direct() {
			return x, false, true
		}
		return p.ggmlFake0(x, n, k), false, false
	case 2:
		return x, true, false
	}
	return x, false, false
}

// defaultGGML reports whether a new Pool quantizes activations as ggml does (ActGGML) or
// per 32-block (ActInt8) on the active kernel path: ggml's where its packers run in SIMD
// (the AVX2 kernels of asm_gen_ggmlact.go on the avx2 and avx512 paths) or where the float
// GEMM of the pure-Go path dominates every call; on NEON the packers are still Go, which
// would cost the SDOT kernels prefill time, so ActInt8 stays the default there.
func defaultGGML() bool { return !cpu.HasNEON() }

// ggml0Direct reports whether the q8_0 packers quantize raw activations with ggml's scales
// here (the AVX2 kernels of asm_gen_ggmlact.go).
func ggml0Direct() bool { return cpu.HasAVX2() && !ggml0Faked }

// ggml0Faked turns ggml0Direct off (tests compare both forms).
var ggml0Faked = false

// ggmlFake0 replaces x by its q8_0 dequantization (ggml's scales).
func (p *Pool) ggmlFake0(x []float32, n, k int) []float32 {
	p.shared.xg = growF32(p.shared.xg, n*k)
	for i := range n {
		fakeQ8_0(p.shared.xg[i*k:(i+1)*k], x[i*k:(i+1)*k])
	}
	return p.shared.xg[:n*k]
}

// ggmlUndirect turns a ggml0 call into one on q8_0's dequantized activations, for the
// kernels that would read x as floats.
func (p *Pool) ggmlUndirect() {
	c := &p.cur
	if !c.ggml0 {
		return
	}
	var k int
	if c.w != nil {
		k = c.w.Cols
	} else {
		k = c.ws[0].Cols
	}
	c.x, c.ggml0 = p.ggmlFake0(c.x, c.n, k), false
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
// dequantized: fp16(amax/127)·round-half-even(x·127/amax) per 32-block (kernel:
// ggmlFakeQ8_0AVX2).
func fakeQ8_0(dst, x []float32) {
	if nb := len(x) / 32; cpu.HasAVX2() && nb > 0 {
		_, _ = x[32*nb-1], dst[32*nb-1]
		ggmlFakeQ8_0AVX2(nb, &x[0], &dst[0])
		return
	}
	fakeQ8_0Go(dst, x)
}

// ggmlQ8_0Scale is ggml's q8_0 scales of a block with largest magnitude amax: d =
// fp16(amax/127) (as float32) and id = 127/amax (0 when amax is 0).
func ggmlQ8_0Scale(amax float32) (d, id float32) {
	d = F16ToF32(F32ToF16(amax / 127))
	if amax != 0 {
		id = 127 / amax
	}
	return d, id
}

// quantXMatvecG is quantXMatvec with ggml's q8_0 scales (ggmlQ8_0Scale; kernel:
// ggmlXMatvecQ8_0AVX2).
func quantXMatvecG(dst []byte, x []float32) {
	for b := 0; b < len(x)/qk8_0; b++ {
		blk := x[b*qk8_0 : (b+1)*qk8_0]
		o := dst[b*xqMatvecBytes : (b+1)*xqMatvecBytes]
		var amax float32
		for _, v := range blk {
			amax = max(amax, absf(v))
		}
		d, id := ggmlQ8_0Scale(amax)
		for g := range 8 {
			s := 0
			for t := range 4 {
				q := int(math.RoundToEven(float64(blk[4*g+t] * id)))
				q = max(-127, min(127, q))
				o[4*g+t] = byte(int8(q))
				s += q
			}
			binary.LittleEndian.PutUint32(o[32+4*g:], uint32(int32(-128*s)))
		}
		binary.LittleEndian.PutUint32(o[64:], math.Float32bits(d))
	}
}

// packXQ8G is packXQ8 (l = 32) with ggml's q8_0 scales: tokens [j0, j0+nrQ) of x (n×k)
// into one panel, tokens past n zero (kernel per token: ggmlPanelQ8_0AVX512 on the avx512
// path, else ggmlPanelQ8_0AVX2; simd false runs the Go code).
func packXQ8G(dst []byte, x []float32, n, k, j0 int, simd bool) {
	const l, steps = 32, 8
	xs := xSubBytes(l)
	nsub := k / l
	for j := range nrQ {
		if j0+j >= n {
			zeroPanelToken(dst, nsub, steps, j)
			continue
		}
		row := x[(j0+j)*k : (j0+j+1)*k]
		if simd && cpu.HasAVX2() && nsub > 0 {
			_ = dst[(nsub-1)*xs+steps*48+48+4*j+3]
			if cpu.HasAVX512() {
				ggmlPanelQ8_0AVX512(nsub, &row[0], &dst[4*j])
				continue
			}
			ggmlPanelQ8_0AVX2(nsub, &row[0], &dst[4*j])
			continue
		}
		for g := range nsub {
			blk := row[g*l : (g+1)*l]
			var amax float32
			for _, v := range blk {
				amax = max(amax, absf(v))
			}
			d, id := ggmlQ8_0Scale(amax)
			sub := dst[g*xs : (g+1)*xs]
			sum := 0
			for i, v := range blk {
				q := max(-127, min(127, int(math.RoundToEven(float64(v*id)))))
				sub[i/4*48+4*j+i%4] = byte(int8(q))
				sum += q
			}
			binary.LittleEndian.PutUint32(sub[steps*48+4*j:], math.Float32bits(d))
			binary.LittleEndian.PutUint32(sub[steps*48+48+4*j:], math.Float32bits(d*float32(sum)))
		}
	}
}

// zeroPanelToken zeroes token j's column of a packed X panel of nsub sub-blocks.
func zeroPanelToken(dst []byte, nsub, steps, j int) {
	xs := steps*48 + 2*4*nrQ
	for g := range nsub {
		sub := dst[g*xs : (g+1)*xs]
		for s := range steps {
			binary.LittleEndian.PutUint32(sub[s*48+4*j:], 0)
		}
		binary.LittleEndian.PutUint32(sub[steps*48+4*j:], 0)
		binary.LittleEndian.PutUint32(sub[steps*48+48+4*j:], 0)
	}
}

// fakeQ8_0Go is fakeQ8_0 in Go.
func fakeQ8_0Go(dst, x []float32) {
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

// fakeQ8_K writes ggml's q8_K quantization of x (len a multiple of 256), dequantized
// (kernel: ggmlFakeQ8KAVX2).
func fakeQ8_K(dst, x []float32) {
	if nb := len(x) / 256; cpu.HasAVX2() && nb > 0 {
		_, _ = x[256*nb-1], dst[256*nb-1]
		ggmlFakeQ8KAVX2(nb, &x[0], &dst[0])
		return
	}
	fakeQ8_KGo(dst, x)
}

// fakeQ8_KGo is fakeQ8_K in Go.
func fakeQ8_KGo(dst, x []float32) {
	var q [256]int8
	for b := 0; b+256 <= len(x); b += 256 {
		d := quantQ8K(&q, x[b:b+256])
		for i, v := range q {
			dst[b+i] = d * float32(v)
		}
	}
}

// packXQ8K is packXQ8 with ggml's q8_K quantization: tokens [j0, j0+nrQ) of x (n×k, k a
// multiple of 256) into one panel of l-element sub-blocks, each with its 256-block's scale
// (kernels per token: ggmlPanelQ8KAVX512S8 and S4 on the avx512 path, else
// ggmlPanelQ8KAVX2S8 and S4; simd false runs the Go code).
func packXQ8K(dst []byte, x []float32, n, k, j0, l int, simd bool) {
	steps := l / 4
	xs := xSubBytes(l)
	var q [256]int8
	for j := range nrQ {
		if j0+j >= n {
			zeroPanelToken(dst, k/l, steps, j)
			continue
		}
		row := x[(j0+j)*k : (j0+j+1)*k]
		if nsb := k / 256; simd && cpu.HasAVX2() && nsb > 0 {
			_ = dst[(k/l-1)*xs+steps*48+48+4*j+3]
			_ = row[256*nsb-1]
			switch {
			case cpu.HasAVX512() && steps == 8:
				ggmlPanelQ8KAVX512S8(nsb, &row[0], &dst[4*j])
			case cpu.HasAVX512():
				ggmlPanelQ8KAVX512S4(nsb, &row[0], &dst[4*j])
			case steps == 8:
				ggmlPanelQ8KAVX2S8(nsb, &row[0], &dst[4*j])
			default:
				ggmlPanelQ8KAVX2S4(nsb, &row[0], &dst[4*j])
			}
			continue
		}
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
// sub-block its 256-block's scale d and d·Σq (kernels: ggmlXSubKAVX2L32 and L16; simd false
// runs the Go code).
func quantXSubK(qb []byte, d, s []float32, x []float32, l int, simd bool) {
	if nb := len(x) / 256; simd && cpu.HasAVX2() && nb > 0 {
		_, _ = x[256*nb-1], qb[256*nb-1]
		_, _ = d[256*nb/l-1], s[256*nb/l-1]
		if l == 32 {
			ggmlXSubKAVX2L32(nb, &x[0], &qb[0], &d[0], &s[0])
		} else {
			ggmlXSubKAVX2L16(nb, &x[0], &qb[0], &d[0], &s[0])
		}
		return
	}
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

// Activations is how MatMul quantizes the activations it multiplies quantized weights by.
type Activations int

const (
	// ActGGML quantizes them as ggml's CPU backend does (SetGGMLActivations).
	ActGGML Activations = iota
	// ActInt8 quantizes them per 32-element block (16 for q6_K) with a float32 scale.
	ActInt8
	// ActFloat multiplies dequantized weights by float32 activations (SetFloatActivations).
	ActFloat
)

var activationNames = [...]string{ActGGML: "ggml", ActInt8: "int8", ActFloat: "float"}

// String returns the mode's name ("ggml", "int8", "float").
func (a Activations) String() string {
	if a >= 0 && int(a) < len(activationNames) {
		return activationNames[a]
	}
	return fmt.Sprintf("Activations(%d)", int(a))
}

// ErrActivations is returned by ParseActivations for an unknown name.
var ErrActivations = errors.New("unknown activation mode")

// ParseActivations parses a mode name as String writes it.
func ParseActivations(s string) (Activations, error) {
	for i, n := range activationNames {
		if n == s {
			return Activations(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q (want ggml, int8 or float)", ErrActivations, s)
}

// SetActivations sets the activation mode (SetGGMLActivations and SetFloatActivations
// together).
func (p *Pool) SetActivations(a Activations) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ggmlAct, p.floatAct = a == ActGGML, a == ActFloat
}

// Activations returns the activation mode.
func (p *Pool) Activations() Activations {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.floatAct:
		return ActFloat
	case p.ggmlAct:
		return ActGGML
	}
	return ActInt8
}
