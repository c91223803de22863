package ann

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// BenchmarkScanBlocks: one kernel call over 8 blocks of 32 codes with 32 sub-quantizers
// (the IVF list scan); reports ns per code.
func BenchmarkScanBlocks(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	const nb, m2 = 8, 16
	codes := make([]byte, nb*m2*chunkSize)
	lut := make([]byte, m2*32)
	for i := range codes {
		codes[i] = byte(rng.IntN(256))
	}
	for i := range lut {
		lut[i] = byte(rng.IntN(200))
	}
	acc := make([]uint16, nb*32)
	masks := make([]uint32, nb)
	for _, impl := range []struct {
		name string
		fn   func([]byte, int, int, []byte, int, []uint16, []uint32)
	}{{"dispatch", scanBlocks}, {"generic", scanBlocksGeneric}} {
		b.Run(impl.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				impl.fn(codes, nb, m2, lut, 3000, acc, masks)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nb*32), "ns/code")
		})
	}
}

// BenchmarkDotsT: one query against 4096 coarse centroids of 32 dimensions.
func BenchmarkDotsT(b *testing.B) {
	rng := rand.New(rand.NewPCG(2, 2))
	const nc, dim = 4096, 32
	cents := make([]float32, nc*dim)
	for i := range cents {
		cents[i] = float32(rng.NormFloat64())
	}
	blk := packT8(cents, nc, dim, dim)
	bias := make([]float32, nc)
	q := cents[:dim]
	out := make([]float32, nc)
	for i := 0; i < b.N; i++ {
		dotsT(out, q, blk, bias, dim)
	}
}

// BenchmarkRescore: exact rescoring of 200 random rows of a 10^6×100 float32 matrix
// (400 MB, far beyond the caches), by prefetch distance in rows.
func BenchmarkRescore(b *testing.B) {
	const n, dim, r = 1_000_000, 100, 200
	data := make([]float32, n*dim)
	if os.Getenv("HUGE") != "" {
		data = makeHuge[float32](n * dim)
	}
	for i := range data {
		data[i] = float32(i%97) / 97
	}
	v, _ := NewVectors(data, dim)
	rng := rand.New(rand.NewPCG(4, 4))
	const sets = 256
	ids := make([][]int32, sets)
	for i := range ids {
		ids[i] = make([]int32, r)
		for j := range ids[i] {
			ids[i][j] = int32(rng.IntN(n))
		}
	}
	q := data[:dim]
	scores := make([]float32, r)
	old := rescoreAhead
	defer func() { rescoreAhead = old }()
	for _, ahead := range []int{0, 2, 4, 8, 16, 32} {
		b.Run(fmt.Sprintf("ahead=%d", ahead), func(b *testing.B) {
			rescoreAhead = ahead
			for i := 0; i < b.N; i++ {
				v.Rescore(q, ids[i%sets], scores)
			}
		})
	}
}
