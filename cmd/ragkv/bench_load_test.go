package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ragkv/ragkv/internal/shared"
)

// TestBenchLoadShort runs `bench load` briefly: requests of every kind, no errors, no
// tier over its budget, and every cross-tenant probe answered NotFound.
func TestBenchLoadShort(t *testing.T) {
	res, err := runBenchLoad(context.Background(), loadConfig{clients: 4, identities: 2, duration: 1500 * time.Millisecond,
		memCap: 1 << 20, diskCap: 8 << 20, passages: 50})
	if err != nil {
		t.Fatal(err)
	}
	for _, rpc := range []string{"put", "get", "lookup", "probe", "retrieve"} {
		if res.PerRPC[rpc] == 0 {
			t.Errorf("no %s requests: %+v", rpc, res.PerRPC)
		}
	}
	if res.Errors != 0 || res.BudgetViolations != 0 || res.IsolationViolations != 0 {
		t.Fatalf("errors %d (%v), budget violations %d, isolation violations %d", res.Errors, res.ErrorCodes, res.BudgetViolations, res.IsolationViolations)
	}
	if res.QuotaViolations == nil || *res.QuotaViolations != 0 {
		t.Fatalf("quota violations %v (the in-process server gives every tenant namespace a quota)", res.QuotaViolations)
	}
}

// TestBenchLoadPrefill adds Prefill on stories260K (from $RAGKV_SHARED) to the mix.
func TestBenchLoadPrefill(t *testing.T) {
	dir := filepath.Join(shared.Path(t), "models", "stories260K")
	res, err := runBenchLoad(context.Background(), loadConfig{clients: 4, identities: 2, duration: 2 * time.Second,
		memCap: 4 << 20, diskCap: 16 << 20, passages: 50,
		model: filepath.Join(dir, "stories260K.bin"), tokenizer: filepath.Join(dir, "tok512.bin")})
	if err != nil {
		t.Fatal(err)
	}
	if res.PerRPC["prefill"] == 0 || res.PerRPC["retrieve"] == 0 {
		t.Errorf("no prefill or retrieve requests: %+v", res.PerRPC)
	}
	if res.Errors != 0 || res.BudgetViolations != 0 || res.IsolationViolations != 0 {
		t.Fatalf("errors %d (%v; %s), budget violations %d, isolation violations %d", res.Errors, res.ErrorCodes, res.Note, res.BudgetViolations, res.IsolationViolations)
	}
}

// TestBenchLoadKillAndRestart: `bench load --kill-after` against a `ragkv serve` child
// (this test binary as the CLI): SIGKILL mid-run, the offline cache check finds the
// data directory consistent, and after the restart every chunk acknowledged before
// the kill reads back bit-exact.
func TestBenchLoadKillAndRestart(t *testing.T) {
	res, err := runBenchLoad(context.Background(), loadConfig{clients: 8, identities: 2, duration: 20 * time.Second,
		killAfter: 3 * time.Second, memCap: 4 << 20, diskCap: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	k := res.Kill
	if k == nil {
		t.Fatalf("no kill result: %+v", res)
	}
	if res.Errors != 0 || res.IsolationViolations != 0 || res.BudgetViolations != 0 {
		t.Fatalf("before the kill: errors %d (%v; %s), isolation %d, budget %d", res.Errors, res.ErrorCodes, res.Note, res.IsolationViolations, res.BudgetViolations)
	}
	if k.Acknowledged == 0 || k.Intact != k.Acknowledged || k.Lost != 0 || k.Corrupt != 0 || len(k.ReadErrors) != 0 || !k.Check.OK || k.DiskEvictions != 0 {
		t.Fatalf("after the kill: %+v", k)
	}
	t.Logf("killed after %.1fs: %d acknowledged puts intact after the restart (%.1fs); check: %d chunks, ok",
		k.KilledAfterSeconds, k.Acknowledged, k.RestartSeconds, k.Check.Chunks)
}
