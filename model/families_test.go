package model

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
)

// Model families against llama.cpp (testdata/families): each tiny-* synth shape (f32,
// seed 7) — SmolLM2 (llama), Qwen3 (per-head Q/K norms, heads wider than
// embedding/heads), Gemma 2 (embedding scale, post norms, GeGLU, attention and final
// soft-caps, a sliding window on even layers), Gemma 3 (Q/K norms, five windowed layers
// with RoPE base 10000 per global one) and Mistral (a window on every layer) — with
// llama.cpp's logits for two token sequences (12 tokens, every position; 72 tokens, five
// positions on both sides of the 16-token window). The goldens name the llama.cpp build
// and the SHA-256 of the synthesized file they were computed on. llama.cpp's llama
// architecture has no sliding window, so Mistral's window is checked on a one-layer file,
// where a windowed query at p sees exactly the 16 tokens ending at p: the golden rows
// there are llama.cpp's logits of that sub-sequence. On the three-layer Mistral file,
// llama.cpp (window ignored) must agree below the window and disagree from it on.
//
// Bound: max |ours − llama.cpp| ÷ std of llama.cpp's logits ≤ 2e-3 per case, for prefill
// and for decode (one token per State.Feed: the few-query attention path).

type familyGolden struct {
	Shape  string `json:"shape"`
	Seed   uint64 `json:"seed"`
	Layers int    `json:"layers"`
	SHA256 string `json:"gguf_sha256"`
	Ref    string `json:"reference"`
	Cases  []struct {
		Tokens    []int       `json:"tokens"`
		Positions []int       `json:"positions"`
		Logits    [][]float32 `json:"logits"`
	} `json:"cases"`
}

func readFamilyGolden(t *testing.T, path string) *familyGolden {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var g familyGolden
	if err := json.NewDecoder(zr).Decode(&g); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &g
}

// synthFile writes a synth model to a temporary file and returns its path and SHA-256.
func synthFile(t testing.TB, shape string, layers int, seed uint64) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), shape+".gguf")
	fd, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if err := SynthGGUF(context.Background(), multiWriter{fd, h}, SynthOptions{Shape: shape, DType: kernels.F32, Seed: seed, Layers: layers}); err != nil {
		t.Fatal(err)
	}
	if err := fd.Close(); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

type multiWriter [2]interface{ Write([]byte) (int, error) }

func (w multiWriter) Write(b []byte) (int, error) {
	if n, err := w[0].Write(b); err != nil {
		return n, err
	}
	return w[1].Write(b)
}

func TestFamiliesLlamaCpp(t *testing.T) {
	files, err := filepath.Glob("testdata/families/*.json.gz")
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens in testdata/families (%v)", err)
	}
	for _, file := range files {
		g := readFamilyGolden(t, file)
		name := strings.TrimSuffix(filepath.Base(file), ".json.gz")
		t.Run(name, func(t *testing.T) {
			path, sum := synthFile(t, g.Shape, g.Layers, g.Seed)
			if sum != g.SHA256 {
				t.Fatalf("synth %s (seed %d, layers %d) has SHA-256 %s, the golden was computed on %s: the generator changed; regenerate the golden with llama.cpp",
					g.Shape, g.Seed, g.Layers, sum, g.SHA256)
			}
			m, err := Open(path, Options{Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			V := m.Config.Vocab
			// Mistral with three layers: llama.cpp ignores the window.
			ignored := m.Config.SlidingWindow > 0 && m.Config.Layers > 1 && m.Config.Arch == "llama"
			for _, c := range g.Cases {
				pre := oracleRun(t, m, c.Tokens, false)
				dec := oracleRun(t, m, c.Tokens, true)
				var gold []float32
				for _, r := range c.Logits {
					gold = append(gold, r...)
				}
				std := stdDev(gold)
				for how, ours := range map[string][][]float32{"prefill": pre, "decode": dec} {
					var worst, after float64
					for i, p := range c.Positions {
						d := maxAbs(ours[p][:V], c.Logits[i]) / std
						if ignored && p >= m.Config.SlidingWindow {
							after = max(after, d)
							continue
						}
						worst = max(worst, d)
					}
					t.Logf("%s n=%d %s: max|Δ|/std %.3g (std %.3g)", name, len(c.Tokens), how, worst, std)
					if worst > 2e-3 {
						t.Errorf("%s n=%d %s: max|Δ|/std %.3g > 2e-3 against %s", name, len(c.Tokens), how, worst, g.Ref)
					}
					if ignored && len(c.Tokens) > m.Config.SlidingWindow {
						t.Logf("%s n=%d %s: from the window on, llama.cpp without it differs by %.3g std", name, len(c.Tokens), how, after)
						if after < 0.05 {
							t.Errorf("%s: the sliding window changes nothing (%.3g std from llama.cpp without it)", name, after)
						}
					}
				}
			}
		})
	}
}
