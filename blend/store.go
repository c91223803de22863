package blend

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/model"
)

// ModelFingerprint identifies a model for chunk keys: its architecture, the SHA-256 of
// its weight file(s) (a directory: its .safetensors and .json files in name order),
// a SHA-256 over its tokenizer's vocabulary, and its RoPE configuration.
func ModelFingerprint(m *model.Model) (chunkcache.Fingerprint, error) {
	wd, err := fileDigest(m.Path)
	if err != nil {
		return chunkcache.Fingerprint{}, fmt.Errorf("blend: model digest: %w", err)
	}
	h := sha256.New()
	tok := m.Tok
	fmt.Fprintf(h, "%s\x00%d\x00%d\x00%d\x00", tok.Kind(), tok.VocabSize(), tok.BOS(), tok.EOS())
	var b [4]byte
	for id := 0; id < tok.VocabSize(); id++ {
		p := tok.Piece(0, id)
		binary.LittleEndian.PutUint32(b[:], uint32(len(p)))
		h.Write(b[:])
		h.Write(p)
	}
	c := &m.Config
	rope := chunkcache.RoPEConfig{Theta: c.RopeTheta, Style: c.Rope.String()}
	if rs := c.RopeScaling; rs != nil {
		rope.Scaling, rope.Factor, rope.OriginalContext = rs.Type, rs.Factor, rs.OriginalContext
	}
	return chunkcache.Fingerprint{
		Architecture:    c.Arch,
		WeightsDigest:   wd,
		TokenizerDigest: "sha256:" + hex.EncodeToString(h.Sum(nil)),
		RoPE:            rope,
	}, nil
}

