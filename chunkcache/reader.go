package chunkcache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/chunkcache/internal/kvblob"
	"github.com/ragkv/ragkv/store"
)

// ChunkInfo describes a stored chunk.
type ChunkInfo struct {
	Key          Key
	Namespace    string
	Model        Fingerprint
	Tokens       []uint32
	Layout       Layout
	PositionBase int64
	Metadata     map[string][]byte
	Cost         float64
	// Tier is the tier this read is served from.
	Tier        string
	Pin         Pin
	StoredBytes int64
	Created     time.Time
	// LayerCRC is the CRC-32C of each layer section (K‖V‖KScales‖VScales).
	LayerCRC []uint32
	// PreRoPE: K is stored without its rotary embedding (PutSpec.PreRoPE).
	PreRoPE bool
}

// Reader reads one chunk layer by layer, in any order; layer i is read (and its CRC
// checked) without touching the others, so a consumer can start on layer 0 while the
// rest is still on disk. It reads a snapshot: a concurrent delete or overwrite does
// not affect it. A Reader is not safe for concurrent use. Close it: the cache's Close
// waits for open Readers, and a chunk read in full from a lower tier is promoted to
// the first tier on Close.
type Reader struct {
	c      *Cache
	info   ChunkInfo
	hdr    kvblob.Header
	tier   int
	r      store.Reader
	pv     store.PartViewer
	verify bool
	buf    []byte

	promote  bool
	manifest []byte
	parts    [][]byte
	got      int
	closed   bool
	// shared describes a chunk read from the shared tier (tier == len(c.tiers)).
	shared entry
}

// Open finds the chunk in the fastest tier holding it and returns a reader. It counts
// a hit for that tier and a miss for each faster tier (a miss in every tier when the
// chunk is absent). Errors: ErrUnknownNamespace, ErrNotFound, ErrCorrupt.
func (c *Cache) Open(ctx context.Context, ns string, k Key) (*Reader, error) {
	if !c.gate.enter() {
		return nil, ErrClosed
	}
	r, err := c.open(ctx, ns, k)
	if err != nil {
		c.gate.exit()
		return nil, err
	}
	return r, nil
}

func (c *Cache) open(ctx context.Context, ns string, k Key) (*Reader, error) {
	ns, err := c.readNamespace(ns)
	if err != nil {
		return nil, err
	}
	var m *manifest
	sr, ti, e, err := c.find(ctx, ns, k, false, func(b []byte, parts int) (entry, error) {
		var err error
		if m, err = decodeManifest(b); err != nil {
			return entry{}, err
		}
		if m.ns != ns || parts != m.header.Layers {
			return entry{}, fmt.Errorf("%w: manifest of %s does not match its record", ErrCorrupt, k.Short())
		}
		return entry{ns: m.ns, cost: m.cost, pin: Pin(m.pin), tokens: int32(len(m.tokens))}, nil
	})
	if err != nil {
		return nil, err
	}
	tierName := c.tierName(ti)
	persistent := ti == len(c.tiers) || c.tiers[ti].persistent
	r := &Reader{
		c: c, tier: ti, r: sr, hdr: m.header,
		verify: persistent || c.opts.VerifyMemoryReads,
		info: ChunkInfo{
			Key: k, Namespace: ns, Model: m.model, Tokens: m.tokens, Layout: m.header.Layout,
			PositionBase: m.header.PositionBase, Metadata: m.meta, Cost: m.cost, Tier: tierName,
			Pin: e.pin, StoredBytes: sr.Size(), Created: time.Unix(0, m.created), LayerCRC: m.header.LayerCRC, PreRoPE: m.header.PreRoPE,
		},
	}
	if ti == len(c.tiers) {
		r.info.Pin = Unpinned
		r.shared = e
	}
	r.pv, _ = sr.(store.PartViewer)
	if ti > 0 && !c.opts.DisablePromotion && sr.Size() <= c.tiers[0].tracker.Config().Capacity {
		r.promote = true
		r.manifest = append([]byte(nil), sr.Manifest()...)
		r.parts = make([][]byte, m.header.Layers)
	}
	return r, nil
}

