package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ragkv/ragkv/internal/certs"
	"github.com/ragkv/ragkv/server/auth"
)

func TestServeRefusesNonLoopbackWithoutTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	f, err := certs.Write(filepath.Join(dir, "tls"), []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"serve", "--data-dir", dir, "--admin-listen", "", "--openai-listen", ""}
	err = executeRoot(append(base, "--listen", "0.0.0.0:0")...)
	if err == nil || !strings.Contains(err.Error(), "--listen") || !strings.Contains(err.Error(), "plaintext") {
		t.Fatalf("plaintext on 0.0.0.0: %v", err)
	}
	err = executeRoot(append(base, "--listen", "0.0.0.0:0", "--tls-cert", f.Cert, "--tls-key", f.Key)...)
	if err == nil || !strings.Contains(err.Error(), "--auth-file") {
		t.Fatalf("TLS without an auth file on 0.0.0.0: %v", err)
	}
	err = executeRoot("serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--openai-listen", "", "--admin-listen", "[::]:0")
	if err == nil || !strings.Contains(err.Error(), "--admin-listen") {
		t.Fatalf("admin listener on every interface: %v", err)
	}
	err = executeRoot(append(base, "--listen", "127.0.0.1:0", "--tls-cert", f.Cert)...)
	if err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("certificate without key: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("identities:\n  - name: x\n    role: superuser\n    token_sha256: 00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = executeRoot(append(base, "--listen", "127.0.0.1:0", "--auth-file", bad)...)
	if err == nil || !strings.Contains(err.Error(), "--auth-file") || !strings.Contains(err.Error(), "superuser") {
		t.Fatalf("broken auth file: %v", err)
	}
}

// TestAuthExampleFile checks deploy/auth.example.yaml: it loads, and each token its
// comments show hashes to the token_sha256 that follows it.
func TestAuthExampleFile(t *testing.T) {
	b, err := os.ReadFile("../../deploy/auth.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n, err := auth.Check(b)
	if err != nil || n < 3 {
		t.Fatalf("auth.example.yaml: %d identities, %v", n, err)
	}
	re := regexp.MustCompile(`# token: (\S+)\n(?:.*\n){2}\s+token_sha256: ([0-9a-f]{64})`)
	ms := re.FindAllStringSubmatch(string(b), -1)
	if len(ms) != 3 {
		t.Fatalf("found %d example tokens, want one per role", len(ms))
	}
	for _, m := range ms {
		if auth.HashToken(m[1]) != m[2] {
			t.Errorf("example token %s does not hash to %s", m[1], m[2])
		}
	}
}

// TestServeWithTLSAndTokens runs `ragkv serve` with TLS on every listener and an auth
// file, and the client commands against it: with the CA and a token they work;
// without the token, with a revoked one (after SIGHUP) or in plaintext they fail.
func TestServeWithTLSAndTokens(t *testing.T) {
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	if err := executeRoot("tls", "init", "--dir", tlsDir, "--hosts", "127.0.0.1,localhost"); err != nil {
		t.Fatal(err)
	}
	const tokAdmin, tokNew = "e2e-admin-token-0123456789abcdef", "e2e-rotated-token-0123456789abcdef"
	authFile := filepath.Join(dir, "auth.yaml")
	writeAuth := func(tok string) {
		y := "identities:\n  - name: ops\n    role: admin\n    token_sha256: " + auth.HashToken(tok) + "\n    namespaces: [\"*\"]\n"
		if err := os.WriteFile(authFile, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeAuth(tokAdmin)
	ca := filepath.Join(tlsDir, "ca.pem")
	addrs, proc := startServeProc(t, "--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--openai-listen", "", "--tls-cert", filepath.Join(tlsDir, "server.pem"), "--tls-key", filepath.Join(tlsDir, "server.key"),
		"--auth-file", authFile, "--mem-capacity", "1MiB", "--disk-capacity", "4MiB")
	grpcAddr := addrs["grpc"]
	stats := func(extra ...string) error {
		return executeRoot(append([]string{"cache", "stats", "--addr", grpcAddr, "--timeout", "10s"}, extra...)...)
	}
	if err := stats("--tls-ca", ca, "--token", tokAdmin); err != nil {
		t.Fatalf("cache stats over TLS with a token: %v", err)
	}
	t.Setenv("RAGKV_TOKEN", tokAdmin)
	if err := stats("--tls-ca", ca); err != nil {
		t.Fatalf("cache stats with RAGKV_TOKEN: %v", err)
	}
	t.Setenv("RAGKV_TOKEN", "")
	if err := stats("--tls-ca", ca); !isUnauthenticated(err) {
		t.Fatalf("cache stats without a token: %v, want Unauthenticated", err)
	}
	if err := stats("--token", tokAdmin); err == nil {
		t.Fatal("plaintext client reached the TLS server")
	}
	// The admin listener speaks TLS too, and /readyz answers.
	pem, _ := os.ReadFile(ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	resp, err := hc.Get("https://" + addrs["admin"] + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ragkv.v1.ChunkCache":"ok"`) {
		t.Fatalf("/readyz over TLS: %d %s", resp.StatusCode, body)
	}
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", "https://"+addrs["admin"]+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		r, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if code := get("/metrics", ""); code != http.StatusUnauthorized {
		t.Fatalf("/metrics without a token: %d, want 401", code)
	}
	if code := get("/", ""); code != http.StatusUnauthorized {
		t.Fatalf("console without a token: %d, want 401", code)
	}
	if code := get("/metrics", tokAdmin); code != http.StatusOK {
		t.Fatalf("/metrics with the admin token: %d", code)
	}
	if r, err := http.Get("http://" + addrs["admin"] + "/healthz"); err == nil {
		r.Body.Close()
		if r.StatusCode == http.StatusOK {
			t.Fatal("plaintext /healthz answered 200 on a TLS listener")
		}
	}
	// SIGHUP reloads the file: the old token is revoked, the new one works.
	writeAuth(tokNew)
	if err := proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for stats("--tls-ca", ca, "--token", tokNew) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the new token never worked after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := stats("--tls-ca", ca, "--token", tokAdmin); !isUnauthenticated(err) {
		t.Fatalf("revoked token after SIGHUP: %v", err)
	}
}

func isUnauthenticated(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Unauthenticated")
}
