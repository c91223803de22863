package kernels

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/ragkv/ragkv/internal/cpu"
)

// The pure-Go (generic) kernels: the default branches of the dispatch sites, the reference
// every SIMD path is tested against, and the fallback of every platform without assembly
// (and of the purego build). They are written for what Go's compiler does well: a few
// independent float32 accumulators in local variables (Go's register allocator spills
// when more than about twelve values are live, and schedules every multiply of a
// statement group before the adds), loads through fixed-size array pointers (no bounds
// checks in the inner loops), and nothing allocated per call.
//
//   - Float GEMM: the 32×12 micro-tile of the packed panels (gemm.go) is computed as 48
//     strips of 8 rows × 1 token, each a run over the inner dimension with eight
//     accumulators; edge tiles compute only their valid strips, straight into the output.
//   - Quantized GEMM: weights are dequantized to float32 while packing (as in the
//     float-activation mode) and the activations are quantized to int8 per sub-block and
//     back (x ≈ dx·q, rounded as packXQ8 rounds), so that the products are those of the
//     int8 kernels up to float rounding; then the float GEMM runs. (Pure-Go int8 dot
//     products, even with several products per 64-bit multiply, were measured at about the
//     float kernel's rate: the packing they need costs the difference.)
//   - Matrix-vector (few tokens): four weight rows at a time against each token, with
//     four accumulators; one token (decode) dequantizes and multiplies in one pass (q8_0 and
//     q4_0 values through a 256-entry table, f16 with an exponent-rebasing multiply),
//     several tokens dequantize a chunk of four rows once into a small buffer and reuse it.
//   - Vector helpers: four accumulators (Dot), four rows at a time (DotRows, AxpyRows).

// genericF32 reports whether the float GEMM runs the pure-Go micro-kernel (no SIMD path
// is active).
func genericF32() bool { return !cpu.HasAVX512() && !cpu.HasAVX2() && !cpu.HasNEON() }

// microF32Generic computes c[j*ldc+r] (+)= Σ_k a[k*mrF+r]·b[k*nrF+j] for j < ntok, r < nr
// (a and b are full packed panels; rows and tokens past nr and ntok are not written).
func microF32Generic(kc int, a, b, c []float32, ldc int, accum bool, ntok, nr int) {
	a = a[:kc*mrF]
	b = b[:kc*nrF]
	for j := range ntok {
		for r := 0; r < nr; r += 8 {
			s := strip8x1(kc, a[r:], b[j:])
			dst := c[j*ldc+r : j*ldc+min(r+8, nr)]
			if accum {
				for i := range dst {
					dst[i] += s[i]
				}
			} else {
				copy(dst, s[:])
			}
		}
	}
}

// strip8x1 returns Σ_k a[k*mrF+i]·b[k*nrF] for i < 8, two k per iteration; the panels
// are walked with pointers (bounds checked once, up front), which measured about 1.5×
// faster than indexing.
func strip8x1(kc int, a, b []float32) [8]float32 {
	var c0, c1, c2, c3, c4, c5, c6, c7 float32
	_ = a[(kc-1)*mrF+7]
	_ = b[(kc-1)*nrF]
	pa, pb := unsafe.Pointer(&a[0]), unsafe.Pointer(&b[0])
	k := 0
	for ; k+2 <= kc; k += 2 {
		av := (*[8]float32)(pa)
		bv := *(*float32)(pb)
		c0 += av[0] * bv
		c1 += av[1] * bv
		c2 += av[2] * bv
		c3 += av[3] * bv
		c4 += av[4] * bv
		c5 += av[5] * bv
		c6 += av[6] * bv
		c7 += av[7] * bv
		av = (*[8]float32)(unsafe.Add(pa, 4*mrF))
		bv = *(*float32)(unsafe.Add(pb, 4*nrF))
		c0 += av[0] * bv
		c1 += av[1] * bv
		c2 += av[2] * bv
		c3 += av[3] * bv
		c4 += av[4] * bv
		c5 += av[5] * bv
		c6 += av[6] * bv
		c7 += av[7] * bv
		pa = unsafe.Add(pa, 8*mrF)
		pb = unsafe.Add(pb, 8*nrF)
	}
	if k < kc {
		av := (*[8]float32)(pa)
		bv := *(*float32)(pb)
		c0 += av[0] * bv
		c1 += av[1] * bv
		c2 += av[2] * bv
		c3 += av[3] * bv
		c4 += av[4] * bv
		c5 += av[5] * bv
		c6 += av[6] * bv
		c7 += av[7] * bv
	}
	return [8]float32{c0, c1, c2, c3, c4, c5, c6, c7}
}

