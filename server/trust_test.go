package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/internal/certs"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/server/auth"
)

// pki is a CA, a server certificate for 127.0.0.1 signed by it, and another CA's
// certificate (for the wrong-CA cases).
type pki struct {
	ca, cert, key, otherCA string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	f, err := certs.Write(dir, []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := pki{ca: f.CA, cert: f.Cert, key: f.Key}
	ca, err := certs.NewCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p.otherCA, err = certs.WriteFile(dir, "other-ca.pem", ca.CertPEM()); err != nil {
		t.Fatal(err)
	}
	return p
}

// clientPKI issues a client certificate for cn from a fresh CA and returns that CA's
// file and the leaf's files.
func clientPKI(t *testing.T, cn string) (caFile, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.NewCA("clients", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(cn, nil, false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	must := func(name string, b []byte) string {
		p, err := certs.WriteFile(dir, name, b)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return must("clients-ca.pem", ca.CertPEM()), must("client.pem", leaf.CertPEM), must("client.key", leaf.KeyPEM)
}

func serveTLS(t *testing.T, cfg *tls.Config, opts ...Option) string {
	t.Helper()
	srv, err := New(append([]Option{WithLogger(slog.New(slog.DiscardHandler)), WithTLS(cfg)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(context.Background()); <-done })
	return lis.Addr().String()
}

func healthCheck(t *testing.T, addr string, creds credentials.TransportCredentials, ctxMD ...string) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if len(ctxMD) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, ctxMD...)
	}
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestTLSServerRefusesPlaintextAndUnknownCA(t *testing.T) {
	p := newPKI(t)
	cfg, err := ServerTLSConfig(TLSFiles{Cert: p.cert, Key: p.key})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, cfg)
	good, err := ClientTLSConfig(TLSFiles{CA: p.ca})
	if err != nil {
		t.Fatal(err)
	}
	if err := healthCheck(t, addr, credentials.NewTLS(good)); err != nil {
		t.Fatalf("TLS client with the right CA: %v", err)
	}
	if err := healthCheck(t, addr, insecure.NewCredentials()); status.Code(err) != codes.Unavailable {
		t.Fatalf("plaintext client against a TLS server: %v, want Unavailable", err)
	}
	wrong, err := ClientTLSConfig(TLSFiles{CA: p.otherCA}) // another CA
	if err != nil {
		t.Fatal(err)
	}
	if err := healthCheck(t, addr, credentials.NewTLS(wrong)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client trusting another CA: %v, want a certificate error", err)
	}
	named, err := ClientTLSConfig(TLSFiles{CA: p.ca, ServerName: "not-this-server.example"})
	if err != nil {
		t.Fatal(err)
	}
	if err := healthCheck(t, addr, credentials.NewTLS(named)); err == nil {
		t.Fatal("client checking another server name connected")
	}
}

func TestTLSFilesErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]TLSFiles{
		"no key":       {Cert: bad},
		"unreadable":   {Cert: filepath.Join(dir, "missing.pem"), Key: filepath.Join(dir, "missing.key")},
		"not pem pair": {Cert: bad, Key: bad},
	} {
		if _, err := ServerTLSConfig(f); err == nil {
			t.Errorf("%s: ServerTLSConfig accepted %+v", name, f)
		}
	}
	if _, err := ClientTLSConfig(TLSFiles{CA: bad}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("client CA without a certificate: %v", err)
	}
	if _, err := ClientTLSConfig(TLSFiles{Cert: bad}); err == nil {
		t.Error("client certificate without key accepted")
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7431": true, "localhost:1": true, "[::1]:7431": true, "127.3.2.1:80": true,
		"0.0.0.0:7431": false, ":7431": false, "[::]:7431": false, "10.0.0.5:7431": false, "example.com:7431": false, "garbage": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestMutualTLSIdentityFromCertificate(t *testing.T) {
	p := newPKI(t)
	clientsCA, cert, key := clientPKI(t, "batch-job")
	_, strangerCert, strangerKey := clientPKI(t, "stranger") // signed by a CA the server does not trust
	cfg, err := ServerTLSConfig(TLSFiles{Cert: p.cert, Key: p.key, CA: clientsCA})
	if err != nil {
		t.Fatal(err)
	}
	authFile := writeAuthFile(t, `
identities:
  - name: batch
    role: reader
    cert_subject: batch-job
    namespaces: ["a"]
`)
	st, err := auth.Load(authFile)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := newChunkCache(t, t.TempDir(), 1<<20, 1<<22)
	t.Cleanup(func() { c.Close() })
	addr := serveTLS(t, cfg, WithChunkCache(c), WithAuth(st, AuthOptions{}))
	dial := func(cert, key string) ragkvv1.ChunkCacheClient {
		cc, err := ClientTLSConfig(TLSFiles{CA: p.ca, Cert: cert, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return ragkvv1.NewChunkCacheClient(conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := dial(cert, key).Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{}); err != nil {
		t.Fatalf("client certificate of identity batch: %v", err)
	}
	if _, err := dial(cert, key).SetPolicy(ctx, &ragkvv1.SetChunkPolicyRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("reader by certificate calling SetPolicy: %v, want PermissionDenied", err)
	}
	if _, err := dial(strangerCert, strangerKey).Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{}); err == nil {
		t.Fatal("a certificate from an untrusted CA got in")
	}
	if _, err := dial("", "").Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{}); err == nil {
		t.Fatal("a client without a certificate got in")
	}
}

func writeAuthFile(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
