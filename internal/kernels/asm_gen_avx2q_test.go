package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// TestAsmAVX2QGenerated: kernels_avx2q_amd64.s is exactly what asm_gen_avx2q.go writes.
func TestAsmAVX2QGenerated(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run asm_gen_avx2q.go")
	}
	got, err := exec.Command(gobin, "run", "asm_gen_avx2q.go").Output()
	if err != nil {
		t.Fatalf("go run asm_gen_avx2q.go: %v", err)
	}
	want, err := os.ReadFile("kernels_avx2q_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("kernels_avx2q_amd64.s differs from the output of asm_gen_avx2q.go: run go generate ./internal/kernels")
	}
}
