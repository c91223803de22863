package model

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/internal/vmath"
)

// Span is a half-open range [Lo, Hi) of absolute positions.
type Span struct{ Lo, Hi int }

// StepOptions tunes Model.LayerStep.
type StepOptions struct {
	// SkipWrite leaves the KV unchanged: attention then sees the KV's existing rows
	// (including the stale K/V at the step's own rows, if they are there).
	SkipWrite bool
	// KVOnly stops after computing the fresh K/V (no attention, x unchanged): for
	// deviation checks. Combine with FreshK/FreshV and/or the KV write.
	KVOnly bool
	// FreshK and FreshV, if not nil (len ≥ n×KVDim), receive the n tokens' fresh K
	// (post-RoPE) and V.
	FreshK, FreshV []float32
	// Outside, if not nil, is a span of absolute positions; OutsideMass (len ≥ n)
	// receives, for each query, the attention mass paid to KV rows whose position is
	// outside it, averaged over heads.
	Outside     *Span
	OutsideMass []float32
}

// scratch holds the per-call buffers of a forward computation for up to cap tokens.
type scratch struct {
	m      *Model
	cap    int
	xb     []float32 // n×Dim
	xb2    []float32 // n×Dim
	q      []float32 // n×QDim
	k, v   []float32 // n×KVDim
	att    []float32 // n×QDim
	hb     []float32 // n×Hidden
	hb2    []float32 // n×Hidden
	mass   []float32 // n×Heads
	cs     []float32 // per token: cos, sin for each pair (RoPE table of csPos)
	csLoc  []float32 // the same with the windowed layers' frequencies (Model.ropeLocal)
	csPos  []int     // the positions cs holds
	rows   []int
	scores [][]float32 // per worker slot

	// attention parameters of the current call
	aN      int
	aPos    []int
	aKV     *KV
	aLayer  int
	aSpan   *Span
	aWin    int // the layer's sliding window, 0 for none
	attnFn  func(lo, hi int)
	slots   int
	itemsPW int

	// GEMM attention: work items, the next one to take, per-worker scratch
	aItems                              []attnItem
	mmOuts                              [3][]float32 // MatMulMulti arguments
	mmWs                                [3]*kernels.Mat
	qScale                              float32 // 1/√HeadDim
	aSorted                             bool    // the KV positions are non-decreasing
	aNext                               atomic.Int64
	aSlots                              []attnSlot
	attnItemsFn                         func(lo, hi int)
	siluFn                              func(lo, hi int)
	normFn, biasRopeFn, ropeFn, residFn func(lo, hi int)
	postFn                              func(lo, hi int)
	// per-token step parameters
	tokX     []float32
	tokAdd   []float32 // if not nil, added to tokX (the residual) before the norm
	tokNorm  []float32
	tokRows  []int // KV rows receiving the fresh K/V, nil to skip the write
	tokKV    *KV
	tokL     int
	tokLayer *layerWeights
	tokCS    []float32 // the RoPE table of the layer (cs or csLoc)
	tokPost  []float32 // post-norm weights applied to xb2 in place

	// Batched decode (Batch.Feed): when kvs is set, token i is its own sequence, whose KV
	// is kvs[i] (the kv argument of layer is nil): its fresh K/V go to kvs[i] and it
	// attends to kvs[i] only. kvSorted[i] reports whether kvs[i]'s positions are
	// non-decreasing.
	kvs      []*KV
	kvSorted []bool
}

func (m *Model) newScratch(n int) *scratch {
	s := &scratch{m: m}
	s.slots = m.pool.Threads()
	s.scores = make([][]float32, s.slots)
	s.attnFn = s.attnRange
	s.attnItemsFn = s.attnItems
	s.siluFn = s.siluRows
	s.normFn = s.normRows
	s.biasRopeFn = s.biasRopeRows
	s.ropeFn = s.ropeRows
	s.residFn = s.residRows
	s.postFn = s.postNormRows
	s.qScale = float32(1 / math.Sqrt(float64(m.Config.HeadDim)))
	if m.Config.QueryScale > 0 {
		s.qScale = float32(m.Config.QueryScale)
	}
	s.grow(n)
	return s
}

func (s *scratch) grow(n int) {
	if n <= s.cap {
		return
	}
	c := &s.m.Config
	s.cap = n
	s.xb = make([]float32, n*c.Dim)
	s.xb2 = make([]float32, n*c.Dim)
	s.q = make([]float32, n*c.QDim())
	s.k = make([]float32, n*c.KVDim())
	s.v = make([]float32, n*c.KVDim())
	s.att = make([]float32, n*c.QDim())
	s.hb = make([]float32, n*c.Hidden)
	s.hb2 = make([]float32, n*c.Hidden)
	s.mass = make([]float32, n*c.Heads)
	s.cs = make([]float32, n*c.HeadDim)
	if s.m.ropeLocal != nil {
		s.csLoc = make([]float32, n*c.HeadDim)
	}
	s.csPos = make([]int, 0, n)
	s.rows = make([]int, n)
}

