// Package auth holds ragkv's identities: who a caller is (a bearer token, stored only
// as its SHA-256, or a client certificate's subject), its role (reader < writer <
// admin) and the namespaces, collections and tool registries it may touch, loaded
// from a YAML file (`ragkv serve --auth-file`) and reloadable while the server runs
// (SIGHUP). The gRPC and HTTP layers (package server, server/openai) enforce it.
//
// Tokens are bearer secrets (RFC 6750): whoever holds one is that identity, so they
// travel only over TLS off loopback. The file holds their SHA-256 (hex), never the
// token; `ragkv auth hash-token` prints it. A file for tokens of 32 random bytes makes
// the hash's lack of salt and stretching irrelevant (no dictionary to try).
package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"
)

var (
	// ErrInvalidFile: the auth file does not parse or breaks a rule (the message says
	// which entry and field).
	ErrInvalidFile = errors.New("auth: invalid auth file")
	// ErrUnauthenticated: no credentials, or credentials no identity holds.
	ErrUnauthenticated = errors.New("auth: unauthenticated")
)

// Role orders what an identity may do.
type Role int

// Roles. A reader reads (get, lookup, retrieve, prefill and generate from the cache);
// a writer also puts chunks, ingests and precomputes; an admin also changes policy,
// hard-pins, deletes, rebuilds and replaces registries.
const (
	Reader Role = iota + 1
	Writer
	Admin
)

