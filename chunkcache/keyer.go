package chunkcache

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ErrNoSecret: a salt rotation was asked of a cache whose keyer has no secret (public
// salts).
var ErrNoSecret = errors.New("chunkcache: no salt secret (keys use public salts)")

// ErrForeignChunks: New found chunks stored under a salt secret other than its keyer's
// (current or retired) and not under public salts — most likely the wrong secret file.
// Nothing was deleted; Options.DropForeignChunks deletes them instead.
var ErrForeignChunks = errors.New("chunkcache: chunks keyed under another salt secret")

// SaltSecretFile is where `ragkv serve` keeps the salt secret, relative to its data
// directory.
const SaltSecretFile = "keys/salt.secret"

// saltSecretMagic heads a salt secret file (its format version is the number after it).
const saltSecretMagic = "ragkv-salt-secret"

// secretGen is one generation of a secret.
type secretGen struct {
	gen    uint32
	secret [32]byte
}

// Keyer derives every content key of a cache (chunks and values). With a secret
// (OpenKeyer, NewKeyer) a namespace's salt is
//
//	HMAC-SHA256(secret, "ragkv.chunkcache.namespace.v2" 0x00 namespace)
//
// where the secret is the namespace's own (after a rotation of that namespace) or the
// keyer's base secret, so nobody without the secret can compute a namespace's keys.
// Without one (PublicKeyer, or a nil *Keyer) it is SHA-256("ragkv.chunkcache.namespace.v1"
// 0x00 namespace): reproducible from the name alone, for tools and tests. Rotate
// replaces a secret by a new random one of the next generation, which changes every key
// derived from it. A Keyer is safe for concurrent use.
type Keyer struct {
	mu   sync.RWMutex
	path string // "" : not persisted
	has  bool   // a secret is configured (else public salts)
	base secretGen
	ns   map[string]secretGen
	// retired are the secrets rotations replaced, kept until the next start has
	// deleted the chunks still stored under them (Cache.New prunes them).
	retired []retiredSecret
}

// retiredSecret is a replaced secret of one namespace ("*": the base secret, for every
// namespace without its own at the time).
type retiredSecret struct {
	ns string
	secretGen
}

var publicKeyer = &Keyer{}

// PublicKeyer derives keys with public salts (from the namespace name alone).
func PublicKeyer() *Keyer { return publicKeyer }

// NewKeyer is a keyer over the given base secret (at least 16 bytes; hashed to 32),
// generation 1, not persisted: for tests and for replicas that get the secret
// elsewhere.
func NewKeyer(secret []byte) (*Keyer, error) {
	if len(secret) < 16 {
		return nil, fmt.Errorf("%w: salt secret of %d bytes (want at least 16)", ErrInvalid, len(secret))
	}
	return &Keyer{has: true, base: secretGen{gen: 1, secret: sha256.Sum256(secret)}, ns: map[string]secretGen{}}, nil
}

// OpenKeyer loads the salt secret file at path, or creates it (mode 0600, its
// directory 0700) with a new random secret of generation 1 when it does not exist.
func OpenKeyer(path string) (*Keyer, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := parseSaltSecrets(b)
		if err != nil {
			return nil, fmt.Errorf("salt secret %s: %w", path, err)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%w: salt secret %s has mode %v: readable by others (chmod 600)", ErrInvalid, path, fi.Mode().Perm())
		}
		k.path = path
		return k, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("salt secret: %w", err)
	}
	k := &Keyer{path: path, has: true, ns: map[string]secretGen{}}
	if k.base, err = newSecret(1); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("salt secret: %w", err)
	}
	if err := k.saveLocked(); err != nil {
		return nil, err
	}
	return k, nil
}

func newSecret(gen uint32) (secretGen, error) {
	s := secretGen{gen: gen}
	if _, err := rand.Read(s.secret[:]); err != nil {
		return s, fmt.Errorf("salt secret: %w", err)
	}
	return s, nil
}

