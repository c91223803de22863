package kvblob

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/ragkv/ragkv/internal/kernels"
)

// Grouped low-bit formats (Q4, Q2, Mixed).
//
// A group's values x are stored as unsigned b-bit codes q with an f16 scale s and an
// f16 minimum m: x ≈ m + q·s, m = min x (rounded to f16), s = (max x − m)/(2^b − 1)
// rounded up to f16, q = round((x − m)/s) clamped to [0, 2^b − 1]. Codes are packed
// little-endian within each byte (the first value in the lowest bits), the tensor's
// values in [token][channel] order as one bit stream padded to a byte.
//
// K groups are per channel: Group consecutive tokens of one channel share (s, m);
// the pairs are stored [token group][channel]. V groups are per token: Group
// consecutive channels of one token; the pairs are stored [token][channel group].
// The last group of a row or column may be shorter.

// groupCodes encodes n rows of C values (rows contiguous in x) at b bits into q
// (packed) and the (scale, min) pairs into sc. perChannel selects K grouping.
func groupCodes(q, sc []byte, x []float32, n, C, G, b int, perChannel bool) error {
	levels := float32(int(1)<<b - 1)
	put := func(e int, code uint8) {
		bit := e * b
		q[bit>>3] |= code << (bit & 7)
	}
	clear(q)
	vals := make([]float32, 0, G)
	if perChannel {
		for g0 := 0; g0 < n; g0 += G {
			g1 := min(n, g0+G)
			gi := g0 / G
			for c := 0; c < C; c++ {
				vals = vals[:0]
				for r := g0; r < g1; r++ {
					vals = append(vals, x[r*C+c])
				}
				mn, mx := fitRange(vals, levels)
				s, m, err := groupParams(sc[4*(gi*C+c):], mn, mx, levels)
				if err != nil {
					return err
				}
				for r := g0; r < g1; r++ {
					put(r*C+c, code(x[r*C+c], m, s, levels))
				}
			}
		}
		return nil
	}
	ncg := ceilDiv(C, G)
	for r := 0; r < n; r++ {
		row := x[r*C : (r+1)*C]
		for j := 0; j < ncg; j++ {
			c0, c1 := j*G, min(C, (j+1)*G)
			mn, mx := fitRange(row[c0:c1], levels)
			s, m, err := groupParams(sc[4*(r*ncg+j):], mn, mx, levels)
			if err != nil {
				return err
			}
			for c := c0; c < c1; c++ {
				put(r*C+c, code(row[c], m, s, levels))
			}
		}
	}
	return nil
}

// fitRange is a group's quantization range: the [min, max] of its values. (A grid
// search over clipped ranges that minimizes the squared error, as llama.cpp's
// make_qkx does, was measured worse on stories260K through fused prefill — q4
// CacheBlend KL 0.00167 vs 0.00146 — because the clipped outliers matter to
// attention.) Non-finite values are returned as they are, for groupParams to reject.
func fitRange(vals []float32, _ float32) (float32, float32) {
	mn, mx := vals[0], vals[0]
	for _, f := range vals[1:] {
		mn, mx = min(mn, f), max(mx, f)
	}
	return mn, mx
}

var errF16Range = errors.New("value outside the f16 range of group scales and minima")

// groupParams writes a group's f16 scale and minimum to dst[0:4] and returns them as
// float32 (the values decoding will use).
func groupParams(dst []byte, mn, mx, levels float32) (s, m float32, err error) {
	if math.IsNaN(float64(mn)) || math.IsNaN(float64(mx)) || math.IsInf(float64(mn), 0) || math.IsInf(float64(mx), 0) {
		return 0, 0, fmt.Errorf("%w: value %v/%v cannot be quantized", ErrInvalid, mn, mx)
	}
	t := f16Table()
	m16 := kernels.F32ToF16(mn)
	m = t[m16]
	if math.IsInf(float64(m), 0) {
		return 0, 0, fmt.Errorf("%w: %w: minimum %v", ErrInvalid, errF16Range, mn)
	}
	var s16 uint16
	if mx > m {
		s16 = kernels.F32ToF16((mx - m) / levels)
		// Round the scale up so the group's maximum stays reachable.
		for m+t[s16]*levels < mx && s16 < 0x7c00 {
			s16++
		}
		if s16 >= 0x7c00 {
			return 0, 0, fmt.Errorf("%w: %w: range %v..%v", ErrInvalid, errF16Range, mn, mx)
		}
	}
	binary.LittleEndian.PutUint16(dst, s16)
	binary.LittleEndian.PutUint16(dst[2:], m16)
	return t[s16], m, nil
}

