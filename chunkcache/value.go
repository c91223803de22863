package chunkcache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// Values are opaque byte strings stored under a caller's name in a namespace (the RESP
// endpoint's GET/SET, package resp), in the same tiers as chunks, under the same
// eviction, pins, events and metrics. A value's key is
//
//	SHA-256("ragkv.chunkcache.value.v1" 0x00, namespace salt (32 bytes), name)
//
// which never equals a chunk key (a different hash domain). Its stored form is a value
// manifest plus the value split into parts of at most ValuePartBytes, each with its
// CRC-32C (checked on reads from persistent and shared tiers). A value may expire (its
// TTL): it is then absent, and SweepExpired or the next access deletes it.

// Bounds on values.
const (
	MaxValueNameBytes = 64 << 10
	ValuePartBytes    = 64 << 20
)

// valuePartBytes is ValuePartBytes (smaller in tests).
var valuePartBytes = ValuePartBytes

// ValueKey is the key of the value named name in namespace ns (under the cache's
// keyer).
func (c *Cache) ValueKey(ns string, name []byte) (Key, error) { return c.keyer.ValueKey(ns, name) }

// valueManifest encoding (little-endian; str/bytes = u32 length + bytes):
//
//	"RKVV" u16 version(1)
//	str namespace, bytes name
//	i64 created (unix ns), i64 expires (unix ns, 0: never), u8 pin, f64 cost
//	u32 n, n × (u64 part size, u32 part CRC-32C)
//	u32 CRC-32C of everything before
type valueManifest struct {
	ns      string
	name    []byte
	created int64
	expires int64
	pin     uint8
	cost    float64
	sizes   []int64
	crcs    []uint32
}

const valueManifestMagic = "RKVV"

