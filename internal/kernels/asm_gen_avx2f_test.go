package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// TestAsmAVX2FGenerated: kernels_avx2f_amd64.s is exactly what asm_gen_avx2f.go writes.
func TestAsmAVX2FGenerated(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run asm_gen_avx2f.go")
	}
	got, err := exec.Command(gobin, "run", "asm_gen_avx2f.go").Output()
	if err != nil {
		t.Fatalf("go run asm_gen_avx2f.go: %v", err)
	}
	want, err := os.ReadFile("kernels_avx2f_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("kernels_avx2f_amd64.s differs from the output of asm_gen_avx2f.go: run go generate ./internal/kernels")
	}
}
