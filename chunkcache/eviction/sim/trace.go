package sim

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Trace is a sequence of requests for chunk ids with per-id sizes and costs.
type Trace struct {
	Name        string
	Description string
	Requests    []uint32
	// Sizes and Costs are indexed by chunk id; nil means 1 for every id (a unit-size
	// trace, where hit ratio, byte hit ratio and cost saved coincide).
	Sizes []int64
	Costs []float64
	// ReqSizes and ReqCosts, when not nil, give every request its own size or cost
	// (real traces whose objects change size); Sizes and Costs then hold each chunk's
	// first value, which is what the working set counts.
	ReqSizes []int64
	ReqCosts []float64
	// Params records the generator parameters (for reports).
	Params map[string]any
	// Phases, for traces drawn from known popularity distributions, give from which
	// request on which ids are the most popular (in decreasing probability). StaticOracle
	// uses them.
	Phases []Phase
	// IRM marks traces of independent requests from one fixed popularity distribution
	// (the independent reference model), on which StaticOracle is the best any online
	// policy can expect.
	IRM bool
}

// Phase is a stretch of a trace with a fixed popularity ranking.
type Phase struct {
	Start  int
	Ranked []uint32
}

// UnitSize reports whether every chunk has size 1 and cost 1.
func (t *Trace) UnitSize() bool { return t.Sizes == nil && t.Costs == nil }

// Size returns chunk id's size in bytes.
func (t *Trace) Size(id uint32) int64 {
	if t.Sizes == nil {
		return 1
	}
	return t.Sizes[id]
}

// Cost returns chunk id's recompute cost.
func (t *Trace) Cost(id uint32) float64 {
	if t.Costs == nil {
		return 1
	}
	return t.Costs[id]
}

// ReqSize returns the size of request i (for chunk id id = Requests[i]).
func (t *Trace) ReqSize(i int, id uint32) int64 {
	if t.ReqSizes != nil {
		return t.ReqSizes[i]
	}
	return t.Size(id)
}

// ReqCost returns the recompute cost of request i.
func (t *Trace) ReqCost(i int, id uint32) float64 {
	if t.ReqCosts != nil {
		return t.ReqCosts[i]
	}
	return t.Cost(id)
}

// WorkingSet returns the number of distinct chunks requested and their total size.
func (t *Trace) WorkingSet() (keys int, bytes int64) {
	maxID := uint32(0)
	for _, id := range t.Requests {
		maxID = max(maxID, id)
	}
	seen := make([]bool, int(maxID)+1)
	for _, id := range t.Requests {
		if !seen[id] {
			seen[id] = true
			keys++
			bytes += t.Size(id)
		}
	}
	return keys, bytes
}

// zipf samples ranks 0..n-1 with P(r) ∝ 1/(r+1)^alpha by inverse CDF (any alpha > 0,
// unlike math/rand's Zipf which needs alpha > 1).
type zipf struct{ cdf []float64 }

func newZipf(alpha float64, n int) *zipf {
	cdf := make([]float64, n)
	sum := 0.0
	for r := 0; r < n; r++ {
		sum += math.Pow(float64(r+1), -alpha)
		cdf[r] = sum
	}
	for r := range cdf {
		cdf[r] /= sum
	}
	return &zipf{cdf: cdf}
}

func (z *zipf) sample(rng *rand.Rand) int {
	u := rng.Float64()
	r, _ := slices.BinarySearch(z.cdf, u)
	return min(r, len(z.cdf)-1)
}

// perm returns a random mapping rank → chunk id over [base, base+n), so that popular
// ids are scattered rather than 0, 1, 2, ...
func perm(rng *rand.Rand, n int, base uint32) []uint32 {
	p := make([]uint32, n)
	for i := range p {
		p[i] = base + uint32(i)
	}
	rng.Shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

func newRNG(seed uint64, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream))
}

// Zipf returns n independent requests over universe chunks with Zipf(alpha) popularity.
func Zipf(name string, alpha float64, universe, n int, seed uint64) *Trace {
	rng := newRNG(seed, 1)
	z := newZipf(alpha, universe)
	ids := perm(rng, universe, 0)
	req := make([]uint32, n)
	for i := range req {
		req[i] = ids[z.sample(rng)]
	}
	return &Trace{
		Name:        name,
		Description: "independent Zipf requests",
		Requests:    req,
		Params:      map[string]any{"alpha": alpha, "universe": universe, "requests": n},
		Phases:      []Phase{{0, ids}},
		IRM:         true,
	}
}