// find opens k (of kind chunk, or value if value) in the fastest tier holding it: the
// local tiers the index names, then the shared tier. check validates the manifest
// (and describes the object, for the shared tier, whose chunks the index does not
// know). It counts a hit for that tier and a miss for each faster one (every tier
// when absent), touches the trackers, and returns the tier index (len(c.tiers): the
// shared tier) and the entry.
func (c *Cache) find(ctx context.Context, ns string, k Key, value bool, check func([]byte, int) (entry, error)) (store.Reader, int, entry, error) {
	e, ok := c.lookupEntry(ns, k)
	if ok && (e.value != value || (e.expires != 0 && e.expires <= nowNanos())) {
		if e.value && e.expires != 0 {
			c.deleteExpired(ns, k)
		}
		c.countMiss()
		return nil, 0, entry{}, notFound(ns, k)
	}
	if ok {
		for i, t := range c.tiers {
			if !t.tracker.Contains(eviction.Key(k)) {
				continue
			}
			sr, err := t.tier.Open(ctx, k)
			if errors.Is(err, store.ErrNotFound) {
				continue // evicted meanwhile
			}
			if errors.Is(err, store.ErrCorrupt) {
				c.corruptRead(i, k, err)
				return nil, 0, entry{}, fmt.Errorf("%w: open %s in %s: %w", ErrCorrupt, k.Short(), t.name, err)
			}
			if err != nil {
				return nil, 0, entry{}, fmt.Errorf("chunkcache: open %s in %s: %w", k.Short(), t.name, err)
			}
			if _, err := check(sr.Manifest(), sr.NumParts()); err != nil {
				sr.Close()
				if errors.Is(err, ErrCorrupt) {
					c.corruptRead(i, k, err)
				}
				return nil, 0, entry{}, fmt.Errorf("chunkcache: open %s in %s: %w", k.Short(), t.name, err)
			}
			for j := 0; j < i; j++ {
				c.tiers[j].misses.Add(1)
			}
			t.hits.Add(1)
			if e.hits != nil {
				e.hits.Add(1)
			}
			for _, lower := range c.tiers[i:] {
				lower.tracker.Touch(eviction.Key(k))
			}
			return sr, i, e, nil
		}
	}
	if c.shared != nil {
		sr, se, err := c.openShared(ctx, ns, k, func(b []byte, parts int) (entry, error) {
			se, _, err := checkStored(c.keyer, k, b, parts)
			switch {
			case err != nil:
				return entry{}, err
			case se.value != value || (se.expires != 0 && se.expires <= nowNanos()):
				return entry{}, notFound(ns, k)
			}
			if _, err := check(b, parts); err != nil {
				return entry{}, err
			}
			return se, nil
		})
		if err == nil {
			for _, t := range c.tiers {
				t.misses.Add(1)
			}
			c.shared.hits.Add(1)
			return sr, len(c.tiers), se, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, 0, entry{}, cerr
		}
	}
	c.countMiss()
	return nil, 0, entry{}, notFound(ns, k)
}

// countMiss counts a miss in every tier.
func (c *Cache) countMiss() {
	for _, t := range c.tiers {
		t.misses.Add(1)
	}
	if c.shared != nil {
		c.shared.misses.Add(1)
	}
}

// Info describes the chunk. The returned value must not be modified.
func (r *Reader) Info() *ChunkInfo { return &r.info }

// Layout is the stored layout.
func (r *Reader) Layout() Layout { return r.hdr.Layout }

// NumTokens is the chunk's token count.
func (r *Reader) NumTokens() int { return r.hdr.Tokens }

// Section returns layer i's section (K‖V‖KScales‖VScales in the stored dtype), CRC
// checked. The slice is read-only and valid until the next call on r or Close.
func (r *Reader) Section(ctx context.Context, i int) ([]byte, error) {
	if r.closed {
		return nil, fmt.Errorf("%w: reader closed", ErrInvalid)
	}
	if i < 0 || i >= r.hdr.Layers {
		return nil, fmt.Errorf("%w: layer %d out of range (chunk has %d layers)", ErrInvalid, i, r.hdr.Layers)
	}
	var s []byte
	var err error
	switch {
	case r.pv != nil:
		s, err = r.pv.ViewPart(i)
	case r.promote && r.parts[i] == nil:
		s, err = r.r.ReadPart(ctx, i, nil) // kept for the promotion
	default:
		r.buf, err = r.r.ReadPart(ctx, i, r.buf)
		s = r.buf
	}
	if errors.Is(err, store.ErrCorrupt) {
		r.c.corruptRead(r.tier, r.info.Key, err)
		return nil, fmt.Errorf("%w: read %s layer %d from %s: %w", ErrCorrupt, r.info.Key.Short(), i, r.info.Tier, err)
	}
	if err != nil {
		return nil, fmt.Errorf("chunkcache: read %s layer %d: %w", r.info.Key.Short(), i, err)
	}
	if r.verify {
		if err := r.hdr.CheckLayer(i, s); err != nil {
			err = asInvalid(err)
			if errors.Is(err, ErrCorrupt) {
				r.c.corruptRead(r.tier, r.info.Key, err)
			}
			return nil, fmt.Errorf("chunkcache: read %s layer %d from %s: %w", r.info.Key.Short(), i, r.info.Tier, err)
		}
	} else if int64(len(s)) != r.hdr.LayerBytes() {
		err := fmt.Errorf("%w: %s layer %d is %d bytes, want %d", ErrCorrupt, r.info.Key.Short(), i, len(s), r.hdr.LayerBytes())
		r.c.corruptRead(r.tier, r.info.Key, err)
		return nil, err
	}
	if r.promote && r.parts[i] == nil {
		r.parts[i] = s
		r.got++
	}
	return s, nil
}