func (r Role) String() string {
	switch r {
	case Reader:
		return "reader"
	case Writer:
		return "writer"
	case Admin:
		return "admin"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// ParseRole parses "reader", "writer" or "admin".
func ParseRole(s string) (Role, error) {
	switch s {
	case "reader":
		return Reader, nil
	case "writer":
		return Writer, nil
	case "admin":
		return Admin, nil
	}
	return 0, fmt.Errorf("unknown role %q (want reader, writer or admin)", s)
}

// Identity is an authenticated caller. Its scopes are lists of names or patterns: "*"
// is every name, "prefix*" every name starting with prefix.
type Identity struct {
	Name        string
	Role        Role
	Namespaces  []string
	Collections []string
	Registries  []string
	// RatePerSecond and Burst bound the identity's requests (0: unlimited).
	RatePerSecond float64
	Burst         int
	// MaxHandles bounds the Prefill handles it holds at once (0: the server default).
	MaxHandles int
}

// Allows reports whether the identity has at least role r.
func (id *Identity) Allows(r Role) bool { return id != nil && id.Role >= r }

// Namespace reports whether the identity may use namespace ns (normalized).
func (id *Identity) Namespace(ns string) bool { return id != nil && match(id.Namespaces, ns) }

// Collection reports whether the identity may use collection c.
func (id *Identity) Collection(c string) bool { return id != nil && match(id.Collections, c) }

// Registry reports whether the identity may use tool registry r.
func (id *Identity) Registry(r string) bool { return id != nil && match(id.Registries, r) }

// AllNamespaces reports whether the identity's namespace scope is "*".
func (id *Identity) AllNamespaces() bool {
	for _, p := range id.Namespaces {
		if p == "*" {
			return true
		}
	}
	return false
}

func match(patterns []string, name string) bool {
	for _, p := range patterns {
		switch {
		case p == "*", p == name:
			return true
		case strings.HasSuffix(p, "*") && strings.HasPrefix(name, p[:len(p)-1]):
			return true
		}
	}
	return false
}

// HashToken returns the hex SHA-256 of a bearer token, as the auth file stores it.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// fileFormat is the YAML auth file.
type fileFormat struct {
	Identities []fileIdentity `yaml:"identities"`
	// ServerComputedOnly lists namespaces (names or patterns) that take only KV the
	// server computed itself: PutChunk into them is refused, whoever asks.
	ServerComputedOnly []string `yaml:"server_computed_only"`
	// NamespaceQuotas bound namespaces' bytes per chunk-cache tier: namespace (a name,
	// not a pattern) → tier (memory, disk) → size ("2GiB", "500MB", bytes). Read when
	// the server starts (merged with --namespace-quota; the same namespace and tier in
	// both is an error); a reload that changes them keeps the running quotas and is
	// logged (they apply at the next start).
	NamespaceQuotas map[string]map[string]string `yaml:"namespace_quotas"`
}

type fileIdentity struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"`
	// TokenSHA256 is the hex SHA-256 of the bearer token.
	TokenSHA256 string `yaml:"token_sha256"`
	// CertSubject is a client certificate's subject common name that authenticates as
	// this identity (with --tls-client-ca).
	CertSubject   string   `yaml:"cert_subject"`
	Namespaces    []string `yaml:"namespaces"`
	Collections   []string `yaml:"collections"`
	Registries    []string `yaml:"registries"`
	RatePerSecond float64  `yaml:"rate_per_second"`
	Burst         int      `yaml:"burst"`
	MaxHandles    int      `yaml:"max_handles"`
}

// table is one loaded file.
type table struct {
	byToken map[string]*Identity // hex sha256 → identity
	byCert  map[string]*Identity // certificate subject CN → identity
	all     []*Identity
	// serverOnly are the namespace patterns of fileFormat.ServerComputedOnly.
	serverOnly []string
	// quotas are fileFormat.NamespaceQuotas, parsed.
	quotas map[string]map[string]int64
}

// parse reads an auth file's bytes.
func parse(b []byte) (*table, error) {
	var f fileFormat
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrInvalidFile, err)
	}
	t := &table{byToken: map[string]*Identity{}, byCert: map[string]*Identity{}, serverOnly: f.ServerComputedOnly}
	names := map[string]bool{}
	for i, e := range f.Identities {
		where := fmt.Sprintf("identities[%d]", i)
		if e.Name == "" {
			return nil, fmt.Errorf("%w: %s: name is empty", ErrInvalidFile, where)
		}
		where = fmt.Sprintf("identities[%d] (%s)", i, e.Name)
		if names[e.Name] {
			return nil, fmt.Errorf("%w: %s: a second identity of that name", ErrInvalidFile, where)
		}
		names[e.Name] = true
		role, err := ParseRole(e.Role)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidFile, where, err)
		}
		if e.TokenSHA256 == "" && e.CertSubject == "" {
			return nil, fmt.Errorf("%w: %s: needs token_sha256 or cert_subject", ErrInvalidFile, where)
		}
		if e.RatePerSecond < 0 || e.Burst < 0 || e.MaxHandles < 0 {
			return nil, fmt.Errorf("%w: %s: rate_per_second, burst and max_handles must not be negative", ErrInvalidFile, where)
		}
		id := &Identity{Name: e.Name, Role: role, Namespaces: e.Namespaces, Collections: e.Collections, Registries: e.Registries,
			RatePerSecond: e.RatePerSecond, Burst: e.Burst, MaxHandles: e.MaxHandles}
		if id.RatePerSecond > 0 && id.Burst == 0 {
			id.Burst = max(1, int(id.RatePerSecond))
		}
		if e.TokenSHA256 != "" {
			h := strings.ToLower(e.TokenSHA256)
			if b, err := hex.DecodeString(h); err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("%w: %s: token_sha256 must be 64 hex digits (ragkv auth hash-token prints it)", ErrInvalidFile, where)
			}
			if other, dup := t.byToken[h]; dup {
				return nil, fmt.Errorf("%w: %s: same token as %s", ErrInvalidFile, where, other.Name)
			}
			t.byToken[h] = id
		}
		if e.CertSubject != "" {
			if other, dup := t.byCert[e.CertSubject]; dup {
				return nil, fmt.Errorf("%w: %s: same cert_subject as %s", ErrInvalidFile, where, other.Name)
			}
			t.byCert[e.CertSubject] = id
		}
		t.all = append(t.all, id)
	}
	if len(t.all) == 0 {
		return nil, fmt.Errorf("%w: no identities", ErrInvalidFile)
	}
	q, err := parseQuotas(f.NamespaceQuotas)
	if err != nil {
		return nil, err
	}
	t.quotas = q
	return t, nil
}

// parseQuotas checks and parses fileFormat.NamespaceQuotas.
func parseQuotas(in map[string]map[string]string) (map[string]map[string]int64, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(map[string]map[string]int64, len(in))
	for ns, tiers := range in {
		where := fmt.Sprintf("namespace_quotas[%q]", ns)
		if ns == "" || strings.ContainsAny(ns, "*") {
			return nil, fmt.Errorf("%w: %s: a quota is for one namespace, not a pattern", ErrInvalidFile, where)
		}
		if len(tiers) == 0 {
			return nil, fmt.Errorf("%w: %s: no tier (want memory and/or disk)", ErrInvalidFile, where)
		}
		out[ns] = map[string]int64{}
		for tier, size := range tiers {
			if tier != "memory" && tier != "disk" {
				return nil, fmt.Errorf("%w: %s: tier %q (want memory or disk)", ErrInvalidFile, where, tier)
			}
			b, err := parseBytes(size)
			if err != nil || b <= 0 {
				return nil, fmt.Errorf("%w: %s.%s: %q is not a size > 0 (e.g. 2GiB, 500MB)", ErrInvalidFile, where, tier, size)
			}
			out[ns][tier] = b
		}
	}
	return out, nil
}