func (s *scratch) growScores(t int) {
	for i := range s.scores {
		if cap(s.scores[i]) < t {
			s.scores[i] = make([]float32, max(t, 2*cap(s.scores[i])))
		}
	}
}

// rmsnorm writes w·x/rms(x) into out (which may be x). The sum of squares is accumulated in float64, in
// four independent partial sums (a single chain is bound by the add latency).
func rmsnorm(out, x, w []float32, eps float32) {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(x[i])
	}
	ss := (s0 + s1) + (s2 + s3)
	inv := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	out, w = out[:len(x)], w[:len(x)]
	for i, v := range x {
		out[i] = w[i] * (inv * v)
	}
}

// ropeCS fills cs with cos, sin of pos×freq_i for each pair i.
func (m *Model) ropeCS(cs []float32, pos float64) { ropeCSFreqs(cs, pos, m.rope) }

func ropeCSFreqs(cs []float32, pos float64, freqs []float64) {
	for i, f := range freqs {
		sn, cn := math.Sincos(pos * f)
		cs[2*i], cs[2*i+1] = float32(cn), float32(sn)
	}
}

// layerFreqs returns the RoPE frequencies of layer l.
func (m *Model) layerFreqs(l int) []float64 {
	if m.ropeLocal != nil && m.Config.LocalRope(l) {
		return m.ropeLocal
	}
	return m.rope
}

// rotate applies the rotation in cs to every head of vec (heads×HeadDim).
func (m *Model) rotate(vec []float32, heads int, cs []float32) {
	hd := m.Config.HeadDim
	half := hd / 2
	for h := 0; h < heads; h++ {
		v := vec[h*hd : (h+1)*hd]
		if m.Config.Rope == RopeInterleaved {
			for i := 0; i < half; i++ {
				c, sn := cs[2*i], cs[2*i+1]
				a, b := v[2*i], v[2*i+1]
				v[2*i] = a*c - b*sn
				v[2*i+1] = a*sn + b*c
			}
		} else {
			for i := 0; i < half; i++ {
				c, sn := cs[2*i], cs[2*i+1]
				a, b := v[i], v[i+half]
				v[i] = a*c - b*sn
				v[i+half] = a*sn + b*c
			}
		}
	}
}

// RotateK re-rotates K rows (n×KVDim, in place) from positions oldPos to newPos: each
// pair is rotated by (newPos−oldPos)×freq, the exact RoPE delta. It is RotateKLayer for
// models whose layers share one RoPE base; for the others (Gemma 3: local and global
// bases) it is an error.
func (m *Model) RotateK(k []float32, oldPos, newPos []int) error {
	if m.ropeLocal != nil {
		return fmt.Errorf("%w: RotateK on a model with per-layer RoPE bases (use RotateKLayer)", ErrInvalid)
	}
	return m.RotateKLayer(0, k, oldPos, newPos)
}

// RotateKLayer re-rotates K rows of layer l (n×KVDim, in place) from positions oldPos to
// newPos with that layer's RoPE frequencies.
func (m *Model) RotateKLayer(l int, k []float32, oldPos, newPos []int) error {
	if l < 0 || l >= m.Config.Layers {
		return fmt.Errorf("%w: RotateKLayer of layer %d of %d", ErrInvalid, l, m.Config.Layers)
	}
	freqs := m.layerFreqs(l)
	kvDim := m.Config.KVDim()
	if len(oldPos) != len(newPos) || len(k) < len(oldPos)*kvDim {
		return fmt.Errorf("%w: RotateK with %d old, %d new positions and %d values", ErrInvalid, len(oldPos), len(newPos), len(k))
	}
	cs := make([]float32, m.Config.HeadDim)
	last := math.MinInt
	for i := range oldPos {
		d := newPos[i] - oldPos[i]
		if d == 0 {
			continue
		}
		if d != last {
			ropeCSFreqs(cs, float64(d), freqs)
			last = d
		}
		m.rotate(k[i*kvDim:(i+1)*kvDim], m.Config.KVHeads, cs)
	}
	return nil
}

// RopeTable returns the cos/sin table of layer l's RoPE frequencies at positions pos
// (len(pos)×HeadDim values: cos, sin of each pair), for RotateKTable. Layers with the
// same frequencies (all of them unless Config.LocalRope) share a table.
func (m *Model) RopeTable(l int, pos []int) ([]float32, error) {
	if l < 0 || l >= m.Config.Layers {
		return nil, fmt.Errorf("%w: RopeTable of layer %d of %d", ErrInvalid, l, m.Config.Layers)
	}
	hd := m.Config.HeadDim
	freqs := m.layerFreqs(l)
	cs := make([]float32, len(pos)*hd)
	for i, p := range pos {
		ropeCSFreqs(cs[i*hd:(i+1)*hd], float64(p), freqs)
	}
	return cs, nil
}

