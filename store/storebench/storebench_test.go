package storebench

import (
	"context"
	"errors"
	"testing"
)

func TestRunSmall(t *testing.T) {
	for _, tier := range []string{"memory", "disk"} {
		var units int64
		o := Options{Tier: tier, Dir: t.TempDir(), ChunkBytes: 64 << 10, Count: 8, Layers: 4, Passes: 1,
			Progress: func(n int64) { units += n }}
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if res.TierReadMBps <= 0 || res.FileReadMBps <= 0 || res.ReadVsFile <= 0 {
			t.Fatalf("%s: %+v", tier, res)
		}
		if (tier == "disk") != (res.DiskReadVsFile > 0) || (tier == "memory") != (res.MemoryReadGBps > 0) {
			t.Fatalf("%s: wrong headline keys: %+v", tier, res)
		}
		if units != o.Total() {
			t.Fatalf("%s: progress %d units, want %d", tier, units, o.Total())
		}
	}
}

func TestValidate(t *testing.T) {
	good := Options{Tier: "disk", Dir: "x", ChunkBytes: 1 << 20, Count: 1, Layers: 4, Passes: 1}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Options){
		"tier":   func(o *Options) { o.Tier = "tape" },
		"layers": func(o *Options) { o.Layers = 0 },
		"tiny":   func(o *Options) { o.ChunkBytes, o.Layers = 64, 16 },
		"count":  func(o *Options) { o.Count = 0 },
		"passes": func(o *Options) { o.Passes = 0 },
		"dir":    func(o *Options) { o.Dir = "" },
	} {
		o := good
		mut(&o)
		if err := o.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
