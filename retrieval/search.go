package retrieval

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/internal/ann"
	"github.com/ragkv/ragkv/retrieval/internal/lexical"
)

// RRFK is the k of reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009).
const RRFK = 60

// SearchRequest is one query.
type SearchRequest struct {
	Collection string
	// Query is the query text (BM25 always; dense when the collection embeds text).
	Query string
	// Vector is the query embedding for dense scoring (required for client-vector
	// collections; otherwise optional and used instead of embedding Query).
	Vector []float32
	// K is how many passages to return, in [1, MaxK].
	K    int
	Mode Mode
	// Fusion and FusionWeight (the BM25 weight in [0, 1]) override the collection's
	// hybrid fusion; nil weight: the collection's fitted weight, else
	// DefaultFusionWeight.
	Fusion       Fusion
	FusionWeight *float64
	// Depth is how many candidates each side of a hybrid search contributes (default
	// max(K, 100)).
	Depth int
	// DenseIndex overrides the collection's choice of exact scan or ANN.
	DenseIndex DenseIndex
	// DocIDs keeps only passages of these documents; ExcludeDocIDs drops passages of
	// those. Both apply after the exact merge.
	DocIDs        []string
	ExcludeDocIDs []string
	// GroupByDoc keeps only the best passage of each document.
	GroupByDoc bool
	// NoText skips loading passage texts and titles (evaluation).
	NoText bool
	// NoRescore ranks dense search by the compressed codes alone (diagnostics: what the
	// rescoring with full vectors adds).
	NoRescore bool
}

// Hit is one retrieved passage.
type Hit struct {
	PassageID string  `json:"passage_id"`
	DocID     string  `json:"doc_id"`
	Title     string  `json:"title,omitempty"`
	Text      string  `json:"text,omitempty"`
	ChunkID   string  `json:"chunk_id"`
	Score     float64 `json:"score"`
	// BM25 and Dense are the passage's raw scores where they were computed (hybrid
	// computes both for every candidate).
	BM25  float64 `json:"bm25,omitempty"`
	Dense float64 `json:"dense,omitempty"`
}

// SearchResult is a ranked list of passages.
type SearchResult struct {
	Hits         []Hit   `json:"hits"`
	Mode         Mode    `json:"mode"`
	Fusion       Fusion  `json:"fusion,omitempty"`
	FusionWeight float64 `json:"fusion_weight,omitempty"`
	Generation   uint64  `json:"generation"`
	Shards       int     `json:"shards"`
}

// ChunkIDs returns the hits' chunk ids in rank order (what a Prefill takes).
func (r *SearchResult) ChunkIDs() []string {
	out := make([]string, len(r.Hits))
	for i, h := range r.Hits {
		out[i] = h.ChunkID
	}
	return out
}

// scored is a merged candidate with both raw scores where known.
type scored struct {
	cand
	pid          string
	bm25, dense  float64
	hasB, hasD   bool
	lexRank, dnR int // 1-based ranks in the lexical / dense lists (0: absent)
}

