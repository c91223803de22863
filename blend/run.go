package blend

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ragkv/ragkv/model"
)

// run is one Prefill call in progress.
type run struct {
	b      *Blender
	L      *layout
	req    *Request
	method Method
	ctx    context.Context
	kv     *model.KV
	st     *model.Stepper
	ld     *loader
	stats  Stats
	logits []float32
	// batchLast is the size of the last batch of layer steps this prefill ran (batch.go).
	batchLast int
}

func (r *run) do() error {
	switch r.method {
	case Full:
		return r.selective(rangeRows(0, r.L.n))
	case Prefix:
		e := 0
		for e < len(r.L.segs) && r.L.exact[e] {
			e++
		}
		load := make([]bool, len(r.L.segs))
		for i := 0; i < e; i++ {
			load[i] = true
		}
		from := r.L.qStart
		if e < len(r.L.segs) {
			from = r.L.start[e]
		}
		if err := r.startLoader(load, 0); err != nil {
			return err
		}
		defer r.ld.stop()
		return r.selective(rangeRows(from, r.L.n))
	case Naive:
		if err := r.startLoader(r.cached(), 0); err != nil {
			return err
		}
		defer r.ld.stop()
		return r.selective(r.forced())
	case CacheCraft:
		t := time.Now()
		sel := r.craftPlan()
		r.stats.Select += time.Since(t)
		if err := r.startLoader(r.cached(), 0); err != nil {
			return err
		}
		defer r.ld.stop()
		return r.selective(mergeRows(sel, r.forced()))
	case CacheBlend:
		return r.cacheBlend()
	}
	return fmt.Errorf("%w: method %q", ErrInvalid, r.method)
}

// rangeRows returns lo, lo+1, …, hi−1 (rows, or the positions of consecutive tokens).
func rangeRows(lo, hi int) []int {
	rows := make([]int, hi-lo)
	for i := range rows {
		rows[i] = lo + i
	}
	return rows
}

// cached marks the segments that have a cached KV.
func (r *run) cached() []bool {
	c := make([]bool, len(r.L.segs))
	for i, s := range r.L.segs {
		c[i] = s.Source != nil
	}
	return c
}

// forced are the rows every method computes: segments without a cached KV and the
// query.
func (r *run) forced() []int {
	var rows []int
	for i, s := range r.L.segs {
		if s.Source == nil {
			rows = append(rows, rangeRows(r.L.start[i], r.L.start[i]+len(s.Tokens))...)
		}
	}
	return append(rows, rangeRows(r.L.qStart, r.L.n)...)
}

// candidates are the rows whose cached KV may be reused.
func (r *run) candidates() []int {
	var rows []int
	for i, s := range r.L.segs {
		if s.Source != nil {
			rows = append(rows, rangeRows(r.L.start[i], r.L.start[i]+len(s.Tokens))...)
		}
	}
	return rows
}