// dot4 returns the dot products of x with the four rows w0..w3 (each at least len(x)).
func dot4(w0, w1, w2, w3, x []float32) (float32, float32, float32, float32) {
	var s0, s1, s2, s3 float32
	w0, w1, w2, w3 = w0[:len(x)], w1[:len(x)], w2[:len(x)], w3[:len(x)]
	for i, xv := range x {
		s0 += w0[i] * xv
		s1 += w1[i] * xv
		s2 += w2[i] * xv
		s3 += w3[i] * xv
	}
	return s0, s1, s2, s3
}

// f16Fast converts binary16 to float32 exactly (NaNs stay NaN): the exponent and mantissa
// bits are moved into float32 position and rebased by 2^112 with one multiply (subnormal
// halves become normal float32s); a result ≥ 2^16 was an infinity or NaN and gets the
// all-ones exponent (the trick of ryg's half_to_float_fast5).
func f16Fast(h uint16) float32 {
	f := math.Float32frombits(uint32(h&0x7fff)<<13) * 0x1p112
	b := math.Float32bits(f) | uint32(h&0x8000)<<16
	if f >= 0x1p16 {
		b |= 0x7f800000
	}
	return math.Float32frombits(b)
}

// i8Table[b] is the int8 value of byte b as float32; nibTable[b] holds the low and high
// nibbles of b minus 8 (q4_0's values).
var (
	i8Table  [256]float32
	nibTable [256][2]float32
)

func init() {
	for i := range 256 {
		i8Table[i] = float32(int8(i))
		nibTable[i] = [2]float32{float32(i&15) - 8, float32(i>>4) - 8}
	}
}

// matVecQDQ reports whether the generic matrix-vector kernels multiply weights of type t
// with activations quantized to int8 and back (as the int8 kernels quantize them).
func (p *Pool) matVecQDQ(t DType) bool {
	if p.floatAct || t.BlockElems() == 1 || p.cur.ggmlK { // ggmlK: x already holds q8_K's values
		return false
	}
	return !(kFloat && (t == Q4_K || t == Q5_K || t == Q6_K))
}

// qdqRows writes n rows of k activations, quantized per l-block to int8 and dequantized
// (x ≈ dx·q, as packXQ8 and quantXMatvec round), into dst.
func qdqRows(dst, x []float32, n, k, l int) {
	for i := range n {
		qdqRow(dst[i*k:(i+1)*k], x[i*k:(i+1)*k], l)
	}
}

