package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/shared"
)

type logitsOut struct {
	Model       string      `json:"model"`
	WeightType  string      `json:"weight_type"`
	CPUPath     string      `json:"cpu_path"`
	Activations string      `json:"activations"`
	Tokens      int         `json:"tokens"`
	Positions   []int       `json:"positions"`
	Logits      [][]float32 `json:"logits"`
}

// goldenRow is llama.cpp's first golden line for model file name (the BOS + 16 sequence).
func goldenRow(t *testing.T, dir, name string) ([]int, [][]float32) {
	f, err := os.Open(filepath.Join(dir, "golden_logits.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var c struct {
			Model  string      `json:"model"`
			Tokens []int       `json:"tokens"`
			Logits [][]float32 `json:"logits"`
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		if c.Model == name {
			return c.Tokens, c.Logits
		}
	}
	t.Fatalf("no golden line for %s", name)
	return nil, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// TestModelLogits: `model logits` on the Llama 3.1 scaled-RoPE oracle model gives
// llama.cpp's logits at every position (--all) or the last one, within 2e-3 × their
// standard deviation, as JSON with the model, weight type and kernel path; --ggml-act is
// reported.
func TestModelLogits(t *testing.T) {
	dir := shared.Path(t, "models", "oracle")
	name := "tiny-llama3-f32.gguf"
	toks, want := goldenRow(t, dir, name)
	var sum, sum2, n float64
	for _, r := range want {
		for _, v := range r {
			sum, sum2, n = sum+float64(v), sum2+float64(v)*float64(v), n+1
		}
	}
	std := math.Sqrt(sum2/n - (sum/n)*(sum/n))
	run := func(args ...string) logitsOut {
		t.Helper()
		out, err := runRagkv(t, append([]string{"model", "logits", "--model", filepath.Join(dir, name), "--tokens", joinInts(toks), "--json"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		var r logitsOut
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
			t.Fatalf("last line is not JSON: %v\n%s", err, out)
		}
		return r
	}
	r := run("--all")
	if r.WeightType != "f32" || r.CPUPath != cpu.Active().String() || r.Tokens != len(toks) || len(r.Logits) != len(toks) || len(r.Positions) != len(toks) {
		t.Fatalf("result %s %s %d tokens, %d rows", r.WeightType, r.CPUPath, r.Tokens, len(r.Logits))
	}
	worst := 0.0
	for p, row := range r.Logits {
		if r.Positions[p] != p || len(row) != len(want[p]) {
			t.Fatalf("row %d: position %d, %d values", p, r.Positions[p], len(row))
		}
		for i, v := range row {
			worst = math.Max(worst, math.Abs(float64(v-want[p][i])))
		}
	}
	t.Logf("max |Δ| vs llama.cpp = %.2g (std %.3g)", worst, std)
	if worst > 2e-3*std {
		t.Fatalf("logits differ from llama.cpp's by %g > 2e-3 × %g", worst, std)
	}
	last := run()
	if len(last.Logits) != 1 || last.Positions[0] != len(toks)-1 {
		t.Fatalf("without --all: %d rows at %v", len(last.Logits), last.Positions)
	}
	for i, v := range last.Logits[0] { // one classifier row (matrix-vector) vs one of 17 (GEMM)
		if d := math.Abs(float64(v - r.Logits[len(toks)-1][i])); d > 1e-5*std {
			t.Fatalf("last row differs from --all's by %g at %d", d, i)
		}
	}
	q, err := runRagkv(t, "model", "logits", "--model", filepath.Join(dir, "tiny-llama3-q8_0.gguf"), "--tokens", "1,2,3", "--ggml-act", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if m := lastJSON(t, q); m["activations"] != "ggml" || m["weight_type"] != "q8_0" {
		t.Fatalf("--ggml-act: %v %v", m["activations"], m["weight_type"])
	}
	for flag, want := range map[string]string{"": defaultActivations(), "--int8-act": "int8", "--float-act": "float"} {
		args := []string{"model", "logits", "--model", filepath.Join(dir, "tiny-llama3-q8_0.gguf"), "--tokens", "1,2,3", "--json"}
		if flag != "" {
			args = append(args, flag)
		}
		q, err := runRagkv(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if m := lastJSON(t, q); m["activations"] != want {
			t.Fatalf("%q: activations %v, want %s", flag, m["activations"], want)
		}
	}
}

// TestModelLogitsErrors: bad input names the flag.
func TestModelLogitsErrors(t *testing.T) {
	model := filepath.Join(shared.Path(t, "models", "oracle"), "tiny-llama-q8_0.gguf")
	long := strings.Repeat("1,", 2048) + "1" // 2049 tokens, context 2048
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--tokens", "1,2"}, "--model"},
		{[]string{"--model", model + ".missing", "--tokens", "1"}, "--model"},
		{[]string{"--model", model}, "--tokens: no token ids"},
		{[]string{"--model", model, "--tokens", " "}, "--tokens: no token ids"},
		{[]string{"--model", model, "--tokens", "1,,2"}, "--tokens: item 1"},
		{[]string{"--model", model, "--tokens", "1,abc"}, "--tokens: item 1"},
		{[]string{"--model", model, "--tokens", "1,512"}, "--tokens: token id 512"},
		{[]string{"--model", model, "--tokens", "-3"}, "--tokens: token id -3"},
		{[]string{"--model", model, "--tokens", long}, "--tokens: 2049 tokens exceed the model's context of 2048"},
		{[]string{"--model", model, "--tokens", "1", "--tokenizer", model + ".none"}, "--tokenizer"},
		{[]string{"--model", model, "--tokens", "1", "--ggml-act", "--float-act"}, "--ggml-act"},
		{[]string{"--model", model, "--tokens", "1", "--int8-act", "--float-act"}, "--ggml-act"},
		{[]string{"--model", model, "--tokens", "1", "--threads", "-1"}, "--threads"},
	} {
		_, err := runRagkv(t, append([]string{"model", "logits"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args[:min(len(c.args), 4)], err, c.want)
		}
	}
}

// defaultActivations is the engine's default activation mode on the active kernel path
// (int8 on neon, see kernels.Pool.SetGGMLActivations).
func defaultActivations() string {
	if cpu.HasNEON() {
		return "int8"
	}
	return "ggml"
}
