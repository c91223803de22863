package model

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkBatchDecode steps 1, 4 and 16 sessions (each after its own 128-token
// prompt) by one token per step through Batch.Feed, beside State.Feed of one session
// ($RAGKV_BENCH_MODEL, e.g. a `ragkv model synth --shape smollm-135m --dtype q8_0` file,
// or stories260K). tok/s counts every session's token: the weights are read once per
// step for all rows, so it grows with the batch while the step is bound by memory.
func BenchmarkBatchDecode(b *testing.B) {
	m := openBenchModel(b)
	ctx := context.Background()
	n := min(128, m.Config.Ctx/4)
	for _, rows := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			states := make([]*State, rows)
			toks := make([]int, rows)
			for i := range states {
				p := make([]int, n)
				for j := range p {
					p[j] = (j*7919 + 13*i + 1) % m.Config.Vocab
				}
				states[i] = m.NewState(nil, n+m.Config.Ctx/2)
				l, err := states[i].Feed(ctx, p...)
				if err != nil {
					b.Fatal(err)
				}
				toks[i] = Argmax(l)
			}
			bt := m.NewBatch(rows)
			steps := 0
			for b.Loop() {
				if states[0].NextPos() >= m.Config.Ctx-1 || states[0].NextPos() >= 2*n+256 {
					for _, st := range states { // back to the prompt (the KV keeps its capacity)
						st.KV.Truncate(n)
						st.next = n
					}
				}
				if err := bt.Feed(ctx, states, toks); err != nil {
					b.Fatal(err)
				}
				for i, st := range states {
					toks[i] = Argmax(st.Logits())
				}
				steps++
			}
			b.ReportMetric(float64(steps*rows)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
