package blendeval

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/model"
)

// TestRunProtocol runs the protocol on a handful of stories and checks what must hold
// whatever the numbers: full is the reference, r = 1 equals it exactly, ratio 0
// Cache-Craft is naive, prefix is exact, recompute fractions follow the budget,
// and recomputing helps.
func TestRunProtocol(t *testing.T) {
	d := shared.Path(t)
	m, err := model.Open(filepath.Join(d, "models/stories260K/stories260K.bin"),
		model.Options{Tokenizer: filepath.Join(d, "models/stories260K/tok512.bin"), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var stories [][]int
	for _, text := range []string{
		"Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to the ball and kicked it very high. The ball flew over the fence and into the garden of an old man. Lily was scared, but she went to the old man and said sorry. The old man smiled and gave her the ball back.",
		"Tom had a small dog named Max. Max liked to run and jump in the grass. One sunny day, Tom and Max went to the lake. They saw a duck swimming in the water. Max barked at the duck and the duck flew away. Tom laughed and threw a stick for Max. Max ran into the water to get the stick and came back all wet. Tom hugged Max and they went home happy.",
		"x", // too short: skipped
	} {
		toks := m.Tok.Encode(text, true, false)
		stories = append(stories, toks[:min(len(toks), m.Config.Ctx)])
	}
	v, err := ParseVariant("cacheblend:dev=k,gradual=1")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), m, stories, Options{Ratios: []float64{0, 0.3, 1}, Variants: []Variant{v}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stories != 2 || rep.Skipped != 1 || len(rep.Methods) != 3+3*3 {
		t.Fatalf("report: %d stories, %d skipped, %d rows", rep.Stories, rep.Skipped, len(rep.Methods))
	}
	rows := map[string]*Row{}
	for _, r := range rep.Methods {
		key := r.Method
		if r.Variant != "" {
			key = r.Variant
		}
		if r.Ratio != nil {
			key += "@" + map[float64]string{0: "0", 0.3: "0.3", 1: "1"}[*r.Ratio]
		}
		rows[key] = r
	}
	full, naive := rows["full"], rows["naive"]
	if full.KL != 0 || full.Top1 != 1 || full.PPLRatio != 1 {
		t.Fatalf("full %+v", full)
	}
	if naive.KL <= 0 || naive.RecomputeFrac != 0 {
		t.Fatalf("naive %+v", naive)
	}
	if p := rows["prefix"]; p.KL > 1e-6 || p.RecomputeFrac < 0.5 {
		t.Fatalf("prefix %+v", p)
	}
	for _, name := range []string{"cacheblend", "cachecraft", v.Name} {
		one := rows[name+"@1"]
		if one.KL != 0 || one.Top1 != 1 || one.PPL != full.PPL {
			t.Fatalf("%s at r=1 differs from full: %+v", name, one)
		}
		r3 := rows[name+"@0.3"]
		if r3.KL >= naive.KL || r3.RecomputeFrac < 0.25 || r3.RecomputeFrac > 0.31 {
			t.Fatalf("%s at r=0.3: kl %g (naive %g), recompute %g", name, r3.KL, naive.KL, r3.RecomputeFrac)
		}
	}
	if c0 := rows["cachecraft@0"]; c0.KL != naive.KL || c0.RecomputeFrac != 0 {
		t.Fatalf("cachecraft at r=0 is not naive: %+v vs %+v", c0, naive)
	}
	if c := rows["cachecraft@0.3"]; len(c.ChunkFracs) != 3 || c.ChunkFracs[0] != 0 || c.ChunkFracs[1] == 0 {
		t.Fatalf("cachecraft chunk fractions %v (the exact first chunk must get none)", c.ChunkFracs)
	}
	// The other-context statistics run too.
	if _, err := Run(context.Background(), m, stories[:2], Options{Ratios: []float64{0.2}, Context: ContextOther}); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseVariant("cacheblend:dev=q"); err == nil {
		t.Fatal("bad variant accepted")
	}
	if _, err := Run(context.Background(), m, stories, Options{Ratios: []float64{2}}); err == nil {
		t.Fatal("ratio 2 accepted")
	}
	_ = blend.Full

	// Stored formats: f32 storage is the float KV itself (same rows), q2 costs fidelity
	// in naive fusion and ~1/5 of f16's bytes; r = 1 recomputes everything, so it stays
	// exact in any format.
	kvRun := func(format, score string) *Report {
		f, err := chunkcache.ParseFormat(format)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Run(context.Background(), m, stories[:2], Options{Ratios: []float64{1}, KV: f, KVScore: score})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	f32 := kvRun("f32", "")
	if f32.Methods[2].KL != naive.KL || f32.KV.BytesPerToken != float64(4*2*m.Config.Layers*m.Config.KVDim()) {
		t.Fatalf("f32 storage: naive KL %v (want %v), %v bytes/token", f32.Methods[2].KL, naive.KL, f32.KV.BytesPerToken)
	}
	q2 := kvRun("q2", "")
	if q2.Methods[2].KL <= naive.KL || q2.Methods[3].KL != 0 || !(q2.KV.BytesPerToken < f32.KV.BytesPerToken/8) || q2.KV.AvgBits != 2 {
		t.Fatalf("q2 storage: naive KL %v (f32 %v), r=1 KL %v, %+v", q2.Methods[2].KL, naive.KL, q2.Methods[3].KL, q2.KV)
	}
	for _, score := range KVScores {
		if mx := kvRun("mixed", score); !(mx.KV.AvgBits > 2 && mx.KV.AvgBits <= 2.5) || mx.KV.Score != score {
			t.Fatalf("mixed/%s: %+v", score, mx.KV)
		}
	}
	if _, err := Run(context.Background(), m, stories, Options{KVScore: "nope"}); err == nil {
		t.Fatal("bad kv score accepted")
	}
}