// RotateKTable rotates K rows (n×KVDim, in place), row i by row i of a RopeTable: K
// stored without its rotary embedding becomes K at the table's positions (the same
// rotation RotateKLayer applies from position 0, without a sincos per row and layer).
func (m *Model) RotateKTable(k, cs []float32) error {
	hd, kvDim := m.Config.HeadDim, m.Config.KVDim()
	n := len(cs) / hd
	if len(cs)%hd != 0 || len(k) < n*kvDim {
		return fmt.Errorf("%w: RotateKTable with a table of %d values for %d K values", ErrInvalid, len(cs), len(k))
	}
	for i := range n {
		m.rotate(k[i*kvDim:(i+1)*kvDim], m.Config.KVHeads, cs[i*hd:(i+1)*hd])
	}
	return nil
}

// ShiftKV moves every row of kv to a new position: K of all layers is re-rotated and
// kv.Pos updated.
func (m *Model) ShiftKV(kv *KV, newPos []int) error {
	if err := kv.check(&m.Config); err != nil {
		return err
	}
	if len(newPos) != kv.Len() {
		return fmt.Errorf("%w: ShiftKV with %d positions for %d rows", ErrInvalid, len(newPos), kv.Len())
	}
	for l := 0; l < kv.Layers; l++ {
		if err := m.RotateKLayer(l, kv.K[l][:kv.Len()*kv.KVDim], kv.Pos, newPos); err != nil {
			return err
		}
	}
	copy(kv.Pos, newPos)
	return nil
}

// Embed writes the embeddings of tokens into dst (len ≥ len(tokens)×Dim).
func (m *Model) Embed(dst []float32, tokens []int) error {
	d := m.Config.Dim
	if len(dst) < len(tokens)*d {
		return fmt.Errorf("%w: Embed buffer of %d for %d tokens", ErrInvalid, len(dst), len(tokens))
	}
	e := &m.w.embed
	for i, t := range tokens {
		if t < 0 || t >= m.Config.Vocab {
			return fmt.Errorf("%w: token id %d outside vocabulary of %d", ErrInvalid, t, m.Config.Vocab)
		}
		if err := kernels.Dequantize(dst[i*d:(i+1)*d], e.Row(t), e.Type); err != nil {
			return err
		}
		if sc := m.Config.EmbedScale; sc != 0 {
			kernels.Scale(dst[i*d:(i+1)*d], sc)
		}
	}
	return nil
}

// Logits applies the final RMSNorm and the classifier to n hidden states x (n×Dim, not
// modified), writing dst (len ≥ n×Vocab).
func (m *Model) Logits(dst, x []float32, n int) error {
	c := &m.Config
	if len(x) < n*c.Dim || len(dst) < n*c.Vocab {
		return fmt.Errorf("%w: Logits buffers too small for %d tokens", ErrInvalid, n)
	}
	xn := make([]float32, n*c.Dim)
	return m.logits(dst, x, xn, n)
}

// logits is Logits with xn (n×Dim, may be x) receiving the normalized states.
func (m *Model) logits(dst, x, xn []float32, n int) error {
	c := &m.Config
	for i := 0; i < n; i++ {
		rmsnorm(xn[i*c.Dim:(i+1)*c.Dim], x[i*c.Dim:(i+1)*c.Dim], m.w.norm, c.NormEps)
	}
	if err := m.pool.MatMul(dst[:n*c.Vocab], xn[:n*c.Dim], n, &m.w.out); err != nil {
		return err
	}
	if c.FinalSoftcap > 0 {
		softcap(dst[:n*c.Vocab], c.FinalSoftcap)
	}
	return nil
}

// softcap applies x ↦ c·tanh(x/c) (Gemma 2's soft-capping) in place.
func softcap(x []float32, c float32) {
	inv := 1 / c
	for i, v := range x {
		x[i] = c * float32(math.Tanh(float64(v*inv)))
	}
}

// visibleStart returns the number of leading positions of the non-decreasing kvPos that
// a query at position p does not see through a window of w (those ≤ p−w); 0 for w = 0.
func visibleStart(kvPos []int, p, w int) int {
	if w <= 0 {
		return 0
	}
	return visibleEnd(kvPos, p-w)
}

// visible reports whether a query at position p sees the key at kp through window w.
func visible(kp, p, w int) bool { return kp <= p && (w <= 0 || p-kp < w) }

