package main

import (
	"context"
	"testing"
	"time"
)

// TestBenchLoadShort runs `bench load` briefly: requests of every kind, no errors, no
// tier over its budget, and every cross-tenant probe answered NotFound.
func TestBenchLoadShort(t *testing.T) {
	res, err := runBenchLoad(context.Background(), 4, 2, 1500*time.Millisecond, 1<<20, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, rpc := range []string{"put", "get", "lookup", "probe"} {
		if res.PerRPC[rpc] == 0 {
			t.Errorf("no %s requests: %+v", rpc, res.PerRPC)
		}
	}
	if res.Errors != 0 || res.BudgetViolations != 0 || res.IsolationViolations != 0 {
		t.Fatalf("errors %d (%v), budget violations %d, isolation violations %d", res.Errors, res.ErrorCodes, res.BudgetViolations, res.IsolationViolations)
	}
}
