package model

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// BenchmarkLayerStepRows runs one layer (projections, attention, feed-forward) for n
// rows at the end of a 1,221-token prompt, for n from a CacheBlend prefill's recompute
// set (200) to 16 of them together (3,200): rows/s per call size is the GEMM batching
// gain a combined prefill could get ($RAGKV_BENCH_MODEL, default stories260K).
func BenchmarkLayerStepRows(b *testing.B) {
	var m *Model
	if p := os.Getenv("RAGKV_BENCH_MODEL"); p != "" {
		var err error
		if m, err = Open(p, Options{}); err != nil {
			b.Fatal(err)
		}
		defer m.Close()
	} else {
		m = openStories(b, "stories260K-f32.gguf")
	}
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
