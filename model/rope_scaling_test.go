package model

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/model/gguf"
)

func openOracle(t testing.TB, name string) *Model {
	t.Helper()
	m, err := Open(filepath.Join(oracleDir(t), name), Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestLlama3FreqFactors: the divisors computed from the Llama 3.1 parameters (θ 500000,
// factor 32, low 1, high 4, original context 8192) are the ones llama.cpp's converter wrote
// into tiny-llama3's rope_freqs.weight (float32), covering the three regimes.
func TestLlama3FreqFactors(t *testing.T) {
	m := openOracle(t, "tiny-llama3-f32.gguf")
	rs := m.Config.RopeScaling
	if rs == nil || rs.Type != "llama3" || len(rs.FreqFactors) != m.Config.HeadDim/2 {
		t.Fatalf("rope scaling %+v", rs)
	}
	got := Llama3FreqFactors(500000, 32, 32, 1, 4, 8192)
	var one, full, mid int
	for i, want := range rs.FreqFactors {
		if math.Abs(got[i]-want) > 1e-6*want {
			t.Fatalf("pair %d: divisor %g, file has %g", i, got[i], want)
		}
		switch {
		case got[i] == 1:
			one++
		case got[i] == 32:
			full++
		default:
			mid++
		}
	}
	if one == 0 || full == 0 || mid == 0 {
		t.Fatalf("regimes: %d kept, %d divided by the factor, %d interpolated", one, full, mid)
	}
	// The frequencies the forward pass uses include the divisors.
	f := m.Config.RopeFreqs()
	for i := range f {
		if want := math.Pow(500000, -float64(2*i)/32) / rs.FreqFactors[i]; math.Abs(f[i]-want) > 1e-15*want {
			t.Fatalf("pair %d: frequency %g, want %g", i, f[i], want)
		}
	}
}

// TestRotateKScaledRoPE: on tiny-llama3 (scaled frequencies) a chunk prefilled at position
// 7 and shifted with RotateK to 1500 has the layer-0 K of the chunk prefilled at 1500;
// re-rotating with the unscaled frequencies would not.
func TestRotateKScaledRoPE(t *testing.T) {
	m := openOracle(t, "tiny-llama3-f32.gguf")
	toks := loadOracle(t)["tiny-llama3-f32.gguf"][1].Tokens[1:40]
	ctx := context.Background()
	kvp, _, err := m.Prefill(ctx, toks, 7, 0, ExtendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kvq, _, err := m.Prefill(ctx, toks, 1500, 0, ExtendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := kvp.Len() * kvp.KVDim
	plain := kvp.Clone()
	if err := m.ShiftKV(kvp, kvq.Pos); err != nil {
		t.Fatal(err)
	}
	scale := maxDiff(kvq.K[0][:n], make([]float32, n))
	d := maxDiff(kvp.K[0][:n], kvq.K[0][:n])
	t.Logf("layer-0 K after RotateK: max diff %.2g (max |K| %.2g)", d, scale)
	if d > 1e-5*scale {
		t.Fatalf("shifted layer-0 K differs by %g", d)
	}
	saved := m.rope
	unscaled := m.Config
	unscaled.RopeScaling = nil
	m.rope = unscaled.RopeFreqs()
	err = m.ShiftKV(plain, kvq.Pos)
	m.rope = saved
	if err != nil {
		t.Fatal(err)
	}
	if du := maxDiff(plain.K[0][:n], kvq.K[0][:n]); du < 1e-2*scale {
		t.Fatalf("unscaled re-rotation differs by only %g: the scaling is not exercised", du)
	}
}

// TestHFLlama3RopeScaling: tiny-llama3's weights written as a HF checkpoint with
// rope_scaling {rope_type: llama3, ...} give the GGUF file's logits (whose divisors come
// from rope_freqs.weight); without rope_scaling they do not.
func TestHFLlama3RopeScaling(t *testing.T) {
	ref := openOracle(t, "tiny-llama3-f32.gguf")
	dir := t.TempDir()
	writeHF(t, ref, dir, "llama", nil, nil, nil)
	scaling := map[string]any{"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
		"original_max_position_embeddings": 8192}
	setHFConfig(t, dir, "rope_scaling", scaling)
	hf, err := Open(dir, Options{Tokenizer: storiesPath(t, "tok512.bin"), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	if rs := hf.Config.RopeScaling; rs == nil || rs.Factor != 32 || rs.OriginalContext != 8192 {
		t.Fatalf("rope scaling %+v", rs)
	}
	toks := loadOracle(t)["tiny-llama3-f32.gguf"][2].Tokens
	all := make([]int, len(toks))
	for i := range all {
		all[i] = i
	}
	ctx := context.Background()
	_, a, err := ref.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: all})
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := hf.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: all})
	if err != nil {
		t.Fatal(err)
	}
	std := stdDev(a.Logits)
	d := maxDiff(a.Logits, b.Logits)
	t.Logf("HF llama3 vs GGUF rope_freqs: max |Δ| = %.2g (logit std %.3g)", d, std)
	if d > 1e-4*std {
		t.Fatalf("logits differ by %g", d)
	}
	setHFConfig(t, dir, "rope_scaling", nil)
	plain, err := Open(dir, Options{Tokenizer: storiesPath(t, "tok512.bin"), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, c, err := plain.Prefill(ctx, toks, 0, 0, ExtendOptions{Logits: all})
	if err != nil {
		t.Fatal(err)
	}
	if du := maxDiff(a.Logits, c.Logits); du < 1e-2*std {
		t.Fatalf("without rope_scaling the logits differ by only %g", du)
	}
}

// setHFConfig sets one key of dir/config.json.
func setHFConfig(t *testing.T, dir, key string, v any) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg[key] = v
	if b, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHFRopeScalingErrors: the kinds not implemented are rejected naming config.json and
// the key; llama3 with a missing or bad parameter names that parameter; "default" is none.
func TestHFRopeScalingErrors(t *testing.T) {
	ref := openStories(t, "stories260K.bin")
	dir := t.TempDir()
	writeHF(t, ref, dir, "llama", nil, nil, nil)
	cfgPath := filepath.Join(dir, "config.json")
	open := func() (*Model, error) {
		return Open(dir, Options{Tokenizer: storiesPath(t, "tok512.bin"), Threads: 1})
	}
	llama3 := func(drop string, set map[string]any) map[string]any {
		m := map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
			"original_max_position_embeddings": 8192}
		delete(m, drop)
		for k, v := range set {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		scaling  any
		sentinel error
		want     string
	}{
		{map[string]any{"rope_type": "yarn", "factor": 4.0}, ErrUnsupported, `rope_scaling.rope_type = "yarn"`},
		{map[string]any{"rope_type": "dynamic", "factor": 2.0}, ErrUnsupported, `rope_scaling.rope_type = "dynamic"`},
		{map[string]any{"rope_type": "linear"}, ErrFormat, "rope_scaling.factor missing"},
		{map[string]any{"rope_type": "longrope"}, ErrUnsupported, `"longrope"`},
		{llama3("factor", nil), ErrFormat, "rope_scaling.factor missing"},
		{llama3("original_max_position_embeddings", nil), ErrFormat, "rope_scaling.original_max_position_embeddings missing"},
		{llama3("", map[string]any{"factor": 0.5}), ErrFormat, "rope_scaling.factor = 0.5"},
		{llama3("", map[string]any{"high_freq_factor": 1.0}), ErrFormat, "rope_scaling.high_freq_factor = 1"},
		{llama3("", map[string]any{"original_max_position_embeddings": 10.5}), ErrFormat, "rope_scaling.original_max_position_embeddings = 10.5"},
		{"llama3", ErrFormat, "rope_scaling"},
	} {
		setHFConfig(t, dir, "rope_scaling", c.scaling)
		_, err := open()
		if !errors.Is(err, c.sentinel) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), cfgPath) {
			t.Errorf("rope_scaling %v: error %v, want %v naming %q and %s", c.scaling, err, c.sentinel, c.want, cfgPath)
		}
	}
	for _, ok := range []any{nil, map[string]any{"rope_type": "default"}, llama3("", nil), map[string]any{"type": "linear", "factor": 2.0}} {
		setHFConfig(t, dir, "rope_scaling", ok)
		m, err := open()
		if err != nil {
			t.Fatalf("rope_scaling %v: %v", ok, err)
		}
		mm, _ := ok.(map[string]any)
		typ, _ := mm["rope_type"].(string)
		if typ == "" {
			typ, _ = mm["type"].(string)
		}
		if (m.Config.RopeScaling != nil) != (typ == "llama3" || typ == "linear") {
			t.Errorf("rope_scaling %v: loaded %+v", ok, m.Config.RopeScaling)
		}
		if typ == "linear" {
			for i, f := range m.rope { // every frequency halved
				if want := math.Pow(m.Config.RopeTheta, -float64(2*i)/float64(m.Config.HeadDim)) / 2; math.Abs(f-want) > 1e-15 {
					t.Errorf("linear: frequency %d is %g, want %g", i, f, want)
				}
			}
		}
		m.Close()
	}
}

// TestGGUFRopeScalingKeys: GGUF RoPE scaling keys are read as llama.cpp reads them; the
// kinds not implemented are rejected naming the file and the key, and rope_freqs.weight
// is checked.
func TestGGUFRopeScalingKeys(t *testing.T) {
	kv := func(k string, v gguf.Value) []gguf.KV { return []gguf.KV{{Key: k, Value: v}} }
	for _, c := range []struct {
		extra     []gguf.KV
		freqs     []float32
		sentinel  error
		want      string
		llama3Set bool
		linear    float64 // > 0: linear scaling by this factor
	}{
		{kv("llama.rope.scaling.type", gguf.String("yarn")), nil, ErrUnsupported, `llama.rope.scaling.type = "yarn"`, false, 0},
		{kv("llama.rope.scaling.type", gguf.String("longrope")), nil, ErrUnsupported, `llama.rope.scaling.type = "longrope"`, false, 0},
		{kv("llama.rope.scaling.factor", gguf.Float32(-2)), nil, ErrFormat, "llama.rope.scaling.factor = -2", false, 0},
		{append(kv("llama.rope.scaling.factor", gguf.Float32(2)), gguf.KV{Key: "x", Value: gguf.Uint32(0)}), []float32{1, 4}, ErrUnsupported, "rope_freqs.weight together with linear", false, 0},
		{kv("llama.rope.scaling.type", gguf.Uint32(1)), nil, ErrFormat, "llama.rope.scaling.type", false, 0},
		{nil, []float32{1, 2, 3}, ErrFormat, `"rope_freqs.weight" has shape [3]`, false, 0},
		{nil, []float32{1, 0}, ErrFormat, "frequency factor 1 is 0", false, 0},
		{nil, []float32{1, float32(math.Inf(1))}, ErrFormat, "frequency factor 1 is +Inf", false, 0},
		// Accepted: no scaling, or type none whatever the factor, factor 1, Llama 3.1 factors.
		{kv("llama.rope.scaling.type", gguf.String("none")), nil, nil, "", false, 0},
		{append(kv("llama.rope.scaling.type", gguf.String("none")), kv("llama.rope.scaling.factor", gguf.Float32(8))...), nil, nil, "", false, 0},
		{kv("llama.rope.scaling.factor", gguf.Float32(1)), nil, nil, "", false, 0},
		{nil, []float32{1, 4}, nil, "", true, 0},
		// Linear position interpolation, as llama.cpp reads it.
		{append(kv("llama.rope.scaling.type", gguf.String("linear")), kv("llama.rope.scaling.factor", gguf.Float32(2))...), nil, nil, "", false, 2},
		{kv("llama.rope.scaling.factor", gguf.Float32(4)), nil, nil, "", false, 4},
		{kv("llama.rope.scale_linear", gguf.Float32(2)), nil, nil, "", false, 2},
	} {
		m, err := loadGGUFBytes("scaled.gguf", tinyGGUFWith(t, c.extra, c.freqs))
		if c.sentinel == nil {
			if err != nil {
				t.Fatalf("%v %v: %v", c.extra, c.freqs, err)
			}
			if got := m.Config.RopeScaling != nil; got != (c.llama3Set || c.linear > 0) {
				t.Errorf("%v %v: rope scaling %+v", c.extra, c.freqs, m.Config.RopeScaling)
			}
			if c.linear > 0 {
				want := []float64{1 / c.linear, math.Pow(10000, -2.0/4) / c.linear} // head dim 4
				if rs := m.Config.RopeScaling; rs.Type != "linear" || rs.Factor != c.linear ||
					math.Abs(m.rope[0]-want[0]) > 1e-15 || math.Abs(m.rope[1]-want[1]) > 1e-15 {
					t.Errorf("linear %g: %+v, frequencies %v, want %v", c.linear, rs, m.rope, want)
				}
			}
			if c.llama3Set {
				want := []float64{1, math.Pow(10000, -2.0/4) / 4} // head dim 4
				if f := m.rope; math.Abs(f[0]-want[0]) > 1e-15 || math.Abs(f[1]-want[1]) > 1e-15 {
					t.Errorf("frequencies %v, want %v", f, want)
				}
			}
			m.Close()
			continue
		}
		if !errors.Is(err, c.sentinel) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "scaled.gguf") {
			t.Errorf("%v %v: error %v, want %v naming %q and the file", c.extra, c.freqs, err, c.sentinel, c.want)
		}
	}
}