func code(f, m, s, levels float32) uint8 {
	if s == 0 {
		return 0
	}
	r := float32(math.Round(float64((f - m) / s)))
	if r < 0 {
		r = 0
	} else if r > levels {
		r = levels
	}
	return uint8(r)
}

// groupDecode is the inverse of groupCodes: out is n rows of C values. Rows that start
// on a byte, of the kernels' code widths (2, 4, 8 bits), go through internal/kernels'
// SIMD decode (DequantRow for K grouped per channel, DequantGroups for per-token groups
// that start on a byte); other shapes take the bit-stream loop of groupDecodeSlow.
func groupDecode(out []float32, q, sc []byte, n, C, G, b int, perChannel bool) {
	if n == 0 {
		return
	}
	if !kernels.KVCodeBits(b) || (C*b)%8 != 0 || (!perChannel && (G*b)%8 != 0) {
		groupDecodeSlow(out, q, sc, n, C, G, b, perChannel)
		return
	}
	rb := C * b / 8
	if perChannel {
		buf := getScratch(4 * C)
		defer putScratch(buf)
		sm, scale, mins := (*buf)[:2*C], (*buf)[2*C:3*C], (*buf)[3*C:4*C]
		for g0 := 0; g0 < n; g0 += G {
			kernels.DecodeF16(sm, sc[4*(g0/G)*C:])
			for c := range C {
				scale[c], mins[c] = sm[2*c], sm[2*c+1]
			}
			for r := g0; r < min(n, g0+G); r++ {
				_ = kernels.DequantRow(out[r*C:(r+1)*C], q[r*rb:(r+1)*rb], b, scale, mins)
			}
		}
		return
	}
	ncg := ceilDiv(C, G)
	if C%G == 0 {
		// Every row is ncg whole groups: the tensor is n·ncg consecutive groups.
		ng := n * ncg
		buf := getScratch(2 * ng)
		defer putScratch(buf)
		sm := *buf
		kernels.DecodeF16(sm, sc)
		_ = kernels.DequantGroups(out[:n*C], q, b, G, sm)
		return
	}
	// A short last group per row: whole groups, then the tail group on its own.
	full, tail := C/G, C%G
	buf := getScratch(2 * ncg)
	defer putScratch(buf)
	sm := *buf
	for r := range n {
		kernels.DecodeF16(sm, sc[4*r*ncg:])
		row, qb := out[r*C:(r+1)*C], q[r*rb:(r+1)*rb]
		_ = kernels.DequantGroups(row[:full*G], qb, b, G, sm[:2*full])
		_ = kernels.DequantGroups(row[full*G:], qb[full*G*b/8:], b, tail, sm[2*full:])
	}
}

// scratch holds the decoders' float32 parameter buffers, so that decoding a layer
// allocates nothing once warm.
var scratch sync.Pool

func getScratch(n int) *[]float32 {
	if p, ok := scratch.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]float32, n)
	return &b
}

func putScratch(p *[]float32) { scratch.Put(p) }

// groupDecodeSlow is groupDecode for every shape, in Go (the reference the kernel
// path is tested against in TestGroupDecodeKernels).
func groupDecodeSlow(out []float32, q, sc []byte, n, C, G, b int, perChannel bool) {
	t := f16Table()
	mask := uint8(1)<<b - 1
	per := 8 / b
	aligned := (C*b)%8 == 0
	ss := make([]float32, 2*C)
	scale, mins := ss[:C], ss[C:]
	ncg := ceilDiv(C, G)
	for r := 0; r < n; r++ {
		if perChannel {
			if r%G == 0 {
				g := sc[4*(r/G)*C:]
				for c := 0; c < C; c++ {
					scale[c] = t[binary.LittleEndian.Uint16(g[4*c:])]
					mins[c] = t[binary.LittleEndian.Uint16(g[4*c+2:])]
				}
			}
		} else {
			g := sc[4*r*ncg:]
			for j := 0; j < ncg; j++ {
				s := t[binary.LittleEndian.Uint16(g[4*j:])]
				m := t[binary.LittleEndian.Uint16(g[4*j+2:])]
				for c := j * G; c < min(C, (j+1)*G); c++ {
					scale[c], mins[c] = s, m
				}
			}
		}
		row := out[r*C : (r+1)*C]
		if aligned {
			qb := q[r*C*b/8 : (r+1)*C*b/8]
			switch b {
			case 4:
				for i, by := range qb {
					c := 2 * i
					row[c] = mins[c] + float32(by&15)*scale[c]
					row[c+1] = mins[c+1] + float32(by>>4)*scale[c+1]
				}
			case 2:
				for i, by := range qb {
					c := 4 * i
					row[c] = mins[c] + float32(by&3)*scale[c]
					row[c+1] = mins[c+1] + float32((by>>2)&3)*scale[c+1]
					row[c+2] = mins[c+2] + float32((by>>4)&3)*scale[c+2]
					row[c+3] = mins[c+3] + float32(by>>6)*scale[c+3]
				}
			default:
				for c, by := range qb {
					row[c] = mins[c] + float32(by)*scale[c]
				}
			}
			continue
		}
		for c := range row {
			e := r*C + c
			v := (q[e/per] >> ((e % per) * b)) & mask
			row[c] = mins[c] + float32(v)*scale[c]
		}
	}
}

