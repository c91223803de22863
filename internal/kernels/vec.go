package kernels

import (
	"unsafe"

	"github.com/ragkv/ragkv/internal/cpu"
)

// Dot returns Σ a[i]·b[i] over min(len(a), len(b)) elements.
func Dot(a, b []float32) float32 {
	n := min(len(a), len(b))
	return dot(a[:n], b[:n])
}

// Axpy computes y[i] += a·x[i] over min(len(y), len(x)) elements.
func Axpy(y []float32, a float32, x []float32) {
	n := min(len(y), len(x))
	axpy(y[:n], a, x[:n])
}

// Scale computes x[i] *= a.
func Scale(x []float32, a float32) { scale(x, a) }

// DotRows sets out[j] = Σ_c x[c]·m[j·ld + c] for j < len(out), c < len(x): x dotted with
// rows of m at stride ld (attention scores of one query against cached keys). It panics
// if m is too short, as indexing would.
func DotRows(out, x, m []float32, ld int) {
	if len(out) == 0 {
		return
	}
	if len(x) == 0 {
		clear(out)
		return
	}
	_ = m[(len(out)-1)*ld+len(x)-1]
	j := 0
	switch {
	case cpu.HasAVX512():
		for ; j+4 <= len(out); j += 4 {
			matvecF32x4(len(x), unsafe.Pointer(&m[j*ld]), 4*ld, &x[0], &out[j])
		}
	case cpu.HasAVX2():
		k8 := len(x) &^ 7
		for ; j+4 <= len(out); j += 4 {
			if k8 == 0 {
				clear(out[j : j+4])
			} else {
				matvecF32x4AVX2(k8, unsafe.Pointer(&m[j*ld]), 4*ld, &x[0], &out[j])
			}
			for i := range 4 {
				row := m[(j+i)*ld : (j+i)*ld+len(x)]
				s := out[j+i]
				for c := k8; c < len(x); c++ {
					s += x[c] * row[c]
				}
				out[j+i] = s
			}
		}
	case cpu.HasNEON():
		dotRowsNEON(out, x, m, ld)
		return
	default:
		dotRowsGeneric(out, x, m, ld)
		return
	}
	for ; j < len(out); j++ {
		out[j] = dot(x, m[j*ld:j*ld+len(x)])
	}
}

// AxpyRows adds Σ_j a[j]·m[j·ld + c] to y[c] for c < len(y), j < len(a): a weighted sum
// of rows of m at stride ld (attention's weighted values). It panics if m is too short,
// as indexing would.
func AxpyRows(y, a, m []float32, ld int) {
	if len(y) == 0 || len(a) == 0 {
		return
	}
	_ = m[(len(a)-1)*ld+len(y)-1]
	n := 0
	switch {
	case cpu.HasAVX512():
		if n = len(y) &^ 15; n > 0 {
			axpyRowsF32(n, len(a), &a[0], unsafe.Pointer(&m[0]), 4*ld, &y[0])
		}
	case cpu.HasAVX2():
		if n = len(y) &^ 7; n > 0 {
			axpyRowsF32AVX2(n, len(a), &a[0], unsafe.Pointer(&m[0]), 4*ld, &y[0])
		}
	case cpu.HasNEON():
		if n = len(y) &^ 15; n > 0 {
			axpyRowsNEON(n, len(a), &a[0], unsafe.Pointer(&m[0]), 4*ld, &y[0])
		}
	}
	axpyRowsGeneric(y, a, m, ld, n)
}

func dot(a, b []float32) float32 {
	if cpu.HasAVX512() && len(a) > 0 {
		_ = b[len(a)-1]
		return dotF32(len(a), &a[0], &b[0])
	}
	if n := len(a) &^ 7; cpu.HasAVX2() && n > 0 {
		_ = b[len(a)-1]
		return dotF32AVX2(n, &a[0], &b[0]) + dotGeneric(a[n:], b[n:len(a)])
	}
	if n := len(a) &^ 15; cpu.HasNEON() && n > 0 {
		_ = b[len(a)-1]
		return dotNEON(n, &a[0], &b[0]) + dotGeneric(a[n:], b[n:len(a)])
	}
	return dotGeneric(a, b)
}

func axpy(y []float32, a float32, x []float32) {
	if cpu.HasAVX512() && len(y) > 0 {
		_ = x[len(y)-1]
		axpyF32(len(y), a, &x[0], &y[0])
		return
	}
	if n := len(y) &^ 7; cpu.HasAVX2() && n > 0 {
		_ = x[len(y)-1]
		axpyF32AVX2(n, a, &x[0], &y[0])
		axpyGeneric(y[n:], a, x[n:len(y)])
		return
	}
	if n := len(y) &^ 15; cpu.HasNEON() && n > 0 {
		_ = x[len(y)-1]
		axpyNEON(n, a, &x[0], &y[0])
		axpyGeneric(y[n:], a, x[n:len(y)])
		return
	}
	axpyGeneric(y, a, x)
}

func scale(x []float32, a float32) {
	if cpu.HasAVX512() && len(x) > 0 {
		scaleF32(len(x), a, &x[0])
		return
	}
	if n := len(x) &^ 7; cpu.HasAVX2() && n > 0 {
		scaleF32AVX2(n, a, &x[0])
		scaleGeneric(x[n:], a)
		return
	}
	if n := len(x) &^ 15; cpu.HasNEON() && n > 0 {
		scaleNEON(n, a, &x[0])
		scaleGeneric(x[n:], a)
		return
	}
	scaleGeneric(x, a)
}

func dotGeneric(a, b []float32) float32 {
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

func axpyGeneric(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}

func scaleGeneric(x []float32, a float32) {
	for i := range x {
		x[i] *= a
	}
}