func mergeRows(a, b []int) []int {
	out := append(append([]int(nil), a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// segmentOf returns the index of the segment holding row (−1 for the query).
func (r *run) segmentOf(row int) int {
	if row >= r.L.qStart {
		return -1
	}
	i, found := slices.BinarySearch(r.L.start, row)
	if !found {
		i--
	}
	return i
}

// count adds the segment rows of one selection to the recomputed tokens.
func (r *run) count(rows []int, weight float64) {
	for _, row := range rows {
		if r.segmentOf(row) >= 0 {
			r.stats.Recomputed += weight
		}
	}
}

// finishCounts fills the per-segment reused/recomputed counts from the final selection.
func (r *run) finishCounts(rows []int) {
	for _, row := range rows {
		if i := r.segmentOf(row); i >= 0 {
			r.stats.Segments[i].Recomputed++
		}
	}
	for i := range r.stats.Segments {
		s := &r.stats.Segments[i]
		s.Reused = s.Tokens - s.Recomputed
	}
}

func (r *run) tokensOf(rows []int) []int {
	all := r.L.allTokens()
	t := make([]int, len(rows))
	for i, row := range rows {
		t[i] = all[row]
	}
	return t
}

// step runs layer l for rows (positions equal rows) with hidden states x.
func (r *run) step(l int, x []float32, rows []int, o *model.StepOptions) error {
	var err error
	t := time.Now()
	if g, b := r.req.gate, r.req.batch; g != nil && b != nil && joinable(len(rows), o) {
		// Batched with the concurrent prefills' steps at this layer (batch.go); Compute
		// then counts the wait for the batch too.
		err = b.step(r.ctx, g, r.st, l, model.StepGroup{X: x, Pos: rows, Rows: rows, KV: r.kv, Opts: o}, &r.batchLast)
	} else {
		if g != nil {
			if err := g.yield(r.ctx); err != nil {
				return err
			}
			t = time.Now()
		}
		err = r.st.LayerStep(r.ctx, l, x, rows, rows, r.kv, o)
	}
	r.stats.Compute += time.Since(t)
	if o == nil || !o.KVOnly {
		all, attn := layerFLOPsWindow(&r.b.m.Config, rows, r.b.m.Config.Window(l))
		r.stats.FLOPs += all
		r.stats.AttnFLOPs += attn
	} else {
		r.stats.FLOPs += kvOnlyFLOPs(&r.b.m.Config, len(rows))
	}
	return err
}

// selective recomputes rows (sorted, the query last) in every layer from their
// embeddings, waiting for each layer's cached rows, then computes the logits.
func (r *run) selective(rows []int) error {
	c := &r.b.m.Config
	x := make([]float32, len(rows)*c.Dim)
	if err := r.b.m.Embed(x, r.tokensOf(rows)); err != nil {
		return err
	}
	r.count(rows, 1)
	r.finishCounts(rows)
	for l := 0; l < c.Layers; l++ {
		if err := r.wait(l); err != nil {
			return err
		}
		if err := r.step(l, x, rows, nil); err != nil {
			return err
		}
	}
	return r.finish(x, rows)
}

// finish computes the logits of the query rows (the last len(query) of rows).
func (r *run) finish(x []float32, rows []int) error {
	c := &r.b.m.Config
	nq := len(r.L.query)
	first := len(rows) - nq
	if !r.req.AllLogits {
		first = len(rows) - 1
	}
	n := len(rows) - first
	r.logits = make([]float32, n*c.Vocab)
	t := time.Now()
	err := r.b.m.Logits(r.logits, x[first*c.Dim:len(rows)*c.Dim], n)
	r.stats.Compute += time.Since(t)
	r.stats.FLOPs += float64(n) * 2 * float64(c.Dim*c.Vocab)
	return err
}

// wait blocks until layer l's cached rows are in the KV.
func (r *run) wait(l int) error {
	if r.ld == nil {
		return nil
	}
	t := time.Now()
	err := r.ld.wait(r.ctx, l)
	r.stats.Wait += time.Since(t)
	return err
}

func (r *run) startLoader(load []bool, from int) error {
	var segs []loadSeg
	for i, s := range r.L.segs {
		if load[i] && s.Source != nil {
			segs = append(segs, loadSeg{src: s.Source, start: r.L.start[i], n: len(s.Tokens)})
			r.stats.Segments[i].Tier = s.Source.Tier()
		}
	}
	t := time.Now() // before the goroutine starts: it may finish before we look
	r.ld = startLoader(r.ctx, r.b.m, r.kv, segs, from)
	r.ld.stats = &r.stats
	if r.b.opts.NoPipeline {
		err := r.ld.waitAll(r.ctx)
		r.stats.Wait += time.Since(t)
		return err
	}
	return nil
}

// layerFLOPs counts one layer over rows (positions equal rows): projections,
// feed-forward and causal attention (each query over the keys at positions ≤ its own).
// It returns the total and the attention part.
func layerFLOPs(c *model.Config, rows []int) (all, attn float64) { return layerFLOPsWindow(c, rows, 0) }

// layerFLOPsWindow is layerFLOPs for a layer with a sliding window (0: none): each query
// attends to at most window keys.
func layerFLOPsWindow(c *model.Config, rows []int, window int) (all, attn float64) {
	keys := 0.0
	for _, p := range rows {
		k := p + 1
		if window > 0 {
			k = min(k, window)
		}
		keys += float64(k)
	}
	attn = 4 * float64(c.QDim()) * keys
	return projFLOPs(c)*float64(len(rows)) + attn, attn
}

func projFLOPs(c *model.Config) float64 {
	return 2 * float64(c.Dim*c.QDim()+2*c.Dim*c.KVDim()+c.QDim()*c.Dim+3*c.Dim*c.Hidden)
}

// kvOnlyFLOPs counts a deviation check: the Q, K and V projections.
func kvOnlyFLOPs(c *model.Config, n int) float64 {
	return 2 * float64(c.Dim*c.QDim()+2*c.Dim*c.KVDim()) * float64(n)
}