// parseBytes parses a size: a number with an optional unit (KiB, MiB, GiB, TiB, KB,
// MB, GB, TB, B; case-insensitive).
func parseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range []struct {
		suffix string
		mult   float64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40}, {"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * mult), nil
}

// Store is the loaded auth file; Reload replaces it atomically (requests in flight
// keep the identity they authenticated as). Safe for concurrent use.
type Store struct {
	path string
	mu   sync.Mutex // serializes reloads
	t    atomic.Pointer[table]

	lmu      sync.Mutex
	limiters map[string]*limiterEntry // identity name → its rate limiter

	// quotas are the namespace quotas of the first load (set once, by Load).
	quotas map[string]map[string]int64
}

type limiterEntry struct {
	rps   float64
	burst int
	l     *rate.Limiter
}

// Allow takes one request from the identity's rate limit (golang.org/x/time/rate
// token bucket of rate_per_second, burst); false: over the limit. The limiter is
// shared by every listener and survives reloads unless the limits change.
func (s *Store) Allow(id *Identity) bool {
	if id == nil || id.RatePerSecond <= 0 {
		return true
	}
	s.lmu.Lock()
	e := s.limiters[id.Name]
	if e == nil || e.rps != id.RatePerSecond || e.burst != id.Burst {
		e = &limiterEntry{rps: id.RatePerSecond, burst: id.Burst, l: rate.NewLimiter(rate.Limit(id.RatePerSecond), id.Burst)}
		s.limiters[id.Name] = e
	}
	s.lmu.Unlock()
	return e.l.Allow()
}

// Load reads the auth file at path.
func Load(path string) (*Store, error) {
	s := &Store{path: path, limiters: map[string]*limiterEntry{}}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	s.quotas = s.t.Load().quotas
	return s, nil
}

// Reload reads the file again. On error the identities loaded before stay in force.
func (s *Store) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidFile, err)
	}
	t, err := parse(b)
	if err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	s.t.Store(t)
	return nil
}

// NamespaceQuotas are the auth file's namespace_quotas as first loaded (namespace →
// tier → bytes); QuotasChanged reports whether the file, as last reloaded, asks for
// different ones (they apply at the next start).
func (s *Store) NamespaceQuotas() map[string]map[string]int64 { return s.quotas }

// QuotasChanged: see NamespaceQuotas.
func (s *Store) QuotasChanged() bool { return !quotasEqual(s.quotas, s.t.Load().quotas) }

func quotasEqual(a, b map[string]map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for ns, ta := range a {
		tb, ok := b[ns]
		if !ok || len(ta) != len(tb) {
			return false
		}
		for tier, v := range ta {
			if w, ok := tb[tier]; !ok || w != v {
				return false
			}
		}
	}
	return true
}

// Path is the file the store reads.
func (s *Store) Path() string { return s.path }

// Len is the number of identities.
func (s *Store) Len() int { return len(s.t.Load().all) }

// Token returns the identity holding a bearer token.
func (s *Store) Token(token string) (*Identity, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	if id, ok := s.t.Load().byToken[HashToken(token)]; ok {
		return id, nil
	}
	return nil, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
}

// CertSubject returns the identity a client certificate's subject CN maps to.
func (s *Store) CertSubject(cn string) (*Identity, error) {
	if id, ok := s.t.Load().byCert[cn]; ok && cn != "" {
		return id, nil
	}
	return nil, fmt.Errorf("%w: certificate subject %q has no identity", ErrUnauthenticated, cn)
}

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the caller's identity (nil: authentication is off).
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}

// Check parses an auth file's bytes without loading them (for tests and `ragkv auth
// check`).
func Check(b []byte) (int, error) {
	t, err := parse(b)
	if err != nil {
		return 0, err
	}
	return len(t.all), nil
}

// ServerComputedOnly reports whether namespace ns takes only KV the server computed
// (PutChunk refused for everyone).
func (s *Store) ServerComputedOnly(ns string) bool { return match(s.t.Load().serverOnly, ns) }
