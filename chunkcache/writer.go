package chunkcache

import (
	"context"
	"fmt"
	"math"

	"github.com/ragkv/ragkv/chunkcache/internal/kvblob"
	"github.com/ragkv/ragkv/store"
)

// LayerParts are one layer's K, V and (int8) scales in the stored dtype, the form in
// which engines push KV over gRPC (see ChunkLayerFrame in chunkcache.proto).
type LayerParts = kvblob.LayerParts

// PutSpec describes a chunk to store.
type PutSpec struct {
	// Namespace ("" = DefaultNamespace).
	Namespace string
	Model     Fingerprint
	// Tokens are the chunk's token ids; their count is the KV's token count.
	Tokens []uint32
	// Layout is the stored layout (Layout.DType is the stored dtype).
	Layout Layout
	// PositionBase is the absolute position of the first token when K was rotated.
	PositionBase int64
	// PreRoPE says K is stored without its rotary embedding (every row as at position
	// 0; see kvblob.Header.PreRoPE): readers rotate row t to its position. The writer
	// converts; the cache only records it (and keeps it through re-encoding).
	PreRoPE bool
	// Metadata is free-form (e.g. Cache-Craft attention summaries under
	// "cachecraft/..."); it is returned with the chunk.
	Metadata map[string][]byte
	// Cost is the recompute cost a hit saves (prefill FLOPs or tokens), used by
	// cost-aware eviction; 0 means the token count.
	Cost float64
	// Pin protects the chunk from eviction from the start; a pinned chunk bypasses
	// the tiers' admission filters (it is reserved and pinned in one tracker step).
	Pin Pin
	// Probationary marks a chunk nobody asked to keep — computed on the fly for one
	// request — so that it enters each tier on probation (eviction.Tracker's
	// AppendReserveProbationary): until it is read again it can displace only a
	// bounded share (eviction.Config.Probation) of the chunks that were precomputed or
	// have shown reuse. Ignored for pinned chunks.
	Probationary bool
	// Importance, for the Mixed dtype, ranks each layer's tokens ([layer][token],
	// highest kept at the high precision; nil: key norms). Other dtypes ignore it.
	Importance [][]float32
}

// ID returns the identity the key is computed from.
func (s *PutSpec) ID() ChunkID {
	return ChunkID{Namespace: s.Namespace, Model: s.Model, DType: s.Layout.DType, Tokens: s.Tokens}
}

// Writer stages one chunk, layer by layer in order; nothing is visible until Commit
// returns. A Writer is not safe for concurrent use.
type Writer struct {
	c        *Cache
	key      Key
	ns       string
	spec     PutSpec
	layout   Layout
	tokens   int
	sections [][]byte
	crcs     []uint32
	done     bool
}

// NewWriter validates spec and starts a put. The namespace is created by the commit if
// it is new. Errors: ErrInvalid (identity, layout, metadata, cost, pin), ErrTooLarge.
func (c *Cache) NewWriter(ctx context.Context, spec PutSpec) (*Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ns, err := NormalizeNamespace(spec.Namespace)
	if err != nil {
		return nil, err
	}
	spec.Namespace = ns
	if c.opts.StrictNamespaces {
		if _, err := c.namespace(ns); err != nil {
			return nil, err
		}
	}
	id := spec.ID()
	k, err := c.keyer.ChunkKey(&id)
	if err != nil {
		return nil, err
	}
	l := spec.Layout
	l.EnsureDefaults()
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("layout: %w", asInvalid(err))
	}
	if err := l.ValidateTokens(len(spec.Tokens)); err != nil {
		return nil, asInvalid(err)
	}
	if err := validateMetadata(spec.Metadata); err != nil {
		return nil, err
	}
	if spec.Cost < 0 || math.IsNaN(spec.Cost) || math.IsInf(spec.Cost, 0) {
		return nil, fmt.Errorf("%w: cost %v (want a finite number ≥ 0)", ErrInvalid, spec.Cost)
	}
	if spec.Cost == 0 {
		spec.Cost = float64(len(spec.Tokens))
	}
	if spec.Pin > HardPin {
		return nil, fmt.Errorf("%w: pin %d", ErrInvalid, spec.Pin)
	}
	tokens := len(spec.Tokens)
	total := int64(l.Layers)*l.LayerBytes(tokens) + int64(l.HeaderSize()) + 4*int64(tokens)
	if total > c.opts.MaxChunkBytes {
		return nil, fmt.Errorf("%w: %d layers × %d bytes = %d bytes exceeds the %d-byte limit",
			ErrTooLarge, l.Layers, l.LayerBytes(tokens), total, c.opts.MaxChunkBytes)
	}
	return &Writer{
		c: c, key: k, ns: ns, spec: spec, layout: l, tokens: tokens,
		sections: make([][]byte, 0, l.Layers), crcs: make([]uint32, 0, l.Layers),
	}, nil
}

// Key is the chunk's content key.
func (w *Writer) Key() Key { return w.key }

// Layout is the stored layout (with int8 scale defaults applied).
func (w *Writer) Layout() Layout { return w.layout }

// Tokens is the token count.
func (w *Writer) Tokens() int { return w.tokens }

// NextLayer is the index the next Write call must carry.
func (w *Writer) NextLayer() int { return len(w.sections) }

