package ann

import "unsafe"

// makeHuge allocates a zeroed slice for a large table and advises huge pages for it
// before it is written (see adviseHuge).
func makeHuge[T any](n int) []T {
	s := make([]T, n)
	if n > 0 {
		var zero T
		adviseHuge(unsafe.Pointer(unsafe.SliceData(s)), n*int(unsafe.Sizeof(zero)))
	}
	return s
}
