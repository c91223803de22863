package lexical

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// Hit is a document of a shard and its BM25 score.
type Hit struct {
	Ord   uint32
	Score float64
}

// worse orders hits: lower score is worse; on equal scores the larger ordinal.
func worse(a, b Hit) bool {
	if a.Score != b.Score {
		return a.Score < b.Score
	}
	return a.Ord > b.Ord
}

// boundSlack inflates score upper bounds so that floating-point rounding (bounds are
// summed in another order than scores) can never prune a document that belongs in the
// top k: pruning stays exact.
const boundSlack = 1 + 1e-9

// TopK returns the n best live documents (dead may be nil) by BM25, best first (ties:
// smaller ordinal first), exactly the top of Accumulate's ranking, and whether they are
// all the live documents that match (fewer than n). It is MaxScore (Turtle and Flood,
// "Query evaluation: strategies and optimizations", 1995) with block-max bounds (Ding
// and Suel, SIGIR 2011): terms are ordered by their score upper bound; once the k-th
// best score θ exceeds the bounds of the weakest terms together, documents that contain
// only those are never visited, and a candidate is dropped as soon as its partial score
// plus the block bounds of the terms not yet looked at cannot beat θ. Documents are
// visited in ordinal order, so a later document that ties θ is worse than every kept
// one and pruning with ≤ θ is exact.
func (r *Resolved) TopK(ctx context.Context, p Params, n int, dead func(ord uint32) bool) ([]Hit, bool, error) {
	return r.topK(ctx, p, n, dead, nil, nil)
}

// TopKShared is TopK for one shard of a query whose per-shard lists are merged into a
// global top n: the shards' searches share f, the n best scores any of them has found
// so far. A document scoring below f's n-th best cannot be in the merged top n (n
// documents of some shards beat it), so each shard prunes with the better of its own
// threshold and f's: on many shards that is the threshold of one large index, not of a
// shard n times smaller, and most of the work of the weaker shards is skipped. The
// returned list holds every document of the shard that can be in the merged top n
// (documents tying f's n-th best are kept: ties are decided by the merge), so the
// merge is unchanged; exhausted is false once f's threshold has pruned.
func (r *Resolved) TopKShared(ctx context.Context, p Params, n int, dead func(ord uint32) bool, f *Floor) ([]Hit, bool, error) {
	return r.topK(ctx, p, n, dead, f, nil)
}

// Floor is the n best scores found so far by the shards of one query (TopKShared).
// Safe for concurrent use; one per query and depth.
type Floor struct {
	n    int
	mu   sync.Mutex
	h    []Hit         // min-heap (up, down) of at most n scores, each of a distinct document
	bits atomic.Uint64 // the n-th best score once h is full, else −Inf
}

// NewFloor returns an empty Floor for a merged top n.
func NewFloor(n int) *Floor {
	f := &Floor{n: n}
	f.bits.Store(math.Float64bits(math.Inf(-1)))
	return f
}

// Load returns the n-th best score offered so far (−Inf while fewer than n).
func (f *Floor) Load() float64 { return math.Float64frombits(f.bits.Load()) }

// offer records the score of one document (each document is offered at most once).
func (f *Floor) offer(score float64) {
	if f.n <= 0 || score <= f.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := Hit{Score: score} // the heap of topK, on scores alone
	switch {
	case len(f.h) < f.n:
		f.h = append(f.h, c)
		up(f.h, len(f.h)-1)
	case worse(f.h[0], c):
		f.h[0] = c
		down(f.h, 0)
	default:
		return
	}
	if len(f.h) == f.n {
		f.bits.Store(math.Float64bits(f.h[0].Score))
	}
}

// topKStats count a topK's work: documents visited (scored at least in part) and
// posting blocks decoded.
type topKStats struct{ visits, blocks int }

