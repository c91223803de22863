package ann

import (
	"math"
	"math/rand/v2"
	"sort"
)

// The product quantizer is made of M 4-bit slots (16 centroids each). A slot encodes
// either a group of g ≥ 1 dimensions of the residual, or one more stage of a single
// dimension already encoded by the previous slot (residual quantization: the stage
// quantizes what the earlier stages left). Which dimensions get how many bits follows
// reverse water-filling (Gersho & Gray, "Vector Quantization and Signal Compression",
// §8.3) on the expected inner-product error: dimension d contributes
// E[q_d²]·E[r_d²]·D(bits), so with PCA-ordered data, whose variance decays across
// dimensions and whose queries do too, the leading dimensions get 8-12 bits and the
// trailing ones share a slot. Equal 4-bit allocation wastes most of the code there.
// Scoring stays additive (one lookup table per slot), so fast-scan applies unchanged.

// pqSlot is one 4-bit sub-quantizer.
type pqSlot struct {
	dims []int32   // residual dimensions it encodes (1 for stages)
	cb   []float32 // 16 × len(dims) centroids
}

const maxGroup = 8

// relative distortion of a Gaussian source quantized with 16 centroids over g dimensions
// (g ≥ 1), and of k ≥ 1 residual stages on one dimension.
var groupDistortion = [maxGroup + 1]float64{1, 0.0095, 0.1175, 0.21, 0.30, 0.37, 0.43, 0.48, 0.52}

func stageDistortion(k int) float64 { return 0.0095 * math.Pow(0.02, float64(k-1)) }

const maxStages = 8

// allocateSlots splits m slots over dimensions with importances imp (expected error
// weight per unit of relative distortion), minimizing Σ imp·distortion by dynamic
// programming over the dimensions sorted by importance (groups are contiguous in that
// order). It returns the slots' dimension lists in encoding order. m ≤ maxStages·len(imp).
// uniformAlloc (tests only) gives every dimension one slot when m == len(imp).
var uniformAlloc bool

func allocateSlots(imp []float64, m int) [][]int32 {
	n := len(imp)
	if uniformAlloc && m == n {
		out := make([][]int32, n)
		for i := range out {
			out[i] = []int32{int32(i)}
		}
		return out
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return imp[order[a]] > imp[order[b]] })
	suffix := make([]float64, n+1)
	for i := n - 1; i >= 0; i-- {
		suffix[i] = suffix[i+1] + imp[order[i]]
	}
	inf := math.Inf(1)
	// cost[i][s]: best cost for dims order[i:] with exactly s slots; choice records the move.
	type move struct{ group, stages int } // group dims in one slot, or stages on one dim; 0,0: leave the rest
	cost := make([][]float64, n+1)
	choice := make([][]move, n+1)
	for i := range cost {
		cost[i] = make([]float64, m+1)
		choice[i] = make([]move, m+1)
		for s := range cost[i] {
			cost[i][s] = inf
		}
	}
	cost[n][0] = 0
	for i := n - 1; i >= 0; i-- {
		cost[i][0] = suffix[i] // no slot left: the rest is not encoded
		for s := 1; s <= m; s++ {
			best, bm := inf, move{}
			for k := 1; k <= min(maxStages, s); k++ {
				if c := imp[order[i]]*stageDistortion(k) + cost[i+1][s-k]; c < best {
					best, bm = c, move{1, k}
				}
			}
			var sum float64
			for g := 1; g <= maxGroup && i+g <= n; g++ {
				sum += imp[order[i+g-1]]
				if g == 1 {
					continue // a one-dimension group is a one-stage move
				}
				if c := sum*groupDistortion[g] + cost[i+g][s-1]; c < best {
					best, bm = c, move{g, 1}
				}
			}
			cost[i][s], choice[i][s] = best, bm
		}
	}
	var out [][]int32
	for i, s := 0, m; i < n && s > 0; {
		mv := choice[i][s]
		if mv.group == 1 {
			for k := 0; k < mv.stages; k++ {
				out = append(out, []int32{int32(order[i])})
			}
			i++
			s -= mv.stages
			continue
		}
		g := make([]int32, mv.group)
		for j := range g {
			g[j] = int32(order[i+j])
		}
		sort.Slice(g, func(a, b int) bool { return g[a] < g[b] })
		out = append(out, g)
		i += mv.group
		s--
	}
	return out
}

// trainSlots trains one codebook per slot, in order, on the residuals res (n rows of
// dim), subtracting each slot's reconstruction so that later stages see what is left.
// res is modified.
func trainSlots(res []float32, n, dim int, groups [][]int32, rng *rand.Rand) []pqSlot {
	slots := make([]pqSlot, len(groups))
	for s, dims := range groups {
		nd := len(dims)
		sub := make([]float32, n*nd)
		for i := 0; i < n; i++ {
			for j, d := range dims {
				sub[i*nd+j] = res[i*dim+int(d)]
			}
		}
		cb := kmeansSmall(sub, n, nd, pqCentroids, pqIters, rng)
		slots[s] = pqSlot{dims: dims, cb: cb}
		for i := 0; i < n; i++ {
			c := nearest(sub[i*nd:(i+1)*nd], cb, pqCentroids, nd)
			for j, d := range dims {
				res[i*dim+int(d)] -= cb[c*nd+j]
			}
		}
	}
	return slots
}

// encodeSlots quantizes residual r (modified) into codes[s] for each slot s.
func encodeSlots(slots []pqSlot, r []float32, codes []byte) {
	var tmp [maxGroup]float32
	for s, sl := range slots {
		nd := len(sl.dims)
		for j, d := range sl.dims {
			tmp[j] = r[d]
		}
		c := nearest(tmp[:nd], sl.cb, pqCentroids, nd)
		for j, d := range sl.dims {
			r[d] -= sl.cb[c*nd+j]
		}
		codes[s] = byte(c)
	}
}

// slotTables fills lut[16s+c] with q · centroid c of slot s.
func slotTables(slots []pqSlot, q []float32, lut []float32) {
	for s, sl := range slots {
		nd := len(sl.dims)
		t := lut[s*pqCentroids : (s+1)*pqCentroids]
		if nd == 1 {
			x := q[sl.dims[0]]
			for c := range t {
				t[c] = x * sl.cb[c]
			}
			continue
		}
		for c := range t {
			var v float32
			for j, d := range sl.dims {
				v += q[d] * sl.cb[c*nd+j]
			}
			t[c] = v
		}
	}
}
