package blend

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/ragkv/ragkv/model"
)

// cacheBlend runs CacheBlend: layers below the check layer in full; at the check layer
// fresh K/V for every token, the deviation from the cached K/V, and the top-budget
// tokens selected (the query and uncached segments always); from then on only the
// selected tokens are recomputed, their fresh K/V written over the cached rows, each
// attending to every row at a position ≤ its own. With gradual filtering the set
// starts larger and narrows by fresh deviation among the survivors.
func (r *run) cacheBlend() error {
	c := &r.b.m.Config
	o := &r.b.opts
	chk := o.CheckLayer
	L := r.L
	kd := c.KVDim()
	cand := r.candidates()
	forced := r.forced()
	B := L.budget(r.req)
	if err := r.startLoader(r.cached(), chk); err != nil {
		return err
	}
	defer r.ld.stop()
	all := rangeRows(0, L.n)
	x := make([]float32, L.n*c.Dim)
	if err := r.b.m.Embed(x, L.allTokens()); err != nil {
		return err
	}
	for l := 0; l < chk; l++ {
		if err := r.step(l, x, all, nil); err != nil {
			return err
		}
	}
	if err := r.wait(chk); err != nil {
		return err
	}
	fk := make([]float32, L.n*kd)
	fv := make([]float32, L.n*kd)
	if err := r.step(chk, x, all, &model.StepOptions{KVOnly: true, SkipWrite: true, FreshK: fk, FreshV: fv}); err != nil {
		return err
	}
	t := time.Now()
	dev := r.deviation(chk, cand, cand, fk, fv) // the fresh rows are all rows: cand indexes them
	if o.scoreHook != nil {
		dev = o.scoreHook(cand)
	}
	if !o.StaleCheckLayer {
		copy(r.kv.K[chk][:L.n*kd], fk)
		copy(r.kv.V[chk][:L.n*kd], fv)
	}
	K := c.Layers - chk
	sizes := schedule(B, len(cand), K, o.Gradual, o.GradualLayers)
	S := mergeRows(topRows(cand, dev, sizes[0]), forced)
	xs := gather(x, S, c.Dim)
	r.finishCounts(S)
	r.stats.Select += time.Since(t)
	isForced := make(map[int]bool, len(forced))
	for _, row := range forced {
		isForced[row] = true
	}
	for l := chk; l < c.Layers; l++ {
		if err := r.wait(l); err != nil {
			return err
		}
		if want := sizes[l-chk]; l > chk && want < len(S)-len(forced) {
			// Gradual filtering: fresh K/V of the current set (better than the cached
			// rows for every one of them), then keep the most deviating.
			if err := r.step(l, xs, S, &model.StepOptions{KVOnly: true, SkipWrite: true, FreshK: fk, FreshV: fv}); err != nil {
				return err
			}
			t := time.Now()
			var cs, idx []int
			for i, row := range S {
				if !isForced[row] {
					cs, idx = append(cs, row), append(idx, i)
				}
			}
			keep := topRows(cs, r.deviation(l, cs, idx, fk, fv), want)
			for i, row := range S {
				copy(r.kv.K[l][row*kd:(row+1)*kd], fk[i*kd:(i+1)*kd])
				copy(r.kv.V[l][row*kd:(row+1)*kd], fv[i*kd:(i+1)*kd])
			}
			S2 := mergeRows(keep, forced)
			xs2 := make([]float32, len(S2)*c.Dim)
			j := 0
			for i, row := range S {
				if j < len(S2) && S2[j] == row {
					copy(xs2[j*c.Dim:(j+1)*c.Dim], xs[i*c.Dim:(i+1)*c.Dim])
					j++
				}
			}
			S, xs = S2, xs2
			r.stats.Select += time.Since(t)
		}
		r.count(S, 1/float64(K))
		if err := r.step(l, xs, S, nil); err != nil {
			return err
		}
	}
	return r.finish(xs, S)
}