// checkGroups verifies that every (scale, min) pair is finite with a non-negative
// scale.
func checkGroups(sc []byte) error {
	for i := 0; i+4 <= len(sc); i += 4 {
		s := binary.LittleEndian.Uint16(sc[i:])
		m := binary.LittleEndian.Uint16(sc[i+2:])
		if s&0x8000 != 0 && s != 0x8000 || s&0x7c00 == 0x7c00 || m&0x7c00 == 0x7c00 {
			return fmt.Errorf("group scale %04x / minimum %04x is not finite (scale ≥ 0)", s, m)
		}
	}
	return nil
}

// checkBitmap verifies a Mixed layer's token bitmap (bit t of byte t/8 set: token t
// is kept at HiBits): exactly HiTokens bits set, the padding bits clear. It returns
// the number of bits set.
func (l Layout) checkBitmap(bm []byte, tokens int) (int, error) {
	n := 0
	for _, b := range bm {
		n += bits.OnesCount8(b)
	}
	if tokens%8 != 0 && bm[len(bm)-1]>>(tokens%8) != 0 {
		return n, fmt.Errorf("mixed token bitmap has padding bits set")
	}
	if want := l.HiTokens(tokens); n != want {
		return n, fmt.Errorf("mixed token bitmap marks %d tokens, layout keeps %d at %d bits", n, want, l.HiBits)
	}
	return n, nil
}

// hadamard applies the orthonormal fast Walsh–Hadamard transform to x (its length a
// power of two) in place. It is its own inverse.
func hadamard(x []float32) {
	n := len(x)
	for h := 1; h < n; h *= 2 {
		for i := 0; i < n; i += 2 * h {
			for j := i; j < i+h; j++ {
				a, b := x[j], x[j+h]
				x[j], x[j+h] = a+b, a-b
			}
		}
	}
	s := float32(1 / math.Sqrt(float64(n)))
	for i := range x {
		x[i] *= s
	}
}

// rotateRows applies hadamard to every head of every row of x.
func (l Layout) rotateRows(x []float32) {
	for i := 0; i+l.HeadDim <= len(x); i += l.HeadDim {
		hadamard(x[i : i+l.HeadDim])
	}
}

// KeyNorms is each token's L2 norm of K over every head: the default importance
// signal of Mixed.
func (l Layout) KeyNorms(tokens int, k []float32) []float32 {
	C := l.Channels()
	out := make([]float32, tokens)
	for t := range out {
		var s float64
		for _, f := range k[t*C : (t+1)*C] {
			s += float64(f) * float64(f)
		}
		out[t] = float32(math.Sqrt(s))
	}
	return out
}

// hiSet marks the HiTokens tokens with the highest score (ties: the earlier token).
func hiSet(score []float32, h int) []bool {
	idx := make([]int, len(score))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		sa, sb := score[a], score[b]
		switch {
		case sa > sb || (!math.IsNaN(float64(sa)) && math.IsNaN(float64(sb))):
			return -1
		case sa < sb || (math.IsNaN(float64(sa)) && !math.IsNaN(float64(sb))):
			return 1
		}
		return 0
	})
	hi := make([]bool, len(score))
	for _, i := range idx[:h] {
		hi[i] = true
	}
	return hi
}

