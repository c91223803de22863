package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/internal/cpu"
	"github.com/ragkv/ragkv/internal/shared"
)

// TestBenchGemmCLI: `bench gemm --json` reports a positive rate for a small shape, and bad
// flags are named.
func TestBenchGemmCLI(t *testing.T) {
	for _, dt := range []string{"f32", "q8_0"} {
		out, err := runRagkv(t, "bench", "gemm", "--m", "64", "--n", "24", "--k", "256", "--dtype", dt, "--iters", "2", "--json")
		if err != nil {
			t.Fatal(err)
		}
		r := lastJSON(t, out)
		if r["dtype"] != dt || r["m"] != float64(64) || r["n"] != float64(24) || r["k"] != float64(256) || !(r["gflops"].(float64) > 0) {
			t.Fatalf("%s: %v", dt, r)
		}
	}
	for _, c := range []struct{ flag, val string }{{"k", "100"}, {"dtype", "q3_K"}, {"iters", "0"}, {"m", "-1"}} {
		args := []string{"bench", "gemm", "--m", "64", "--n", "4", "--k", "256", "--dtype", "q8_0", "--" + c.flag, c.val}
		if _, err := runRagkv(t, args...); err == nil || !strings.Contains(err.Error(), "--"+c.flag) {
			t.Fatalf("--%s %s: %v", c.flag, c.val, err)
		}
	}
}

// TestBenchGemmCPUPath: --cpu selects the kernel path and cpu_path reports it; a path
// the CPU cannot run, or no path at all, is an error naming --cpu.
func TestBenchGemmCPUPath(t *testing.T) {
	for _, p := range cpu.Available() {
		out, err := runRagkv(t, "bench", "gemm", "--m", "64", "--n", "24", "--k", "256", "--iters", "1", "--cpu", p.String(), "--json")
		if err != nil {
			t.Fatalf("--cpu %v: %v", p, err)
		}
		if r := lastJSON(t, out); r["cpu_path"] != p.String() || !(r["gflops"].(float64) > 0) {
			t.Fatalf("--cpu %v: %v", p, r)
		}
	}
	out, err := runRagkv(t, "bench", "gemm", "--m", "64", "--n", "4", "--k", "256", "--iters", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if r := lastJSON(t, out); r["cpu_path"] != cpu.Best().String() {
		t.Fatalf("default path %v, want %v", r["cpu_path"], cpu.Best())
	}
	bad := []string{"sse9"}
	for _, p := range []cpu.Path{cpu.AVX512, cpu.AVX2, cpu.NEON} {
		if !cpu.Supports(p) {
			bad = append(bad, p.String())
		}
	}
	for _, v := range bad {
		if _, err := runRagkv(t, "bench", "gemm", "--m", "64", "--n", "4", "--k", "256", "--cpu", v); err == nil || !strings.Contains(err.Error(), "--cpu") {
			t.Fatalf("--cpu %s: %v", v, err)
		}
	}
}

// TestBenchEngineCLI: `bench engine --json` on the small shared model reports prefill and
// decode rates and the GEMM comparison; bad flags are named.
func TestBenchEngineCLI(t *testing.T) {
	model := filepath.Join(shared.Path(t), "models", "stories260K", "stories260K-f32.gguf")
	out, err := runRagkv(t, "bench", "engine", "--model", model, "--tokens", "40", "--decode", "4", "--iters", "1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	r := lastJSON(t, out)
	for _, k := range []string{"prefill_tokens_per_s", "decode_tokens_per_s", "prefill_gflops", "gemm_gflops", "prefill_vs_gemm"} {
		if v, ok := r[k].(float64); !ok || !(v > 0) {
			t.Fatalf("%s = %v in %v", k, r[k], r)
		}
	}
	if r["tokens"] != float64(40) || r["decode_tokens"] != float64(4) || r["weight_type"] != "f32" || r["activations"] != defaultActivations() {
		t.Fatalf("%v", r)
	}
	if s := r["matmul_share_of_flops"].(float64); !(s > 0.5 && s < 1) {
		t.Fatalf("matmul share of prefill FLOPs %g", s)
	}
	out, err = runRagkv(t, "bench", "engine", "--model", model, "--tokens", "40", "--decode", "1", "--iters", "1", "--activations", "int8", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if r := lastJSON(t, out); r["activations"] != "int8" {
		t.Fatalf("--activations int8: %v", r["activations"])
	}
	for _, c := range []struct{ flag, val string }{{"tokens", "0"}, {"tokens", "100000"}, {"decode", "-1"}, {"model", filepath.Join(t.TempDir(), "none.gguf")}, {"activations", "fp8"}} {
		args := []string{"bench", "engine", "--model", model, "--iters", "1", "--" + c.flag, c.val}
		if _, err := runRagkv(t, args...); err == nil || !strings.Contains(err.Error(), "--"+c.flag) {
			t.Fatalf("--%s %s: %v", c.flag, c.val, err)
		}
	}
}
