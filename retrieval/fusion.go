package retrieval

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	"github.com/ragkv/ragkv/retrieval/beir"
)

// LabeledQuery is a query with graded relevance judgements on document ids.
type LabeledQuery struct {
	ID       string
	Text     string
	Vector   []float32
	Relevant map[string]int
}

// FitOptions configure FitFusion.
type FitOptions struct {
	// Folds for the cross-validated estimate (default 5).
	Folds int
	// Step of the weight grid over [0, 1] (default 0.05).
	Step float64
	// K is the depth the fitted rankings are computed at, as a search with that K and
	// GroupByDoc would (default 100).
	K int
	// Persist stores the fitted weight with the collection.
	Persist bool
}

// EnsureDefaults fills zero fields.
func (o *FitOptions) EnsureDefaults() {
	if o.Folds == 0 {
		o.Folds = 5
	}
	if o.Step == 0 {
		o.Step = 0.05
	}
	if o.K == 0 {
		o.K = 100
	}
}

// Validate reports invalid options.
func (o *FitOptions) Validate() error {
	if o.Folds < 2 || o.Folds > 100 || o.Step <= 0 || o.Step > 1 || o.K < 10 {
		return fmt.Errorf("%w: fit folds %d (2-100), step %v ((0, 1]) and k %d (≥ 10)", ErrInvalidArgument, o.Folds, o.Step, o.K)
	}
	return nil
}

// FitResult is the outcome of fitting hybrid weights.
type FitResult struct {
	// Weight is the BM25 weight maximizing mean nDCG@10 over all queries; NDCG10 that
	// maximum.
	Weight float64 `json:"weight"`
	NDCG10 float64 `json:"ndcg@10"`
	// CVNDCG10 is the k-fold cross-validated nDCG@10: each query ranked with the weight
	// fitted on the other folds.
	CVNDCG10 float64 `json:"cv_ndcg@10"`
	// FoldWeight maps a query id to the weight fitted without its fold.
	FoldWeight map[string]float64 `json:"-"`
	// Grid is the mean nDCG@10 at every grid weight.
	Grid    []GridPoint `json:"grid"`
	Queries int         `json:"queries"`
}

// GridPoint is one weight of the grid search.
type GridPoint struct {
	Weight float64 `json:"weight"`
	NDCG10 float64 `json:"ndcg@10"`
}