// Search runs one query: every shard scores its passages with collection-global
// statistics, the per-shard top lists are merged exactly (score, then passage id),
// then duplicates, filters and grouping apply and the list is cut to K. If filtering
// leaves fewer than K, the per-shard depth grows until K survive or the collection is
// exhausted, so the result equals filtering the full ranking.
func (s *Store) Search(ctx context.Context, req SearchRequest) (*SearchResult, error) {
	start := time.Now()
	if req.K < 1 || req.K > s.opts.MaxK {
		return nil, fmt.Errorf("%w: k = %d, must be in [1, %d]", ErrInvalidK, req.K, s.opts.MaxK)
	}
	mode, err := ParseMode(string(req.Mode))
	if err != nil {
		return nil, err
	}
	fusion, err := ParseFusion(string(req.Fusion))
	if err != nil {
		return nil, err
	}
	if _, err := ParseDenseIndex(string(req.DenseIndex)); err != nil {
		return nil, err
	}
	if req.Depth < 0 || req.Depth > 100*s.opts.MaxK {
		return nil, fmt.Errorf("%w: depth %d must be in [0, %d]", ErrInvalidArgument, req.Depth, 100*s.opts.MaxK)
	}
	if req.FusionWeight != nil && (*req.FusionWeight < 0 || *req.FusionWeight > 1 || math.IsNaN(*req.FusionWeight)) {
		return nil, fmt.Errorf("%w: fusion weight %v must be in [0, 1]", ErrInvalidArgument, *req.FusionWeight)
	}
	sn, err := s.pin(req.Collection)
	if err != nil {
		return nil, err
	}
	defer sn.release()
	m := sn.m
	if mode == ModeDefault {
		mode = m.Options.DefaultMode
		if mode == ModeDefault {
			mode = ModeBM25
			if m.Embedder != "" {
				mode = ModeHybrid
			}
		}
	}
	res := &SearchResult{Mode: mode, Generation: m.Generation, Shards: len(sn.shards)}
	if mode == ModeHybrid {
		if fusion == FusionDefault {
			fusion = FusionWeighted
		}
		res.Fusion = fusion
		w := DefaultFusionWeight
		if m.Fusion != nil {
			w = m.Fusion.BM25
		}
		if req.FusionWeight != nil {
			w = *req.FusionWeight
		}
		if fusion == FusionWeighted {
			res.FusionWeight = w
		}
	}
	q := &query{s: s, sn: sn, req: &req, mode: mode, fusion: fusion, w: res.FusionWeight}
	defer q.free()
	if err := q.prepare(ctx); err != nil {
		return nil, err
	}
	fetch := req.K
	if req.GroupByDoc || len(req.DocIDs) > 0 || len(req.ExcludeDocIDs) > 0 {
		fetch = 2 * req.K
	}
	var hits []scored
	for {
		ranked, exhausted, err := q.rank(ctx, fetch)
		if err != nil {
			return nil, err
		}
		hits = q.post(ranked)
		if len(hits) >= req.K || exhausted {
			break
		}
		fetch *= 4
	}
	if len(hits) > req.K {
		hits = hits[:req.K]
	}
	res.Hits = make([]Hit, len(hits))
	pids := make([]string, len(hits))
	for i, h := range hits {
		sh := sn.shards[h.shard]
		res.Hits[i] = Hit{PassageID: h.pid, DocID: DocOfPassage(h.pid), ChunkID: sh.chunkID(h.ord), Score: h.score, BM25: h.bm25, Dense: h.dense}
		pids[i] = h.pid
	}
	if !req.NoText && len(pids) > 0 {
		recs, err := s.getPassages(m.Name, pids, redoGen(m))
		if err != nil {
			return nil, err
		}
		for i, r := range recs {
			res.Hits[i].Title, res.Hits[i].Text, res.Hits[i].DocID = r.Title, r.Text, r.Doc
		}
	}
	s.met.queries.WithLabelValues(string(mode)).Inc()
	if c, err := s.collection(req.Collection); err == nil {
		c.queries.Add(1)
	}
	s.met.querySeconds.WithLabelValues(string(mode)).Observe(time.Since(start).Seconds())
	return res, nil
}

// query is the state of one search over a pinned snapshot.
type query struct {
	s      *Store
	sn     *snapshot
	req    *SearchRequest
	mode   Mode
	fusion Fusion
	w      float64

	// lexical
	lq   lexical.Query
	lp   lexical.Params
	lres []*lexical.Resolved // the query resolved in each shard
	// dense
	qv []float32 // full query vector (unit length)
	qp []float32 // projected query (what ANN indexes are searched with)
	qc []float32 // scan query: qp, or quantizer weights for int8 codes
	// cached full-vector scores (shard, ord) → score
	denseCache map[uint64]float64
}

func (q *query) free() { q.lres = nil }

func (q *query) prepare(ctx context.Context) error {
	needLex := q.mode == ModeBM25 || q.mode == ModeHybrid
	needDense := q.mode == ModeDense || q.mode == ModeHybrid
	if needLex && strings.TrimSpace(q.req.Query) == "" {
		return fmt.Errorf("%w: %s search needs query text", ErrEmptyQuery, q.mode)
	}
	if needDense {
		if err := q.prepareDense(ctx); err != nil {
			return err
		}
	}
	if needLex {
		lq, err := lexical.Analyze(q.req.Query)
		if err != nil {
			return err
		}
		q.lq = lq
		df := make([]int64, len(lq.Terms))
		q.lres = make([]*lexical.Resolved, len(q.sn.shards))
		for i, sh := range q.sn.shards {
			r, err := sh.lex.Resolve(lq)
			if err != nil {
				return lexErr(sh, err)
			}
			q.lres[i] = r
			r.AddDocFreqs(df)
			if ds := q.sn.dead[i]; ds != nil {
				if err := r.SubtractDeadDocFreqs(ctx, ds.has, df); err != nil {
					return lexErr(sh, err)
				}
			}
		}
		q.lp = lexical.GlobalParams(lq, q.sn.lex, df)
	}
	return nil
}

