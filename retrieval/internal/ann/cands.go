package ann

// cands collects the best r (score, id) pairs of a stream without a heap: entries
// above a threshold are appended, and when the buffer holds 4r of them a quickselect
// keeps the best r and raises the threshold to the worst kept score. Amortized O(1) per
// entry, which matters when thousands of codes pass the scan filter per query.
type cands struct {
	ids    []int32
	scores []float32
	r      int
	thr    float32 // entries must score strictly above thr (-Inf until the first compaction)
}

func (c *cands) reset(r int) {
	c.r = r
	c.thr = negInf
	if n := 4 * r; cap(c.ids) < n {
		c.ids = make([]int32, 0, n)
		c.scores = make([]float32, 0, n)
	}
	c.ids = c.ids[:0]
	c.scores = c.scores[:0]
}

// add offers (score, id); callers may pre-filter with score > c.thr.
func (c *cands) add(score float32, id int32) {
	if !(score > c.thr) {
		return
	}
	c.ids = append(c.ids, id)
	c.scores = append(c.scores, score)
	if len(c.ids) >= 4*c.r {
		c.compact()
	}
}

// compact keeps the best r entries (in no particular order) and raises thr.
func (c *cands) compact() {
	if len(c.ids) <= c.r {
		return
	}
	selectTop(c.ids, c.scores, c.r)
	c.ids, c.scores = c.ids[:c.r], c.scores[:c.r]
	worst := c.scores[0]
	for _, s := range c.scores[1:] {
		worst = min(worst, s)
	}
	c.thr = worst
}

// better orders by score descending, then id ascending.
func better(s1 float32, id1 int32, s2 float32, id2 int32) bool {
	return s1 > s2 || (s1 == s2 && id1 < id2)
}

// selectTop reorders (ids, scores) so that the best k come first (unordered).
func selectTop(ids []int32, scores []float32, k int) {
	lo, hi := 0, len(ids)-1
	for lo < hi {
		// median of three as pivot
		mid := int(uint(lo+hi) >> 1)
		a, b, c := lo, mid, hi
		if better(scores[b], ids[b], scores[a], ids[a]) {
			a, b = b, a
		}
		if better(scores[c], ids[c], scores[b], ids[b]) {
			b, c = c, b
			if better(scores[b], ids[b], scores[a], ids[a]) {
				a, b = b, a
			}
		}
		ps, pid := scores[b], ids[b]
		i, j := lo, hi
		for i <= j {
			for better(scores[i], ids[i], ps, pid) {
				i++
			}
			for better(ps, pid, scores[j], ids[j]) {
				j--
			}
			if i <= j {
				ids[i], ids[j] = ids[j], ids[i]
				scores[i], scores[j] = scores[j], scores[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}

// sortBest sorts (ids, scores) best first (insertion sort: used on k ≤ a few hundred).
func sortBest(ids []int32, scores []float32) {
	for i := 1; i < len(ids); i++ {
		id, s := ids[i], scores[i]
		j := i
		for j > 0 && better(s, id, scores[j-1], ids[j-1]) {
			ids[j], scores[j] = ids[j-1], scores[j-1]
			j--
		}
		ids[j], scores[j] = id, s
	}
}
