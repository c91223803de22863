package model

import (
	"context"
	"errors"
	"math"
	"testing"
)

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func storyTokens(m *Model) []int {
	return m.Tok.Encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", true, false)
}

// TestRotateKExact: prefill at offset p, shift to q == prefill at q (layer-0 K).
func TestRotateKExact(t *testing.T) {
	for _, name := range []string{"stories260K.bin"} {
		m := openStories(t, name)
		toks := storyTokens(m)[1:] // a chunk without BOS
		ctx := context.Background()
		kvp, _, err := m.Prefill(ctx, toks, 7, 0, ExtendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		kvq, _, err := m.Prefill(ctx, toks, 300, 0, ExtendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		newPos := append([]int(nil), kvq.Pos...)
		if err := m.ShiftKV(kvp, newPos); err != nil {
			t.Fatal(err)
		}
		d := maxDiff(kvp.K[0][:kvp.Len()*kvp.KVDim], kvq.K[0][:kvq.Len()*kvq.KVDim])
		if d > 1e-5 {
			t.Fatalf("shifted layer-0 K differs by %g", d)
		}
		if dv := maxDiff(kvp.V[0], kvq.V[0]); dv != 0 {
			t.Fatalf("layer-0 V depends on position: %g", dv)
		}
		// Deeper layers differ (attention saw different positions only through RoPE of
		// relative offsets, which are equal) — they should also match closely.
		t.Logf("layer-0 K max diff %.2g", d)
	}
}

// TestRotateKTable: K un-rotated to position 0 and rotated back by a RopeTable equals
// the computed K (every layer), and the table rotation is RotateKLayer from 0 exactly.
func TestRotateKTable(t *testing.T) {
	m := openStories(t, "stories260K.bin")
	toks := storyTokens(m)[1:]
	kv, _, err := m.Prefill(context.Background(), toks, 11, 0, ExtendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := kv.Len() * kv.KVDim
	zero := make([]int, kv.Len())
	for l := range m.Config.Layers {
		pre := append([]float32(nil), kv.K[l][:n]...)
		if err := m.RotateKLayer(l, pre, kv.Pos, zero); err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(pre, kv.K[l][:n]); d == 0 {
			t.Fatalf("layer %d: un-rotating changed nothing", l)
		}
		viaLayer := append([]float32(nil), pre...)
		if err := m.RotateKLayer(l, viaLayer, zero, kv.Pos); err != nil {
			t.Fatal(err)
		}
		cs, err := m.RopeTable(l, kv.Pos)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.RotateKTable(pre, cs); err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(pre, viaLayer); d != 0 {
			t.Fatalf("layer %d: table rotation differs from RotateKLayer by %g", l, d)
		}
		if d := maxDiff(pre, kv.K[l][:n]); d > 1e-5 {
			t.Fatalf("layer %d: round trip through position 0 differs by %g", l, d)
		}
	}
	if _, err := m.RopeTable(m.Config.Layers, kv.Pos); !errors.Is(err, ErrInvalid) {
		t.Fatalf("table of a layer out of range: %v", err)
	}
	if err := m.RotateKTable(make([]float32, 3), make([]float32, 2*m.Config.HeadDim)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("table longer than K: %v", err)
	}
}

// TestLayerStepEqualsFull: Embed + LayerStep over all positions for every layer equals
// Prefill (K/V of every layer and the logits).
func TestLayerStepEqualsFull(t *testing.T) {
	m := openStories(t, "stories260K-f32.gguf")
	ctx := context.Background()
	toks := storyTokens(m)
	n := len(toks)
	full, res, err := m.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: []int{n - 1}})
	if err != nil {
		t.Fatal(err)
	}
	kv := NewKV(&m.Config, n)
	pos := make([]int, n)
	rows := make([]int, n)
	for i := range pos {
		pos[i], rows[i] = i, i
	}
	kv.Pos = append(kv.Pos, pos...)
	x := make([]float32, n*m.Config.Dim)
	if err := m.Embed(x, toks); err != nil {
		t.Fatal(err)
	}
	for l := 0; l < m.Config.Layers; l++ {
		if err := m.LayerStep(ctx, l, x, pos, rows, kv, nil); err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(kv.K[l][:n*kv.KVDim], full.K[l][:n*kv.KVDim]); d != 0 {
			t.Fatalf("layer %d K differs by %g", l, d)
		}
	}
	logits := make([]float32, m.Config.Vocab)
	if err := m.Logits(logits, x[(n-1)*m.Config.Dim:], 1); err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(logits, res.Logits); d != 0 {
		t.Fatalf("logits differ by %g", d)
	}
}

// TestSubsetRecompute: with the full KV of layer l but stale rows for a subset S, running
// layer l for S (inputs from the full run) restores those rows and gives the full run's
// outputs for S, with the causal mask by absolute position even when rows are permuted.
func TestSubsetRecompute(t *testing.T) {
	m := openStories(t, "stories260K.bin")
	ctx := context.Background()
	c := &m.Config
	toks := storyTokens(m)
	n := len(toks)
	full, _, err := m.Prefill(ctx, toks, 0, 0, ExtendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Hidden states entering each layer, from a layer-by-layer run.
	hidden := make([][]float32, c.Layers+1)
	x := make([]float32, n*c.Dim)
	if err := m.Embed(x, toks); err != nil {
		t.Fatal(err)
	}
	pos := make([]int, n)
	for i := range pos {
		pos[i] = i
	}
	scratchKV := full.Clone()
	for l := 0; l <= c.Layers; l++ {
		hidden[l] = append([]float32(nil), x...)
		if l < c.Layers {
			if err := m.LayerStep(ctx, l, x, pos, pos, scratchKV, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	S := []int{0, 3, 4, 10, n - 1}
	for l := 0; l < c.Layers; l++ {
		// Permute rows: reverse order (positions move with them).
		kv := full.Clone()
		perm := make([]int, n) // perm[i] = row holding position i
		for i := range perm {
			perm[i] = n - 1 - i
		}
		for i := 0; i < n; i++ {
			r := perm[i]
			kv.Pos[r] = i
			copy(kv.KRow(l, r), full.KRow(l, i))
			copy(kv.VRow(l, r), full.VRow(l, i))
		}
		xs := make([]float32, len(S)*c.Dim)
		sPos := make([]int, len(S))
		sRows := make([]int, len(S))
		for j, i := range S {
			copy(xs[j*c.Dim:(j+1)*c.Dim], hidden[l][i*c.Dim:(i+1)*c.Dim])
			sPos[j], sRows[j] = i, perm[i]
			for e := range kv.KRow(l, perm[i]) { // stale rows
				kv.KRow(l, perm[i])[e] = 1e3
				kv.VRow(l, perm[i])[e] = -1e3
			}
		}
		freshK := make([]float32, len(S)*c.KVDim())
		mass := make([]float32, len(S))
		if err := m.NewStepper(1).LayerStep(ctx, l, xs, sPos, sRows, kv, &StepOptions{FreshK: freshK, Outside: &Span{0, 5}, OutsideMass: mass}); err != nil {
			t.Fatal(err)
		}
		for j, i := range S {
			if d := maxDiff(xs[j*c.Dim:(j+1)*c.Dim], hidden[l+1][i*c.Dim:(i+1)*c.Dim]); d > 1e-4 {
				t.Fatalf("layer %d token %d output differs by %g", l, i, d)
			}
			if d := maxDiff(kv.KRow(l, perm[i]), full.KRow(l, i)); d > 2e-5 {
				t.Fatalf("layer %d token %d K differs by %g", l, i, d)
			}
			if d := maxDiff(freshK[j*c.KVDim():(j+1)*c.KVDim()], full.KRow(l, i)); d > 2e-5 {
				t.Fatalf("FreshK differs by %g", d)
			}
		}
		// Outside mass: token 0 (inside [0,5)) sees only itself: 0; later tokens: in (0,1).
		if mass[0] != 0 || mass[4] <= 0 || mass[4] >= 1 {
			t.Fatalf("outside mass %v", mass)
		}
	}
}

// TestExtendEqualsPrefill: prefill A then extend with B equals prefill of A+B.
func TestExtendEqualsPrefill(t *testing.T) {
	m := openStories(t, "stories260K-f32.gguf")
	ctx := context.Background()
	toks := storyTokens(m)
	n := len(toks)
	_, full, err := m.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: []int{n - 3, n - 1}})
	if err != nil {
		t.Fatal(err)
	}
	kv, _, err := m.Prefill(ctx, toks[:10], 0, 0, ExtendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pos := make([]int, n-10)
	for i := range pos {
		pos[i] = 10 + i
	}
	res, err := m.Extend(ctx, kv, toks[10:], pos, ExtendOptions{Logits: []int{n - 13, n - 11}})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(res.Logits, full.Logits); d > 1e-4 {
		t.Fatalf("extend logits differ by %g", d)
	}
	// Decode state: token by token equals the batch.
	st := m.NewState(nil, n)
	var last []float32
	for _, tk := range toks {
		if last, err = st.Feed(ctx, tk); err != nil {
			t.Fatal(err)
		}
	}
	if d := maxDiff(last, full.Logits[m.Config.Vocab:]); d > 1e-4 {
		t.Fatalf("decode logits differ by %g", d)
	}
}

func TestDecodeNoAllocs(t *testing.T) {
	m := openStories(t, "stories260K-q8_0.gguf")
	ctx := context.Background()
	st := m.NewState(nil, 300)
	if _, err := st.Feed(ctx, 1, 403, 407); err != nil {
		t.Fatal(err)
	}
	tok := 261
	smp := NewSampler(0.8, 0.9, 42)
	allocs := testing.AllocsPerRun(50, func() {
		l, err := st.Feed(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		tok = smp.Sample(l)
	})
	if allocs != 0 {
		t.Fatalf("decode step (with sampling) allocates %.1f times", allocs)
	}
}

func TestCancel(t *testing.T) {
	m := openStories(t, "stories260K.bin")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := m.Prefill(ctx, []int{1, 2, 3}, 0, 0, ExtendOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled prefill: %v", err)
	}
	if _, _, err := m.Prefill(context.Background(), []int{1, 9999}, 0, 0, ExtendOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad token: %v", err)
	}
}

// TestSamplerMatchesRunC: llama2.c's xorshift generator and nucleus sampling.
func TestSamplerDeterministic(t *testing.T) {
	logits := []float32{1, 2, 3, 0.5, 2.5}
	a, b := NewSampler(1, 0.9, 7), NewSampler(1, 0.9, 7)
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		x, y := a.Sample(logits), b.Sample(logits)
		if x != y {
			t.Fatal("same seed, different samples")
		}
		seen[x] = true
	}
	if len(seen) < 3 || seen[3] {
		t.Fatalf("top-p 0.9 sample set %v (token 3 has p≈0.03 and must be cut)", seen)
	}
}

// TestOutsideMassPaths: the outside-span attention mass from the batched (GEMM) path
// equals the per-token (dot product) path, and lies in [0, 1].
func TestOutsideMassPaths(t *testing.T) {
	m := openStories(t, "stories260K.bin")
	ctx := context.Background()
	toks := storyTokens(m)
	n := len(toks)
	span := &Span{Lo: 5, Hi: 15}
	_, batch, err := m.Prefill(ctx, toks, 0, 0, ExtendOptions{Outside: span})
	if err != nil {
		t.Fatal(err)
	}
	kv := NewKV(&m.Config, n)
	for i := 0; i < n; i++ {
		one, err := m.Extend(ctx, kv, toks[i:i+1], []int{i}, ExtendOptions{Outside: span})
		if err != nil {
			t.Fatal(err)
		}
		for l := 0; l < m.Config.Layers; l++ {
			a, b := batch.OutsideMass[l][i], one.OutsideMass[l][0]
			if math.Abs(float64(a-b)) > 1e-5 || a < 0 || a > 1.00001 {
				t.Fatalf("layer %d token %d: batched mass %g, per-token %g", l, i, a, b)
			}
			if i >= span.Lo && i < 2*span.Lo && l == 0 && a == 0 {
				t.Fatalf("token %d pays no attention outside the span", i)
			}
		}
	}
	if batch.OutsideMass[0][0] != 1 {
		t.Fatalf("token 0 (outside the span, sees only itself): mass %g", batch.OutsideMass[0][0])
	}
}

// TestExtendRepeatedLogits: Logits may name one index several times (more requested rows
// than new tokens); each copy equals the single request.
func TestExtendRepeatedLogits(t *testing.T) {
	m := openStories(t, "stories260K.bin")
	ctx := context.Background()
	_, one, err := m.Prefill(ctx, []int{1, 403}, 0, 0, ExtendOptions{Logits: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	_, rep, err := m.Prefill(ctx, []int{1, 403}, 0, 0, ExtendOptions{Logits: []int{1, 1, 0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config.Vocab
	for _, j := range []int{0, 1, 3} {
		if d := maxDiff(rep.Logits[j*v:(j+1)*v], one.Logits); d != 0 {
			t.Fatalf("repeated logits row %d differs by %g", j, d)
		}
	}
}