// deviation scores each row by how far its fresh K/V (row fi[i] of fk/fv) is from the
// cached row at layer l: squared L2 distance of K ("k"), of V ("v"), or both, each
// divided by its mean over the rows ("kv"); "random" ignores them.
func (r *run) deviation(l int, rows, fi []int, fk, fv []float32) []float64 {
	kd := r.kv.KVDim
	dk := make([]float64, len(rows))
	dv := make([]float64, len(rows))
	var sk, sv float64
	for i, row := range rows {
		f := fi[i]
		ck, cv := r.kv.K[l][row*kd:(row+1)*kd], r.kv.V[l][row*kd:(row+1)*kd]
		nk, nv := fk[f*kd:(f+1)*kd], fv[f*kd:(f+1)*kd]
		var a, b float64
		for j := range ck {
			d := float64(nk[j] - ck[j])
			a += d * d
			e := float64(nv[j] - cv[j])
			b += e * e
		}
		dk[i], dv[i] = a, b
		sk += a
		sv += b
	}
	switch r.b.opts.Deviation {
	case "k":
		return dk
	case "v":
		return dv
	case "random":
		// A fixed pseudo-random order (splitmix64 of the position and layer): the
		// baseline that shows what the deviation is worth.
		for i, row := range rows {
			z := uint64(row)*0x9E3779B97F4A7C15 + uint64(l+1)*0xBF58476D1CE4E5B9
			z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
			z = (z ^ (z >> 27)) * 0x94D049BB133111EB
			dk[i] = float64((z^(z>>31))>>11) / (1 << 53)
		}
		return dk
	}
	mk, mv := sk/float64(max(len(rows), 1)), sv/float64(max(len(rows), 1))
	out := make([]float64, len(rows))
	for i := range out {
		if mk > 0 {
			out[i] += dk[i] / mk
		}
		if mv > 0 {
			out[i] += dv[i] / mv
		}
	}
	return out
}

// topRows returns the k rows with the highest scores (ties: the earlier row), sorted.
func topRows(rows []int, score []float64, k int) []int {
	k = max(0, min(k, len(rows)))
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return score[idx[a]] > score[idx[b]] })
	out := make([]int, k)
	for i := range out {
		out[i] = rows[idx[i]]
	}
	slices.Sort(out)
	return out
}

func gather(x []float32, rows []int, d int) []float32 {
	out := make([]float32, len(rows)*d)
	for i, row := range rows {
		copy(out[i*d:(i+1)*d], x[row*d:(row+1)*d])
	}
	return out
}

// schedule returns the number of candidate tokens recomputed at each of K layers from
// the check layer on (C candidates): the budget B everywhere; with gradual filtering
// (g > 1) a set of g×B' tokens at the check layer narrowing linearly to B' over `over`
// layers (default 1) and B' after, with B' chosen so that the mean over the K layers is
// B — the same compute as plain selection, spent earlier.
func schedule(B, C, K int, g float64, over int) []int {
	sizes := make([]int, K)
	B = min(B, C)
	if g <= 1 || K < 2 || B >= C {
		for i := range sizes {
			sizes[i] = B
		}
		return sizes
	}
	over = min(max(over, 1), K-1)
	// Σ sizes = B'·((over+1)(g+1)/2 + K − over − 1) = K·B.
	bp := float64(B*K) / (float64(over+1)*(g+1)/2 + float64(K-over-1))
	for j := range sizes {
		f := min(1, float64(j)/float64(over))
		sizes[j] = min(C, int(math.Round(bp*(g-(g-1)*f))))
	}
	return sizes
}

// craftPlan is Cache-Craft's recompute plan, known before any layer is loaded: each
// non-exact cached segment gets an impact CCI×(1−β) — CCI the stored share of its
// attention paid to other chunks, β how much of the context its KV was computed in
// matches (in order) the segments now before it — and the budget is split over the
// segments in proportion to impact × tokens (water-filling, capped by each segment's
// size; exact segments get 0 unless budget is left over). In each segment the tokens
// with the highest stored outside-attention are recomputed.
func (r *run) craftPlan() []int {
	L := r.L
	o := &r.b.opts
	B := L.budget(r.req)
	nseg := len(L.segs)
	impact := make([]float64, nseg)
	beta := make([]float64, nseg)
	caps := make([]int, nseg)
	// Default CCI for segments without statistics: the mean of the others, else ½.
	defCCI, nc := 0.0, 0
	for _, s := range L.segs {
		if s.Meta != nil && s.Meta.Stats != nil {
			defCCI += s.Meta.Stats.CCI()
			nc++
		}
	}
	if nc > 0 {
		defCCI /= float64(nc)
	} else {
		defCCI = 0.5
	}
	for i, s := range L.segs {
		if s.Source == nil {
			continue
		}
		caps[i] = len(s.Tokens)
		if L.exact[i] {
			beta[i] = 1
			continue
		}
		var prev []Hash
		cci := defCCI
		if s.Meta != nil {
			prev = s.Meta.KVPrev
			if s.Meta.Stats != nil {
				cci = s.Meta.Stats.CCI()
			}
		}
		beta[i] = overlap(prev, L.hashes[:i])
		impact[i] = cci * (1 - beta[i])
		r.stats.Segments[i].Impact = impact[i]
	}
	var rows []int
	if o.CraftGlobal {
		var cand []int
		var score []float64
		for i, s := range L.segs {
			if s.Source == nil {
				continue
			}
			sc := tokenScores(s, o.CraftScore)
			for j := range s.Tokens {
				cand = append(cand, L.start[i]+j)
				score = append(score, sc[j]*(1-beta[i]))
			}
		}
		return topRows(cand, score, B)
	}
	w := make([]float64, nseg)
	for i := range w {
		w[i] = impact[i] * float64(caps[i])
	}
	alloc := allocate(B, w, caps)
	for i, s := range L.segs {
		if alloc[i] == 0 {
			continue
		}
		cand := rangeRows(L.start[i], L.start[i]+len(s.Tokens))
		rows = append(rows, topRows(cand, tokenScores(s, o.CraftScore), alloc[i])...)
	}
	slices.Sort(rows)
	return rows
}