// ScanPolluted returns Zipf(alpha) requests over universe chunks interleaved with
// sequential scans over fresh chunk ids that are never requested again (a batch job
// reading a corpus once): scans start at random and make up about scanFrac of the
// requests, each scanMin..scanMax chunks long.
func ScanPolluted(name string, alpha float64, universe, n int, scanFrac float64, scanMin, scanMax int, seed uint64) *Trace {
	rng := newRNG(seed, 2)
	z := newZipf(alpha, universe)
	ids := perm(rng, universe, 0)
	meanScan := float64(scanMin+scanMax) / 2
	// Scans start with probability p per Zipf request so that scans ≈ scanFrac of all.
	p := scanFrac / ((1 - scanFrac) * meanScan)
	req := make([]uint32, 0, n)
	next := uint32(universe)
	scanned := 0
	for len(req) < n {
		if rng.Float64() < p {
			l := scanMin + rng.IntN(scanMax-scanMin+1)
			for j := 0; j < l && len(req) < n; j++ {
				req = append(req, next)
				next++
				scanned++
			}
			continue
		}
		req = append(req, ids[z.sample(rng)])
	}
	return &Trace{
		Name:        name,
		Description: "Zipf requests mixed with one-off sequential scans",
		Requests:    req,
		Params: map[string]any{"alpha": alpha, "universe": universe, "requests": n,
			"scan_fraction": scanFrac, "scan_len_min": scanMin, "scan_len_max": scanMax,
			"scanned_requests": scanned},
		Phases: []Phase{{0, ids}},
	}
}

// Shifting returns Zipf(alpha) requests whose popular set is replaced halfway: the
// second half draws from a fresh set of universe chunk ids (new documents replace the
// old ones in the retrieval results).
func Shifting(name string, alpha float64, universe, n int, seed uint64) *Trace {
	rng := newRNG(seed, 3)
	z := newZipf(alpha, universe)
	first := perm(rng, universe, 0)
	second := perm(rng, universe, uint32(universe))
	req := make([]uint32, n)
	for i := range req {
		ids := first
		if i >= n/2 {
			ids = second
		}
		req[i] = ids[z.sample(rng)]
	}
	return &Trace{
		Name:        name,
		Description: "Zipf requests whose popular set is replaced halfway",
		Requests:    req,
		Params:      map[string]any{"alpha": alpha, "universe": universe, "requests": n, "shift_at": n / 2},
		Phases:      []Phase{{0, first}, {n / 2, second}},
	}
}

// Model describes the KV footprint and prefill cost per token of one model.
type Model struct {
	Name          string
	KVBytesPerTok int64   // 2 (K,V) · layers · KV heads · head dim · dtype bytes
	FLOPsPerTok   float64 // ≈ 2 · parameters (the dense part of prefill)
	Layers        int
	DModel        int
	Share         float64 // fraction of chunks belonging to this model
}

// PrefillFLOPs is the cost of recomputing a chunk of tok tokens: the dense part plus
// causal attention within the chunk (2 · layers · d_model · tok²).
func (m Model) PrefillFLOPs(tok int) float64 {
	t := float64(tok)
	return t*m.FLOPsPerTok + 2*float64(m.Layers)*float64(m.DModel)*t*t
}

// DefaultModels are two models sharing one cache: a Llama-3-8B-like model (32 layers,
// 8 KV heads × 128, f16 KV) and a Llama-3-70B-like one (80 layers, 8 KV heads × 128,
// f16 KV), whose chunks are worth ~3.4× more prefill FLOPs per cached byte.
var DefaultModels = []Model{
	{Name: "8b", KVBytesPerTok: 2 * 32 * 8 * 128 * 2, FLOPsPerTok: 2 * 8.0e9, Layers: 32, DModel: 4096, Share: 0.7},
	{Name: "70b", KVBytesPerTok: 2 * 80 * 8 * 128 * 2, FLOPsPerTok: 2 * 70.6e9, Layers: 80, DModel: 8192, Share: 0.3},
}

// VariableSize returns Zipf(alpha) requests over universe chunks whose token counts are
// log-normal (median medianTokens, σ 0.6, clamped to 32..4096) and whose model is drawn
// from models by share: size = tokens · KV bytes per token, cost = prefill FLOPs
// (tokens · FLOPs per token plus causal attention within the chunk).
func VariableSize(name string, alpha float64, universe, n int, medianTokens int, models []Model, seed uint64) *Trace {
	rng := newRNG(seed, 4)
	z := newZipf(alpha, universe)
	ids := perm(rng, universe, 0)
	sizes := make([]int64, universe)
	costs := make([]float64, universe)
	for id := 0; id < universe; id++ {
		tok := int(math.Round(float64(medianTokens) * math.Exp(0.6*rng.NormFloat64())))
		tok = min(max(tok, 32), 4096)
		u := rng.Float64()
		m := models[len(models)-1]
		for _, c := range models {
			if u < c.Share {
				m = c
				break
			}
			u -= c.Share
		}
		sizes[id] = int64(tok) * m.KVBytesPerTok
		costs[id] = m.PrefillFLOPs(tok)
	}
	req := make([]uint32, n)
	for i := range req {
		req[i] = ids[z.sample(rng)]
	}
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	return &Trace{
		Name:        name,
		Description: "Zipf requests over chunks of varying token counts from two models (size ∝ tokens·KV bytes/token, cost = prefill FLOPs)",
		Requests:    req,
		Sizes:       sizes,
		Costs:       costs,
		Params: map[string]any{"alpha": alpha, "universe": universe, "requests": n,
			"median_tokens": medianTokens, "token_sigma": 0.6, "models": names},
	}
}
