package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// TestAsmGenerated: kernels_amd64.s is exactly what asm_gen.go writes (the assembly is
// changed through the generator, never by hand).
func TestAsmGenerated(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run asm_gen.go")
	}
	got, err := exec.Command(gobin, "run", "asm_gen.go").Output()
	if err != nil {
		t.Fatalf("go run asm_gen.go: %v", err)
	}
	want, err := os.ReadFile("kernels_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("kernels_amd64.s differs from the output of asm_gen.go: run go generate ./internal/kernels")
	}
}