// tokenScores are a segment's per-token recompute priorities: its stored
// outside-attention masses, or without statistics the earlier tokens first (they have
// the least context of their own).
func tokenScores(s Segment, mode string) []float64 {
	n := len(s.Tokens)
	sc := make([]float64, n)
	if s.Meta == nil || s.Meta.Stats == nil || s.Meta.Stats.Tokens() < n {
		for j := range sc {
			sc[j] = 1 / float64(1+j)
		}
		return sc
	}
	st := s.Meta.Stats
	for j := range sc {
		switch mode {
		case "first":
			l := min(1, len(st.Outside)-1)
			sc[j] = float64(st.Outside[l][j])
		case "max":
			for l := range st.Outside {
				sc[j] = math.Max(sc[j], float64(st.Outside[l][j]))
			}
		default:
			for l := range st.Outside {
				sc[j] += float64(st.Outside[l][j])
			}
		}
	}
	return sc
}

// overlap is β: the length of the longest common subsequence of the context a KV was
// computed in and the current one (so order matters) over the longer of the two; 1
// when both are empty.
func overlap(was, now []Hash) float64 {
	if len(was) == 0 && len(now) == 0 {
		return 1
	}
	prev := make([]int, len(now)+1)
	cur := make([]int, len(now)+1)
	for i := range was {
		for j := range now {
			if was[i] == now[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(cur[j], prev[j+1])
			}
		}
		prev, cur = cur, prev
	}
	return float64(prev[len(now)]) / float64(max(len(was), len(now)))
}

// allocate splits B tokens over segments in proportion to w (water-filling: a segment
// never gets more than its cap; what it cannot take goes to the others), rounds by
// largest remainder, and gives any budget left once every weighted segment is full to
// the zero-weight segments in order.
func allocate(B int, w []float64, caps []int) []int {
	n := len(w)
	out := make([]int, n)
	frac := make([]float64, n)
	active := make([]bool, n)
	rem := float64(B)
	for i := range w {
		active[i] = w[i] > 0 && caps[i] > 0
	}
	for {
		var sw float64
		for i := range w {
			if active[i] {
				sw += w[i]
			}
		}
		if sw == 0 || rem <= 0 {
			break
		}
		lambda := rem / sw
		saturated := false
		for i := range w {
			if active[i] && lambda*w[i] >= float64(caps[i]) {
				frac[i] = float64(caps[i])
				rem -= float64(caps[i])
				active[i] = false
				saturated = true
			}
		}
		if !saturated {
			for i := range w {
				if active[i] {
					frac[i] = lambda * w[i]
				}
			}
			rem = 0
			break
		}
	}
	total := 0
	for i := range out {
		out[i] = int(math.Floor(frac[i] + 1e-9))
		total += out[i]
	}
	// Largest remainders first.
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		return frac[idx[a]]-math.Floor(frac[idx[a]]) > frac[idx[b]]-math.Floor(frac[idx[b]])
	})
	for _, i := range idx {
		if total >= B {
			break
		}
		if w[i] > 0 && out[i] < caps[i] && frac[i] > float64(out[i]) {
			out[i]++
			total++
		}
	}
	for i := range out {
		if total >= B {
			break
		}
		add := min(caps[i]-out[i], B-total)
		out[i] += add
		total += add
	}
	return out
}