// LayerStep runs layer l for n = len(pos) tokens: x (n×Dim) holds their residual-stream
// inputs and receives their outputs; pos their absolute positions; rows the KV rows that
// hold them (kv.Pos[rows[i]] must equal pos[i]). Their fresh K/V are written into kv
// layer l at rows (unless o.SkipWrite), then each token attends to every row of kv layer
// l whose position is ≤ its own. Only layer l of kv is read or written.
func (m *Model) LayerStep(ctx context.Context, l int, x []float32, pos, rows []int, kv *KV, o *StepOptions) error {
	if o == nil {
		o = &StepOptions{}
	}
	if err := m.checkStep(ctx, l, x, pos, rows, kv, o); err != nil {
		return err
	}
	return m.newScratch(len(pos)).layer(l, x, pos, rows, kv, o)
}

func (m *Model) checkStep(ctx context.Context, l int, x []float32, pos, rows []int, kv *KV, o *StepOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &m.Config
	n := len(pos)
	if l < 0 || l >= c.Layers {
		return fmt.Errorf("%w: layer %d of %d", ErrInvalid, l, c.Layers)
	}
	if err := kv.check(c); err != nil {
		return err
	}
	if len(rows) != n || len(x) < n*c.Dim {
		return fmt.Errorf("%w: LayerStep with %d positions, %d rows, %d values", ErrInvalid, n, len(rows), len(x))
	}
	for i, r := range rows {
		if r < 0 || r >= kv.Len() || kv.Pos[r] != pos[i] {
			return fmt.Errorf("%w: row %d does not hold position %d", ErrInvalid, r, pos[i])
		}
	}
	if o.FreshK != nil && len(o.FreshK) < n*c.KVDim() || o.FreshV != nil && len(o.FreshV) < n*c.KVDim() {
		return fmt.Errorf("%w: FreshK/FreshV shorter than %d×%d", ErrInvalid, n, c.KVDim())
	}
	if o.Outside != nil && len(o.OutsideMass) < n {
		return fmt.Errorf("%w: OutsideMass shorter than %d", ErrInvalid, n)
	}
	return nil
}

// Stepper runs LayerStep calls on reusable scratch buffers (they grow to the largest
// call), for callers that step many layers. Not safe for concurrent use.
type Stepper struct {
	m *Model
	s *scratch
	// LayerStepMulti's buffers: the groups' rows together, and the groups' order.
	x         []float32
	pos, rows []int
	order     []int
}

// NewStepper returns a Stepper with buffers for maxTokens tokens.
func (m *Model) NewStepper(maxTokens int) *Stepper {
	return &Stepper{m: m, s: m.newScratch(max(maxTokens, 1))}
}

// LayerStep is Model.LayerStep on the Stepper's buffers.
func (st *Stepper) LayerStep(ctx context.Context, l int, x []float32, pos, rows []int, kv *KV, o *StepOptions) error {
	if o == nil {
		o = &StepOptions{}
	}
	if err := st.m.checkStep(ctx, l, x, pos, rows, kv, o); err != nil {
		return err
	}
	st.s.grow(len(pos))
	return st.s.layer(l, x, pos, rows, kv, o)
}

// layer is LayerStep without validation, on preallocated scratch.
func (s *scratch) layer(l int, x []float32, pos, rows []int, kv *KV, o *StepOptions) error {
	if err := s.layerQKV(l, x, pos, rows, kv, o); err != nil || o.KVOnly {
		return err
	}
	c := &s.m.Config
	n := len(pos)
	if err := s.attention(l, pos, kv, o.Outside); err != nil {
		return err
	}
	if o.Outside != nil {
		for i := 0; i < n; i++ {
			var t float32
			for h := 0; h < c.Heads; h++ {
				t += s.mass[i*c.Heads+h]
			}
			o.OutsideMass[i] = t / float32(c.Heads)
		}
	}
	return s.layerOut(l, x, n)
}

// layerOut is the rest of layer l after attention (s.att holds its n rows): the output
// projection, the feed-forward and the residual adds into x.
func (s *scratch) layerOut(l int, x []float32, n int) error {
	m := s.m
	c := &m.Config
	w := &m.w.layers[l]
	d, qd := c.Dim, c.QDim()
	xb := s.xb[:n*d]
	xb2 := s.xb2[:n*d]
	if err := m.pool.MatMul(xb2, s.att[:n*qd], n, &w.wo); err != nil {
		return err
	}
	if w.postAttn != nil {
		s.tokPost = w.postAttn
		s.perToken(n, s.postFn)
	}
	// Gated feed-forward (SwiGLU, GeGLU), after the residual add (done by the norm).
	s.tokAdd, s.tokNorm = xb2, w.ffnNorm
	s.perToken(n, s.normFn)
	s.tokAdd = nil
	hb, hb2 := s.hb[:n*c.Hidden], s.hb2[:n*c.Hidden]
	s.mmOuts[0], s.mmOuts[1] = hb, hb2
	s.mmWs[0], s.mmWs[1] = &w.w1, &w.w3
	err := m.pool.MatMulMulti(s.mmOuts[:2], xb, n, s.mmWs[:2])
	s.mmOuts = [3][]float32{}
	if err != nil {
		return err
	}
	m.pool.Parallel(n, s.siluFn)
	if err := m.pool.MatMul(xb2, hb, n, &w.w2); err != nil {
		return err
	}
	if w.postFFN != nil {
		s.tokPost = w.postFFN
		s.perToken(n, s.postFn)
	}
	s.tokPost = nil
	s.tokX, s.tokAdd = x, xb2
	s.perToken(n, s.residFn)
	s.tokX, s.tokAdd = nil, nil
	return nil
}

