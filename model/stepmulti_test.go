package model

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
)

// multiCase is one group of a LayerStepMulti test: a sequence with a prompt of T rows
// in its KV whose rows [lo, lo+n) are stepped.
type multiCase struct {
	T, lo, n int
	opts     StepOptions
}

// multiSetup builds each case's KV (a prefilled prompt) and input rows.
func multiSetup(t *testing.T, m *Model, cases []multiCase, seed int) ([]*KV, [][]float32) {
	t.Helper()
	c := &m.Config
	var kvs []*KV
	var xs [][]float32
	for i, mc := range cases {
		toks := make([]int, mc.T)
		for j := range toks {
			toks[j] = 1 + (j*7919+i*104729+seed)%(c.Vocab-1)
		}
		kv, _, err := m.Prefill(context.Background(), toks, 0, 0, ExtendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, mc.n*c.Dim)
		for j := range x {
			x[j] = float32((j*31+i*17+seed)%101)/101 - 0.5
		}
		kvs, xs = append(kvs, kv), append(xs, x)
	}
	return kvs, xs
}

func rangeInts(lo, n int) []int {
	r := make([]int, n)
	for i := range r {
		r[i] = lo + i
	}
	return r
}

// stepMultiVsAlone runs layer l for every case alone (LayerStep) and together
// (LayerStepMulti) on copies of the same KVs and inputs and returns the largest relative
// difference of the outputs (X, the KV layer, FreshK/FreshV).
func stepMultiVsAlone(t *testing.T, m *Model, l int, cases []multiCase) float64 {
	t.Helper()
	ctx := context.Background()
	c := &m.Config
	kd := c.KVDim()
	kvA, xA := multiSetup(t, m, cases, 5)
	kvB, xB := multiSetup(t, m, cases, 5)
	freshA := make([][2][]float32, len(cases))
	freshB := make([][2][]float32, len(cases))
	st := m.NewStepper(1)
	var groups []StepGroup
	for i, mc := range cases {
		oa, ob := mc.opts, mc.opts
		if mc.opts.FreshK != nil {
			freshA[i] = [2][]float32{make([]float32, mc.n*kd), make([]float32, mc.n*kd)}
			freshB[i] = [2][]float32{make([]float32, mc.n*kd), make([]float32, mc.n*kd)}
			oa.FreshK, oa.FreshV = freshA[i][0], freshA[i][1]
			ob.FreshK, ob.FreshV = freshB[i][0], freshB[i][1]
		}
		r := rangeInts(mc.lo, mc.n)
		if err := st.LayerStep(ctx, l, xA[i], r, r, kvA[i], &oa); err != nil {
			t.Fatal(err)
		}
		groups = append(groups, StepGroup{X: xB[i], Pos: r, Rows: r, KV: kvB[i], Opts: &ob})
	}
	if err := m.NewStepper(4).LayerStepMulti(ctx, l, groups); err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	cmp := func(a, b []float32) {
		var num, den float64
		for j := range a {
			num = math.Max(num, math.Abs(float64(a[j]-b[j])))
			den = math.Max(den, math.Abs(float64(a[j])))
		}
		if num > 0 {
			worst = math.Max(worst, num/math.Max(den, 1e-30))
		}
	}
	for i := range cases {
		cmp(xA[i], xB[i])
		cmp(kvA[i].K[l], kvB[i].K[l])
		cmp(kvA[i].V[l], kvB[i].V[l])
		if freshA[i][0] != nil {
			cmp(freshA[i][0], freshB[i][0])
			cmp(freshA[i][1], freshB[i][1])
		}
	}
	return worst
}

