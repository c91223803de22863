package ann

// flatIndex is an exact scan over a private copy of the vectors.
type flatIndex struct {
	dim  int
	vecs []float32
}

func newFlat(vecs []float32, dim int) *flatIndex {
	f := &flatIndex{dim: dim, vecs: makeHuge[float32](len(vecs))}
	copy(f.vecs, vecs)
	return f
}

const flatBlock = 256

func (f *flatIndex) search(q []float32, s *scratch) {
	d := f.dim
	n := len(f.vecs) / d
	if cap(s.buf) < flatBlock {
		s.buf = make([]float32, flatBlock)
	}
	buf := s.buf[:flatBlock]
	for lo := 0; lo < n; lo += flatBlock {
		hi := min(lo+flatBlock, n)
		out := buf[:hi-lo]
		dotRows(out, q, f.vecs[lo*d:hi*d], d)
		for i, sc := range out {
			if sc > s.top.thr {
				s.top.add(sc, int32(lo+i))
			}
		}
	}
}