// FitFusion fits the BM25 weight of weighted hybrid fusion by grid search on labelled
// queries (mean nDCG@10 at document level), reports a cross-validated estimate, and
// with Persist records the weight in the collection (used by hybrid searches that set
// no weight).
func (s *Store) FitFusion(ctx context.Context, name string, qs []LabeledQuery, opts FitOptions) (FitResult, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return FitResult{}, err
	}
	var judged []LabeledQuery
	for _, q := range qs {
		for _, g := range q.Relevant {
			if g > 0 {
				judged = append(judged, q)
				break
			}
		}
	}
	if len(judged) < opts.Folds {
		return FitResult{}, fmt.Errorf("%w: %d labelled queries with a relevant document; need at least %d", ErrInvalidArgument, len(judged), opts.Folds)
	}
	var grid []float64
	for i := 0; ; i++ {
		w := math.Min(1, math.Round(float64(i)*opts.Step*1e9)/1e9)
		grid = append(grid, w)
		if w >= 1 {
			break
		}
	}
	// nd[q][g]: nDCG@10 of query q at grid weight g.
	nd := make([][]float64, len(judged))
	sn, err := s.pin(name)
	if err != nil {
		return FitResult{}, err
	}
	for qi, lq := range judged {
		if err := ctx.Err(); err != nil {
			sn.release()
			return FitResult{}, err
		}
		req := SearchRequest{Collection: name, Query: lq.Text, Vector: lq.Vector, K: opts.K, Mode: ModeHybrid, GroupByDoc: true, NoText: true}
		q := &query{s: s, sn: sn, req: &req, mode: ModeHybrid, fusion: FusionWeighted}
		if err := q.prepare(ctx); err != nil {
			q.free()
			sn.release()
			return FitResult{}, fmt.Errorf("retrieval: fit query %q: %w", lq.ID, err)
		}
		depth := max(2*opts.K, 100)
		lex, _, err := q.lexTop(ctx, depth)
		if err != nil {
			q.free()
			sn.release()
			return FitResult{}, err
		}
		den, _, err := q.denseTop(ctx, depth)
		if err != nil {
			q.free()
			sn.release()
			return FitResult{}, err
		}
		nd[qi] = make([]float64, len(grid))
		for gi, w := range grid {
			q.w = w
			fused, err := q.fuse(slices.Clone(lex), slices.Clone(den))
			if err != nil {
				q.free()
				sn.release()
				return FitResult{}, err
			}
			ranked := q.post(fused)
			docs := make([]string, 0, 10)
			for _, h := range ranked {
				if len(docs) == 10 {
					break
				}
				if d := DocOfPassage(h.pid); d != lq.ID {
					docs = append(docs, d)
				}
			}
			nd[qi][gi] = beir.NDCG(docs, lq.Relevant, 10)
		}
		q.free()
	}
	sn.release()

	best := func(include func(int) bool) (int, float64) {
		bi, bv := 0, math.Inf(-1)
		for gi := range grid {
			sum, n := 0.0, 0
			for qi := range judged {
				if include(qi) {
					sum += nd[qi][gi]
					n++
				}
			}
			if v := sum / float64(max(n, 1)); v > bv+1e-12 {
				bi, bv = gi, v
			}
		}
		return bi, bv
	}
	res := FitResult{FoldWeight: map[string]float64{}, Queries: len(judged)}
	gi, v := best(func(int) bool { return true })
	res.Weight, res.NDCG10 = grid[gi], v
	for g, w := range grid {
		sum := 0.0
		for qi := range judged {
			sum += nd[qi][g]
		}
		res.Grid = append(res.Grid, GridPoint{Weight: w, NDCG10: sum / float64(len(judged))})
	}
	fold := make([]int, len(judged))
	for qi, lq := range judged {
		h := fnv.New32a()
		_, _ = h.Write([]byte(lq.ID))
		fold[qi] = int(h.Sum32() % uint32(opts.Folds))
	}
	cv := 0.0
	for f := 0; f < opts.Folds; f++ {
		fg, _ := best(func(qi int) bool { return fold[qi] != f })
		for qi, lq := range judged {
			if fold[qi] == f {
				cv += nd[qi][fg]
				res.FoldWeight[lq.ID] = grid[fg]
			}
		}
	}
	res.CVNDCG10 = cv / float64(len(judged))
	if opts.Persist {
		fw := &FusionWeights{BM25: res.Weight, FitQueries: len(judged), NDCG10: res.NDCG10, CVNDCG10: res.CVNDCG10, Fitted: time.Now().UTC()}
		if err := s.SetFusionWeights(ctx, name, fw); err != nil {
			return res, err
		}
	}
	return res, nil
}

// SetFusionWeights records hybrid fusion weights with the collection (nil clears them).
func (s *Store) SetFusionWeights(ctx context.Context, name string, fw *FusionWeights) error {
	if fw != nil && (fw.BM25 < 0 || fw.BM25 > 1 || math.IsNaN(fw.BM25)) {
		return fmt.Errorf("%w: fusion weight %v must be in [0, 1]", ErrInvalidArgument, fw.BM25)
	}
	c, err := s.lockCollection(ctx, name)
	if err != nil {
		return err
	}
	defer c.unlock()
	m := c.cur.Load().m.clone()
	m.Fusion = fw
	if err := s.writeManifest(m); err != nil {
		return err
	}
	return s.publish(name, m, c)
}