// topK is TopK (TopKShared with f); st, when set, receives the work done.
func (r *Resolved) topK(ctx context.Context, p Params, n int, dead func(ord uint32) bool, f *Floor, st *topKStats) ([]Hit, bool, error) {
	if n <= 0 {
		return nil, false, nil
	}
	avg := p.avg()
	type term struct {
		q  int // index in the query
		w  float64
		ub float64
		c  cursor
	}
	var ts []*term
	for i, ti := range r.infos {
		if !r.found[i] || p.Weights[i] == 0 {
			continue
		}
		t := &term{q: i, w: p.Weights[i]}
		t.ub = termScore(t.w, float64(ti.maxTF), float64(ti.minLen), avg) * boundSlack
		t.c.init(ti, r.s.docs)
		if t.c.err != nil {
			return nil, false, t.c.err
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return nil, true, nil
	}
	// Ascending upper bound; prefix[j] = sum of the bounds of ts[:j].
	slices.SortStableFunc(ts, func(a, b *term) int {
		switch {
		case a.ub < b.ub:
			return -1
		case a.ub > b.ub:
			return 1
		}
		return 0
	})
	prefix := make([]float64, len(ts)+1)
	for j, t := range ts {
		prefix[j+1] = prefix[j] + t.ub
	}
	// Contributions of the current document, by query index.
	contrib := make([]float64, len(r.infos))
	has := make([]bool, len(r.infos))
	qorder := make([]int, 0, len(ts)) // query indexes of the active terms, ascending
	for _, t := range ts {
		qorder = append(qorder, t.q)
	}
	slices.Sort(qorder)

	h := make([]Hit, 0, min(n, 1024))
	// θ prunes: a document whose score bound is ≤ θ is dropped. It is the k-th best
	// score of this shard once n are kept (a later document tying it is worse: exact),
	// or just below f's n-th best when that is higher (a document tying f's n-th best
	// may win the merge on its passage id: only those strictly below it are dropped).
	theta := math.Inf(-1)
	local := math.Inf(-1)
	floorUsed := false
	raise := func() {
		theta = local
		if f != nil {
			if g := math.Nextafter(f.Load(), math.Inf(-1)); g > theta {
				theta, floorUsed = g, true
			}
		}
	}
	ess := 0 // ts[ess:] are essential: a document beating θ contains one of them
	visits := 0
	for {
		if f != nil && visits%64 == 0 {
			raise()
			for ess < len(ts) && prefix[ess+1] <= theta {
				ess++
			}
		}
		d := uint32(noMore)
		for _, t := range ts[ess:] {
			d = min(d, t.c.doc)
		}
		if d == noMore {
			break
		}
		if visits++; visits%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, false, err
			}
		}
		if dead != nil && dead(d) {
			for _, t := range ts[ess:] {
				if t.c.doc == d {
					t.c.next()
				}
			}
			continue
		}
		dl := float64(r.s.length(d))
		partial := 0.0
		for _, t := range ts[ess:] {
			if t.c.doc == d {
				v := termScore(t.w, float64(t.c.tf), dl, avg)
				contrib[t.q], has[t.q] = v, true
				partial += v
				t.c.next()
			}
		}
		pruning := theta > math.Inf(-1)
		ok := true
		for j := ess - 1; j >= 0 && pruning; j-- {
			if partial*boundSlack+prefix[j+1] <= theta {
				ok = false
				break
			}
			t := ts[j]
			maxTF, minLen, any := t.c.blockBound(d)
			if !any {
				continue
			}
			if partial*boundSlack+prefix[j]+termScore(t.w, float64(maxTF), float64(minLen), avg)*boundSlack <= theta {
				ok = false // not even this term's block bound lifts d above θ
				break
			}
			t.c.advance(d)
			if t.c.doc == d {
				v := termScore(t.w, float64(t.c.tf), dl, avg)
				contrib[t.q], has[t.q] = v, true
				partial += v
			}
		}
		if ok && pruning && partial*boundSlack <= theta {
			ok = false
		}
		if ok {
			score := 0.0 // in query order: the float64 Accumulate computes
			for _, qi := range qorder {
				if has[qi] {
					score += contrib[qi]
				}
			}
			c := Hit{Ord: d, Score: score}
			kept := true
			switch {
			case len(h) < n:
				h = append(h, c)
				up(h, len(h)-1)
			case worse(h[0], c):
				h[0] = c
				down(h, 0)
			default:
				kept = false
			}
			if kept && f != nil {
				f.offer(score)
			}
			if len(h) == n {
				local = h[0].Score
			}
			if kept {
				raise()
				for ess < len(ts) && prefix[ess+1] <= theta {
					ess++
				}
			}
		}
		for _, qi := range qorder {
			has[qi] = false
		}
	}
	for _, t := range ts {
		if t.c.err != nil {
			return nil, false, t.c.err
		}
	}
	if st != nil {
		st.visits += visits
		for _, t := range ts {
			st.blocks += t.c.loads
		}
	}
	exhausted := len(h) < n && !floorUsed
	slices.SortFunc(h, func(a, b Hit) int {
		if worse(b, a) {
			return -1
		}
		if worse(a, b) {
			return 1
		}
		return 0
	})
	return h, exhausted, nil
}

// up and down maintain a min-heap on worse (its root is the worst kept hit).
func up(h []Hit, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !worse(h[i], h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func down(h []Hit, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && worse(h[r], h[l]) {
			m = r
		}
		if !worse(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