func fileDigest(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	files := []string{path}
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return "", err
		}
		files = files[:0]
		for _, e := range ents {
			if n := e.Name(); !e.IsDir() && (strings.HasSuffix(n, ".safetensors") || strings.HasSuffix(n, ".json")) {
				files = append(files, filepath.Join(path, n))
			}
		}
		slices.Sort(files)
	}
	h := sha256.New()
	for _, f := range files {
		fd, err := os.Open(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00", filepath.Base(f))
		_, err = io.Copy(h, fd)
		fd.Close()
		if err != nil {
			return "", err
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// StoreOptions configures a Store.
type StoreOptions struct {
	// Namespace of the chunks ("" = the cache's default).
	Namespace string
	// DType of the stored K/V (default F16).
	DType chunkcache.DType
	// Format, if its DType is set, is the full storage encoding (chunkcache.ParseFormat:
	// group size, rotation, mixed precision of the grouped dtypes); it overrides DType.
	Format chunkcache.Layout
	// Fingerprint of the model (zero: ModelFingerprint).
	Fingerprint chunkcache.Fingerprint
	// NoProbation stores chunks computed on the fly as plain puts instead of on
	// probation (PutOnTheFly): the behaviour before probation, for comparisons.
	NoProbation bool
	// PreRoPE stores K without its rotary embedding (chunkcache.PutSpec.PreRoPE):
	// Put un-rotates a copy of each layer's K to position 0 and the loader rotates the
	// rows to their new positions, so the chunk is used exactly as a post-RoPE one.
	// Quantized K groups per channel then see each channel's own values instead of a
	// pair mixed by position (KIVI, KVQuant): on stories260K q4 K-only error halves
	// with 8-token groups (see blend/blendeval). Chunks already stored either way are
	// read either way.
	PreRoPE bool
}

// Store keeps segment KVs with their Meta in a chunk cache. A segment's key is the
// chunk cache's content key of its tokens under the model fingerprint, with the hashes
// of the segments its KV was computed after (its KV depends on them) folded into the
// weights digest: "<digest>;ctx=<hex SHA-256 of the hashes>". It is safe for concurrent
// use.
type Store struct {
	m     *model.Model
	cache *chunkcache.Cache
	o     StoreOptions
}

// NewStore returns a Store over c for m.
func NewStore(m *model.Model, c *chunkcache.Cache, o StoreOptions) (*Store, error) {
	if o.Format.DType != 0 {
		o.DType = o.Format.DType
		l := chunkcache.Layout{Layers: m.Config.Layers, KVHeads: m.Config.KVHeads, HeadDim: m.Config.HeadDim}.WithFormat(o.Format)
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("%w: format: %v", ErrInvalid, err)
		}
	}
	if o.DType == 0 {
		o.DType = chunkcache.F16
	}
	if !o.DType.Valid() {
		return nil, fmt.Errorf("%w: dtype %d", ErrInvalid, o.DType)
	}
	if o.Fingerprint.WeightsDigest == "" {
		fp, err := ModelFingerprint(m)
		if err != nil {
			return nil, err
		}
		o.Fingerprint = fp
	}
	ns, err := chunkcache.NormalizeNamespace(o.Namespace)
	if err != nil {
		return nil, err
	}
	o.Namespace = ns
	return &Store{m: m, cache: c, o: o}, nil
}

// WithNamespace returns a Store on another namespace of the same cache.
func (s *Store) WithNamespace(ns string) (*Store, error) {
	n, err := chunkcache.NormalizeNamespace(ns)
	if err != nil {
		return nil, err
	}
	o := s.o
	o.Namespace = n
	return &Store{m: s.m, cache: s.cache, o: o}, nil
}

func (s *Store) fingerprint(kvPrev []Hash) chunkcache.Fingerprint {
	fp := s.o.Fingerprint
	if len(kvPrev) > 0 {
		h := sha256.New()
		for _, p := range kvPrev {
			h.Write(p[:])
		}
		fp.WeightsDigest += ";ctx=" + hex.EncodeToString(h.Sum(nil))
	}
	return fp
}

func u32s(tokens []int) []uint32 {
	out := make([]uint32, len(tokens))
	for i, t := range tokens {
		out[i] = uint32(t)
	}
	return out
}

// Key is the chunk-cache key of a segment whose KV was computed after kvPrev.
func (s *Store) Key(tokens []int, kvPrev []Hash) (chunkcache.Key, error) {
	id := chunkcache.ChunkID{Namespace: s.o.Namespace, Model: s.fingerprint(kvPrev), DType: s.o.DType, Tokens: u32s(tokens)}
	return s.cache.Key(id)
}

// Put stores a segment's KV (rows at consecutive positions from kv.Pos[0], the
// position base) with meta (nil: computed alone, no statistics). A chunk the admission
// policy rejects is not stored (PutResult.Admitted false).
func (s *Store) Put(ctx context.Context, tokens []int, kv *model.KV, meta *Meta) (chunkcache.PutResult, error) {
	return s.put(ctx, tokens, kv, meta, false)
}

// PutOnTheFly stores a chunk computed on the fly for one request (not precomputed): it
// enters the cache on probation (chunkcache.PutSpec.Probationary), so a stream of
// novel queries cannot push out the precomputed chunks that retrieval keeps returning.
func (s *Store) PutOnTheFly(ctx context.Context, tokens []int, kv *model.KV, meta *Meta) (chunkcache.PutResult, error) {
	return s.put(ctx, tokens, kv, meta, !s.o.NoProbation)
}

func (s *Store) put(ctx context.Context, tokens []int, kv *model.KV, meta *Meta, probationary bool) (chunkcache.PutResult, error) {
	if kv.Len() != len(tokens) || kv.Len() == 0 {
		return chunkcache.PutResult{}, fmt.Errorf("%w: %d tokens and %d KV rows", ErrInvalid, len(tokens), kv.Len())
	}
	if meta == nil {
		meta = &Meta{}
	}
	mb, err := EncodeMeta(meta)
	if err != nil {
		return chunkcache.PutResult{}, err
	}
	c := &s.m.Config
	n := kv.Len() * kv.KVDim
	k, v := make([][]float32, c.Layers), make([][]float32, c.Layers)
	for l := range k {
		k[l], v[l] = kv.K[l][:n], kv.V[l][:n]
	}
	if s.o.PreRoPE {
		if k, err = UnrotateK(s.m, k, kv.Pos[:kv.Len()]); err != nil {
			return chunkcache.PutResult{}, err
		}
	}
	spec := chunkcache.PutSpec{
		Namespace:    s.o.Namespace,
		Model:        s.fingerprint(meta.KVPrev),
		Tokens:       u32s(tokens),
		Layout:       s.layout(),
		PositionBase: int64(kv.Pos[0]),
		PreRoPE:      s.o.PreRoPE,
		Metadata:     map[string][]byte{MetaKey: mb},
		Cost:         c.PrefillFLOPs(kv.Pos[0], kv.Len()),
		Importance:   mixedImportance(meta, c.Layers, kv.Len()),
		Probationary: probationary,
	}
	return s.cache.PutFloat32(ctx, spec, k, v)
}

// UnrotateK returns copies of each layer's K rows (at positions pos) with their rotary
// embedding removed: every row rotated to position 0, the form of
// StoreOptions.PreRoPE.
func UnrotateK(m *model.Model, k [][]float32, pos []int) ([][]float32, error) {
	zero := make([]int, len(pos))
	out := make([][]float32, len(k))
	for l, kl := range k {
		out[l] = slices.Clone(kl)
		if err := m.RotateKLayer(l, out[l], pos, zero); err != nil {
			return nil, fmt.Errorf("blend: un-rotate K of layer %d: %w", l, err)
		}
	}
	return out, nil
}

// mixedImportance ranks a chunk's tokens for the Mixed format from its Cache-Craft
// statistics: the tokens with the least outside-chunk attention mass are kept at the
// high precision (the others are the ones fusion recomputes). Measured on stories260K
// (3 chunks, r = 0.15, mixed at 2.5 bits) it beats key norms: CacheBlend KL 0.0248 vs
// 0.0272, the highest outside mass 0.0311. Nil without statistics (key norms).
func mixedImportance(meta *Meta, layers, tokens int) [][]float32 {
	st := meta.Stats
	if st == nil || len(st.Outside) != layers || st.Tokens() != tokens {
		return nil
	}
	out := make([][]float32, layers)
	for l, row := range st.Outside {
		if len(row) != tokens {
			return nil
		}
		out[l] = make([]float32, tokens)
		for t, f := range row {
			out[l][t] = -f
		}
	}
	return out
}

// layout is the stored layout of a chunk.
func (s *Store) layout() chunkcache.Layout {
	c := &s.m.Config
	l := chunkcache.Layout{Layers: c.Layers, KVHeads: c.KVHeads, HeadDim: c.HeadDim, DType: s.o.DType}
	if s.o.Format.DType != 0 {
		l = l.WithFormat(s.o.Format)
	}
	return l
}

// Has reports whether a segment is stored.
func (s *Store) Has(ctx context.Context, tokens []int, kvPrev []Hash) (bool, error) {
	k, err := s.Key(tokens, kvPrev)
	if err != nil {
		return false, err
	}
	res, err := s.cache.Lookup(ctx, s.o.Namespace, []chunkcache.Key{k})
	if errors.Is(err, chunkcache.ErrUnknownNamespace) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(res) == 1 && res[0].Present, nil
}

// Open returns a stored segment (its Source reads the cache; close the returned
// closer when done). Errors: chunkcache.ErrNotFound, ErrUnknownNamespace, ErrCorrupt.
func (s *Store) Open(ctx context.Context, tokens []int, kvPrev []Hash) (Segment, io.Closer, error) {
	k, err := s.Key(tokens, kvPrev)
	if err != nil {
		return Segment{}, nil, err
	}
	return s.OpenKey(ctx, k)
}

// OpenKey returns a stored segment by key (its tokens come from the cache). A chunk
// that this model did not compute (by its fingerprint) is refused with ErrInvalid.
func (s *Store) OpenKey(ctx context.Context, k chunkcache.Key) (Segment, io.Closer, error) {
	r, err := s.cache.Open(ctx, s.o.Namespace, k)
	if err != nil {
		return Segment{}, nil, err
	}
	info := r.Info()
	c := &s.m.Config
	if l := info.Layout; l.Layers != c.Layers || l.KVHeads != c.KVHeads || l.HeadDim != c.HeadDim {
		r.Close()
		return Segment{}, nil, fmt.Errorf("%w: chunk %s has layout %d×%d×%d, the model %d×%d×%d", ErrInvalid, k.Short(),
			l.Layers, l.KVHeads, l.HeadDim, c.Layers, c.KVHeads, c.HeadDim)
	}
	meta := &Meta{}
	if b, ok := info.Metadata[MetaKey]; ok {
		if meta, err = DecodeMeta(b); err != nil {
			r.Close()
			return Segment{}, nil, fmt.Errorf("chunk %s: %w", k.Short(), err)
		}
	}
	// A key names any chunk of the cache: its KV is usable only if this model computed
	// it, in the context its metadata says (the key of a segment folds both in).
	if info.Model != s.fingerprint(meta.KVPrev) {
		r.Close()
		return Segment{}, nil, fmt.Errorf("%w: chunk %s holds the KV of another model (weights %s), or of another context than its metadata says",
			ErrInvalid, k.Short(), info.Model.WeightsDigest)
	}
	toks := make([]int, len(info.Tokens))
	for i, t := range info.Tokens {
		toks[i] = int(t)
		if int(t) >= c.Vocab {
			r.Close()
			return Segment{}, nil, fmt.Errorf("%w: chunk %s holds token %d outside the vocabulary", ErrInvalid, k.Short(), t)
		}
	}
	src := &cacheSource{r: r, base: int(info.PositionBase), rows: r.NumTokens(), tier: info.Tier, preRoPE: info.PreRoPE}
	return Segment{Tokens: toks, Source: src, Meta: meta}, r, nil
}

// cacheSource reads a chunk from the chunk cache layer by layer.
type cacheSource struct {
	r          *chunkcache.Reader
	base, rows int
	tier       string
	preRoPE    bool
}

// KPreRoPE reports whether the chunk's K is stored without its rotary embedding.
func (s *cacheSource) KPreRoPE() bool { return s.preRoPE }

func (s *cacheSource) Base() int    { return s.base }
func (s *cacheSource) Rows() int    { return s.rows }
func (s *cacheSource) Tier() string { return s.tier }
func (s *cacheSource) ReadLayer(ctx context.Context, l int, k, v []float32) error {
	return s.r.ReadLayer(ctx, l, k, v)
}