func (m *valueManifest) encode() []byte {
	b := make([]byte, 0, 64+len(m.ns)+len(m.name)+12*len(m.sizes))
	b = append(b, valueManifestMagic...)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.ns)))
	b = append(b, m.ns...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.name)))
	b = append(b, m.name...)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.created))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.expires))
	b = append(b, m.pin)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(m.cost))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.sizes)))
	for i := range m.sizes {
		b = binary.LittleEndian.AppendUint64(b, uint64(m.sizes[i]))
		b = binary.LittleEndian.AppendUint32(b, m.crcs[i])
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeValueManifest parses untrusted bytes (FuzzValueManifest).
func decodeValueManifest(b []byte) (*valueManifest, error) {
	if len(b) < 10 || string(b[:4]) != valueManifestMagic {
		return nil, fmt.Errorf("%w: value manifest: bad magic", ErrCorrupt)
	}
	if got, want := crc32.Checksum(b[:len(b)-4], castagnoli), binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return nil, fmt.Errorf("%w: value manifest checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != 1 {
		return nil, fmt.Errorf("%w: value manifest version %d (this build reads 1)", ErrCorrupt, v)
	}
	d := decoder{b: b[6 : len(b)-4]}
	m := &valueManifest{}
	m.ns = d.str()
	nl := d.u32()
	if nl > MaxValueNameBytes {
		return nil, fmt.Errorf("%w: value manifest: name of %d bytes", ErrCorrupt, nl)
	}
	m.name = d.bytes(int(nl))
	m.created = int64(d.u64())
	m.expires = int64(d.u64())
	m.pin = d.u8()
	m.cost = d.f64()
	n := d.u32()
	if n > store.MaxParts || uint64(n)*12 > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: value manifest: %d parts", ErrCorrupt, n)
	}
	m.sizes, m.crcs = make([]int64, n), make([]uint32, n)
	for i := range m.sizes {
		sz := d.u64()
		if sz > ValuePartBytes {
			return nil, fmt.Errorf("%w: value manifest: part %d of %d bytes", ErrCorrupt, i, sz)
		}
		m.sizes[i], m.crcs[i] = int64(sz), d.u32()
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: value manifest: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	if m.pin > uint8(HardPin) || math.IsNaN(m.cost) || m.cost < 0 {
		return nil, fmt.Errorf("%w: value manifest: pin %d, cost %v", ErrCorrupt, m.pin, m.cost)
	}
	return m, nil
}

// keyMismatchError: a stored object's manifest is intact but does not hash to its key
// under the current salts. check reports whether it hashes to it under another salt
// (a retired secret's, or the public one): then it is a stale chunk of a rotation.
type keyMismatchError struct {
	ns    string
	got   Key
	check func(salt [32]byte) bool
}

func (e *keyMismatchError) Error() string {
	return fmt.Sprintf("%v: manifest hashes to %s (namespace %q)", ErrCorrupt, e.got.Short(), e.ns)
}

func (e *keyMismatchError) Unwrap() error { return ErrCorrupt }

// checkStored decodes a stored manifest of either kind, checks that it hashes to k and
// matches its part count, and describes it (size not set) with its creation time.
func checkStored(kr *Keyer, k Key, b []byte, parts int) (entry, int64, error) {
	if len(b) >= 4 && string(b[:4]) == valueManifestMagic {
		m, err := decodeValueManifest(b)
		if err != nil {
			return entry{}, 0, err
		}
		vk, err := kr.ValueKey(m.ns, m.name)
		if err == nil && vk != k {
			name := m.name
			err = &keyMismatchError{ns: m.ns, got: vk, check: func(salt [32]byte) bool { return valueKeyWithSalt(salt, name) == k }}
		}
		if err == nil && parts != len(m.sizes) {
			err = fmt.Errorf("%w: %d parts for a %d-part value", ErrCorrupt, parts, len(m.sizes))
		}
		if err != nil {
			return entry{}, 0, err
		}
		return entry{ns: m.ns, cost: m.cost, pin: Pin(m.pin), value: true, expires: m.expires}, m.created, nil
	}
	m, err := decodeManifest(b)
	if err != nil {
		return entry{}, 0, err
	}
	id := ChunkID{Namespace: m.ns, Model: m.model, DType: m.header.DType, Tokens: m.tokens}
	ck, err := kr.ChunkKey(&id)
	if err == nil && ck != k {
		// A tier with a Format keeps a re-encoded copy under the key of the dtype the
		// chunk was put as: accept the identity under any dtype.
		for d := F32; d <= Mixed && ck != k; d++ {
			id.DType = d
			if dk, derr := kr.ChunkKey(&id); derr == nil && dk == k {
				ck = dk
			}
		}
		if ck != k {
			id := id
			err = &keyMismatchError{ns: m.ns, got: ck, check: func(salt [32]byte) bool {
				for d := F32; d <= Mixed; d++ {
					id.DType = d
					if id.keyWithSalt(salt) == k {
						return true
					}
				}
				return false
			}}
		}
	}
	if err == nil && parts != m.header.Layers {
		err = fmt.Errorf("%w: %d parts for %d layers", ErrCorrupt, parts, m.header.Layers)
	}
	if err != nil {
		return entry{}, 0, err
	}
	return entry{ns: m.ns, cost: m.cost, pin: Pin(m.pin), tokens: int32(len(m.tokens))}, m.created, nil
}

// ValueOptions are the options of a value put.
type ValueOptions struct {
	// TTL is how long the value lives (0: until evicted or deleted).
	TTL time.Duration
	// Pin protects it from eviction (a pinned value bypasses admission filters).
	Pin Pin
	// WriteThrough stores the value in every write-through tier (and the shared tier)
	// at once, like a chunk put; without it the value enters the first tier only and
	// reaches the lower tiers when that one evicts it (a cache, as Redis without AOF:
	// a crash loses what was only in RAM).
	WriteThrough bool
}

// ValueInfo describes a value read.
type ValueInfo struct {
	Key     Key
	Size    int64
	Tier    string
	Created time.Time
	// Expires is zero for a value without TTL.
	Expires time.Time
}

// PutValue stores value under name in namespace ns (creating the namespace unless
// StrictNamespaces), replacing any previous value. The cache keeps value's bytes (the
// caller must not modify them afterwards). A value that every admission filter
// rejects is not stored (PutResult.Admitted false, no error).
func (c *Cache) PutValue(ctx context.Context, ns string, name, value []byte, o ValueOptions) (PutResult, error) {
	if !c.gate.enter() {
		return PutResult{}, ErrClosed
	}
	defer c.gate.exit()
	ns, err := NormalizeNamespace(ns)
	if err != nil {
		return PutResult{}, err
	}
	if c.opts.StrictNamespaces {
		if _, err := c.namespace(ns); err != nil {
			return PutResult{}, err
		}
	}
	k, err := c.keyer.ValueKey(ns, name)
	if err != nil {
		return PutResult{}, err
	}
	if o.TTL < 0 || o.Pin > HardPin {
		return PutResult{}, fmt.Errorf("%w: ttl %v, pin %d", ErrInvalid, o.TTL, o.Pin)
	}
	if int64(len(value)) > c.opts.MaxChunkBytes {
		return PutResult{}, fmt.Errorf("%w: value of %d bytes exceeds the %d-byte limit", ErrTooLarge, len(value), c.opts.MaxChunkBytes)
	}
	m := valueManifest{ns: ns, name: name, created: nowNanos(), pin: uint8(o.Pin), cost: float64(len(value))}
	if o.TTL > 0 {
		m.expires = m.created + int64(o.TTL)
	}
	var parts [][]byte
	for off := 0; off < len(value); off += valuePartBytes {
		p := value[off:min(off+valuePartBytes, len(value))]
		parts = append(parts, p)
		m.sizes = append(m.sizes, int64(len(p)))
		m.crcs = append(m.crcs, crc32.Checksum(p, castagnoli))
	}
	obj := store.Object{Manifest: m.encode(), Parts: parts}
	rekey := func() (Key, error) { return c.keyer.ValueKey(ns, name) }
	return c.commit(ctx, k, rekey, obj, entry{ns: ns, cost: m.cost, pin: o.Pin, value: true, expires: m.expires}, !o.WriteThrough)
}

// GetValue reads the value named name: its parts in order (read-only: views of the
// memory tier's bytes, or buffers read from a lower tier), with where it was read. A
// value read from a lower tier is promoted into the first tier. Errors: ErrNotFound
// (absent or expired), ErrUnknownNamespace, ErrCorrupt.
func (c *Cache) GetValue(ctx context.Context, ns string, name []byte) ([][]byte, ValueInfo, error) {
	if !c.gate.enter() {
		return nil, ValueInfo{}, ErrClosed
	}
	defer c.gate.exit()
	ns, err := c.readNamespace(ns)
	if err != nil {
		return nil, ValueInfo{}, err
	}
	k, err := c.keyer.ValueKey(ns, name)
	if err != nil {
		return nil, ValueInfo{}, err
	}
	var m *valueManifest
	sr, ti, e, err := c.find(ctx, ns, k, true, func(b []byte, parts int) (entry, error) {
		var err error
		if m, err = decodeValueManifest(b); err != nil {
			return entry{}, err
		}
		if m.ns != ns || parts != len(m.sizes) {
			return entry{}, fmt.Errorf("%w: value manifest of %s does not match its record", ErrCorrupt, k.Short())
		}
		return entry{}, nil
	})
	if err != nil {
		return nil, ValueInfo{}, err
	}
	if m.expires != 0 && m.expires <= nowNanos() {
		sr.Close()
		if ti < len(c.tiers) {
			c.deleteExpired(ns, k)
		}
		return nil, ValueInfo{}, notFound(ns, k)
	}
	defer sr.Close()
	verify := ti == len(c.tiers) || c.tiers[ti].persistent || c.opts.VerifyMemoryReads
	pv, _ := sr.(store.PartViewer)
	parts := make([][]byte, len(m.sizes))
	for i := range parts {
		var p []byte
		if pv != nil {
			p, err = pv.ViewPart(i)
		} else {
			p, err = sr.ReadPart(ctx, i, nil)
		}
		if err != nil {
			return nil, ValueInfo{}, fmt.Errorf("chunkcache: read value %s part %d: %w", k.Short(), i, err)
		}
		if int64(len(p)) != m.sizes[i] || (verify && crc32.Checksum(p, castagnoli) != m.crcs[i]) {
			return nil, ValueInfo{}, fmt.Errorf("%w: value %s part %d in %s fails its size or checksum", ErrCorrupt, k.Short(), i, c.tierName(ti))
		}
		parts[i] = p
	}
	info := ValueInfo{Key: k, Size: sr.Size(), Tier: c.tierName(ti), Created: time.Unix(0, m.created)}
	if m.expires != 0 {
		info.Expires = time.Unix(0, m.expires)
	}
	if ti > 0 && !c.opts.DisablePromotion && sr.Size() <= c.tiers[0].tracker.Config().Capacity {
		obj := store.Object{Manifest: append([]byte(nil), sr.Manifest()...), Parts: parts}
		if ti == len(c.tiers) {
			c.promoteShared(k, obj, e)
		} else {
			c.promoteChunk(k, ns, obj, e.cost, ti)
		}
	}
	return parts, info, nil
}

// ValueTTL reports a value's remaining time to live: ok false when absent; ttl 0 when
// it has no expiry. It reads only what the index knows, or the shared tier's manifest.
func (c *Cache) ValueTTL(ctx context.Context, ns string, name []byte) (ttl time.Duration, ok bool, err error) {
	ns, err = c.readNamespace(ns)
	if err != nil {
		return 0, false, err
	}
	k, err := c.keyer.ValueKey(ns, name)
	if err != nil {
		return 0, false, err
	}
	now := nowNanos()
	if e, found := c.lookupEntry(ns, k); found && e.value {
		switch {
		case e.expires == 0:
			return 0, true, nil
		case e.expires <= now:
			return 0, false, nil
		}
		return time.Duration(e.expires - now), true, nil
	}
	if c.shared == nil {
		return 0, false, nil
	}
	r, err := c.shared.tier.Open(ctx, k)
	if err != nil {
		return 0, false, nil
	}
	defer r.Close()
	e, _, err := checkStored(c.keyer, k, r.Manifest(), r.NumParts())
	if err != nil || !e.value || (e.expires != 0 && e.expires <= now) {
		return 0, false, nil
	}
	if e.expires == 0 {
		return 0, true, nil
	}
	return time.Duration(e.expires - now), true, nil
}

// ValuesPresent reports for each name whether a live value is stored (local tiers,
// then the shared tier, in one round trip).
func (c *Cache) ValuesPresent(ctx context.Context, ns string, names [][]byte) ([]bool, error) {
	if !c.gate.enter() {
		return nil, ErrClosed
	}
	defer c.gate.exit()
	keys := make([]Key, len(names))
	for i, n := range names {
		k, err := c.keyer.ValueKey(ns, n)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	res, err := c.Lookup(ctx, ns, keys)
	if errors.Is(err, ErrUnknownNamespace) {
		return make([]bool, len(names)), nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(res))
	for i, r := range res {
		out[i] = r.Present && (r.Kind == "" || r.Kind == KindValue)
	}
	return out, nil
}

// DeleteValue deletes the value named name; ok false when there was none.
func (c *Cache) DeleteValue(ctx context.Context, ns string, name []byte) (bool, error) {
	k, err := c.keyer.ValueKey(ns, name)
	if err != nil {
		return false, err
	}
	if e, found := c.lookupEntry(mustNormalize(ns), k); found && e.expires != 0 && e.expires <= nowNanos() {
		_, _ = c.Delete(ctx, ns, k)
		return false, nil
	}
	_, err = c.Delete(ctx, ns, k)
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnknownNamespace):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

func mustNormalize(ns string) string {
	n, err := NormalizeNamespace(ns)
	if err != nil {
		return ns
	}
	return n
}

// CountValues counts the live values of namespace ns in the local tiers.
func (c *Cache) CountValues(ns string) int {
	ns = mustNormalize(ns)
	now := nowNanos()
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	for _, e := range c.index {
		if e.value && e.ns == ns && (e.expires == 0 || e.expires > now) {
			n++
		}
	}
	return n
}

// SweepExpired deletes the expired values held in the local tiers (emitting
// EventDeleted) and returns how many it deleted.
func (c *Cache) SweepExpired(ctx context.Context) int {
	now := nowNanos()
	type item struct {
		k  Key
		ns string
	}
	var expired []item
	c.mu.RLock()
	for k, e := range c.index {
		if e.expires != 0 && e.expires <= now {
			expired = append(expired, item{k, e.ns})
		}
	}
	c.mu.RUnlock()
	n := 0
	for _, it := range expired {
		if ctx.Err() != nil {
			break
		}
		if c.deleteExpired(it.ns, it.k) {
			n++
		}
	}
	return n
}

// deleteExpired deletes k from the local tiers if it is (still) an expired value.
func (c *Cache) deleteExpired(ns string, k Key) bool {
	if !c.gate.enter() {
		return false
	}
	defer c.gate.exit()
	mu := c.lock(k)
	mu.Lock()
	defer mu.Unlock()
	e, ok := c.lookupEntry(ns, k)
	if !ok || e.expires == 0 || e.expires > nowNanos() {
		return false
	}
	for i, t := range c.tiers {
		if t.tracker.Remove(eviction.Key(k)) {
			c.emit(EventDeleted, k, &e, i, -1)
			if err := t.tier.Delete(context.Background(), k); err != nil && !errors.Is(err, store.ErrNotFound) {
				c.log.Warn("chunkcache: delete expired value", "tier", t.name, "key", k.String(), "err", err)
			}
		}
	}
	c.mu.Lock()
	c.dropIndexLocked(k)
	c.mu.Unlock()
	return true
}
