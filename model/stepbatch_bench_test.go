package model

import (
	"context"
	"fmt"
	"syscall"
	"testing"
)

// BenchmarkLayerStepRows runs one layer (projections, attention, feed-forward) for n
// rows at the end of a 1,221-token prompt, for n from a CacheBlend prefill's recompute
// set (200) to 16 of them together (3,200): rows/s per call size is the GEMM batching
// gain a combined prefill could get ($RAGKV_BENCH_MODEL, default stories260K).
func BenchmarkLayerStepRows(b *testing.B) {
	m := openBenchModel(b)
	ctx := context.Background()
	T := min(1221, m.Config.Ctx)
	for _, n := range []int{50, 200, 800, 3200} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			kv := NewKV(&m.Config, T)
			pos := make([]int, n)
			rows := make([]int, n)
			for i := range T {
				kv.Pos = append(kv.Pos, i)
			}
			for i := range pos {
				pos[i] = (T - 1) * i / max(n-1, 1)
				rows[i] = pos[i]
			}
			x := make([]float32, n*m.Config.Dim)
			for i := range x {
				x[i] = float32((i*7919)%97)/97 - 0.5
			}
			st := m.NewStepper(n)
			for b.Loop() {
				if err := st.LayerStep(ctx, 1, x, pos, rows, kv, &StepOptions{SkipWrite: true}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkLayerStepMulti steps G sequences' 200 rows each (a CacheBlend prefill's
// recompute set) at the end of their own 1,221-row KVs through one layer, alone (G
// LayerStep calls) and together (one LayerStepMulti): rows/s together over alone is the
// batching gain of a combined prefill's recompute layers ($RAGKV_BENCH_MODEL, default
// stories260K). cpu_s/op is the process's CPU time per op.
func BenchmarkLayerStepMulti(b *testing.B) {
	m := openBenchModel(b)
	ctx := context.Background()
	T := min(1221, m.Config.Ctx)
	const n = 200
	for _, G := range []int{1, 4, 16} {
		groups := make([]StepGroup, G)
		for g := range groups {
			kv := NewKV(&m.Config, T)
			for i := range T {
				kv.Pos = append(kv.Pos, i)
			}
			pos := make([]int, n)
			for i := range pos {
				pos[i] = (T - 1) * (i*G + g) / (G * n)
			}
			x := make([]float32, n*m.Config.Dim)
			for i := range x {
				x[i] = float32((i*7919+g)%97)/97 - 0.5
			}
			groups[g] = StepGroup{X: x, Pos: pos, Rows: pos, KV: kv, Opts: &StepOptions{SkipWrite: true}}
		}
		for _, together := range []bool{false, true} {
			b.Run(fmt.Sprintf("groups=%d/together=%v", G, together), func(b *testing.B) {
				st := m.NewStepper(G * n)
				c0 := cpuSeconds()
				for b.Loop() {
					if together {
						if err := st.LayerStepMulti(ctx, 1, groups); err != nil {
							b.Fatal(err)
						}
						continue
					}
					for _, g := range groups {
						if err := st.LayerStep(ctx, 1, g.X, g.Pos, g.Rows, g.KV, g.Opts); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(G*n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
				b.ReportMetric(float64(G*n)*float64(b.N)/(cpuSeconds()-c0), "rows/cpu_s")
			})
		}
	}
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
