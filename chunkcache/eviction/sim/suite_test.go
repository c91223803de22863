package sim

import (
	"context"
	"math"
	"testing"

	"github.com/ragkv/ragkv/chunkcache/eviction"
)

func TestStaticOracle(t *testing.T) {
	// Ranking 7 > 8 > 9; capacity 2 holds {7, 8}. Hits: second requests of 7 and 8.
	tr := &Trace{Requests: []uint32{7, 8, 9, 7, 9, 8, 5}, Phases: []Phase{{0, []uint32{7, 8, 9}}}}
	r, err := StaticOracle(tr, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hits != 2 {
		t.Fatalf("hits = %d, want 2", r.Hits)
	}
	// Two phases: after the shift at request 3 the top set is {9}.
	tr.Phases = []Phase{{0, []uint32{7, 8}}, {3, []uint32{9, 7}}}
	if r, _ = StaticOracle(tr, 1); r.Hits != 1 { // only the second 9
		t.Fatalf("phased hits = %d, want 1", r.Hits)
	}
	if _, err := StaticOracle(&Trace{Requests: []uint32{1}}, 1); err == nil {
		t.Fatal("no error for a trace without phases")
	}
}

func TestRunSuite(t *testing.T) {
	traces := []*Trace{
		Zipf("z", 0.8, 3000, 30000, 1),
		ScanPolluted("s", 0.9, 3000, 30000, 0.25, 200, 600, 1),
		Shifting("sh", 0.9, 2000, 30000, 1),
		VariableSize("v", 0.9, 2000, 30000, 300, DefaultModels, 1),
	}
	configs := AllConfigs()
	calls := 0
	rep, err := RunSuite(context.Background(), traces, DefaultSizes, configs, 2, func() { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if want := JobCount(traces, DefaultSizes, configs); calls != want {
		t.Errorf("progress called %d times, want %d", calls, want)
	}
	if len(rep.Best) != len(traces)*len(DefaultSizes) {
		t.Fatalf("%d best rows", len(rep.Best))
	}
	type key struct {
		trace string
		pct   float64
	}
	bel := map[key]float64{}
	orc := map[key]float64{}
	for _, r := range rep.Rows {
		switch r.Policy {
		case "belady":
			bel[key{r.Trace, r.SizePct}] = r.HitRatio
		case "static-oracle":
			orc[key{r.Trace, r.SizePct}] = r.HitRatio
		}
	}
	minRatio := math.Inf(1)
	for _, b := range rep.Best {
		k := key{b.Trace, b.SizePct}
		best := 0.0
		for _, r := range rep.Rows {
			if r.Trace == b.Trace && r.SizePct == b.SizePct && r.Policy != "belady" && r.Policy != "static-oracle" {
				best = max(best, r.HitRatio)
				if be, ok := bel[k]; ok && r.HitRatio > be+1e-12 {
					t.Errorf("%s@%g%%: %s/%s beats Belady (%v > %v)", b.Trace, b.SizePct, r.Policy, r.Admission, r.HitRatio, be)
				}
			}
		}
		if b.BestHitRatio != best {
			t.Errorf("%s@%g%%: best %v, rows say %v", b.Trace, b.SizePct, b.BestHitRatio, best)
		}
		if be, ok := bel[k]; ok {
			if o := orc[k]; o > be {
				t.Errorf("%s@%g%%: static oracle %v beats Belady %v", b.Trace, b.SizePct, o, be)
			}
			minRatio = min(minRatio, best/be)
		} else if b.Trace != "v" {
			t.Errorf("no Belady row for unit-size trace %s", b.Trace)
		}
	}
	if math.Abs(minRatio-rep.MinBestVsBelady) > 1e-12 || rep.MinAt == "" {
		t.Errorf("MinBestVsBelady = %v at %q, recomputed %v", rep.MinBestVsBelady, rep.MinAt, minRatio)
	}
	if rep.MinBestVsBelady <= 0 || rep.MinBestVsBelady > 1 {
		t.Errorf("MinBestVsBelady = %v out of (0, 1]", rep.MinBestVsBelady)
	}
}

func TestRunSuiteCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := RunSuite(ctx, []*Trace{Zipf("z", 0.8, 1000, 200000, 1)}, DefaultSizes,
		[]Config{{eviction.PolicyLRU, eviction.AdmissionNone}}, 1, nil)
	if err == nil {
		t.Fatal("RunSuite ignored a cancelled context")
	}
}