func (w *Writer) checkNext(layer int) error {
	if w.done {
		return fmt.Errorf("%w: writer already committed or aborted", ErrInvalid)
	}
	if len(w.sections) == w.layout.Layers {
		return fmt.Errorf("%w: layer %d after the last layer (%d layers)", ErrInvalid, layer, w.layout.Layers)
	}
	if layer != len(w.sections) {
		return fmt.Errorf("%w: layer %d out of order: expected layer %d", ErrInvalid, layer, len(w.sections))
	}
	return nil
}

// WriteLayer adds layer `layer` (which must be NextLayer()) from float32 K and V of
// tokens × kv heads × head dim values each, converted to the stored dtype.
func (w *Writer) WriteLayer(layer int, k, v []float32) error {
	if err := w.checkNext(layer); err != nil {
		return err
	}
	var score []float32
	if imp := w.spec.Importance; w.layout.DType == Mixed && imp != nil {
		if len(imp) != w.layout.Layers {
			return fmt.Errorf("%w: importance for %d layers, layout has %d", ErrInvalid, len(imp), w.layout.Layers)
		}
		score = imp[layer]
	}
	s, err := w.layout.AppendLayerScored(make([]byte, 0, w.layout.LayerBytes(w.tokens)), w.tokens, k, v, score)
	if err != nil {
		return fmt.Errorf("layer %d: %w", layer, asInvalid(err))
	}
	w.add(s)
	return nil
}

// WriteLayerRaw adds layer `layer` from parts already in the stored dtype. If crc is
// non-nil it must be the CRC-32C of K‖V‖KScales‖VScales.
func (w *Writer) WriteLayerRaw(layer int, p LayerParts, crc *uint32) error {
	if err := w.checkNext(layer); err != nil {
		return err
	}
	s, err := w.layout.AppendRaw(make([]byte, 0, w.layout.LayerBytes(w.tokens)), w.tokens, p)
	if err != nil {
		return fmt.Errorf("layer %d: %w", layer, asInvalid(err))
	}
	sum := kvblob.Checksum(s)
	if crc != nil && *crc != sum {
		return fmt.Errorf("%w: layer %d: crc32c %08x does not match the data (%08x)", ErrInvalid, layer, *crc, sum)
	}
	w.sections = append(w.sections, s)
	w.crcs = append(w.crcs, sum)
	return nil
}

func (w *Writer) add(s []byte) {
	w.sections = append(w.sections, s)
	w.crcs = append(w.crcs, kvblob.Checksum(s))
}

// Commit stores the chunk atomically in the first tier and every write-through tier
// and returns where it landed. All layers must have been written. A chunk that every
// admission filter rejects is not stored (PutResult.Admitted false, no error).
func (w *Writer) Commit(ctx context.Context) (PutResult, error) {
	if w.done {
		return PutResult{}, fmt.Errorf("%w: writer already committed or aborted", ErrInvalid)
	}
	if len(w.sections) != w.layout.Layers {
		return PutResult{}, fmt.Errorf("%w: commit after %d of %d layers", ErrInvalid, len(w.sections), w.layout.Layers)
	}
	w.done = true
	if !w.c.gate.enter() {
		return PutResult{}, ErrClosed
	}
	defer w.c.gate.exit()
	if err := ctx.Err(); err != nil {
		return PutResult{}, err
	}
	m := manifest{
		ns: w.ns, model: w.spec.Model, cost: w.spec.Cost, created: nowNanos(), pin: uint8(w.spec.Pin),
		tokens: w.spec.Tokens, meta: w.spec.Metadata,
		header: kvblob.Header{Layout: w.layout, Tokens: w.tokens, PositionBase: w.spec.PositionBase, PreRoPE: w.spec.PreRoPE, LayerCRC: w.crcs},
	}
	mb, err := m.encode()
	if err != nil {
		return PutResult{}, err
	}
	obj := store.Object{Manifest: mb, Parts: w.sections}
	w.sections = nil
	if err := fpPutStaged.Inject(); err != nil {
		return PutResult{}, err
	}
	rekey := func() (Key, error) {
		id := w.spec.ID()
		return w.c.keyer.ChunkKey(&id)
	}
	res, err := w.c.commit(ctx, w.key, rekey, obj, entry{ns: w.ns, cost: w.spec.Cost, pin: w.spec.Pin, tokens: int32(w.tokens), prob: w.spec.Probationary}, false)
	w.key = res.Key
	return res, err
}

// Abort drops the staged layers; nothing was stored.
func (w *Writer) Abort() {
	w.done = true
	w.sections = nil
}

// PutFloat32 stores a chunk from float32 K and V, one slice per layer (each tokens ×
// kv heads × head dim values, [token][head][dim] row-major), converted to
// spec.Layout.DType.
func (c *Cache) PutFloat32(ctx context.Context, spec PutSpec, k, v [][]float32) (PutResult, error) {
	w, err := c.NewWriter(ctx, spec)
	if err != nil {
		return PutResult{}, err
	}
	if len(k) != w.layout.Layers || len(v) != w.layout.Layers {
		return PutResult{}, fmt.Errorf("%w: %d K and %d V layers for a %d-layer layout", ErrInvalid, len(k), len(v), w.layout.Layers)
	}
	for i := range k {
		if err := w.WriteLayer(i, k[i], v[i]); err != nil {
			return PutResult{}, err
		}
	}
	return w.Commit(ctx)
}