// layerQKV is the first part of layer l for n = len(pos) tokens: the attention norm,
// the Q/K/V projections, biases and RoPE (Q scaled by 1/√HeadDim, in s.q), and the
// fresh K/V written into kv at rows (unless o.SkipWrite) and copied to o.FreshK/FreshV.
func (s *scratch) layerQKV(l int, x []float32, pos, rows []int, kv *KV, o *StepOptions) error {
	m := s.m
	c := &m.Config
	w := &m.w.layers[l]
	n := len(pos)
	d, qd, kd := c.Dim, c.QDim(), c.KVDim()
	xb, q, k, v := s.xb[:n*d], s.q[:n*qd], s.k[:n*kd], s.v[:n*kd]
	s.ropeTable(pos)
	s.tokX, s.tokAdd, s.tokNorm = x, nil, w.attnNorm
	s.perToken(n, s.normFn)
	s.mmOuts[0], s.mmOuts[1], s.mmOuts[2] = q, k, v
	s.mmWs[0], s.mmWs[1], s.mmWs[2] = &w.wq, &w.wk, &w.wv
	err := m.pool.MatMulMulti(s.mmOuts[:3], xb, n, s.mmWs[:3])
	s.mmOuts = [3][]float32{}
	if err != nil {
		return err
	}
	s.tokLayer, s.tokRows, s.tokKV, s.tokL = w, rows, kv, l
	s.tokCS = s.cs
	if m.ropeLocal != nil && c.LocalRope(l) {
		s.tokCS = s.csLoc
	}
	if o.SkipWrite {
		s.tokRows = nil
	}
	s.perToken(n, s.biasRopeFn)
	s.tokRows, s.tokKV = nil, nil
	if o.FreshK != nil {
		copy(o.FreshK, k)
	}
	if o.FreshV != nil {
		copy(o.FreshV, v)
	}
	return nil
}

// attention computes s.att (and s.mass with span) for the n = len(pos) queries in s.q
// against layer l of kv (or, with s.kvs, each query against its own KV).
func (s *scratch) attention(l int, pos []int, kv *KV, span *Span) error {
	m := s.m
	c := &m.Config
	n := len(pos)
	// Attention: from gemmAttnMin queries on as matrix products over (query block, KV
	// head) items (attnGEMM), else per (query, head) item, one range of items per worker
	// slot (attnRange).
	s.aN, s.aPos, s.aKV, s.aLayer, s.aSpan = n, pos, kv, l, span
	s.aWin = c.Window(l)
	if s.kvs != nil {
		// One query per sequence, each on its own KV: the per-query path (the same
		// arithmetic as a sequence decoded alone).
		T := 0
		for _, kv := range s.kvs {
			T = max(T, kv.Len())
		}
		s.growScores(T)
		items := n * c.Heads
		s.itemsPW = (items + s.slots - 1) / s.slots
		m.pool.Parallel(s.slots, s.attnFn)
	} else if s.aSorted = sortedPos(kv.Pos); n >= gemmAttnMin {
		if err := s.attnGEMM(); err != nil {
			return err
		}
	} else {
		s.growScores(kv.Len())
		items := n * c.Heads
		s.itemsPW = (items + s.slots - 1) / s.slots
		m.pool.Parallel(s.slots, s.attnFn)
	}
	s.aKV, s.aPos = nil, nil
	return nil
}

