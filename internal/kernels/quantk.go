package kernels

import (
	"encoding/binary"
	"math"
)

// Reference quantizers for the k-quant super-block formats q4_K, q5_K and q6_K, ported
// from ggml's ggml/src/ggml-quants.c (llama.cpp commit c392e5094: nearest_int,
// make_qx_quants, make_qkx2_quants, quantize_row_q4_K_ref, quantize_row_q5_K_ref,
// quantize_row_q6_K_ref) so that they produce the same bytes. That is what llama.cpp's
// llama-quantize writes when no importance matrix is given.
//
// Bit-exactness rests on doing every float operation in float32, in ggml's order, with
// each product rounded before it is added. ggml-quants.c is built into ggml-base without
// -march flags (x86-64 baseline, no FMA), so the C compiler cannot contract a*b+c. Go,
// though, may fuse x*y+z into one fused multiply-add (it does on arm64, ppc64, s390x and
// riscv64, and on amd64 with GOAMD64=v3), which rounds once and changes results: without
// the guards, about 1% of q4_K and 2% of q6_K blocks of Gaussian data differ from ggml's
// on arm64 (measured under qemu-aarch64 and with GOAMD64=v3). Every product below that
// feeds an addition is therefore wrapped in an explicit float32() conversion, which the
// Go specification says rounds and prevents fusion. The tests compare with ggml's bytes
// over tens of thousands of blocks (the llama-quantize oracle files), enough to catch
// that; the same tests pass under qemu-aarch64 and with GOAMD64=v3.

// groupMaxEps is ggml's GROUP_MAX_EPS: a group whose largest magnitude is below it is
// treated as all zero.
const groupMaxEps = float32(1e-15)

// nearestInt is ggml's nearest_int: round to nearest, ties to even, by adding 1.5·2^23 and
// reading the mantissa bits. Exact for |f| ≤ 4194303; for larger or non-finite f it
// returns the same garbage as the C code (callers clamp).
func nearestInt(f float32) int32 {
	v := float32(f) + 12582912
	return int32(math.Float32bits(v)&0x007fffff) - 0x00400000
}

func absf(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

func clampInt(l, lo, hi int32) int32 { return max(lo, min(hi, l)) }

// makeQXQuants is make_qx_quants with rmse_type 1 and no importance weights (the only
// form quantize_row_q6_K_ref uses): a symmetric scale for n values with levels
// [-nmax, nmax-1], chosen among 19 candidate scales by weighted (x²) least squares. L
// receives the levels shifted by nmax; the scale is returned.
func makeQXQuants(n int, nmax int32, x []float32, L []int8) float32 {
	var mx, amax float32
	for i := range n {
		if ax := absf(x[i]); ax > amax {
			amax, mx = ax, x[i]
		}
	}
	if amax < groupMaxEps {
		for i := range n {
			L[i] = 0
		}
		return 0
	}
	fnmax := float32(nmax)
	iscale := -fnmax / mx
	var sumlx, suml2 float32
	for i := range n {
		l := clampInt(nearestInt(float32(iscale*x[i])), -nmax, nmax-1)
		L[i] = int8(l + nmax)
		w := float32(x[i] * x[i])
		fl := float32(l)
		sumlx += float32(float32(w*x[i]) * fl)
		suml2 += float32(float32(w*fl) * fl)
	}
	var scale float32
	if suml2 != 0 {
		scale = sumlx / suml2
	}
	best := float32(scale * sumlx)
	for is := int32(-9); is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale = -float32(fnmax+float32(0.1*float32(is))) / mx
		sumlx, suml2 = 0, 0
		for i := range n {
			l := clampInt(nearestInt(float32(iscale*x[i])), -nmax, nmax-1)
			w := float32(x[i] * x[i])
			fl := float32(l)
			sumlx += float32(float32(w*x[i]) * fl)
			suml2 += float32(float32(w*fl) * fl)
		}
		if suml2 > 0 && float32(sumlx*sumlx) > float32(best*suml2) {
			for i := range n {
				l := clampInt(nearestInt(float32(iscale*x[i])), -nmax, nmax-1)
				L[i] = int8(nmax + l)
			}
			scale = sumlx / suml2
			best = float32(scale * sumlx)
		}
	}
	return scale
}