func qdqRow(dst, x []float32, l int) {
	for b := 0; b+l <= len(x); b += l {
		blk := x[b : b+l]
		var amax float32
		for _, v := range blk {
			amax = max(amax, math.Float32frombits(math.Float32bits(v)&0x7fffffff))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		o := dst[b : b+l]
		for i, v := range blk {
			q := math.RoundToEven(float64(v * id))
			q = max(-127, min(127, q))
			o[i] = float32(q) * d
		}
	}
}

// matVecGeneric computes rows [lo, hi) of out = x·wᵀ for the current call's n tokens with
// the pure-Go kernels; xq holds the activations quantized and dequantized per 32-block
// where matVecQDQ says so.
func (p *Pool) matVecGeneric(s *workerScratch, out []float32, w *Mat, lo, hi int) {
	x, n := p.cur.x, p.cur.n
	if p.matVecQDQ(w.Type) {
		x = p.shared.xqd
	}
	k, m := w.Cols, w.Rows
	rb := w.RowBytes()
	for r := lo; r < hi; r += 4 {
		nv := min(4, hi-r)
		// Row pointers; a short last group repeats its last row (results not stored).
		var rows [4][]byte
		for i := range 4 {
			rr := r + min(i, nv-1)
			rows[i] = w.Data[rr*rb : (rr+1)*rb]
		}
		var res [4]float32
		switch {
		case w.Type == F32:
			// Chunks of the four rows stay in L1 while every token is dotted with them.
			f := [4][]float32{bytesF32(rows[0]), bytesF32(rows[1]), bytesF32(rows[2]), bytesF32(rows[3])}
			for c0 := 0; c0 < k; c0 += mvChunk {
				c1 := min(c0+mvChunk, k)
				for i := range n {
					res[0], res[1], res[2], res[3] = dot4(f[0][c0:c1], f[1][c0:c1], f[2][c0:c1], f[3][c0:c1], x[i*k+c0:i*k+c1])
					o := out[i*m+r : i*m+r+nv]
					if c0 == 0 {
						copy(o, res[:nv])
						continue
					}
					for j := range o {
						o[j] += res[j]
					}
				}
			}
		case n == 1 && w.Type == F16:
			res[0], res[1], res[2], res[3] = dot4F16(rows, x[:k])
			copy(out[r:r+nv], res[:nv])
		case n == 1 && w.Type == BF16:
			res[0], res[1], res[2], res[3] = dot4BF16(rows, x[:k])
			copy(out[r:r+nv], res[:nv])
		case n == 1 && w.Type == Q8_0:
			res[0], res[1], res[2], res[3] = dot4Q8_0(rows, x[:k])
			copy(out[r:r+nv], res[:nv])
		case n == 1 && w.Type == Q4_0:
			res[0], res[1], res[2], res[3] = dot4Q4_0(rows, x[:k])
			copy(out[r:r+nv], res[:nv])
		case n == 1 && (w.Type == Q4_K || w.Type == Q5_K):
			xs := p.shared.xs[:k/32]
			for i := range nv {
				if w.Type == Q4_K {
					out[r+i] = dotQ4K(rows[i], x[:k], xs)
				} else {
					out[r+i] = dotQ5K(rows[i], x[:k], xs)
				}
			}
		case n == 1 && w.Type == Q6_K:
			for i := range nv {
				out[r+i] = dotQ6K(rows[i], x[:k])
			}
		default:
			// Dequantize chunks of the four rows once, then dot every token with them.
			be := w.Type.BlockElems()
			chunk := max(be, mvChunk/be*be)
			s.row = growF32(s.row, 4*chunk)
			for c0 := 0; c0 < k; c0 += chunk {
				kc := min(chunk, k-c0)
				for i := range 4 {
					dequantChunk(s.row[i*chunk:i*chunk+kc], rows[i], w.Type, c0)
				}
				d := s.row
				for i := range n {
					res[0], res[1], res[2], res[3] = dot4(d[:kc], d[chunk:chunk+kc], d[2*chunk:2*chunk+kc], d[3*chunk:3*chunk+kc], x[i*k+c0:i*k+c0+kc])
					if c0 == 0 {
						copy(out[i*m+r:i*m+r+nv], res[:nv])
						continue
					}
					o := out[i*m+r : i*m+r+nv]
					for j := range o {
						o[j] += res[j]
					}
				}
			}
		}
	}
}

// bytesF32 views little-endian float32 bytes as []float32.
func bytesF32(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// dequantChunk writes the len(dst) elements of row starting at column c0 (a multiple of
// the block size) as float32.
func dequantChunk(dst []float32, row []byte, t DType, c0 int) {
	switch t {
	case F16:
		src := row[2*c0 : 2*(c0+len(dst))]
		for i := range dst {
			dst[i] = f16Fast(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		src := row[2*c0 : 2*(c0+len(dst))]
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	default:
		be, bb := t.BlockElems(), t.BlockBytes()
		dequantizeRow(dst, row[c0/be*bb:(c0+len(dst))/be*bb], t)
	}
}

// u16At reads the little-endian uint16 at p+off (bounds checked by the caller).
func u16At(p unsafe.Pointer, off int) uint16 {
	return binary.LittleEndian.Uint16((*[2]byte)(unsafe.Add(p, off))[:])
}

func dot4F16(rows [4][]byte, x []float32) (float32, float32, float32, float32) {
	var s0, s1, s2, s3 float32
	n := len(x)
	_, _, _, _ = rows[0][2*n-1], rows[1][2*n-1], rows[2][2*n-1], rows[3][2*n-1]
	p0, p1, p2, p3 := unsafe.Pointer(&rows[0][0]), unsafe.Pointer(&rows[1][0]), unsafe.Pointer(&rows[2][0]), unsafe.Pointer(&rows[3][0])
	for i, xv := range x {
		s0 += f16Fast(u16At(p0, 2*i)) * xv
		s1 += f16Fast(u16At(p1, 2*i)) * xv
		s2 += f16Fast(u16At(p2, 2*i)) * xv
		s3 += f16Fast(u16At(p3, 2*i)) * xv
	}
	return s0, s1, s2, s3
}

func dot4BF16(rows [4][]byte, x []float32) (float32, float32, float32, float32) {
	var s0, s1, s2, s3 float32
	n := len(x)
	_, _, _, _ = rows[0][2*n-1], rows[1][2*n-1], rows[2][2*n-1], rows[3][2*n-1]
	p0, p1, p2, p3 := unsafe.Pointer(&rows[0][0]), unsafe.Pointer(&rows[1][0]), unsafe.Pointer(&rows[2][0]), unsafe.Pointer(&rows[3][0])
	for i, xv := range x {
		s0 += math.Float32frombits(uint32(u16At(p0, 2*i))<<16) * xv
		s1 += math.Float32frombits(uint32(u16At(p1, 2*i))<<16) * xv
		s2 += math.Float32frombits(uint32(u16At(p2, 2*i))<<16) * xv
		s3 += math.Float32frombits(uint32(u16At(p3, 2*i))<<16) * xv
	}
	return s0, s1, s2, s3
}

// dot4Q8_0 dots four q8_0 rows with x: per block d·Σ q·x, the q through i8Table.
func dot4Q8_0(rows [4][]byte, x []float32) (float32, float32, float32, float32) {
	var a0, a1, a2, a3 float32
	for b := range len(x) / qk8_0 {
		xb := (*[qk8_0]float32)(x[qk8_0*b:])
		q0 := (*[blockQ8_0Bytes]byte)(rows[0][blockQ8_0Bytes*b:])
		q1 := (*[blockQ8_0Bytes]byte)(rows[1][blockQ8_0Bytes*b:])
		q2 := (*[blockQ8_0Bytes]byte)(rows[2][blockQ8_0Bytes*b:])
		q3 := (*[blockQ8_0Bytes]byte)(rows[3][blockQ8_0Bytes*b:])
		var s0, s1, s2, s3 float32
		for i := range qk8_0 {
			xv := xb[i]
			s0 += i8Table[q0[2+i]] * xv
			s1 += i8Table[q1[2+i]] * xv
			s2 += i8Table[q2[2+i]] * xv
			s3 += i8Table[q3[2+i]] * xv
		}
		a0 += s0 * f16Fast(uint16(q0[0])|uint16(q0[1])<<8)
		a1 += s1 * f16Fast(uint16(q1[0])|uint16(q1[1])<<8)
		a2 += s2 * f16Fast(uint16(q2[0])|uint16(q2[1])<<8)
		a3 += s3 * f16Fast(uint16(q3[0])|uint16(q3[1])<<8)
	}
	return a0, a1, a2, a3
}

// dot4Q4_0 dots four q4_0 rows with x: per block d·Σ (q−8)·x, each byte's two values
// (elements j and j+16) through nibTable.
func dot4Q4_0(rows [4][]byte, x []float32) (float32, float32, float32, float32) {
	var a0, a1, a2, a3 float32
	for b := range len(x) / qk4_0 {
		xb := (*[qk4_0]float32)(x[qk4_0*b:])
		q0 := (*[blockQ4_0Bytes]byte)(rows[0][blockQ4_0Bytes*b:])
		q1 := (*[blockQ4_0Bytes]byte)(rows[1][blockQ4_0Bytes*b:])
		q2 := (*[blockQ4_0Bytes]byte)(rows[2][blockQ4_0Bytes*b:])
		q3 := (*[blockQ4_0Bytes]byte)(rows[3][blockQ4_0Bytes*b:])
		var s0, s1, s2, s3 float32
		for i := range qk4_0 / 2 {
			xl, xh := xb[i], xb[i+16]
			t0, t1, t2, t3 := &nibTable[q0[2+i]], &nibTable[q1[2+i]], &nibTable[q2[2+i]], &nibTable[q3[2+i]]
			s0 += t0[0]*xl + t0[1]*xh
			s1 += t1[0]*xl + t1[1]*xh
			s2 += t2[0]*xl + t2[1]*xh
			s3 += t3[0]*xl + t3[1]*xh
		}
		a0 += s0 * f16Fast(uint16(q0[0])|uint16(q0[1])<<8)
		a1 += s1 * f16Fast(uint16(q1[0])|uint16(q1[1])<<8)
		a2 += s2 * f16Fast(uint16(q2[0])|uint16(q2[1])<<8)
		a3 += s3 * f16Fast(uint16(q3[0])|uint16(q3[1])<<8)
	}
	return a0, a1, a2, a3
}

// packXF32QDQ is packXF32 for the generic quantized GEMM: each token's activations are
// quantized per l-block to int8 and dequantized (as packXQ8 rounds) while packing.
func packXF32QDQ(dst, x []float32, n, k, j0, l int) {
	for j := range nrF {
		if j0+j >= n {
			for c := range k {
				dst[c*nrF+j] = 0
			}
			continue
		}
		row := x[(j0+j)*k : (j0+j+1)*k]
		for b := 0; b+l <= k; b += l {
			blk := row[b : b+l]
			var amax float32
			for _, v := range blk {
				amax = max(amax, math.Float32frombits(math.Float32bits(v)&0x7fffffff))
			}
			d := amax / 127
			var id float32
			if d != 0 {
				id = 1 / d
			}
			for i, v := range blk {
				q := math.RoundToEven(float64(v * id))
				q = max(-127, min(127, q))
				dst[(b+i)*nrF+j] = float32(q) * d
			}
		}
	}
}

// dotRowsGeneric is DotRows' pure-Go kernel.
func dotRowsGeneric(out, x, m []float32, ld int) {
	k := len(x)
	j := 0
	for ; j+4 <= len(out); j += 4 {
		out[j], out[j+1], out[j+2], out[j+3] = dot4(m[j*ld:j*ld+k], m[(j+1)*ld:(j+1)*ld+k], m[(j+2)*ld:(j+2)*ld+k], m[(j+3)*ld:(j+3)*ld+k], x)
	}
	for ; j < len(out); j++ {
		out[j] = dotGeneric(x, m[j*ld:j*ld+k])
	}
}

// axpyRowsGeneric is AxpyRows' pure-Go kernel for columns [c0, len(y)).
func axpyRowsGeneric(y, a, m []float32, ld, c0 int) {
	n := len(y) - c0
	if n <= 0 {
		return
	}
	y = y[c0:]
	j := 0
	for ; j+4 <= len(a); j += 4 {
		a0, a1, a2, a3 := a[j], a[j+1], a[j+2], a[j+3]
		m0 := m[j*ld+c0 : j*ld+c0+n]
		m1 := m[(j+1)*ld+c0 : (j+1)*ld+c0+n]
		m2 := m[(j+2)*ld+c0 : (j+2)*ld+c0+n]
		m3 := m[(j+3)*ld+c0 : (j+3)*ld+c0+n]
		for c := range y {
			y[c] += (a0*m0[c] + a1*m1[c]) + (a2*m2[c] + a3*m3[c])
		}
	}
	for ; j < len(a); j++ {
		aj := a[j]
		row := m[j*ld+c0 : j*ld+c0+n]
		for c, v := range row {
			y[c] += aj * v
		}
	}
}

// mvChunk is the number of columns of four rows that the generic matrix-vector kernels
// keep in L1 (16 KiB as float32) while every token is multiplied with them.
const mvChunk = 1024

// genericGemmThreshold is gemmThreshold for a type without a SIMD matrix-vector kernel.
// The generic matrix-vector kernels (4 rows × 1 token, rows reused from L1) run at the
// generic GEMM's rate up to n ≈ 64 and about equal at 256 (BenchmarkMatMulPaths, every
// type, 1536×1024): both are bound by the scalar multiply and add ports. The GEMM takes
// over from 32 tokens, where its packed panels keep large shapes in cache better. On a SIMD
// path without a matrix-vector kernel for the type (float activations with q8_0/q4_0,
// int8 types without VNNI/dotprod), its float GEMM is much faster than any pure-Go loop and
// takes over from one micro-tile of tokens.
func genericGemmThreshold(DType) int {
	if genericF32() {
		return 32
	}
	return nrF
}

// u4Table[b] holds the low and high nibbles of b as float32 (the k-quants' 4-bit values).
var u4Table = func() (t [256][2]float32) {
	for i := range t {
		t[i] = [2]float32{float32(i & 15), float32(i >> 4)}
	}
	return t
}()

// dotQ4K returns the dot product of one q4_K row (nsb super-blocks) with x; xs holds the
// sums of x per 32-element sub-block. Per sub-block: d·sc·Σq·x − dmin·m·Σx.
func dotQ4K(row []byte, x, xs []float32) float32 {
	var acc float32
	for sb := range len(x) / qkK {
		b := (*[blockQ4_KBytes]byte)(row[sb*blockQ4_KBytes:])
		xb := (*[qkK]float32)(x[sb*qkK:])
		xsb := (*[8]float32)(xs[sb*8:])
		d := f16Fast(uint16(b[0]) | uint16(b[1])<<8)
		dmin := f16Fast(uint16(b[2]) | uint16(b[3])<<8)
		scales := b[4:16]
		var sum, msum float32
		for g := range 4 {
			q := (*[32]byte)(b[16+32*g:])
			xl := (*[32]float32)(xb[64*g:])
			xh := (*[32]float32)(xb[64*g+32:])
			var s0, s1, s2, s3 float32
			for l := 0; l < 32; l += 2 {
				t0, t1 := &u4Table[q[l]], &u4Table[q[l+1]]
				s0 += t0[0] * xl[l]
				s1 += t0[1] * xh[l]
				s2 += t1[0] * xl[l+1]
				s3 += t1[1] * xh[l+1]
			}
			sc1, m1 := scaleMinK4(2*g, scales)
			sc2, m2 := scaleMinK4(2*g+1, scales)
			sum += float32(sc1)*(s0+s2) + float32(sc2)*(s1+s3)
			msum += float32(m1)*xsb[2*g] + float32(m2)*xsb[2*g+1]
		}
		acc += d*sum - dmin*msum
	}
	return acc
}

// dotQ5K is dotQ4K for q5_K rows (a fifth bit per value from qh).
func dotQ5K(row []byte, x, xs []float32) float32 {
	var acc float32
	for sb := range len(x) / qkK {
		b := (*[blockQ5_KBytes]byte)(row[sb*blockQ5_KBytes:])
		xb := (*[qkK]float32)(x[sb*qkK:])
		xsb := (*[8]float32)(xs[sb*8:])
		d := f16Fast(uint16(b[0]) | uint16(b[1])<<8)
		dmin := f16Fast(uint16(b[2]) | uint16(b[3])<<8)
		scales := b[4:16]
		qh := (*[32]byte)(b[16:])
		var sum, msum float32
		for g := range 4 {
			q := (*[32]byte)(b[48+32*g:])
			xl := (*[32]float32)(xb[64*g:])
			xh := (*[32]float32)(xb[64*g+32:])
			var s0, s1, s2, s3 float32
			for l := 0; l < 32; l += 2 {
				h0, h1 := qh[l]>>(2*g), qh[l+1]>>(2*g)
				s0 += q5Table[q[l]&15|(h0&1)<<4] * xl[l]
				s1 += q5Table[q[l]>>4|(h0&2)<<3] * xh[l]
				s2 += q5Table[q[l+1]&15|(h1&1)<<4] * xl[l+1]
				s3 += q5Table[q[l+1]>>4|(h1&2)<<3] * xh[l+1]
			}
			sc1, m1 := scaleMinK4(2*g, scales)
			sc2, m2 := scaleMinK4(2*g+1, scales)
			sum += float32(sc1)*(s0+s2) + float32(sc2)*(s1+s3)
			msum += float32(m1)*xsb[2*g] + float32(m2)*xsb[2*g+1]
		}
		acc += d*sum - dmin*msum
	}
	return acc
}

// q5Table[i] is i as float32 (q5_K's values).
var q5Table = func() (t [32]float32) {
	for i := range t {
		t[i] = float32(i)
	}
	return t
}()

// q6Table[i] is i − 32 as float32 (q6_K's values).
var q6Table = func() (t [64]float32) {
	for i := range t {
		t[i] = float32(i - 32)
	}
	return t
}()

// dotQ6K returns the dot product of one q6_K row with x: per 16-element sub-block
// d·sc·Σ(q−32)·x.
func dotQ6K(row []byte, x []float32) float32 {
	var acc float32
	for sb := range len(x) / qkK {
		b := (*[blockQ6_KBytes]byte)(row[sb*blockQ6_KBytes:])
		xb := (*[qkK]float32)(x[sb*qkK:])
		d := f16Fast(uint16(b[208]) | uint16(b[209])<<8)
		var sum float32
		for h := range 2 {
			ql := (*[64]byte)(b[64*h:])
			qh := (*[32]byte)(b[128+32*h:])
			sc := (*[8]byte)(b[192+8*h:])
			xh := (*[128]float32)(xb[128*h:])
			for half := range 2 {
				var s0, s1, s2, s3 float32
				for l := 16 * half; l < 16*half+16; l++ {
					hb := qh[l]
					s0 += q6Table[ql[l]&15|(hb&3)<<4] * xh[l]
					s1 += q6Table[ql[l+32]&15|(hb>>2&3)<<4] * xh[l+32]
					s2 += q6Table[ql[l]>>4|(hb>>4&3)<<4] * xh[l+64]
					s3 += q6Table[ql[l+32]>>4|(hb>>6)<<4] * xh[l+96]
				}
				sum += float32(int8(sc[half]))*s0 + float32(int8(sc[half+2]))*s1 +
					float32(int8(sc[half+4]))*s2 + float32(int8(sc[half+6]))*s3
			}
		}
		acc += d * sum
	}
	return acc
}