// attnRange handles worker slots [lo, hi) of the current attention call (few queries):
// per (query, head), the scores against every key at once (kernels.DotRows), the
// softmax, and the weighted sum of the values (kernels.AxpyRows).
func (s *scratch) attnRange(lo, hi int) {
	c := &s.m.Config
	hd, qd, kd := c.HeadDim, c.QDim(), c.KVDim()
	group := c.Heads / c.KVHeads
	kv, sorted := s.aKV, s.aSorted
	var T int
	var K, V []float32
	if kv != nil {
		T, K, V = kv.Len(), kv.K[s.aLayer], kv.V[s.aLayer]
	}
	items := s.aN * c.Heads
	for slot := lo; slot < hi; slot++ {
		for it := slot * s.itemsPW; it < min((slot+1)*s.itemsPW, items); it++ {
			i, h := it/c.Heads, it%c.Heads
			if s.kvs != nil { // batched decode: query i's own sequence
				kv, sorted = s.kvs[i], s.kvSorted[i]
				T, K, V = kv.Len(), kv.K[s.aLayer], kv.V[s.aLayer]
			}
			p := s.aPos[i]
			qv := s.q[i*qd+h*hd : i*qd+(h+1)*hd] // scaled by 1/√d
			off := (h / group) * hd
			out := s.att[i*qd+h*hd : i*qd+(h+1)*hd]
			start, end := 0, T
			if sorted {
				// keys in position order: the visible ones are a run
				end = visibleEnd(kv.Pos[:T], p)
				start = min(visibleStart(kv.Pos[:T], p, s.aWin), end)
			}
			sc := s.scores[slot][:end-start]
			maxv := float32(math.Inf(-1))
			if end > start {
				kernels.DotRows(sc, qv, K[off+start*kd:], kd)
				if c.AttnSoftcap > 0 {
					softcap(sc, c.AttnSoftcap)
				}
				if sorted {
					maxv = vmath.Max(sc)
				} else {
					for j, v := range sc {
						if !visible(kv.Pos[j], p, s.aWin) {
							sc[j] = float32(math.Inf(-1))
						} else if v > maxv {
							maxv = v
						}
					}
				}
			}
			clear(out)
			if math.IsInf(float64(maxv), -1) { // no visible key
				s.mass[it] = 0
				continue
			}
			inv := 1 / vmath.ExpSum(sc, maxv)
			kernels.AxpyRows(out, sc, V[off+start*kd:], kd)
			kernels.Scale(out, inv)
			if s.aSpan != nil {
				var outside float32
				for j, e := range sc {
					if kp := kv.Pos[start+j]; kp < s.aSpan.Lo || kp >= s.aSpan.Hi {
						outside += e
					}
				}
				s.mass[it] = outside * inv
			}
		}
	}
}

// sortedPos reports whether pos is non-decreasing.
func sortedPos(pos []int) bool {
	for j := 1; j < len(pos); j++ {
		if pos[j] < pos[j-1] {
			return false
		}
	}
	return true
}

// ExtendOptions tunes Model.Extend and Model.Prefill.
type ExtendOptions struct {
	// Logits lists indices (into the new tokens) whose next-token logits to return, in
	// that order (an index may repeat).
	Logits []int
	// Outside, if set, records for every new token and layer the attention mass paid to
	// positions outside this span (averaged over heads), in Result.OutsideMass.
	Outside *Span
}

// Result is what Extend returns besides the updated KV.
type Result struct {
	// Logits holds len(opts.Logits) rows of Vocab values, in the order requested.
	Logits []float32
	// OutsideMass[l][i] is token i's outside-span attention mass at layer l (if asked).
	OutsideMass [][]float32
}

