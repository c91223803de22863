package ann

// dot is the inner product of two equal-length vectors.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	if len(a) >= 16 && useAVX2 {
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
