package sim

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ragkv/ragkv/chunkcache/eviction"
)

// bruteOpt returns the maximum number of hits on req with a cache of capacity unit
// chunks, by exhaustive search over every admission/eviction choice.
func bruteOpt(req []uint32, capacity int) int {
	var rec func(i int, cache []uint32) int
	rec = func(i int, cache []uint32) int {
		if i == len(req) {
			return 0
		}
		id := req[i]
		if slices.Contains(cache, id) {
			return 1 + rec(i+1, cache)
		}
		best := rec(i+1, cache) // bypass
		if len(cache) < capacity {
			best = max(best, rec(i+1, append(slices.Clone(cache), id)))
		} else {
			for j := range cache {
				c := slices.Clone(cache)
				c[j] = id
				best = max(best, rec(i+1, c))
			}
		}
		return best
	}
	return rec(0, nil)
}

func TestBeladyIsOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for trial := 0; trial < 300; trial++ {
		n := 1 + rng.IntN(11)
		keys := 1 + rng.IntN(5)
		req := make([]uint32, n)
		for i := range req {
			req[i] = uint32(rng.IntN(keys))
		}
		capacity := 1 + rng.IntN(3)
		got, err := Belady(&Trace{Requests: req}, capacity)
		if err != nil {
			t.Fatal(err)
		}
		if want := bruteOpt(req, capacity); int(got.Hits) != want {
			t.Fatalf("Belady(%v, cap %d) = %d hits, exhaustive optimum %d", req, capacity, got.Hits, want)
		}
	}
}

func TestBeladyBoundsOnlinePolicies(t *testing.T) {
	tr := Zipf("z", 0.9, 2000, 50000, 3)
	for _, c := range []int{20, 100, 400} {
		opt, err := Belady(tr, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, pol := range eviction.Policies() {
			for _, adm := range eviction.Admissions() {
				r, err := Replay(context.Background(), tr, eviction.Config{Policy: pol, Admission: adm, Capacity: int64(c)})
				if err != nil {
					t.Fatal(err)
				}
				if r.Hits > opt.Hits {
					t.Errorf("cap %d: %s/%s %d hits > Belady %d", c, pol, adm, r.Hits, opt.Hits)
				}
				if r.HitRatio < 0.3*opt.HitRatio {
					t.Errorf("cap %d: %s/%s hit ratio %.3f implausibly far below Belady %.3f", c, pol, adm, r.HitRatio, opt.HitRatio)
				}
			}
		}
	}
	if _, err := Belady(VariableSize("v", 0.9, 100, 100, 256, DefaultModels, 1), 10); err == nil {
		t.Error("Belady accepted a variable-size trace")
	}
}

func TestTracesDeterministic(t *testing.T) {
	a := ScanPolluted("s", 0.9, 1000, 20000, 0.3, 100, 300, 42)
	b := ScanPolluted("s", 0.9, 1000, 20000, 0.3, 100, 300, 42)
	c := ScanPolluted("s", 0.9, 1000, 20000, 0.3, 100, 300, 43)
	if !slices.Equal(a.Requests, b.Requests) {
		t.Fatal("same seed, different traces")
	}
	if slices.Equal(a.Requests, c.Requests) {
		t.Fatal("different seeds, same trace")
	}
}

func TestZipfShape(t *testing.T) {
	const universe, n = 1000, 200000
	for _, alpha := range []float64{0.8, 1.1} {
		tr := Zipf("z", alpha, universe, n, 1)
		counts := map[uint32]int{}
		for _, id := range tr.Requests {
			if id >= universe {
				t.Fatalf("id %d outside universe", id)
			}
			counts[id]++
		}
		freq := make([]int, 0, len(counts))
		for _, c := range counts {
			freq = append(freq, c)
		}
		slices.Sort(freq)
		slices.Reverse(freq)
		h := 0.0
		for r := 1; r <= universe; r++ {
			h += math.Pow(float64(r), -alpha)
		}
		for _, r := range []int{1, 10} {
			want := float64(n) * math.Pow(float64(r), -alpha) / h
			if got := float64(freq[r-1]); math.Abs(got-want) > 0.1*want {
				t.Errorf("alpha %v: rank %d count %v, want ≈ %.0f", alpha, r, got, want)
			}
		}
	}
}

func TestScanAndShiftTraces(t *testing.T) {
	s := ScanPolluted("s", 0.9, 1000, 100000, 0.3, 500, 1500, 5)
	scanned := 0
	for _, id := range s.Requests {
		if id >= 1000 {
			scanned++
		}
	}
	if f := float64(scanned) / float64(len(s.Requests)); f < 0.2 || f > 0.4 {
		t.Errorf("scan fraction %.2f, want ≈ 0.3", f)
	}
	keys, _ := s.WorkingSet()
	if keys < scanned {
		t.Errorf("working set %d < scanned one-off chunks %d", keys, scanned)
	}

	sh := Shifting("sh", 1.0, 1000, 10000, 5)
	firstHalf := map[uint32]bool{}
	for _, id := range sh.Requests[:5000] {
		firstHalf[id] = true
	}
	for _, id := range sh.Requests[5000:] {
		if firstHalf[id] {
			t.Fatalf("chunk %d requested in both halves of the shifting trace", id)
		}
	}
}

func TestVariableSizeTrace(t *testing.T) {
	tr := VariableSize("v", 0.9, 5000, 20000, 300, DefaultModels, 9)
	perByte := map[int64]float64{}
	for id := range tr.Sizes {
		sz, c := tr.Sizes[id], tr.Costs[id]
		if sz <= 0 || c <= 0 {
			t.Fatalf("chunk %d: size %d cost %v", id, sz, c)
		}
		ok := false
		for _, m := range DefaultModels {
			tok := sz / m.KVBytesPerTok
			if sz%m.KVBytesPerTok == 0 && tok >= 32 && tok <= 4096 && c == m.PrefillFLOPs(int(tok)) {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("chunk %d: size %d, cost %v match no model", id, sz, c)
		}
		perByte[sz] = c / float64(sz)
	}
	if len(perByte) < 100 {
		t.Fatalf("only %d distinct sizes", len(perByte))
	}
	// GDSF must beat plain LRU on recompute cost saved when sizes and cost per byte vary.
	ctx := context.Background()
	_, wsBytes := tr.WorkingSet()
	cfg := eviction.Config{Capacity: wsBytes / 20}
	cfg.Policy = eviction.PolicyLRU
	lru, err := Replay(ctx, tr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy = eviction.PolicyGDSF
	gdsf, err := Replay(ctx, tr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if gdsf.CostSavedRatio <= lru.CostSavedRatio {
		t.Errorf("GDSF cost saved %.3f ≤ LRU %.3f", gdsf.CostSavedRatio, lru.CostSavedRatio)
	}
}