// LayerParts returns layer i split into K, V and scales (aliasing Section's result,
// with the same validity).
func (r *Reader) LayerParts(ctx context.Context, i int) (LayerParts, error) {
	s, err := r.Section(ctx, i)
	if err != nil {
		return LayerParts{}, err
	}
	p, err := r.hdr.Split(s, r.hdr.Tokens)
	return p, asInvalid(err)
}

// ReadLayer decodes layer i into caller-owned K and V buffers of tokens × kv heads ×
// head dim float32 values each ([token][head][dim]). It allocates nothing when
// reading from the memory tier, or once the reader's buffer has grown.
func (r *Reader) ReadLayer(ctx context.Context, i int, k, v []float32) error {
	s, err := r.Section(ctx, i)
	if err != nil {
		return err
	}
	return asInvalid(r.hdr.DecodeLayer(s, r.hdr.Tokens, k, v))
}

// Close releases the reader. If any layer was read from a lower tier, the chunk is
// promoted to the first tier (subject to its admission filter): layers the consumer
// skipped (fused prefill recomputes the first layers instead of loading them) are read
// here, after the consumer is done with the chunk, so a hit still moves the chunk up.
// A chunk that was opened but never read (a metadata look) is not promoted.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.promote && r.got > 0 && r.got < r.hdr.Layers {
		r.readRest()
	}
	err := r.r.Close()
	if r.promote && r.got == r.hdr.Layers {
		obj := store.Object{Manifest: r.manifest, Parts: r.parts}
		if r.tier == len(r.c.tiers) {
			r.c.promoteShared(r.info.Key, obj, r.shared)
		} else {
			r.c.promoteChunk(r.info.Key, r.info.Namespace, obj, r.info.Cost, r.tier)
		}
	}
	r.parts = nil
	r.c.gate.exit()
	return err
}

// readRest reads (and checks) the layers not yet read, for the promotion. On error the
// chunk simply stays where it is.
func (r *Reader) readRest() {
	ctx := context.Background()
	for i, p := range r.parts {
		if p != nil {
			continue
		}
		s, err := r.r.ReadPart(ctx, i, nil)
		if err == nil {
			err = r.hdr.CheckLayer(i, s)
		}
		if err != nil {
			r.c.log.Warn("chunkcache: read for promotion", "key", r.info.Key.String(), "layer", i, "err", err)
			return
		}
		r.parts[i] = s
		r.got++
	}
}

// promoteChunk copies a chunk read from tier `from` into the first tier.
func (c *Cache) promoteChunk(k Key, ns string, obj store.Object, cost float64, from int) {
	ctx := context.Background()
	first := c.tiers[0]
	mu := c.lock(k)
	mu.Lock()
	e, ok := c.lookupEntry(ns, k)
	if !ok || first.tracker.Contains(eviction.Key(k)) || !c.tiers[from].tracker.Contains(eviction.Key(k)) {
		mu.Unlock()
		return
	}
	// The first tier keeps its own format (e.g. q4 on disk promoted into f16 RAM).
	obj, err := first.inFormat(obj, e.value, ns)
	if err != nil {
		mu.Unlock()
		c.log.Warn("chunkcache: promote: re-encode", "key", k.String(), "err", err)
		return
	}
	vs, err := first.tracker.ReserveGroup(eviction.Key(k), obj.Size(), cost, e.pin, e.ns)
	if err != nil {
		mu.Unlock()
		return
	}
	err = fpPromoteReserve.Inject()
	if err == nil {
		err = first.tier.Put(ctx, k, obj)
	}
	if err != nil {
		first.tracker.Remove(eviction.Key(k))
		c.log.Warn("chunkcache: promote", "key", k.String(), "err", err)
	} else {
		fpPromoteStored.Hit()
		first.promotions.Add(1)
		c.emit(EventPromoted, k, &e, 0, from)
	}
	mu.Unlock()
	c.processVictims(toVictims(0, vs))
}

// GetFloat32 reads a whole chunk and decodes every layer to float32 (one K and one V
// slice per layer). For large chunks prefer Open and ReadLayer into reused buffers.
func (c *Cache) GetFloat32(ctx context.Context, ns string, k Key) (*ChunkInfo, [][]float32, [][]float32, error) {
	r, err := c.Open(ctx, ns, k)
	if err != nil {
		return nil, nil, nil, err
	}
	defer r.Close()
	n := r.Layout().Elems(r.NumTokens())
	ks := make([][]float32, r.Layout().Layers)
	vs := make([][]float32, r.Layout().Layers)
	for i := range ks {
		ks[i], vs[i] = make([]float32, n), make([]float32, n)
		if err := r.ReadLayer(ctx, i, ks[i], vs[i]); err != nil {
			return nil, nil, nil, err
		}
	}
	info := r.info
	return &info, ks, vs, nil
}
