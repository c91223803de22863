package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/server/auth"
)

// TestServeAuthFileQuotas: namespace_quotas in the auth file bound a namespace's
// bytes per tier like --namespace-quota: a chunk larger than q's quotas is refused
// (ResourceExhausted) while the same chunk goes into r (no quota), and Stats shows q's
// quotas; the same namespace and tier in the flag and the file is an error naming
// both; a bad quota in the file names --auth-file.
func TestServeAuthFileQuotas(t *testing.T) {
	dir := t.TempDir()
	const tok = "quota-writer-token-0123456789abcdef"
	authFile := filepath.Join(dir, "auth.yaml")
	writeAuth := func(quotas string) {
		y := "identities:\n  - name: w\n    role: writer\n    token_sha256: " + auth.HashToken(tok) + "\n    namespaces: [q, r]\n" +
			"namespace_quotas:\n" + quotas
		if err := os.WriteFile(authFile, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeAuth("  q: {memory: 4KiB, disk: 4KiB}\n")
	base := []string{"--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", "",
		"--sync-writes=false", "--auth-file", authFile}
	addrs := startServe(t, base...)
	g := addrs["grpc"]
	putArgs := func(ns string, tokens int) []string {
		var toks []string
		for i := 1; i <= tokens; i++ {
			toks = append(toks, fmt.Sprint(i))
		}
		return []string{"cache", "put", "--addr", g, "--token", tok, "--namespace", ns, "--weights-digest", "sha256:demo",
			"--tokens", strings.Join(toks, ","), "--layers", "2", "--kv-heads", "2", "--head-dim", "16", "--dtype", "f16"}
	}
	if _, err := runFresh(t, putArgs("q", 64)...); err == nil || !strings.Contains(err.Error(), "ResourceExhausted") {
		t.Fatalf("a 16 KiB chunk into q (4 KiB quotas): %v, want ResourceExhausted", err)
	}
	if _, err := runFresh(t, putArgs("r", 64)...); err != nil {
		t.Fatalf("the same chunk into r (no quota): %v", err)
	}
	if _, err := runFresh(t, putArgs("q", 4)...); err != nil {
		t.Fatalf("a 1 KiB chunk into q: %v", err)
	}
	out, err := runFresh(t, "cache", "stats", "--addr", g, "--token", tok, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"namespace":"q"`) || strings.Count(out, `"quota_bytes":4096`) != 2 {
		t.Fatalf("stats do not show q's two 4 KiB quotas:\n%s", out)
	}

	other := []string{"serve", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--admin-listen", "", "--openai-listen", "", "--auth-file", authFile}
	_, err = runFresh(t, append(other, "--namespace-quota", "q=memory:64KiB")...)
	if err == nil || !strings.Contains(err.Error(), "--namespace-quota") || !strings.Contains(err.Error(), "auth file") {
		t.Errorf("q's memory quota in the flag and the auth file: %v", err)
	}
	writeAuth("  q: {memory: 4KiB}\n  bad name!: {memory: 1MiB}\n")
	if _, err = runFresh(t, other...); err == nil || !strings.Contains(err.Error(), "--auth-file") {
		t.Errorf("an invalid namespace in namespace_quotas: %v, want an error naming --auth-file", err)
	}
	writeAuth("  q: {disk: 4KiB}\n")
	if _, err = runFresh(t, append(other, "--disk-capacity", "0")...); err == nil || !strings.Contains(err.Error(), "--auth-file") || !strings.Contains(err.Error(), "disk tier off") {
		t.Errorf("a disk quota in the auth file with the disk tier off: %v", err)
	}
}
