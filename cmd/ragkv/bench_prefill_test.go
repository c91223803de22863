package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/blend/blendbench"
	"github.com/ragkv/ragkv/internal/shared"
)

// TestBenchPrefillCompare: --compare stores the chunks in each format and times them in
// the same rounds: one JSON object last with every round of every format and method,
// q4 stored in about a third of f16's bytes, paired ratios; bad flags name the flag.
func TestBenchPrefillCompare(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	args := []string{"bench", "prefill", "--model", filepath.Join(dir, "stories260K.bin"), "--tokenizer", filepath.Join(dir, "tok512.bin"),
		"--chunks", "2", "--chunk-tokens", "64", "--query-tokens", "8", "--tier", "disk", "--threads", "1"}
	out, err := runFresh(t, append(args, "--compare", "f16", "--compare", "q4", "--iters", "3", "--no-full", "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rep blendbench.CompareReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("last line is not the JSON object: %v\n%s", err, out)
	}
	if rep.Rounds != 3 || !rep.NoFull || rep.Full != nil || len(rep.Formats) != 2 || rep.KernelPath == "" {
		t.Fatalf("report %+v", rep)
	}
	f16, q4 := rep.Formats[0], rep.Formats[1]
	if f16.Format != "f16" || q4.Format != "q4" || !(q4.StoredBytes > f16.StoredBytes/5 && q4.StoredBytes < f16.StoredBytes/2) {
		t.Fatalf("stored %s %d bytes, %s %d bytes", f16.Format, f16.StoredBytes, q4.Format, q4.StoredBytes)
	}
	for _, fr := range rep.Formats {
		for _, meth := range []string{"cacheblend", "cachecraft"} {
			mr := fr.Methods[meth]
			if mr == nil || len(mr.TTFT) != 3 || len(mr.LoadHidden) != 3 || !(mr.TTFTMin > 0 && mr.TTFTMin <= mr.TTFTMedian) || !(mr.RatioToFirst > 0) {
				t.Fatalf("%s %s: %+v", fr.Format, meth, mr)
			}
		}
	}
	if f16.Methods["cacheblend"].RatioToFirst != 1 {
		t.Fatalf("first format's ratio %v", f16.Methods["cacheblend"].RatioToFirst)
	}
	// With full prefill in each round, speedups come paired too.
	out, err = runFresh(t, append(args, "--compare", "f16", "--compare", "q2", "--iters", "2", "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	rep = blendbench.CompareReport{}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Full == nil || len(rep.Full.TTFT) != 2 || !(rep.Formats[1].Methods["cachecraft"].SpeedupMedian > 0) {
		t.Fatalf("with full: %+v", rep.Full)
	}
	for _, bad := range []struct {
		args []string
		flag string
	}{
		{[]string{"--compare", "q3"}, "--compare"},
		{[]string{"--compare", "f16", "--kv-dtype", "q4"}, "--compare"},
		{[]string{"--no-full"}, "--no-full"},
	} {
		if _, err := runFresh(t, append(args, bad.args...)...); err == nil || !strings.Contains(err.Error(), bad.flag) {
			t.Fatalf("%v: %v, want an error naming %s", bad.args, err, bad.flag)
		}
	}
}