func (q *query) prepareDense(ctx context.Context) error {
	sn, m := q.sn, q.sn.m
	if m.Embedder == "" {
		return fmt.Errorf("%w: collection %q is lexical only (use mode bm25)", ErrNoDense, m.Name)
	}
	switch {
	case q.req.Vector != nil:
		if len(q.req.Vector) != m.Dim {
			return fmt.Errorf("%w: query vector has %d values, collection %q has dimension %d", ErrDimension, len(q.req.Vector), m.Name, m.Dim)
		}
		var norm float64
		for _, x := range q.req.Vector {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%w: query vector has a non-finite value", ErrInvalidArgument)
			}
			norm += float64(x) * float64(x)
		}
		if norm == 0 {
			return fmt.Errorf("%w: query vector is zero", ErrInvalidArgument)
		}
		q.qv = slices.Clone(q.req.Vector)
		inv := float32(1 / math.Sqrt(norm))
		for i := range q.qv {
			q.qv[i] *= inv
		}
	case m.Embedder == ClientVectors:
		return fmt.Errorf("%w: collection %q holds client vectors: %s search needs a query vector", ErrEmptyQuery, m.Name, q.mode)
	case strings.TrimSpace(q.req.Query) == "":
		return fmt.Errorf("%w: %s search needs query text or a query vector", ErrEmptyQuery, q.mode)
	case sn.emb == nil:
		return sn.embErr
	default:
		vs, err := embed.EmbedQueries(ctx, sn.emb, []string{q.req.Query})
		if err != nil {
			return fmt.Errorf("retrieval: embed query: %w", err)
		}
		if len(vs) != 1 || len(vs[0]) != m.Dim {
			return fmt.Errorf("%w: embedder returned a query vector of the wrong dimension", ErrDimension)
		}
		q.qv = vs[0]
	}
	cd := m.Dim
	if sn.proj != nil {
		cd = sn.proj.Out()
	}
	pq := make([]float32, cd)
	if !isZero(q.qv) { // a text without known words embeds to zero: every score is 0
		compress(q.qv, sn.proj, pq, make([]float32, m.Dim))
	}
	q.qp, q.qc = pq, pq
	if sn.quant != nil {
		w := make([]float32, cd)
		sn.quant.QueryWeights(pq, w)
		q.qc = w
	}
	q.denseCache = map[uint64]float64{}
	return nil
}

// eachShard runs fn for every shard, concurrently when there are several.
func (q *query) eachShard(fn func(i int, sh *shard) error) error {
	shards := q.sn.shards
	if len(shards) == 1 {
		return fn(0, shards[0])
	}
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, sh := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, sh)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// better orders merged candidates: higher score first, then smaller passage id.
func better(a, b *scored) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return cmpString(a.pid, b.pid)
}

