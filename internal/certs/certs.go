// Package certs writes a small private PKI (a CA, a server certificate, client
// certificates) with crypto/x509, for tests and for `ragkv tls init`, which sets up
// TLS for a single deployment. ECDSA P-256 keys, SHA-256 signatures.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files are the paths Write created.
type Files struct {
	CA, CAKey, Cert, Key string
}

// CA is a certificate authority that signs leaves.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

// NewCA creates a self-signed CA valid for validity.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name, Organization: []string{"ragkv"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(validity),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, der: der}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// Leaf is a signed certificate and its key, PEM encoded.
type Leaf struct {
	CertPEM, KeyPEM []byte
}

// Issue signs a leaf for cn: a server certificate for hosts (DNS names or IPs) when
// server is true, else a client certificate.
func (ca *CA) Issue(cn string, hosts []string, server bool, validity time.Duration) (*Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: cn, Organization: []string{"ragkv"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(validity),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Leaf{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}, nil
}

// CertPEM is the CA certificate.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// KeyPEM is the CA's private key.
func (ca *CA) KeyPEM() ([]byte, error) {
	kb, err := x509.MarshalECPrivateKey(ca.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// WriteFile writes b to dir/name (keys with mode 0600) and returns the path.
func WriteFile(dir, name string, b []byte) (string, error) {
	mode := os.FileMode(0o644)
	if filepath.Ext(name) == ".key" {
		mode = 0o600
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, mode); err != nil {
		return "", fmt.Errorf("certs: %w", err)
	}
	return p, nil
}

// Write creates dir/ca.pem, ca.key, server.pem and server.key (the server
// certificate for hosts), valid for validity.
func Write(dir string, hosts []string, validity time.Duration) (Files, error) {
	f, _, err := WriteCA(dir, hosts, validity)
	return f, err
}

// WriteCA is Write that also returns the CA, to issue client certificates with.
func WriteCA(dir string, hosts []string, validity time.Duration) (Files, *CA, error) {
	var f Files
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return f, nil, fmt.Errorf("certs: %w", err)
	}
	ca, err := NewCA("ragkv CA", validity)
	if err != nil {
		return f, nil, err
	}
	srv, err := ca.Issue("ragkv server", hosts, true, validity)
	if err != nil {
		return f, nil, err
	}
	cak, err := ca.KeyPEM()
	if err != nil {
		return f, nil, err
	}
	for _, w := range []struct {
		dst  *string
		name string
		b    []byte
	}{{&f.CA, "ca.pem", ca.CertPEM()}, {&f.CAKey, "ca.key", cak}, {&f.Cert, "server.pem", srv.CertPEM}, {&f.Key, "server.key", srv.KeyPEM}} {
		if *w.dst, err = WriteFile(dir, w.name, w.b); err != nil {
			return f, nil, err
		}
	}
	return f, ca, nil
}