// Path is the file the keyer persists to ("" if none).
func (k *Keyer) Path() string {
	if k == nil {
		return ""
	}
	return k.path
}

// HasSecret reports whether salts come from a secret (false: public salts).
func (k *Keyer) HasSecret() bool {
	if k == nil {
		return false
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.has
}

// Generation is the generation of the secret namespace ns's salt comes from (0 with
// public salts).
func (k *Keyer) Generation(ns string) uint32 {
	if k == nil {
		return 0
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if !k.has {
		return 0
	}
	return k.secretLocked(ns).gen
}

func (k *Keyer) secretLocked(ns string) secretGen {
	if s, ok := k.ns[ns]; ok {
		return s
	}
	return k.base
}

// Salt is the 32-byte salt hashed into the keys of namespace ns (already normalized).
func (k *Keyer) Salt(ns string) [32]byte {
	if k != nil {
		k.mu.RLock()
		has, sec := k.has, k.secretLocked(ns)
		k.mu.RUnlock()
		if has {
			return secretSalt(sec.secret, ns)
		}
	}
	return publicSalt(ns)
}

func secretSalt(secret [32]byte, ns string) [32]byte {
	var out [32]byte
	m := hmac.New(sha256.New, secret[:])
	m.Write([]byte("ragkv.chunkcache.namespace.v2\x00"))
	m.Write([]byte(ns))
	m.Sum(out[:0])
	return out
}

func publicSalt(ns string) [32]byte {
	var out [32]byte
	h := sha256.New()
	h.Write([]byte("ragkv.chunkcache.namespace.v1\x00"))
	h.Write([]byte(ns))
	h.Sum(out[:0])
	return out
}

// staleSalts are the salts namespace ns had before: those of the retired secrets that
// applied to it, and (with a secret) the public one, which a data directory written
// before salt secrets used. A stored chunk that hashes to its key under one of them is
// a leftover of a rotation (or of the public salts), not a foreign chunk.
func (k *Keyer) staleSalts(ns string) [][32]byte {
	if k == nil {
		return nil
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if !k.has {
		return nil
	}
	out := [][32]byte{publicSalt(ns)}
	for _, r := range k.retired {
		if r.ns == "*" || r.ns == ns {
			out = append(out, secretSalt(r.secret, ns))
		}
	}
	return out
}

// pruneRetired forgets the retired secrets (after a start deleted every chunk stored
// under them) and rewrites the file.
func (k *Keyer) pruneRetired() error {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.retired) == 0 {
		return nil
	}
	old := k.retired
	k.retired = nil
	if err := k.saveLocked(); err != nil {
		k.retired = old
		return err
	}
	return nil
}

// Rotate replaces the secret of namespace ns (its own, generation one above its
// current one) or, with ns "", the base secret (and drops every namespace's own, so all
// salts change); the file is rewritten before the new secret is used. It returns the
// new generation. Every key derived before is then unreachable: Cache.RotateSalt also
// deletes the chunks stored under them.
func (k *Keyer) Rotate(ns string) (uint32, error) {
	if k == nil || !k.HasSecret() {
		return 0, ErrNoSecret
	}
	if ns != "" {
		n, err := NormalizeNamespace(ns)
		if err != nil {
			return 0, err
		}
		ns = n
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	oldBase, oldNS, oldRetired := k.base, k.ns, k.retired
	var gen uint32
	if ns == "" {
		gen = k.base.gen
		for _, s := range k.ns {
			gen = max(gen, s.gen)
		}
	} else {
		gen = k.secretLocked(ns).gen
	}
	if gen == math.MaxUint32 {
		return 0, fmt.Errorf("%w: salt generation overflow", ErrInvalid)
	}
	s, err := newSecret(gen + 1)
	if err != nil {
		return 0, err
	}
	nsm := make(map[string]secretGen, len(k.ns)+1)
	retired := append([]retiredSecret(nil), k.retired...)
	if ns == "" {
		retired = append(retired, retiredSecret{"*", k.base})
		for n, v := range k.ns {
			retired = append(retired, retiredSecret{n, v})
		}
		k.base = s
	} else {
		retired = append(retired, retiredSecret{ns, k.secretLocked(ns)})
		for n, v := range k.ns {
			nsm[n] = v
		}
		nsm[ns] = s
	}
	k.ns, k.retired = nsm, retired
	if err := k.saveLocked(); err != nil {
		k.base, k.ns, k.retired = oldBase, oldNS, oldRetired
		return 0, err
	}
	return s.gen, nil
}

// Salt secret file, version 1 (text, one record a line, '#' comments):
//
//	ragkv-salt-secret 1
//	base <generation> <64 hex digits>
//	ns <namespace> <generation> <64 hex digits>     (zero or more)
//	retired <namespace or *> <generation> <64 hex digits>   (replaced, not yet swept)
func (k *Keyer) encodeLocked() []byte {
	var b bytes.Buffer
	b.WriteString("# ragkv chunk-cache salt secret: keep private (mode 0600); replicas sharing a remote tier need the same file\n")
	fmt.Fprintf(&b, "%s 1\n", saltSecretMagic)
	fmt.Fprintf(&b, "base %d %s\n", k.base.gen, hex.EncodeToString(k.base.secret[:]))
	names := make([]string, 0, len(k.ns))
	for n := range k.ns {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := k.ns[n]
		fmt.Fprintf(&b, "ns %s %d %s\n", n, s.gen, hex.EncodeToString(s.secret[:]))
	}
	for _, r := range k.retired {
		fmt.Fprintf(&b, "retired %s %d %s\n", r.ns, r.gen, hex.EncodeToString(r.secret[:]))
	}
	return b.Bytes()
}

// saveLocked writes the file atomically (temporary file, fsync, rename).
func (k *Keyer) saveLocked() error {
	if k.path == "" {
		return nil
	}
	tmp := k.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("salt secret: %w", err)
	}
	_, err = f.Write(k.encodeLocked())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, k.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("salt secret: %w", err)
	}
	if d, err := os.Open(filepath.Dir(k.path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// parseSaltSecrets parses a salt secret file (FuzzParseSaltSecrets).
func parseSaltSecrets(b []byte) (*Keyer, error) {
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%w: salt secret file of %d bytes", ErrInvalid, len(b))
	}
	k := &Keyer{has: true, ns: map[string]secretGen{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line, version, haveBase := 0, false, false
	parseGen := func(s string) (secretGen, error) {
		var g secretGen
		fs := strings.Fields(s)
		if len(fs) != 2 {
			return g, fmt.Errorf("want <generation> <64 hex digits>")
		}
		n, err := strconv.ParseUint(fs[0], 10, 32)
		if err != nil || n == 0 {
			return g, fmt.Errorf("generation %q", fs[0])
		}
		sec, err := hex.DecodeString(fs[1])
		if err != nil || len(sec) != 32 {
			return g, fmt.Errorf("secret is not 64 hex digits")
		}
		g.gen = uint32(n)
		copy(g.secret[:], sec)
		return g, nil
	}
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		word, rest, _ := strings.Cut(t, " ")
		var err error
		switch {
		case !version:
			if word != saltSecretMagic || strings.TrimSpace(rest) != "1" {
				return nil, fmt.Errorf("%w: line %d: want %q (format version 1)", ErrInvalid, line, saltSecretMagic+" 1")
			}
			version = true
		case word == "base":
			if haveBase {
				return nil, fmt.Errorf("%w: line %d: a second base secret", ErrInvalid, line)
			}
			k.base, err = parseGen(rest)
			haveBase = true
		case word == "ns":
			name, g, _ := strings.Cut(strings.TrimSpace(rest), " ")
			var n string
			if n, err = NormalizeNamespace(name); err == nil && n != name {
				err = fmt.Errorf("namespace %q", name)
			}
			if err == nil {
				if _, dup := k.ns[n]; dup {
					err = fmt.Errorf("namespace %q twice", n)
				}
			}
			if err == nil {
				k.ns[n], err = parseGen(g)
			}
		case word == "retired":
			name, g, _ := strings.Cut(strings.TrimSpace(rest), " ")
			if name != "*" {
				var n string
				if n, err = NormalizeNamespace(name); err == nil && n != name {
					err = fmt.Errorf("namespace %q", name)
				}
			}
			if err == nil && len(k.retired) >= 1<<12 {
				err = fmt.Errorf("more than %d retired secrets", 1<<12)
			}
			if err == nil {
				var sg secretGen
				if sg, err = parseGen(g); err == nil {
					k.retired = append(k.retired, retiredSecret{name, sg})
				}
			}
		default:
			err = fmt.Errorf("unknown record %q", word)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrInvalid, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if !haveBase {
		return nil, fmt.Errorf("%w: no base secret", ErrInvalid)
	}
	return k, nil
}

// ChunkKey computes the content key of id. See the package doc for the encoding.
func (k *Keyer) ChunkKey(id *ChunkID) (Key, error) {
	if err := id.Validate(); err != nil {
		return Key{}, err
	}
	ns, _ := NormalizeNamespace(id.Namespace)
	return id.keyWithSalt(k.Salt(ns)), nil
}

// ValueKey is the key of the value named name in namespace ns.
func (k *Keyer) ValueKey(ns string, name []byte) (Key, error) {
	n, err := NormalizeNamespace(ns)
	if err != nil {
		return Key{}, err
	}
	if len(name) > MaxValueNameBytes {
		return Key{}, fmt.Errorf("%w: value name of %d bytes (max %d)", ErrInvalid, len(name), MaxValueNameBytes)
	}
	return valueKeyWithSalt(k.Salt(n), name), nil
}

func valueKeyWithSalt(salt [32]byte, name []byte) Key {
	h := sha256.New()
	h.Write([]byte("ragkv.chunkcache.value.v1\x00"))
	h.Write(salt[:])
	h.Write(name)
	var out Key
	h.Sum(out[:0])
	return out
}

// keyWithSalt hashes a validated identity.
func (id *ChunkID) keyWithSalt(salt [32]byte) Key {
	h := sha256.New()
	var buf [8]byte
	u32 := func(v uint32) {
		binary.LittleEndian.PutUint32(buf[:4], v)
		h.Write(buf[:4])
	}
	f64 := func(v float64) {
		if v == 0 {
			v = 0 // -0 hashes as +0
		}
		binary.LittleEndian.PutUint64(buf[:], math.Float64bits(v))
		h.Write(buf[:])
	}
	str := func(s string) {
		u32(uint32(len(s)))
		h.Write([]byte(s))
	}
	h.Write([]byte("ragkv.chunkcache.key\x00"))
	u32(KeyVersion)
	h.Write(salt[:])
	str(id.Model.Architecture)
	str(id.Model.WeightsDigest)
	str(id.Model.TokenizerDigest)
	f64(id.Model.RoPE.Theta)
	u32(uint32(id.Model.RoPE.Dims))
	str(id.Model.RoPE.Style)
	str(id.Model.RoPE.Scaling)
	f64(id.Model.RoPE.Factor)
	u32(uint32(id.Model.RoPE.OriginalContext))
	h.Write([]byte{byte(id.DType)})
	u32(uint32(len(id.Tokens)))
	tb := make([]byte, 4*len(id.Tokens))
	for i, t := range id.Tokens {
		binary.LittleEndian.PutUint32(tb[4*i:], t)
	}
	h.Write(tb)
	var out Key
	h.Sum(out[:0])
	return out
}
