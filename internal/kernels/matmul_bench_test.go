package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/kernels/cputime"
)

// BenchmarkMatMul reports GFLOP/s (2·rows·n·cols per call) and weight GB/s for each type at
// the acceptance shape (m=4096, k=14336) with n=512 tokens (prefill) and n=1 (decode), and
// at a small model's shape (smollm-135m: 576→1536).
//
//	go test -run '^$' -bench 'MatMul' -benchtime 3x ./internal/kernels/
func BenchmarkMatMul(b *testing.B) {
	shapes := []struct{ m, k, n int }{
		{4096, 14336, 512},
		{4096, 14336, 1},
		{1536, 576, 128},
		{1536, 576, 1},
	}
	p := NewPool(0)
	defer p.Close()
	for _, sh := range shapes {
		for _, typ := range []DType{F32, F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q5_K, Q6_K} {
			if sh.k%typ.BlockElems() != 0 {
				continue
			}
			b.Run(fmt.Sprintf("%v/m%d_k%d_n%d", typ, sh.m, sh.k, sh.n), func(b *testing.B) {
				w, err := RandomMat(typ, sh.m, sh.k, 0.05, 1)
				if err != nil {
					b.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(1, 1))
				x := randomF32(rng, sh.n*sh.k)
				out := make([]float32, sh.n*sh.m)
				if err := p.MatMul(out, x, sh.n, &w); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for b.Loop() {
					if err := p.MatMul(out, x, sh.n, &w); err != nil {
						b.Fatal(err)
					}
				}
				sec := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(2*float64(sh.m)*float64(sh.n)*float64(sh.k)/sec/1e9, "GFLOP/s")
				b.ReportMetric(float64(len(w.Data))/sec/1e9, "weightGB/s")
			})
		}
	}
}

func BenchmarkDot(b *testing.B) {
	for _, n := range []int{64, 4096} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			x, y := randomF32(rng, n), randomF32(rng, n)
			var s float32
			for b.Loop() {
				s += Dot(x, y)
			}
			_ = s
			b.ReportMetric(2*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkAxpy(b *testing.B) {
	for _, n := range []int{64, 4096} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			x, y := randomF32(rng, n), randomF32(rng, n)
			for b.Loop() {
				Axpy(y, 1e-9, x)
			}
			b.ReportMetric(2*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkMatVecSmall measures decode-sized products (smollm-135m: dim 576, hidden 1536),
// where dispatch latency matters as much as bandwidth, with 1 and all threads.
func BenchmarkMatVecSmall(b *testing.B) {
	for _, threads := range []int{1, 0} {
		p := NewPool(threads)
		for _, typ := range []DType{F32, Q8_0} {
			for _, sh := range []struct{ m, k int }{{576, 576}, {1536, 576}, {576, 1536}} {
				b.Run(fmt.Sprintf("t%d/%v/m%d_k%d", p.Threads(), typ, sh.m, sh.k), func(b *testing.B) {
					w, err := RandomMat(typ, sh.m, sh.k, 0.05, 1)
					if err != nil {
						b.Fatal(err)
					}
					x := randomF32(rand.New(rand.NewPCG(1, 1)), sh.k)
					out := make([]float32, sh.m)
					for b.Loop() {
						if err := p.MatMul(out, x, 1, &w); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(len(w.Data))*float64(b.N)/b.Elapsed().Seconds()/1e9, "weightGB/s")
				})
			}
		}
		p.Close()
	}
}

// BenchmarkParallelDispatch measures the cost of one Pool round trip (empty job).
func BenchmarkParallelDispatch(b *testing.B) {
	p := NewPool(0)
	defer p.Close()
	fn := func(lo, hi int) {}
	for b.Loop() {
		p.Parallel(1024, fn)
	}
}

// BenchmarkMatMulPaths compares every kernel path this CPU runs, single-threaded, at a
// small model's shape for token counts around the matrix-vector/GEMM crossover (and with
// the crossover forced either way: gemm=mv for the matrix-vector kernels, gemm=gemm for the
// GEMM), reporting GFLOP per CPU-second (cpuGFLOP/s; unaffected by other processes).
//
//	go test -run '^$' -bench 'MatMulPaths' -benchtime 20x ./internal/kernels/
func BenchmarkMatMulPaths(b *testing.B) {
	saved := cpu.Active()
	defer cpu.Set(saved)
	p := NewPool(1)
	defer p.Close()
	for _, path := range cpu.Available() {
		cpu.Set(path)
		for _, typ := range allTypes {
			for _, n := range []int{1, 2, 4, 8, 12, 16, 24, 32, 64, 256} {
				for _, force := range []string{"mv", "gemm"} {
					const m, k = 1536, 1024
					b.Run(fmt.Sprintf("%v/%v/n%d/%s", path, typ, n, force), func(b *testing.B) {
						if force == "mv" {
							gemmMinTokens = 1 << 20
						} else {
							gemmMinTokens = 1
						}
						defer func() { gemmMinTokens = 0 }()
						w, err := RandomMat(typ, m, k, 0.05, 1)
						if err != nil {
							b.Fatal(err)
						}
						x := randomF32(rand.New(rand.NewPCG(1, 1)), n*k)
						out := make([]float32, n*m)
						_ = p.MatMul(out, x, n, &w)
						c0, _ := cputime.Process()
						for b.Loop() {
							if err := p.MatMul(out, x, n, &w); err != nil {
								b.Fatal(err)
							}
						}
						c1, _ := cputime.Process()
						b.ReportMetric(2*m*k*float64(n)*float64(b.N)/(c1-c0).Seconds()/1e9, "cpuGFLOP/s")
					})
				}
			}
		}
	}
}
