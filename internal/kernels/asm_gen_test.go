package kernels

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// TestAsmGenerated: kernels_amd64.s and kernels_arm64.s are exactly what asm_gen.go and
// asm_gen_arm64.go write (the assembly is changed through the generators, never by hand).
func TestAsmGenerated(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run the generators")
	}
	for _, g := range []struct{ gen, out string }{{"asm_gen.go", "kernels_amd64.s"}, {"asm_gen_arm64.go", "kernels_arm64.s"}} {
		got, err := exec.Command(gobin, "run", g.gen).Output()
		if err != nil {
			t.Fatalf("go run %s: %v", g.gen, err)
		}
		want, err := os.ReadFile(g.out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs from the output of %s: run go generate ./internal/kernels", g.out, g.gen)
		}
	}
}

// TestAsmArm64Encodings assembles every instruction asm_gen_arm64.go encodes as a WORD
// (Go's assembler lacks them) with GNU as and compares the words, where the cross
// binutils are installed (Debian: binutils-aarch64-linux-gnu).
func TestAsmArm64Encodings(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to run asm_gen_arm64.go")
	}
	for _, tool := range []string{"aarch64-linux-gnu-as", "aarch64-linux-gnu-objdump"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s to check the encodings with", tool)
		}
	}
	out, err := exec.Command(gobin, "run", "asm_gen_arm64.go", "-verify").CombinedOutput()
	if err != nil {
		t.Fatalf("asm_gen_arm64.go -verify: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}