// TestLayerStepMultiEqualsAlone: groups of rows of different sequences stepped together
// get what each gets stepped alone — bit for bit when every group and the batch are
// below the GEMM threshold (3+5+2 rows) and, for q8_0 weights, when all are above it (≥ 40
// rows each; f32 weights within 1e-5 there), within float rounding (1e-4) when small
// groups make a batch above it — including groups that
// stop after K/V (KVOnly, FreshK/FreshV) or do not write the KV (SkipWrite), mixed in
// one call.
func TestLayerStepMultiEqualsAlone(t *testing.T) {
	simd := cpu.Active() != cpu.Generic
	for _, name := range []string{"stories260K-f32.gguf", "stories260K-q8_0.gguf"} {
		t.Run(name, func(t *testing.T) {
			m := openStories(t, name)
			quant := strings.Contains(name, "q8_0")
			kd := m.Config.KVDim()
			fresh := func(n int) StepOptions {
				return StepOptions{KVOnly: true, SkipWrite: true, FreshK: make([]float32, n*kd), FreshV: make([]float32, n*kd)}
			}
			below := []multiCase{{T: 60, lo: 10, n: 3}, {T: 90, lo: 85, n: 5}, {T: 40, lo: 0, n: 2}}
			above := []multiCase{{T: 120, lo: 20, n: 41}, {T: 200, lo: 150, n: 50, opts: StepOptions{SkipWrite: true}},
				{T: 100, lo: 0, n: 100, opts: fresh(100)}, {T: 64, lo: 20, n: 44}}
			mixed := []multiCase{{T: 60, lo: 10, n: 9}, {T: 90, lo: 80, n: 10, opts: fresh(10)}, {T: 50, lo: 0, n: 11}, {T: 70, lo: 5, n: 30}}
			for _, l := range []int{0, m.Config.Layers - 1} {
				if d := stepMultiVsAlone(t, m, l, below); simd && d != 0 {
					t.Errorf("layer %d, groups below the GEMM threshold: relative difference %g, want 0", l, d)
				}
				// Above the threshold the int8 GEMM computes each row as alone wherever it
				// lies in the batch; the float GEMM's tail panels sum in another order.
				if d := stepMultiVsAlone(t, m, l, above); simd && quant && d != 0 || d > 1e-5 {
					t.Errorf("layer %d, groups above the GEMM threshold: relative difference %g, want %s", l, d, map[bool]string{true: "0", false: "≤ 1e-5"}[quant])
				}
				d := stepMultiVsAlone(t, m, l, mixed)
				t.Logf("layer %d: small groups in a batch above the threshold: relative difference %g", l, d)
				if d > 1e-4 {
					t.Errorf("layer %d, small groups in a batch above the threshold: relative difference %g > 1e-4", l, d)
				}
			}
		})
	}
}

// TestLayerStepMultiErrors: bad groups are errors, and nothing is computed.
func TestLayerStepMultiErrors(t *testing.T) {
	m := openStories(t, "stories260K-f32.gguf")
	ctx := context.Background()
	kvs, xs := multiSetup(t, m, []multiCase{{T: 20, n: 4}, {T: 20, n: 4}}, 1)
	r := rangeInts(0, 4)
	ok := func(i int) StepGroup { return StepGroup{X: xs[i], Pos: r, Rows: r, KV: kvs[i]} }
	st := m.NewStepper(8)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for name, tc := range map[string]struct {
		ctx    context.Context
		groups []StepGroup
	}{
		"none":      {ctx, nil},
		"empty":     {ctx, []StepGroup{ok(0), {X: xs[1], KV: kvs[1]}}},
		"shared KV": {ctx, []StepGroup{ok(0), {X: xs[1], Pos: r, Rows: r, KV: kvs[0]}}},
		"bad row":   {ctx, []StepGroup{ok(0), {X: xs[1], Pos: r, Rows: []int{0, 1, 2, 30}, KV: kvs[1]}}},
		"outside":   {ctx, []StepGroup{ok(0), {X: xs[1], Pos: r, Rows: r, KV: kvs[1], Opts: &StepOptions{Outside: &Span{0, 2}, OutsideMass: make([]float32, 4)}}}},
		"short x":   {ctx, []StepGroup{ok(0), {X: xs[1][:3], Pos: r, Rows: r, KV: kvs[1]}}},
		"cancelled": {cancelled, []StepGroup{ok(0), ok(1)}},
	} {
		before := append([]float32(nil), xs[0]...)
		err := st.LayerStepMulti(tc.ctx, 0, tc.groups)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if name == "cancelled" && !errors.Is(err, context.Canceled) || name != "cancelled" && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
		for j := range before {
			if before[j] != xs[0][j] {
				t.Fatalf("%s: group 0 changed by a refused call", name)
			}
		}
	}
}