// makeQKX2Quants is make_qkx2_quants: an asymmetric (scale, min) pair for n values with
// levels [0, nmax], chosen by weighted least squares over nstep+1 candidate scales
// (rmin + rdelta·is + nmax)/(max − min). L receives the levels, laux is scratch; it
// returns the scale and the (non-negative) offset −min, with x ≈ scale·L − offset.
func makeQKX2Quants(n int, nmax int32, x, weights []float32, L, laux []uint8, rmin, rdelta float32, nstep int, useMAD bool) (scale, theMin float32) {
	mn, mx := x[0], x[0]
	sumW := weights[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < n; i++ {
		if x[i] < mn {
			mn = x[i]
		}
		if x[i] > mx {
			mx = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if mn > 0 {
		mn = 0
	}
	if mx == mn {
		for i := range n {
			L[i] = 0
		}
		return 0, -mn
	}
	fnmax := float32(nmax)
	iscale := fnmax / float32(mx-mn)
	scale = 1 / iscale
	loss := func(diff float32) float32 {
		if useMAD {
			return absf(diff)
		}
		return float32(diff * diff)
	}
	var bestMAD float32
	for i := range n {
		l := clampInt(nearestInt(float32(iscale*float32(x[i]-mn))), 0, nmax)
		L[i] = uint8(l)
		diff := float32(float32(float32(scale*float32(l))+mn) - x[i])
		bestMAD += float32(weights[i] * loss(diff))
	}
	if nstep < 1 {
		return scale, -mn
	}
	for is := 0; is <= nstep; is++ {
		iscale = float32(float32(rmin+float32(rdelta*float32(is)))+fnmax) / float32(mx-mn)
		var sumL, sumL2, sumXL float32
		for i := range n {
			l := clampInt(nearestInt(float32(iscale*float32(x[i]-mn))), 0, nmax)
			laux[i] = uint8(l)
			w := weights[i]
			fl := float32(l)
			sumL += float32(w * fl)
			sumL2 += float32(float32(w*fl) * fl)
			sumXL += float32(float32(w*fl) * x[i])
		}
		D := float32(float32(sumW*sumL2) - float32(sumL*sumL))
		if D > 0 {
			thisScale := float32(float32(sumW*sumXL)-float32(sumX*sumL)) / D
			thisMin := float32(float32(sumL2*sumX)-float32(sumL*sumXL)) / D
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var mad float32
			for i := range n {
				diff := float32(float32(float32(thisScale*float32(laux[i]))+thisMin) - x[i])
				mad += float32(weights[i] * loss(diff))
			}
			if mad < bestMAD {
				copy(L[:n], laux[:n])
				bestMAD = mad
				scale = thisScale
				mn = thisMin
			}
		}
	}
	return scale, -mn
}

// quantKScalesMins is the part quantize_row_q4_K_ref and quantize_row_q5_K_ref share:
// per 32-element sub-block a (scale, min) from make_qkx2_quants with weights
// av_x + |x|, then both quantized to 6 bits against the block's largest ones and packed
// into scales[12]; d and dmin are returned as stored (f16). L holds the sub-blocks'
// levels from make_qkx2_quants, which stand for sub-blocks whose 6-bit scale is zero.
func quantKScalesMins(x []float32, nmax int32, rmin, rdelta float32, nstep int, scalesOut []byte, L *[qkK]uint8) (d, dmin uint16) {
	var (
		weights [32]float32
		laux    [32]uint8
		scales  [qkK / 32]float32
		mins    [qkK / 32]float32
	)
	var maxScale, maxMin float32
	for j := range qkK / 32 {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := float32(math.Sqrt(float64(sumX2 / 32)))
		for l, v := range xs {
			weights[l] = avX + absf(v)
		}
		scales[j], mins[j] = makeQKX2Quants(32, nmax, xs, weights[:], L[32*j:32*j+32], laux[:], rmin, rdelta, nstep, false)
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	for j := range qkK / 32 {
		ls := min(63, uint8(nearestInt(float32(invScale*scales[j]))))
		lm := min(63, uint8(nearestInt(float32(invMin*mins[j]))))
		if j < 4 {
			scalesOut[j] = ls
			scalesOut[j+4] = lm
		} else {
			scalesOut[j+4] = (ls & 0xf) | (lm&0xf)<<4
			scalesOut[j-4] |= (ls >> 4) << 6
			scalesOut[j] |= (lm >> 4) << 6
		}
	}
	return F32ToF16(maxScale / 63), F32ToF16(maxMin / 63)
}

// quantKLevels re-derives the levels of every sub-block from the stored 6-bit scales and
// mins: l = nearest_int((x + dmin·m)/(d·sc)) clamped to [0, nmax]; sub-blocks with a zero
// scale keep their levels.
func quantKLevels(x []float32, scales []byte, d, dmin uint16, nmax int32, L *[qkK]uint8) {
	df, dminf := F16ToF32(d), F16ToF32(dmin)
	for j := range qkK / 32 {
		sc, m := scaleMinK4(j, scales)
		dd := dff(df, sc)
		if dd == 0 {
			continue
		}
		dm := dff(dminf, m)
		for ii := range 32 {
			l := nearestInt(float32(x[32*j+ii]+dm) / dd)
			L[32*j+ii] = uint8(clampInt(l, 0, nmax))
		}
	}
}

func dff(d float32, s uint8) float32 { return d * float32(s) }

// quantQ4_KBlock is quantize_row_q4_K_ref for one block of 256 values.
func quantQ4_KBlock(y []byte, x []float32) {
	var L [qkK]uint8
	scales := y[4:16]
	d, dmin := quantKScalesMins(x, 15, -1, 0.1, 20, scales, &L)
	binary.LittleEndian.PutUint16(y[0:], d)
	binary.LittleEndian.PutUint16(y[2:], dmin)
	quantKLevels(x, scales, d, dmin, 15, &L)
	q := y[16 : 16+qkK/2]
	for j := 0; j < qkK; j += 64 {
		for l := range 32 {
			q[l] = L[j+l] | L[j+l+32]<<4
		}
		q = q[32:]
	}
}

// quantQ5_KBlock is quantize_row_q5_K_ref for one block of 256 values.
func quantQ5_KBlock(y []byte, x []float32) {
	var L [qkK]uint8
	scales := y[4:16]
	d, dmin := quantKScalesMins(x, 31, -0.5, 0.1, 15, scales, &L)
	binary.LittleEndian.PutUint16(y[0:], d)
	binary.LittleEndian.PutUint16(y[2:], dmin)
	quantKLevels(x, scales, d, dmin, 31, &L)
	qh := y[16 : 16+qkK/8]
	ql := y[48 : 48+qkK/2]
	clear(qh)
	m1, m2 := uint8(1), uint8(2)
	for n := 0; n < qkK; n += 64 {
		for j := range 32 {
			l1 := L[n+j]
			if l1 > 15 {
				l1 -= 16
				qh[j] |= m1
			}
			l2 := L[n+j+32]
			if l2 > 15 {
				l2 -= 16
				qh[j] |= m2
			}
			ql[j] = l1 | l2<<4
		}
		m1 <<= 2
		m2 <<= 2
		ql = ql[32:]
	}
}

// quantQ6_KBlock is quantize_row_q6_K_ref for one block of 256 values.
func quantQ6_KBlock(y []byte, x []float32) {
	var (
		L      [qkK]int8
		scales [qkK / 16]float32
	)
	var maxScale, maxAbsScale float32
	for ib := range qkK / 16 {
		s := makeQXQuants(16, 32, x[16*ib:16*ib+16], L[16*ib:16*ib+16])
		scales[ib] = s
		if a := absf(s); a > maxAbsScale {
			maxAbsScale, maxScale = a, s
		}
	}
	y = y[:blockQ6_KBytes]
	if maxAbsScale < groupMaxEps {
		clear(y)
		return
	}
	iscale := -128 / maxScale
	d := F32ToF16(1 / iscale)
	binary.LittleEndian.PutUint16(y[208:], d)
	sc := y[192:208]
	for ib := range qkK / 16 {
		sc[ib] = byte(int8(min(127, nearestInt(float32(iscale*scales[ib])))))
	}
	df := F16ToF32(d)
	for j := range qkK / 16 {
		dd := df * float32(int8(sc[j]))
		if dd == 0 {
			continue
		}
		for ii := range 16 {
			l := clampInt(nearestInt(x[16*j+ii]/dd), -32, 31)
			L[16*j+ii] = int8(l + 32)
		}
	}
	ql := y[0:128]
	qh := y[128:192]
	for j := 0; j < qkK; j += 128 {
		for l := range 32 {
			q1 := uint8(L[j+l]) & 0xf
			q2 := uint8(L[j+l+32]) & 0xf
			q3 := uint8(L[j+l+64]) & 0xf
			q4 := uint8(L[j+l+96]) & 0xf
			ql[l] = q1 | q3<<4
			ql[l+32] = q2 | q4<<4
			qh[l] = uint8(L[j+l])>>4 | (uint8(L[j+l+32])>>4)<<2 | (uint8(L[j+l+64])>>4)<<4 | (uint8(L[j+l+96])>>4)<<6
		}
		ql = ql[64:]
		qh = qh[32:]
	}
}
