package eviction

import "math/bits"

// tinyLFU is the TinyLFU admission filter (Einziger, Friedman, Manes, "TinyLFU: A Highly
// Efficient Cache Admission Policy", ACM TOS 2017): a count-min sketch of 4-bit counters
// (4 rows, conservative update) behind a doorkeeper Bloom filter that absorbs first
// accesses, with a periodic reset that halves every counter and clears the doorkeeper
// after 10·slots recorded accesses (slots ≥ the tracked entries), so that frequencies
// age. A new entry is admitted only if its estimated frequency exceeds that of the
// entry it would displace. Sizing follows the tracked entry count: when it outgrows
// slots the sketch is rebuilt larger, carrying over the tracked keys' estimates.
type tinyLFU struct {
	slots   uint64   // entries the sketch is sized for, a power of two
	width   uint64   // counters per row, a power of two
	table   []uint64 // 4 rows × width 4-bit counters, 16 per word
	door    []uint64 // doorkeeper bits
	samples uint64
	period  uint64
}

const (
	// sketchWidthMul counters per row per sized-for entry (as Caffeine's sketch): a
	// sample of 10·entries accesses touches many more distinct keys than the cache
	// holds, and a narrower sketch overestimates the tail through collisions.
	sketchWidthMul = 4
	// doorBitsPerSample doorkeeper bits per access of the sample period (2 probes:
	// ≈15% false positives if every sampled access were a distinct key).
	doorBitsPerSample = 4
	sketchRows        = 4
	minSketchWidth    = 64
	maxSketchWidth    = 1 << 26
)

func newTinyLFU(entries int) *tinyLFU {
	f := &tinyLFU{}
	f.resize(entries)
	return f
}

func sketchWidthFor(entries int) uint64 {
	w := uint64(minSketchWidth)
	if entries > minSketchWidth {
		w = uint64(1) << bits.Len64(uint64(entries-1))
	}
	if w > maxSketchWidth {
		w = maxSketchWidth
	}
	return w
}

func (f *tinyLFU) resize(entries int) {
	f.slots = sketchWidthFor(entries)
	f.width = f.slots * sketchWidthMul
	f.table = make([]uint64, sketchRows*f.width/16)
	f.period = 10 * f.slots
	f.door = make([]uint64, max(1, (uint64(1)<<bits.Len64(f.period*doorBitsPerSample-1))/64))
	f.samples = 0
}

// needsGrow reports whether the tracker holds more entries than the sketch is sized
// for; the caller then calls regrow.
func (f *tinyLFU) needsGrow(entries int) bool {
	return uint64(entries) > f.slots && f.slots < maxSketchWidth
}

// regrow enlarges the sketch for entries and carries over the estimates of the given
// (tracked) hashes; the history of untracked keys is dropped. It never shrinks.
func (f *tinyLFU) regrow(entries int, tracked func(yield func(h uint64))) {
	old := *f
	f.resize(entries)
	tracked(func(h uint64) {
		n := old.estimate(h)
		if n > 0 {
			f.addDoor(h)
			n--
		}
		for r := 0; r < sketchRows; r++ {
			w, s := f.counterPos(h, r)
			if c := (f.table[w] >> s) & 15; c < n {
				f.table[w] += (n - c) << s
			}
		}
	})
}

// counterPos places row r's counter for hash h. All four counters of a key lie in one
// 64-byte block of 8 words (two words per row), as in Caffeine's sketch, so an update
// touches one cache line instead of four.
func (f *tinyLFU) counterPos(h uint64, row int) (word int, shift uint) {
	nblocks := uint64(len(f.table)) / 8
	block := (h & 0xffffffff) & (nblocks - 1)
	w := block*8 + uint64(row)*2 + (h>>(32+uint(row)))&1
	return int(w), uint((h>>(40+4*uint(row)))&15) * 4
}

// doorMask returns the doorkeeper word and the two bits (one blocked Bloom filter
// word per key) for hash h.
func (f *tinyLFU) doorMask(h uint64) (word int, mask uint64) {
	m := mix64(h)
	return int(m & uint64(len(f.door)-1)), 1<<((m>>52)&63) | 1<<((m>>58)&63)
}

func (f *tinyLFU) inDoor(h uint64) bool {
	w, m := f.doorMask(h)
	return f.door[w]&m == m
}

func (f *tinyLFU) addDoor(h uint64) {
	w, m := f.doorMask(h)
	f.door[w] |= m
}

// record counts one access of the key with hash h.
func (f *tinyLFU) record(h uint64) {
	if !f.inDoor(h) {
		f.addDoor(h)
	} else {
		// Conservative update: raise only the counters equal to the minimum.
		m := f.sketchMin(h)
		if m < 15 {
			for r := 0; r < sketchRows; r++ {
				w, s := f.counterPos(h, r)
				if (f.table[w]>>s)&15 == m {
					f.table[w] += 1 << s
				}
			}
		}
	}
	f.samples++
	if f.samples >= f.period {
		f.reset()
	}
}

func (f *tinyLFU) sketchMin(h uint64) uint64 {
	m := uint64(15)
	for r := 0; r < sketchRows; r++ {
		w, s := f.counterPos(h, r)
		if c := (f.table[w] >> s) & 15; c < m {
			m = c
		}
	}
	return m
}

// estimate returns the approximate recent access count of the key with hash h.
func (f *tinyLFU) estimate(h uint64) uint64 {
	m := f.sketchMin(h)
	if f.inDoor(h) {
		m++
	}
	return m
}

// admit reports whether a candidate should displace the victim.
func (f *tinyLFU) admit(candidate, victim uint64) bool {
	return f.estimate(candidate) > f.estimate(victim)
}

func (f *tinyLFU) reset() {
	for i, w := range f.table {
		f.table[i] = (w >> 1) & 0x7777777777777777
	}
	clear(f.door)
	f.samples /= 2
}
