package blend

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"

	"github.com/ragkv/ragkv/model"
)

func openStories(t testing.TB) *model.Model {
	t.Helper()
	d := shared.Path(t)
	m, err := model.Open(filepath.Join(d, "models/stories260K/stories260K.bin"),
		model.Options{Tokenizer: filepath.Join(d, "models/stories260K/tok512.bin"), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// stories returns the token ids (with BOS) of the first n dev stories, cut to the
// model context.
func stories(t testing.TB, m *model.Model, n int) [][]int {
	t.Helper()
	f, err := os.Open(filepath.Join(shared.Path(t), "data/stories/stories.dev.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]int
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() && len(out) < n {
		var s struct{ Text string }
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		toks := m.Tok.Encode(s.Text, true, false)
		out = append(out, toks[:min(len(toks), m.Config.Ctx)])
	}
	return out
}

// chunked splits a prompt into k chunks and computes each chunk's KV alone at
// position base 0 (the first keeps the BOS).
func chunked(t testing.TB, m *model.Model, prompt []int, k int) []Segment {
	t.Helper()
	var segs []Segment
	n := len(prompt)
	for i := 0; i < k; i++ {
		toks := prompt[i*n/k : (i+1)*n/k]
		kv, _, err := m.Prefill(context.Background(), toks, 0, 0, model.ExtendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, Segment{Tokens: toks, Source: &KVSource{KV: kv}})
	}
	return segs
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func kvEqual(t *testing.T, what string, a, b *model.KV) {
	t.Helper()
	if a.Len() != b.Len() {
		t.Fatalf("%s: %d vs %d rows", what, a.Len(), b.Len())
	}
	n := a.Len() * a.KVDim
	for l := range a.K {
		if d := maxAbsDiff(a.K[l][:n], b.K[l][:n]); d != 0 {
			t.Fatalf("%s: layer %d K differs by %g", what, l, d)
		}
		if d := maxAbsDiff(a.V[l][:n], b.V[l][:n]); d != 0 {
			t.Fatalf("%s: layer %d V differs by %g", what, l, d)
		}
	}
}
