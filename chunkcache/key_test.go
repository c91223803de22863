package chunkcache

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func testIDs() []ChunkID {
	m := Fingerprint{
		Architecture:    "llama",
		WeightsDigest:   "sha256:5f2b",
		TokenizerDigest: "sha256:77aa",
		RoPE:            RoPEConfig{Theta: 10000, Style: "interleaved"},
	}
	m2 := m
	m2.RoPE.Theta = 500000
	return []ChunkID{
		{Namespace: "", Model: m, DType: F16, Tokens: []uint32{1, 2, 3}},
		{Namespace: "default", Model: m, DType: F16, Tokens: []uint32{1, 2, 3}},
		{Namespace: "tenant-a", Model: m, DType: F16, Tokens: []uint32{1, 2, 3}},
		{Namespace: "tenant-a", Model: m2, DType: F16, Tokens: []uint32{1, 2, 3}},
		{Namespace: "tenant-a", Model: m, DType: BF16, Tokens: []uint32{1, 2, 3}},
		{Namespace: "tenant-a", Model: m, DType: F16, Tokens: []uint32{1, 2, 4}},
		{Namespace: "tenant-a", Model: m, DType: F16, Tokens: []uint32{1, 2, 3, 0}},
	}
}

func keyLines(t testing.TB) string {
	var b strings.Builder
	for _, id := range testIDs() {
		k, err := PublicKeyer().ChunkKey(&id)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, k)
	}
	return b.String()
}

// TestKeyGolden pins the scheme: a change to the hashed encoding must bump KeyVersion
// and this value, since stored chunks would otherwise become unreachable silently.
func TestKeyGolden(t *testing.T) {
	id := testIDs()[2]
	k, err := PublicKeyer().ChunkKey(&id)
	if err != nil {
		t.Fatal(err)
	}
	// Cross-checked with an independent Python implementation of the encoding (hashlib).
	const golden = "3a75acf961e55c1011ecb1743b484689b785906dfed50e5116bb544a45edd425"
	if k.String() != golden {
		t.Fatalf("key scheme changed: got %s want %s", k, golden)
	}
}

func TestKeyDistinctAndDefaultNamespace(t *testing.T) {
	lines := strings.Fields(keyLines(t))
	if lines[0] != lines[1] {
		t.Fatal(`"" and "default" namespaces differ`)
	}
	seen := map[string]int{}
	for i, l := range lines[1:] {
		if j, ok := seen[l]; ok {
			t.Fatalf("ids %d and %d share key %s", j+1, i+1, l)
		}
		seen[l] = i
	}
	if k, err := ParseKey(lines[2]); err != nil || k.String() != lines[2] {
		t.Fatalf("ParseKey round trip: %v", err)
	}
}

func TestKeyValidation(t *testing.T) {
	base := testIDs()[2]
	bad := map[string]func(*ChunkID){
		"empty token list": func(id *ChunkID) { id.Tokens = nil },
		"unknown dtype":    func(id *ChunkID) { id.DType = 42 },
		"architecture":     func(id *ChunkID) { id.Model.Architecture = "" },
		"weights digest":   func(id *ChunkID) { id.Model.WeightsDigest = "" },
		"namespace":        func(id *ChunkID) { id.Namespace = "no spaces" },
		// The bound a put and the manifest enforce, not the wider blob-format bound.
		fmt.Sprintf("(max %d)", MaxTokens): func(id *ChunkID) { id.Tokens = make([]uint32, MaxTokens+1) },
	}
	for want, mutate := range bad {
		id := base
		mutate(&id)
		_, err := PublicKeyer().ChunkKey(&id)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v", want, err)
		}
	}
	if _, err := ParseKey("abc"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseKey(abc) = %v", err)
	}
}

// TestKeyDeterministicAcrossProcesses computes the same keys in a child process (this
// test binary re-executed) and compares.
func TestKeyDeterministicAcrossProcesses(t *testing.T) {
	if os.Getenv("RAGKV_KEY_CHILD") == "1" {
		fmt.Print("KEYS\n" + keyLines(t) + "END\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKeyDeterministicAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RAGKV_KEY_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	s := string(out)
	i, j := strings.Index(s, "KEYS\n"), strings.Index(s, "END\n")
	if i < 0 || j < i {
		t.Fatalf("child output: %s", s)
	}
	if got, want := s[i+5:j], keyLines(t); got != want {
		t.Fatalf("child keys differ:\n%s\nparent:\n%s", got, want)
	}
}