// appendGrouped encodes a layer of a grouped dtype into sec (already sized and
// split into p). score ranks tokens for Mixed (nil: key norms).
func (l Layout) appendGrouped(p LayerParts, tokens int, k, v, score []float32) error {
	if err := l.Validate(); err != nil {
		return err
	}
	C := l.Channels()
	if l.Rotate {
		k, v = slices.Clone(k), slices.Clone(v)
		l.rotateRows(k)
		l.rotateRows(v)
	}
	if l.DType != Mixed {
		b := l.bitsOf()
		if err := groupCodes(p.K, p.KScales, k, tokens, C, l.Group, b, !l.KPerToken); err != nil {
			return fmt.Errorf("K: %w", err)
		}
		if err := groupCodes(p.V, p.VScales, v, tokens, C, l.Group, b, false); err != nil {
			return fmt.Errorf("V: %w", err)
		}
		return nil
	}
	h := l.HiTokens(tokens)
	if score == nil {
		score = l.KeyNorms(tokens, k) // rotation keeps norms
	} else if len(score) != tokens {
		return fmt.Errorf("%w: %d importance scores for %d tokens", ErrInvalid, len(score), tokens)
	}
	hi := hiSet(score, h)
	bm := p.K[:ceilDiv(tokens, 8)]
	clear(bm)
	kh, vh := make([]float32, 0, h*C), make([]float32, 0, h*C)
	kl, vl := make([]float32, 0, (tokens-h)*C), make([]float32, 0, (tokens-h)*C)
	for t := range tokens {
		r := k[t*C : (t+1)*C]
		w := v[t*C : (t+1)*C]
		if hi[t] {
			bm[t/8] |= 1 << (t % 8)
			kh, vh = append(kh, r...), append(vh, w...)
		} else {
			kl, vl = append(kl, r...), append(vl, w...)
		}
	}
	kq, vq, ks, vs := l.mixedParts(p, tokens)
	if err := groupCodes(kq[0], ks[0], kh, h, C, l.Group, l.HiBits, !l.KPerToken); err != nil {
		return fmt.Errorf("K: %w", err)
	}
	if err := groupCodes(kq[1], ks[1], kl, tokens-h, C, l.Group, 2, !l.KPerToken); err != nil {
		return fmt.Errorf("K: %w", err)
	}
	if err := groupCodes(vq[0], vs[0], vh, h, C, l.Group, l.HiBits, false); err != nil {
		return fmt.Errorf("V: %w", err)
	}
	if err := groupCodes(vq[1], vs[1], vl, tokens-h, C, l.Group, 2, false); err != nil {
		return fmt.Errorf("V: %w", err)
	}
	return nil
}

// mixedParts cuts a Mixed layer's parts into the high- (index 0) and low-precision
// (index 1) streams; kq excludes the bitmap.
func (l Layout) mixedParts(p LayerParts, tokens int) (kq, vq, ks, vs [2][]byte) {
	C := l.Channels()
	h := l.HiTokens(tokens)
	bm := ceilDiv(tokens, 8)
	a := int(packedBytes(h*C, l.HiBits))
	kq = [2][]byte{p.K[bm : bm+a], p.K[bm+a:]}
	vq = [2][]byte{p.V[:a], p.V[a:]}
	ka := int(l.kGroupBytes(h))
	va := int(l.vGroupBytes(h))
	ks = [2][]byte{p.KScales[:ka], p.KScales[ka:]}
	vs = [2][]byte{p.VScales[:va], p.VScales[va:]}
	return
}

// decodeGrouped decodes a grouped layer. A Mixed layer's bitmap is checked (the only
// part whose content, not just size, could make decoding inconsistent).
func (l Layout) decodeGrouped(p LayerParts, tokens int, k, v []float32) error {
	if err := l.Validate(); err != nil {
		return err
	}
	C := l.Channels()
	if l.DType != Mixed {
		b := l.bitsOf()
		groupDecode(k, p.K, p.KScales, tokens, C, l.Group, b, !l.KPerToken)
		groupDecode(v, p.V, p.VScales, tokens, C, l.Group, b, false)
	} else {
		bm := p.K[:ceilDiv(tokens, 8)]
		if _, err := l.checkBitmap(bm, tokens); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		h := l.HiTokens(tokens)
		kq, vq, ks, vs := l.mixedParts(p, tokens)
		hb := getScratch(2 * h * C)
		defer putScratch(hb)
		hk, hv := (*hb)[:h*C], (*hb)[h*C:2*h*C]
		groupDecode(hk, kq[0], ks[0], h, C, l.Group, l.HiBits, !l.KPerToken)
		groupDecode(hv, vq[0], vs[0], h, C, l.Group, l.HiBits, false)
		// The low-precision rows go to the tail, then every row moves to its place
		// front to back (a destination never overtakes an unread source).
		groupDecode(k[h*C:], kq[1], ks[1], tokens-h, C, l.Group, 2, !l.KPerToken)
		groupDecode(v[h*C:], vq[1], vs[1], tokens-h, C, l.Group, 2, false)
		hi, lo := 0, 0
		for t := range tokens {
			dst := t * C
			if bm[t/8]>>(t%8)&1 != 0 {
				copy(k[dst:dst+C], hk[hi*C:])
				copy(v[dst:dst+C], hv[hi*C:])
				hi++
			} else {
				src := (h + lo) * C
				copy(k[dst:dst+C], k[src:src+C])
				copy(v[dst:dst+C], v[src:src+C])
				lo++
			}
		}
	}
	if l.Rotate {
		l.rotateRows(k)
		l.rotateRows(v)
	}
	return nil
}
