package ann

// dot is the inner product of two equal-length vectors.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	if len(a) >= 16 && useAVX2() {
		return dotAVX2(a, b)
	}
	return dotGeneric(a, b)
}

func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// dotRows sets out[i] = q · rows[i*d:(i+1)*d] for i < len(out).
func dotRows(out, q, rows []float32, d int) {
	for i := range out {
		out[i] = dot(q, rows[i*d:i*d+d])
	}
}

// Centroid tables for dotsT: centroids are padded to a multiple of 8 and to an even
// dimension dp, and stored in groups of 8, each group dimension-major:
// blk[g*dp*8 + d*8 + j] is dimension d of centroid 8g+j.

// packT8 lays out nc centroids of dimension dim (row-major) for dotsT.
func packT8(cents []float32, nc, dim, dp int) []float32 {
	groups := (nc + 7) / 8
	blk := make([]float32, groups*dp*8)
	for c := 0; c < nc; c++ {
		g, j := c/8, c%8
		for d := 0; d < dim; d++ {
			blk[g*dp*8+d*8+j] = cents[c*dim+d]
		}
	}
	return blk
}

// dotsT sets out[c] = bias[c] + q·centroid c for every c < len(out) (a multiple of 8);
// q has dp (even) elements, blk is the packT8 layout.
func dotsT(out, q, blk, bias []float32, dp int) {
	groups := len(out) / 8
	_ = blk[groups*dp*8-1]
	_ = bias[len(out)-1]
	_ = q[dp-1]
	if useAVX2() {
		dotsTAVX2(out, q, blk, bias, dp)
		return
	}
	dotsTGeneric(out, q, blk, bias, dp)
}

func dotsTGeneric(out, q, blk, bias []float32, dp int) {
	for g := 0; g < len(out)/8; g++ {
		var acc [8]float32
		copy(acc[:], bias[g*8:g*8+8])
		b := blk[g*dp*8 : (g+1)*dp*8]
		for d := 0; d < dp; d++ {
			x := q[d]
			row := b[d*8 : d*8+8]
			for j := range acc {
				acc[j] += x * row[j]
			}
		}
		copy(out[g*8:], acc[:])
	}
}

// argmax is the index of the first largest element of x (len a positive multiple of 8;
// 0 when x holds no comparable maximum, e.g. all NaN).
func argmax(x []float32) int {
	if useAVX2() && len(x) >= 8 && len(x)%8 == 0 {
		return argmaxAVX2(x)
	}
	return argmaxGeneric(x)
}

func argmaxGeneric(x []float32) int {
	best, bi := x[0], 0
	for i, v := range x {
		if v > best {
			best, bi = v, i
		}
	}
	return bi
}

// groupMax32 sets out[g] to the largest of x[32g : 32g+32] (NaNs aside).
func groupMax32(x []float32, out []float32) {
	_ = x[32*len(out)-1]
	if useAVX2() {
		groupMax32AVX2(x, out)
		return
	}
	groupMax32Generic(x, out)
}

func groupMax32Generic(x []float32, out []float32) {
	for g := range out {
		m := x[32*g]
		for _, v := range x[32*g+1 : 32*g+32] {
			if v > m {
				m = v
			}
		}
		out[g] = m
	}
}
