package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// ErrTransport marks a TLS file that cannot be used or a listener the transport rules
// refuse (plaintext on a non-loopback address).
var ErrTransport = errors.New("server: transport")

// TLSFiles names the PEM files of a TLS endpoint. Cert and Key are the endpoint's own
// certificate chain and key; CA verifies the other side (for a server: client
// certificates, which then become required; for a client: the server's certificate,
// instead of the system roots).
type TLSFiles struct {
	Cert, Key, CA string
	// ServerName overrides the name a client checks the server certificate against.
	ServerName string
}

// ServerTLSConfig loads a server's TLS configuration (TLS 1.2 or later; with f.CA, a
// client certificate signed by it is required and its subject becomes the caller's
// identity, see PeerIdentity).
func ServerTLSConfig(f TLSFiles) (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, fmt.Errorf("%w: a TLS server needs both a certificate and a key", ErrTransport)
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("%w: load key pair %s, %s: %w", ErrTransport, f.Cert, f.Key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if f.CA != "" {
		pool, err := loadPool(f.CA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientTLSConfig loads a client's TLS configuration: f.CA (or the system roots)
// verifies the server; Cert and Key, if given, are the client certificate.
func ClientTLSConfig(f TLSFiles) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CA != "" {
		pool, err := loadPool(f.CA)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	switch {
	case f.Cert != "" && f.Key != "":
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: load client key pair %s, %s: %w", ErrTransport, f.Cert, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case f.Cert != "" || f.Key != "":
		return nil, fmt.Errorf("%w: a client certificate needs both the certificate and the key", ErrTransport)
	}
	return cfg, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: CA file: %w", ErrTransport, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrTransport, path)
	}
	return pool, nil
}

// WithTLS serves gRPC over TLS with cfg (from ServerTLSConfig).
func WithTLS(cfg *tls.Config) Option {
	return optionFunc(func(o *options) {
		o.tls = cfg
		o.grpcOpts = append(o.grpcOpts, grpc.Creds(credentials.NewTLS(cfg)))
	})
}

// TLSConfig is the server's TLS configuration (nil: plaintext), for the HTTP
// listeners that share it.
func (s *Server) TLSConfig() *tls.Config { return s.opts.tls }

// IsLoopback reports whether a listen address binds only to a loopback interface
// ("localhost", 127.0.0.0/8, ::1). An empty host ("":7431, 0.0.0.0, ::) binds every
// interface and is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
