package model

import (
	"cmp"
	"math"
	"slices"
)

// Sampler picks the next token from logits exactly as llama2.c's run.c does: argmax at
// temperature 0; otherwise logits/temperature, softmax, and a coin from its xorshift
// generator, with nucleus (top-p) sampling when 0 < TopP < 1. With the same seed it
// reproduces run.c's choices. It reuses its buffers (no allocation per token).
type Sampler struct {
	Temperature float32
	TopP        float32
	state       uint64
	probs       []float32
	idx         []probIndex
}

type probIndex struct {
	p float32
	i int
}

// NewSampler returns a sampler seeded as run.c is with --seed (seed 0 is replaced by 1
// here, since run.c's 0 means "time of day").
func NewSampler(temperature, topP float32, seed uint64) *Sampler {
	if seed == 0 {
		seed = 1
	}
	return &Sampler{Temperature: temperature, TopP: topP, state: seed}
}

func (s *Sampler) randomU32() uint32 {
	s.state ^= s.state >> 12
	s.state ^= s.state << 25
	s.state ^= s.state >> 27
	return uint32((s.state * 0x2545F4914F6CDD1D) >> 32)
}

func (s *Sampler) randomF32() float32 { return float32(s.randomU32()>>8) / 16777216.0 }

// Argmax returns the index of the largest value (the first on ties).
func Argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// Softmax normalizes x in place.
func Softmax(x []float32) {
	maxv := x[0]
	for _, v := range x {
		if v > maxv {
			maxv = v
		}
	}
	var sum float32
	for i, v := range x {
		e := float32(math.Exp(float64(v - maxv)))
		x[i] = e
		sum += e
	}
	for i := range x {
		x[i] /= sum
	}
}

// Sample picks a token; logits are not modified.
func (s *Sampler) Sample(logits []float32) int {
	if s.Temperature == 0 {
		return Argmax(logits)
	}
	if cap(s.probs) < len(logits) {
		s.probs = make([]float32, len(logits))
		s.idx = make([]probIndex, len(logits))
	}
	p := s.probs[:len(logits)]
	for i, v := range logits {
		p[i] = v / s.Temperature
	}
	Softmax(p)
	coin := s.randomF32()
	if s.TopP <= 0 || s.TopP >= 1 {
		var cdf float32
		for i, v := range p {
			cdf += v
			if coin < cdf {
				return i
			}
		}
		return len(p) - 1
	}
	// Nucleus sampling: candidates ≥ (1−p)/(n−1), sorted by probability.
	n := len(p)
	cutoff := (1 - s.TopP) / float32(n-1)
	idx := s.idx[:0]
	for i, v := range p {
		if v >= cutoff {
			idx = append(idx, probIndex{v, i})
		}
	}
	slices.SortFunc(idx, func(a, b probIndex) int {
		if a.p != b.p {
			return cmp.Compare(b.p, a.p)
		}
		return cmp.Compare(a.i, b.i)
	})
	var cum float32
	last := len(idx) - 1
	for i := range idx {
		cum += idx[i].p
		if cum > s.TopP {
			last = i
			break
		}
	}
	r := coin * cum
	var cdf float32
	for i := 0; i <= last; i++ {
		cdf += idx[i].p
		if r < cdf {
			return idx[i].i
		}
	}
	return idx[last].i
}