// lexTop merges the per-shard BM25 top-n lists (exact MaxScore top-k of each shard,
// pruned with the scores the other shards have found: lexical.TopKShared) into the
// global top n. exhausted: the list holds every matching live passage.
func (q *query) lexTop(ctx context.Context, n int) ([]scored, bool, error) {
	lists := make([][]lexical.Hit, len(q.sn.shards))
	exh := make([]bool, len(q.sn.shards))
	floor := lexical.NewFloor(n) // the shards prune with the n best scores any has found
	err := q.eachShard(func(i int, sh *shard) error {
		var dead func(uint32) bool
		if ds := q.sn.dead[i]; ds != nil {
			dead = ds.has
		}
		var err error
		lists[i], exh[i], err = q.lres[i].TopKShared(ctx, q.lp, n, dead, floor)
		if err != nil {
			return lexErr(sh, err)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	var all []scored
	exhausted := true
	for i, l := range lists {
		exhausted = exhausted && exh[i]
		sh := q.sn.shards[i]
		for _, h := range l {
			c := cand{shard: int32(i), ord: h.Ord, score: h.Score}
			all = append(all, scored{cand: c, pid: sh.pid(h.Ord), bm25: c.score, hasB: true})
		}
	}
	slices.SortFunc(all, func(a, b scored) int { return better(&a, &b) })
	if len(all) > n {
		all = all[:n]
		exhausted = false
	}
	for i := range all {
		all[i].lexRank = i + 1
	}
	return all, exhausted, nil
}

// lexErr wraps an error of a shard's lexical index (corruption becomes ErrCorrupt).
func lexErr(sh *shard, err error) error {
	if errors.Is(err, lexical.ErrCorrupt) {
		return fmt.Errorf("%w: BM25 index of shard %s: %w", ErrCorrupt, sh.ref.Dir, err)
	}
	return fmt.Errorf("retrieval: BM25 of shard %s: %w", sh.ref.Dir, err)
}

// bm25Scores sets bm25 on every candidate that lacks it (the same float64 the shard's
// top-k computes).
func (q *query) bm25Scores(cs []scored) error {
	byShard := make([][]int, len(q.sn.shards))
	for i := range cs {
		if !cs[i].hasB {
			byShard[cs[i].shard] = append(byShard[cs[i].shard], i)
		}
	}
	// The shards score concurrently; each writes only its own candidates.
	return q.eachShard(func(si int, sh *shard) error {
		idx := byShard[si]
		if len(idx) == 0 {
			return nil
		}
		slices.SortFunc(idx, func(a, b int) int { return int(cs[a].ord) - int(cs[b].ord) })
		ords := make([]uint32, len(idx))
		for j, i := range idx {
			ords[j] = cs[i].ord
		}
		out := make([]float64, len(idx))
		if err := q.lres[si].Scores(q.lp, ords, out); err != nil {
			return lexErr(sh, err)
		}
		for j, i := range idx {
			cs[i].bm25, cs[i].hasB = out[j], true
		}
		return nil
	})
}

// denseTop returns the global top n by full-vector score: the compressed codes of every
// shard are scanned for the best max(n, Rescore), those merge exactly, and the merged
// candidates are rescored with the full vectors.
func (q *query) denseTop(ctx context.Context, n int) ([]scored, bool, error) {
	sn := q.sn
	total := 0
	approx := false
	for i, sh := range sn.shards {
		total += sn.live[i]
		if sh.ann != nil {
			if q.req.DenseIndex == DenseExact {
				if err := sh.ensureCodes(); err != nil {
					return nil, false, err
				}
			} else {
				approx = true
			}
		}
	}
	if approx {
		return q.denseTopApprox(ctx, n, total)
	}
	compressed := sn.proj != nil || sn.quant != nil
	r := n
	if compressed && !q.req.NoRescore {
		r = max(n, sn.m.Options.Rescore)
	}
	lists := make([][]cand, len(sn.shards))
	err := q.eachShard(func(i int, sh *shard) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		lists[i] = sh.scanTop(q.qc, r, make([]cand, 0, min(r, sh.n)), int32(i), sn.dead[i])
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	var all []scored
	for i, l := range lists {
		for _, c := range l {
			all = append(all, scored{cand: c, pid: sn.shards[i].pid(c.ord)})
		}
	}
	slices.SortFunc(all, func(a, b scored) int { return better(&a, &b) })
	if len(all) > r {
		all = all[:r]
	}
	switch {
	case !compressed: // the scan scored the full vectors
		for i := range all {
			all[i].dense, all[i].hasD = all[i].score, true
		}
	case !q.req.NoRescore:
		if err := q.fullScores(all); err != nil {
			return nil, false, err
		}
		for i := range all {
			all[i].score = all[i].dense
		}
		slices.SortFunc(all, func(a, b scored) int { return better(&a, &b) })
	} // NoRescore: the scores stay the compressed ones
	if len(all) > n {
		all = all[:n]
	}
	for i := range all {
		all[i].dnR = i + 1
	}
	return all, n >= total, nil
}

// annScanFactor: an ANN search probes lists holding at least this many times the
// candidates it returns.
//
// With r = max(k, Rescore) = 100 a shard's search scans about 15,000 codes and rescores
// 1,000 candidates with the memory-mapped full vectors whatever the shard's size, so the
// cost per shard stays flat as shards grow. On the synthetic 50,000-passage shard of
// `ragkv bench datastore` (PCA-32, IVF 1,024 lists, 48 4-bit slots) recall@10 against
// a brute-force full-vector search was 0.37 with the index's default (8 lists, 200
// rescored), 0.78 at 200 lists and 200 rescored, 0.93 at 200 lists and 1,000 rescored
// (the exact scan of int8 PCA-32 codes rescoring 100: 0.67).
const (
	annScanFactor    = 150
	annRescoreFactor = 10
)

// denseTopApprox serves collections with ANN shards: every ANN shard returns its best
// candidates already rescored with full vectors, every other shard scans its codes and
// rescores its own best; the lists merge by full-vector score. Unlike the exact path
// the result can depend on the shard layout (it is approximate anyway).
func (q *query) denseTopApprox(ctx context.Context, n, total int) ([]scored, bool, error) {
	sn := q.sn
	r := max(n, sn.m.Options.Rescore)
	lists := make([][]scored, len(sn.shards))
	err := q.eachShard(func(i int, sh *shard) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if sh.ann != nil {
			// Probe enough lists to see at least annScanFactor·r vectors: the index's
			// default probe count is tuned for large shards.
			p := sh.ann.Params()
			np := p.NProbe
			if p.NList > 0 {
				np = min(p.NList, max(np, (annScanFactor*r*p.NList+sh.n-1)/sh.n))
			}
			ds := sn.dead[i]
			nd := sh.n - sn.live[i] // tombstoned results are asked for on top, then dropped
			res, err := sh.ann.SearchWith(q.qp, min(r+nd, sh.n), ann.SearchParams{NProbe: np, Rescore: min(annRescoreFactor*r+nd, sh.n), Full: q.qv}, nil)
			if err != nil {
				return fmt.Errorf("retrieval: ANN search of shard %s: %w", sh.ref.Dir, err)
			}
			for _, x := range res {
				if ds.has(uint32(x.ID)) {
					continue
				}
				if len(lists[i]) == r {
					break
				}
				c := cand{shard: int32(i), ord: uint32(x.ID), score: float64(x.Score)}
				lists[i] = append(lists[i], scored{cand: c, pid: sh.pid(uint32(x.ID)), dense: c.score, hasD: true})
			}
			return nil
		}
		cs := sh.scanTop(q.qc, r, make([]cand, 0, min(r, sh.n)), int32(i), sn.dead[i])
		l := make([]scored, len(cs))
		ords := make([]uint32, len(cs))
		for j, c := range cs {
			l[j] = scored{cand: c, pid: sh.pid(c.ord)}
			ords[j] = c.ord
		}
		if sn.proj != nil || sn.quant != nil {
			out := make([]float64, len(cs))
			if err := sh.fullScores(q.qv, ords, out); err != nil {
				return err
			}
			for j := range l {
				l[j].score = out[j]
			}
		}
		for j := range l {
			l[j].dense, l[j].hasD = l[j].score, true
		}
		lists[i] = l
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	var all []scored
	for _, l := range lists {
		for _, c := range l {
			q.denseCache[uint64(c.shard)<<32|uint64(c.ord)] = c.dense
			all = append(all, c)
		}
	}
	slices.SortFunc(all, func(a, b scored) int { return better(&a, &b) })
	if len(all) > n {
		all = all[:n]
	}
	for i := range all {
		all[i].dnR = i + 1
	}
	return all, n >= total, nil
}

// fullScores sets dense (full-vector inner product) on every candidate.
func (q *query) fullScores(cs []scored) error {
	byShard := make([][]int, len(q.sn.shards))
	for i := range cs {
		key := uint64(cs[i].shard)<<32 | uint64(cs[i].ord)
		if v, ok := q.denseCache[key]; ok {
			cs[i].dense, cs[i].hasD = v, true
			continue
		}
		byShard[cs[i].shard] = append(byShard[cs[i].shard], i)
	}
	// The shards read their vectors concurrently (a read may fault a page in from
	// disk); each writes only its own candidates, the cache is filled afterwards.
	err := q.eachShard(func(si int, sh *shard) error {
		idx := byShard[si]
		if len(idx) == 0 {
			return nil
		}
		ords := make([]uint32, len(idx))
		for j, i := range idx {
			ords[j] = cs[i].ord
		}
		out := make([]float64, len(idx))
		if err := sh.fullScores(q.qv, ords, out); err != nil {
			return err
		}
		for j, i := range idx {
			cs[i].dense, cs[i].hasD = out[j], true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for si, idx := range byShard {
		for _, i := range idx {
			q.denseCache[uint64(si)<<32|uint64(cs[i].ord)] = cs[i].dense
		}
	}
	return nil
}

// rank returns the merged ranking at depth n (at least n entries unless exhausted).
func (q *query) rank(ctx context.Context, n int) ([]scored, bool, error) {
	switch q.mode {
	case ModeBM25:
		return q.lexTop(ctx, n)
	case ModeDense:
		return q.denseTop(ctx, n)
	}
	depth := max(n, q.req.Depth)
	if q.req.Depth == 0 {
		depth = max(n, 100)
	}
	lex, lexEx, err := q.lexTop(ctx, depth)
	if err != nil {
		return nil, false, err
	}
	den, denEx, err := q.denseTop(ctx, depth)
	if err != nil {
		return nil, false, err
	}
	fused, err := q.fuse(lex, den)
	return fused, lexEx && denEx, err
}

// fuse merges the lexical and dense candidate lists; every candidate gets both raw
// scores (BM25 from the shard accumulators, dense from the full vectors).
func (q *query) fuse(lex, den []scored) ([]scored, error) {
	idx := map[uint64]int{}
	var all []scored
	for _, l := range [][]scored{lex, den} {
		for _, c := range l {
			key := uint64(c.shard)<<32 | uint64(c.ord)
			if j, ok := idx[key]; ok {
				if c.lexRank > 0 {
					all[j].lexRank = c.lexRank
				}
				if c.dnR > 0 {
					all[j].dnR, all[j].dense, all[j].hasD = c.dnR, c.dense, true
				}
				continue
			}
			idx[key] = len(all)
			all = append(all, c)
		}
	}
	if err := q.bm25Scores(all); err != nil {
		return nil, err
	}
	var missing []scored
	var missIdx []int
	for i := range all {
		if !all[i].hasD {
			missing = append(missing, all[i])
			missIdx = append(missIdx, i)
		}
	}
	if len(missing) > 0 {
		if err := q.fullScores(missing); err != nil {
			return nil, err
		}
		for j, i := range missIdx {
			all[i].dense, all[i].hasD = missing[j].dense, true
		}
	}
	switch q.fusion {
	case FusionRRF:
		for i := range all {
			s := 0.0
			if all[i].lexRank > 0 {
				s += 1 / float64(RRFK+all[i].lexRank)
			}
			if all[i].dnR > 0 {
				s += 1 / float64(RRFK+all[i].dnR)
			}
			all[i].score = s
		}
	default:
		bl, bh := math.Inf(1), math.Inf(-1)
		dl, dh := math.Inf(1), math.Inf(-1)
		for _, c := range all {
			bl, bh = min(bl, c.bm25), max(bh, c.bm25)
			dl, dh = min(dl, c.dense), max(dh, c.dense)
		}
		for i := range all {
			all[i].score = q.w*norm01(all[i].bm25, bl, bh) + (1-q.w)*norm01(all[i].dense, dl, dh)
		}
	}
	slices.SortFunc(all, func(a, b scored) int { return better(&a, &b) })
	return all, nil
}

func norm01(x, lo, hi float64) float64 {
	if hi <= lo {
		return 0
	}
	return (x - lo) / (hi - lo)
}

// post removes duplicate chunks, applies the document filters and grouping.
func (q *query) post(ranked []scored) []scored {
	var allow, deny map[string]bool
	if len(q.req.DocIDs) > 0 {
		allow = map[string]bool{}
		for _, d := range q.req.DocIDs {
			allow[d] = true
		}
	}
	if len(q.req.ExcludeDocIDs) > 0 {
		deny = map[string]bool{}
		for _, d := range q.req.ExcludeDocIDs {
			deny[d] = true
		}
	}
	seenChunk := map[string]bool{}
	seenDoc := map[string]bool{}
	out := make([]scored, 0, min(len(ranked), q.req.K))
	for _, c := range ranked {
		sh := q.sn.shards[c.shard]
		chunk := string(sh.chunkBytes(c.ord))
		if seenChunk[chunk] {
			continue
		}
		doc := DocOfPassage(c.pid)
		if (allow != nil && !allow[doc]) || deny[doc] {
			continue
		}
		if q.req.GroupByDoc {
			if seenDoc[doc] {
				continue
			}
			seenDoc[doc] = true
		}
		seenChunk[chunk] = true
		out = append(out, c)
	}
	return out
}

func isZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}