// Extend appends tokens at absolute positions pos to kv (reserving room as needed), runs
// all layers over them attending to every kv row at a position ≤ their own, and returns
// the requested logits. kv may be empty, hold a prefix, or a fused cache.
func (m *Model) Extend(ctx context.Context, kv *KV, tokens, pos []int, o ExtendOptions) (*Result, error) {
	c := &m.Config
	if err := kv.check(c); err != nil {
		return nil, err
	}
	n := len(tokens)
	if len(pos) != n || n == 0 {
		return nil, fmt.Errorf("%w: Extend with %d tokens and %d positions", ErrInvalid, n, len(pos))
	}
	for _, i := range o.Logits {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("%w: logits index %d of %d tokens", ErrInvalid, i, n)
		}
	}
	s := m.newScratch(n)
	res := &Result{}
	if o.Outside != nil {
		res.OutsideMass = make([][]float32, c.Layers)
		for l := range res.OutsideMass {
			res.OutsideMass[l] = make([]float32, n)
		}
	}
	if len(o.Logits) > 0 {
		res.Logits = make([]float32, len(o.Logits)*c.Vocab)
	}
	x := make([]float32, n*c.Dim)
	if err := s.forward(ctx, kv, tokens, pos, x, o.Outside, res.OutsideMass); err != nil {
		return nil, err
	}
	if len(o.Logits) > 0 {
		// Normalized in place: o.Logits may repeat an index, so there can be more
		// rows than s.xb holds.
		sel := make([]float32, len(o.Logits)*c.Dim)
		for j, i := range o.Logits {
			copy(sel[j*c.Dim:(j+1)*c.Dim], x[i*c.Dim:(i+1)*c.Dim])
		}
		if err := m.logits(res.Logits, sel, sel, len(o.Logits)); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// forward appends tokens to kv and runs every layer; x (n×Dim) receives the final hidden
// states (before the final norm). It allocates only if kv or s must grow.
func (s *scratch) forward(ctx context.Context, kv *KV, tokens, pos []int, x []float32, span *Span, mass [][]float32) error {
	m := s.m
	n := len(tokens)
	s.grow(n)
	if err := m.Embed(x, tokens); err != nil {
		return err
	}
	kv.Reserve(n)
	base := kv.Len()
	rows := s.rows[:n]
	for i := range rows {
		rows[i] = base + i
	}
	kv.Pos = append(kv.Pos, pos...)
	var so StepOptions
	so.Outside = span
	for l := 0; l < m.Config.Layers; l++ {
		if err := ctx.Err(); err != nil {
			kv.Pos = kv.Pos[:base]
			return err
		}
		if mass != nil {
			so.OutsideMass = mass[l]
		}
		if err := s.layer(l, x, pos, rows, kv, &so); err != nil {
			kv.Pos = kv.Pos[:base]
			return err
		}
	}
	return nil
}

// Prefill runs tokens at positions posOffset, posOffset+1, ... through the model and
// returns their KV (with room for extra more rows) and the requested logits.
func (m *Model) Prefill(ctx context.Context, tokens []int, posOffset, extra int, o ExtendOptions) (*KV, *Result, error) {
	kv := NewKV(&m.Config, len(tokens)+max(extra, 0))
	pos := make([]int, len(tokens))
	for i := range pos {
		pos[i] = posOffset + i
	}
	res, err := m.Extend(ctx, kv, tokens, pos, o)
	if err != nil {
		return nil, nil, err
	}
	return kv, res, nil
}

// State is a decoding session: a KV cache and preallocated buffers, so that Feed with
// one token allocates nothing (as long as the KV has capacity). Not safe for concurrent
// use.
type State struct {
	m      *Model
	KV     *KV
	s      *scratch
	x      []float32
	logits []float32
	pos    []int
	next   int
}

// NewState starts a session over kv (nil: an empty KV with room for capacity rows).
// New tokens go at the position after the largest one in kv.
func (m *Model) NewState(kv *KV, capacity int) *State {
	if kv == nil {
		kv = NewKV(&m.Config, capacity)
	} else {
		kv.Reserve(capacity)
	}
	st := &State{m: m, KV: kv, s: m.newScratch(1), x: make([]float32, m.Config.Dim), logits: make([]float32, m.Config.Vocab),
		pos: make([]int, 1)}
	for _, q := range kv.Pos {
		st.next = max(st.next, q+1)
	}
	return st
}

// NextPos is the position the next token will take.
func (st *State) NextPos() int { return st.next }

// Feed appends tokens and returns the logits after the last one (aliasing the State,
// valid until the next call).
func (st *State) Feed(ctx context.Context, tokens ...int) ([]float32, error) {
	n := len(tokens)
	if n == 0 {
		return nil, fmt.Errorf("%w: Feed of no tokens", ErrInvalid)
	}
	c := &st.m.Config
	next := st.next
	if cap(st.pos) < n {
		st.pos = make([]int, n)
		st.x = make([]float32, n*c.Dim)
	}
	pos := st.pos[:n]
	for i := range pos {
		pos[i] = next + i
	}
	if err := st.s.forward(ctx, st.KV, tokens, pos, st.x[:n*c.Dim], nil, nil); err != nil {
		return nil, err
	}
	st.next += n
	if err := st.m.logits(st.logits, st.x[(n-1)*c.Dim:n*c.Dim], st.s.xb, 1); err != nil {
		return nil, err
	}
	return st.logits, nil
}

// siluRows applies SwiGLU's gate, hb = silu(hb)·hb2, to token rows [lo, hi).
func (s *scratch) siluRows(lo, hi int) {
	h := s.m.Config.Hidden
	if s.m.Config.Act == ActGELUTanh {
		geluTanhMul(s.hb[lo*h:hi*h], s.hb2[lo*h:hi*h])
		return
	}
	if s.kvs != nil {
		// Batched decode: row by row, so that each row's vector/tail split is that of a
		// token decoded alone (bit-identical results).
		for i := lo; i < hi; i++ {
			vmath.SiluMul(s.hb[i*h:(i+1)*h], s.hb2[i*h:(i+1)*h])
		}
		return
	}
	vmath.SiluMul(s.hb[lo*h:hi*h], s.hb2[lo*h:hi*h])
}

// geluTanhMul writes gelu(a)·b into a, GELU in its tanh approximation
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (PyTorch's gelu(approximate="tanh"),
// ggml_gelu), in float64.
func geluTanhMul(a, b []float32) {
	const k = 0.7978845608028654 // √(2/π)
	b = b[:len(a)]
	for i, v := range a {
		x := float64(v)
		a[i] = float32(0.5*x*(1+math.Tanh(k*(x+0.044715*x*x*x)))) * b[i]
	}
}

// postNormRows normalizes xb2 in place with tokPost for token rows [lo, hi) (Gemma's
// post-attention and post-feed-forward norms).
func (s *scratch) postNormRows(lo, hi int) {
	c := &s.m.Config
	d := c.Dim
	for i := lo; i < hi; i++ {
		x := s.xb2[i*d : (i+1)*d]
		rmsnorm(x, x, s.tokPost, c.NormEps)
	}
}

// perToken runs fn over token rows [0, n): on the workers when there are enough tokens
// to pay for the hand-off, else on the calling goroutine.
func (s *scratch) perToken(n int, fn func(lo, hi int)) {
	if n >= 16 {
		s.m.pool.Parallel(n, fn)
	} else {
		fn(0, n)
	}
}

// normRows writes RMSNorm(tokX)·tokNorm into xb for token rows [lo, hi), after adding
// tokAdd to tokX if set.
func (s *scratch) normRows(lo, hi int) {
	c := &s.m.Config
	d := c.Dim
	for i := lo; i < hi; i++ {
		x := s.tokX[i*d : (i+1)*d]
		if s.tokAdd != nil {
			kernels.Axpy(x, 1, s.tokAdd[i*d:(i+1)*d])
		}
		rmsnorm(s.xb[i*d:(i+1)*d], x, s.tokNorm, c.NormEps)
	}
}

// residRows adds tokAdd to tokX for token rows [lo, hi).
func (s *scratch) residRows(lo, hi int) {
	d := s.m.Config.Dim
	kernels.Axpy(s.tokX[lo*d:hi*d], 1, s.tokAdd[lo*d:hi*d])
}

// ropeTable makes s.cs hold the RoPE cos, sin of every position of pos (HeadDim values
// per token), computing them only if the positions differ from the last call's: the
// layers of one forward pass share the table.
func (s *scratch) ropeTable(pos []int) {
	if slices.Equal(s.csPos, pos) {
		return
	}
	s.csPos = append(s.csPos[:0], pos...)
	s.perToken(len(pos), s.ropeFn)
}

// ropeRows fills the RoPE table rows [lo, hi) for the positions in s.csPos.
func (s *scratch) ropeRows(lo, hi int) {
	hd := s.m.Config.HeadDim
	for i := lo; i < hi; i++ {
		s.m.ropeCS(s.cs[i*hd:(i+1)*hd], float64(s.csPos[i]))
		if s.m.ropeLocal != nil {
			ropeCSFreqs(s.csLoc[i*hd:(i+1)*hd], float64(s.csPos[i]), s.m.ropeLocal)
		}
	}
}

// biasRopeRows adds the Q/K/V biases and applies RoPE to Q and K for token rows [lo, hi),
// then writes their K and V into the KV at tokRows (unless nil).
func (s *scratch) biasRopeRows(lo, hi int) {
	m := s.m
	c := &m.Config
	qd, kd := c.QDim(), c.KVDim()
	w := s.tokLayer
	hd := c.HeadDim
	for i := lo; i < hi; i++ {
		q, k := s.q[i*qd:(i+1)*qd], s.k[i*kd:(i+1)*kd]
		if w.bq != nil {
			kernels.Axpy(q, 1, w.bq)
			kernels.Axpy(k, 1, w.bk)
			kernels.Axpy(s.v[i*kd:(i+1)*kd], 1, w.bv)
		}
		if w.qNorm != nil {
			for h := 0; h < c.Heads; h++ {
				rmsnorm(q[h*hd:(h+1)*hd], q[h*hd:(h+1)*hd], w.qNorm, c.NormEps)
			}
			for h := 0; h < c.KVHeads; h++ {
				rmsnorm(k[h*hd:(h+1)*hd], k[h*hd:(h+1)*hd], w.kNorm, c.NormEps)
			}
		}
		cs := s.tokCS[i*hd : (i+1)*hd]
		m.rotate(q, c.Heads, cs)
		kernels.Scale(q, s.qScale) // attention's 1/√d, folded into Q
		m.rotate(k, c.KVHeads, cs)
		if s.tokRows != nil {
			r, l, kv := s.tokRows[i], s.tokL, s.tokKV
			if s.kvs != nil {
				kv = s.kvs[i]
			}
			copy(kv.K[l][r*kd:(r+1)*kd], k)
			copy(kv.V[l][r*kd:(r+1)*kd], s.v[i*kd:(i+1)*kd])
		}
	}
}
