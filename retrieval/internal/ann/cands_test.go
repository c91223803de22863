package ann

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestCandsKeepsBest(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, tc := range []struct{ n, r, levels int }{{0, 5, 10}, {3, 5, 10}, {1000, 10, 1 << 30}, {5000, 100, 50}, {777, 1, 3}} {
		var c cands
		c.reset(tc.r)
		type pair struct {
			s  float32
			id int32
		}
		all := make([]pair, tc.n)
		for i := range all {
			all[i] = pair{float32(rng.IntN(tc.levels)), int32(i)}
			c.add(all[i].s, all[i].id)
		}
		c.compact()
		slices.SortFunc(all, func(a, b pair) int {
			if better(a.s, a.id, b.s, b.id) {
				return -1
			}
			return 1
		})
		want := all[:min(tc.r, tc.n)]
		ids, scores := append([]int32(nil), c.ids...), append([]float32(nil), c.scores...)
		sortBest(ids, scores)
		if len(ids) != len(want) {
			t.Fatalf("%+v: kept %d want %d", tc, len(ids), len(want))
		}
		for i := range want {
			// With ties at the threshold another id of the same score may be kept.
			if scores[i] != want[i].s {
				t.Fatalf("%+v rank %d: score %v want %v", tc, i, scores[i], want[i].s)
			}
		}
	}
}

func TestSelectTopExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(300)
		k := 1 + rng.IntN(n)
		ids := make([]int32, n)
		scores := make([]float32, n)
		for i := range ids {
			ids[i] = int32(rng.IntN(1000))
			scores[i] = float32(rng.IntN(20))
		}
		ri, rs := append([]int32(nil), ids...), append([]float32(nil), scores...)
		sortBest(ri, rs)
		selectTop(ids, scores, k)
		sortBest(ids[:k], scores[:k])
		if !slices.Equal(ids[:k], ri[:k]) || !slices.Equal(scores[:k], rs[:k]) {
			t.Fatalf("n=%d k=%d: %v/%v want %v/%v", n, k, ids[:k], scores[:k], ri[:k], rs[:k])
		}
	}
}
