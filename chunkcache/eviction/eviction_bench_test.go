package eviction

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// Per-operation cost of the tracker for every policy, with and without TinyLFU:
//
//	go test -run '^$' -bench . -benchmem ./chunkcache/eviction
//
// Reserve: a new key into a full tracker of 2^16 entries (one eviction per op).
// Touch: a hit on a resident key. Replay: Touch, and Reserve on a miss, over a Zipf 0.9
// request stream whose universe is 10× the capacity (the mix a tier sees).

const benchEntries = 1 << 16

func benchKey(i uint64) Key {
	var k Key
	binary.LittleEndian.PutUint64(k[:], i)
	binary.LittleEndian.PutUint64(k[8:], i*0x9e3779b97f4a7c15)
	return k
}

func benchConfigs(b *testing.B, f func(b *testing.B, cfg Config)) {
	for _, p := range Policies() {
		for _, a := range Admissions() {
			name := p
			if a != AdmissionNone {
				name += "+" + a
			}
			b.Run(name, func(b *testing.B) {
				f(b, Config{Policy: p, Admission: a, Capacity: benchEntries})
			})
		}
	}
}

func fullTracker(b *testing.B, cfg Config) *Tracker {
	tr, err := NewTracker(cfg)
	if err != nil {
		b.Fatal(err)
	}
	for i := uint64(0); i < benchEntries; i++ {
		if _, err := tr.Reserve(benchKey(i), 1, 1); err != nil {
			b.Fatal(err)
		}
	}
	return tr
}

func BenchmarkReserve(b *testing.B) {
	benchConfigs(b, func(b *testing.B, cfg Config) {
		cfg.Admission = AdmissionNone // admission would reject most one-off keys
		tr := fullTracker(b, cfg)
		buf := make([]Key, 0, 4)
		keys := make([]Key, 1<<16)
		for i := range keys {
			keys[i] = benchKey(uint64(benchEntries + i))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			// Keys cycle through 2^17 distinct values so each insert is new and evicts.
			k := keys[i&(len(keys)-1)]
			k[16] = byte(i >> 16)
			var err error
			if buf, err = tr.AppendReserve(buf[:0], k, 1, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkTouch(b *testing.B) {
	benchConfigs(b, func(b *testing.B, cfg Config) {
		tr := fullTracker(b, cfg)
		rng := rand.New(rand.NewPCG(1, 2))
		keys := make([]Key, 1<<16)
		for i := range keys {
			keys[i] = benchKey(rng.Uint64N(benchEntries))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if !tr.Touch(keys[i&(len(keys)-1)]) {
				b.Fatal("miss on a resident key")
			}
		}
	})
}

func BenchmarkReplay(b *testing.B) {
	const universe = 10 * benchEntries
	rng := rand.New(rand.NewPCG(3, 4))
	z := rand.NewZipf(rng, 1.1, 1, universe-1) // math/rand's Zipf needs s > 1
	keys := make([]Key, 1<<18)
	for i := range keys {
		keys[i] = benchKey(z.Uint64())
	}
	benchConfigs(b, func(b *testing.B, cfg Config) {
		tr, err := NewTracker(cfg)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]Key, 0, 4)
		for _, k := range keys { // warm up
			if !tr.Touch(k) {
				buf, _ = tr.AppendReserve(buf[:0], k, 1, 1)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			k := keys[i&(len(keys)-1)]
			if !tr.Touch(k) {
				buf, _ = tr.AppendReserve(buf[:0], k, 1, 1)
			}
		}
	})
}
