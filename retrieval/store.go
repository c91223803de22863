package retrieval

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/internal/lexical"
	"github.com/ragkv/ragkv/retrieval/internal/pca"
)

// Badger key prefixes. Values of per-ingest keys (p, d, h, b, s) start with the 8-byte
// big-endian generation of the ingest that wrote them, so that recovery can drop what
// an ingest wrote before it crashed.
const (
	kManifest = "c/" // c/<coll> → manifest JSON (the commit point)
	kPending  = "i/" // i/<coll> → generation being committed
	kPassage  = "p/" // p/<coll>\0<pid> → gen | uvarint n | JSON(n) | float32 vector
	kDoc      = "d/" // d/<coll>\0<doc id> → gen
	kHash     = "h/" // h/<coll>\0<sha256> → gen | pid
	kBand     = "b/" // b/<coll>\0<band><hash64><pid> → gen
	kSig      = "s/" // s/<coll>\0<pid> → gen | signature
	kTools    = "t/" // t/<registry> → tool registry JSON
)

var collPrefixes = []string{kPassage, kDoc, kHash, kBand, kSig}

func collKey(prefix, coll string, rest ...[]byte) []byte {
	k := make([]byte, 0, len(prefix)+len(coll)+1+32)
	k = append(k, prefix...)
	k = append(k, coll...)
	k = append(k, 0)
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

func genValue(gen uint64, rest ...[]byte) []byte {
	n := 8
	for _, r := range rest {
		n += len(r)
	}
	v := make([]byte, 8, n)
	binary.BigEndian.PutUint64(v, gen)
	for _, r := range rest {
		v = append(v, r...)
	}
	return v
}

func valueGen(v []byte) (uint64, []byte, error) {
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("%w: value of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), v[8:], nil
}

// manifest is a collection's committed state. Writing it is the commit point of an
// ingest or rebuild: everything it references was written and synced before.
type manifest struct {
	Format        int               `json:"format"`
	Name          string            `json:"name"`
	Generation    uint64            `json:"generation"`
	Options       CollectionOptions `json:"options"`
	Embedder      string            `json:"embedder,omitempty"`
	Dim           int               `json:"dim,omitempty"`
	EmbedderState []byte            `json:"embedder_state,omitempty"`
	PCA           []byte            `json:"pca,omitempty"`
	Quant         []byte            `json:"quant,omitempty"`
	Shards        []shardRef        `json:"shards"`
	Docs          int64             `json:"docs"`
	Passages      int64             `json:"passages"`
	Fusion        *FusionWeights    `json:"fusion,omitempty"`
	// RedoPending: the commit of this generation left a redo log (changes to existing
	// keys) that may not be applied yet; passage reads look there first.
	RedoPending bool      `json:"redo_pending,omitempty"`
	Updated     time.Time `json:"updated"`
}

const manifestFormat = 1

func (m *manifest) clone() *manifest {
	c := *m
	c.Shards = append([]shardRef(nil), m.Shards...)
	for i := range c.Shards {
		c.Shards[i].Deleted = slices.Clone(c.Shards[i].Deleted)
	}
	if m.Fusion != nil {
		f := *m.Fusion
		c.Fusion = &f
	}
	return &c
}

// FusionWeights are a collection's fitted hybrid weights.
type FusionWeights struct {
	// BM25 is the weight of the normalized BM25 score; the dense score gets 1 − BM25.
	BM25 float64 `json:"bm25"`
	// FitQueries is how many labelled queries the weights were fitted on, NDCG10 their
	// mean nDCG@10 there, CVNDCG10 the k-fold cross-validated estimate.
	FitQueries int       `json:"fit_queries"`
	NDCG10     float64   `json:"ndcg@10"`
	CVNDCG10   float64   `json:"cv_ndcg@10"`
	Fitted     time.Time `json:"fitted"`
}

// Store is a set of named collections and tool registries persisted under one
// directory. It is safe for concurrent use.
type Store struct {
	opts      Options
	log       *slog.Logger
	db        *badger.DB
	embedders map[string]embed.Embedder
	met       *metrics

	mu     sync.Mutex
	closed bool
	colls  map[string]*collection
	locks  map[string]chan struct{} // write locks of collections being created
	tools  map[string]*toolRegistry

	bg *compactor // background compaction (nil: off)

	buildMem memGate // Options.BuildMemory across concurrent shard builds
}

// memGate admits work of estimated sizes while their sum stays within limit (one item
// larger than limit is admitted alone). limit 0 admits everything.
type memGate struct {
	mu    sync.Mutex
	used  int64
	limit int64
	wake  chan struct{}
}

func (g *memGate) acquire(ctx context.Context, n int64) error {
	if g.limit <= 0 {
		return nil
	}
	for {
		g.mu.Lock()
		if g.used == 0 || g.used+n <= g.limit {
			g.used += n
			g.mu.Unlock()
			return nil
		}
		if g.wake == nil {
			g.wake = make(chan struct{})
		}
		w := g.wake
		g.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (g *memGate) release(n int64) {
	if g.limit <= 0 {
		return
	}
	g.mu.Lock()
	g.used -= n
	if g.wake != nil {
		close(g.wake)
		g.wake = nil
	}
	g.mu.Unlock()
}

// Open opens (creating if needed) the store in opts.Dir. It recovers from interrupted
// ingests: data an uncommitted ingest left behind is deleted, so every collection is
// exactly at its last committed generation.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, "collections"), 0o755); err != nil {
		return nil, fmt.Errorf("retrieval: %w", err)
	}
	bopts := badger.DefaultOptions(filepath.Join(opts.Dir, "badger")).
		WithLogger(badgerLogger{opts.Logger}).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithValueThreshold(256). // passage records go to the value log: the LSM (rewritten by every compaction) holds keys, markers and pointers
		WithNumCompactors(2)
	met, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	db, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("retrieval: open badger: %w", err)
	}
	s := &Store{
		opts: opts, log: opts.Logger, db: db,
		buildMem:  memGate{limit: opts.BuildMemory},
		embedders: map[string]embed.Embedder{},
		colls:     map[string]*collection{},
		tools:     map[string]*toolRegistry{},
		met:       met,
	}
	for _, e := range opts.Embedders {
		s.embedders[e.Name()] = e
	}
	if err := s.load(ctx); err != nil {
		s.closeCollections()
		_ = db.Close()
		return nil, err
	}
	if opts.CompactEvery > 0 {
		s.startCompactor()
	}
	return s, nil
}

func (s *Store) load(ctx context.Context) error {
	manifests := map[string]*manifest{}
	pending := map[string]uint64{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(kManifest), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			name := string(it.Item().Key()[len(kManifest):])
			b, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var m manifest
			if err := json.Unmarshal(b, &m); err != nil {
				return fmt.Errorf("%w: manifest of %q: %v", ErrCorrupt, name, err)
			}
			manifests[name] = &m
		}
		it2 := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(kPending), PrefetchValues: true})
		defer it2.Close()
		for it2.Rewind(); it2.Valid(); it2.Next() {
			name := string(it2.Item().Key()[len(kPending):])
			b, err := it2.Item().ValueCopy(nil)
			if err != nil || len(b) != 8 {
				return fmt.Errorf("%w: pending marker of %q", ErrCorrupt, name)
			}
			pending[name] = binary.BigEndian.Uint64(b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retrieval: load manifests: %w", err)
	}
	redo, err := s.redoCollections()
	if err != nil {
		return err
	}
	for name := range redo {
		// A redo log behind a pending marker belongs to an interrupted commit (drop
		// it); otherwise its manifest committed and the log is applied.
		_, uncommitted := pending[name]
		if !uncommitted && manifests[name] == nil {
			uncommitted = true
		}
		if err := s.applyRedo(name, !uncommitted); err != nil {
			return err
		}
	}
	for name := range pending {
		var committed uint64
		if m := manifests[name]; m != nil {
			committed = m.Generation
		}
		s.log.Warn("retrieval: recovering from an interrupted ingest", "collection", name, "committed_generation", committed)
		if err := s.dropAbove(name, committed); err != nil {
			return err
		}
	}
	// Shard directories the manifests do not reference are leftovers of interrupted
	// builds or of generations replaced by a rebuild.
	root := filepath.Join(s.opts.Dir, "collections")
	entries, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("retrieval: %w", err)
	}
	for _, e := range entries {
		m := manifests[e.Name()]
		if m == nil {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
			continue
		}
		keep := map[string]bool{}
		for _, r := range m.Shards {
			keep[r.Dir] = true
		}
		sub, err := os.ReadDir(filepath.Join(root, e.Name()))
		if err != nil {
			return fmt.Errorf("retrieval: %w", err)
		}
		for _, d := range sub {
			if !keep[d.Name()] {
				_ = os.RemoveAll(filepath.Join(root, e.Name(), d.Name()))
			}
		}
	}
	for name, m := range manifests {
		if err := ctx.Err(); err != nil {
			return err
		}
		c := newCollection(name)
		sn, err := s.openSnapshot(m, nil)
		if err != nil {
			return fmt.Errorf("retrieval: open collection %q: %w", name, err)
		}
		c.cur.Store(sn)
		s.colls[name] = c
	}
	return nil
}

// dropAbove deletes a collection's per-ingest keys written by generations > committed,
// then its pending marker.
func (s *Store) dropAbove(coll string, committed uint64) error {
	var del [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		for _, p := range collPrefixes {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: collKey(p, coll), PrefetchValues: false})
			for it.Rewind(); it.Valid(); it.Next() {
				var gen uint64
				err := it.Item().Value(func(v []byte) error {
					g, _, err := valueGen(v)
					gen = g
					return err
				})
				if err != nil {
					it.Close()
					return err
				}
				if gen > committed {
					del = append(del, it.Item().KeyCopy(nil))
				}
			}
			it.Close()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retrieval: recover %q: %w", coll, err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range del {
		if err := wb.Delete(k); err != nil {
			return fmt.Errorf("retrieval: recover %q: %w", coll, err)
		}
	}
	if err := wb.Delete([]byte(kPending + coll)); err != nil {
		return fmt.Errorf("retrieval: recover %q: %w", coll, err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("retrieval: recover %q: %w", coll, err)
	}
	return s.db.Sync()
}

// Close closes every collection and the database. Searches must have returned.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stopCompactor()
	s.closeCollections()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("retrieval: close badger: %w", err)
	}
	return nil
}

func (s *Store) closeCollections() {
	for _, c := range s.colls {
		if sn := c.cur.Load(); sn != nil {
			sn.retire()
		}
	}
}

// collection returns an open collection.
func (s *Store) collection(name string) (*collection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	c := s.colls[name]
	if c == nil {
		return nil, fmt.Errorf("%w: %q", ErrCollectionNotFound, name)
	}
	return c, nil
}

// CollectionInfo describes a collection.
type CollectionInfo struct {
	Name       string            `json:"name"`
	Generation uint64            `json:"generation"`
	Docs       int64             `json:"docs"`
	Passages   int64             `json:"passages"`
	Shards     int               `json:"shards"`
	Embedder   string            `json:"embedder,omitempty"`
	Dim        int               `json:"dim,omitempty"`
	PCADims    int               `json:"pca_dims,omitempty"`
	Int8       bool              `json:"int8,omitempty"`
	Options    CollectionOptions `json:"options"`
	Fusion     *FusionWeights    `json:"fusion,omitempty"`
	// BytesPerVector is what the dense search keeps in RAM per vector (codes, and graph
	// for ANN shards); full vectors for rescoring are read from disk.
	BytesPerVector float64 `json:"bytes_per_vector,omitempty"`
	// Queries counts the searches served since the store opened.
	Queries uint64 `json:"queries"`
}

// Collections lists the collections.
func (s *Store) Collections() []CollectionInfo {
	s.mu.Lock()
	names := make([]string, 0, len(s.colls))
	for n := range s.colls {
		names = append(names, n)
	}
	s.mu.Unlock()
	var out []CollectionInfo
	for _, n := range names {
		if info, err := s.Collection(n); err == nil {
			out = append(out, info)
		}
	}
	return out
}

// pin returns the named collection's current snapshot, pinned until release.
func (s *Store) pin(name string) (*snapshot, error) {
	c, err := s.collection(name)
	if err != nil {
		return nil, err
	}
	return c.pin()
}

// lockCollection returns the named collection with its write lock held (the caller
// unlocks it).
func (s *Store) lockCollection(ctx context.Context, name string) (*collection, error) {
	c, err := s.collection(name)
	if err != nil {
		return nil, err
	}
	if err := s.lockLive(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// lockLive takes c's write lock and checks that c is still the collection of its name:
// a delete may have run since c was looked up (c's lock is then the lock of a deleted
// collection, or of the one recreated under the name).
func (s *Store) lockLive(ctx context.Context, c *collection) error {
	if err := c.lock(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	live := s.colls[c.name] == c
	s.mu.Unlock()
	if !live {
		c.unlock()
		return fmt.Errorf("%w: %q", ErrCollectionNotFound, c.name)
	}
	return nil
}

// Collection describes one collection.
func (s *Store) Collection(name string) (CollectionInfo, error) {
	sn, err := s.pin(name)
	if err != nil {
		return CollectionInfo{}, err
	}
	defer sn.release()
	m := sn.m
	info := CollectionInfo{Name: m.Name, Generation: m.Generation, Docs: m.Docs, Passages: m.Passages,
		Shards: len(m.Shards), Embedder: m.Embedder, Dim: m.Dim, Int8: m.Options.Int8, Options: m.Options, Fusion: m.Fusion}
	if sn.proj != nil {
		info.PCADims = sn.proj.Out()
	}
	var bytes, n float64
	for _, sh := range sn.shards {
		bytes += sh.denseRAMBytes()
		n += float64(sh.n)
	}
	if n > 0 && m.Dim > 0 {
		info.BytesPerVector = bytes / n
	}
	if c, err := s.collection(name); err == nil {
		info.Queries = c.queries.Load()
	}
	return info, nil
}

// DeleteCollection removes a collection and its data.
func (s *Store) DeleteCollection(ctx context.Context, name string) error {
	c, err := s.lockCollection(ctx, name)
	if err != nil {
		return err
	}
	defer c.unlock()
	// The manifest goes and a pending marker comes in one transaction: if the keys are
	// not all dropped below (the process dies, DropPrefix fails), Open's recovery drops
	// every key of the name (there is no committed generation), so that they cannot
	// resurface in a collection created later under the name.
	err = s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete([]byte(kManifest + name)); err != nil {
			return err
		}
		return txn.Set([]byte(kPending+name), genValue(0))
	})
	if err != nil {
		return fmt.Errorf("retrieval: delete %q: %w", name, err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("retrieval: delete %q: %w", name, err)
	}
	if err := s.hook("manifest-deleted"); err != nil {
		return err
	}
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]chan struct{}{}
	}
	s.locks[name] = c.wmu // a later ingest of the name waits for this delete
	delete(s.colls, name)
	s.mu.Unlock()
	sn := c.cur.Load()
	for _, sh := range sn.shards {
		sh.obsolete.Store(true)
	}
	sn.retire()
	var prefixes [][]byte
	for _, p := range collPrefixes {
		prefixes = append(prefixes, collKey(p, name))
	}
	prefixes = append(prefixes, collKey(kRedo, name))
	if err := s.db.DropPrefix(prefixes...); err != nil {
		return fmt.Errorf("retrieval: delete %q: %w", name, err)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(kPending + name)) }); err != nil {
		return fmt.Errorf("retrieval: delete %q: %w", name, err)
	}
	return nil
}

// collection is a named collection: its current snapshot and its writer lock.
type collection struct {
	name string
	wmu  chan struct{} // held by the one ingest or rebuild in progress
	cur  atomic.Pointer[snapshot]
	// queries counts searches of the collection since the store opened.
	queries atomic.Uint64
}

func newCollection(name string) *collection {
	return &collection{name: name, wmu: make(chan struct{}, 1)}
}

func (c *collection) lock(ctx context.Context) error {
	select {
	case c.wmu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %q: %w", ErrBusy, c.name, ctx.Err())
	}
}

func (c *collection) unlock() { <-c.wmu }

// pin is acquire for a caller that looked the collection up without its write lock:
// the collection may have been deleted since (its snapshot is then retired while still
// current, and its shards closed).
func (c *collection) pin() (*snapshot, error) {
	sn := c.acquire()
	// With our reference counted, either retire sees it (and leaves the shards open
	// until our release) or we see retired.
	if sn.retired.Load() {
		sn.release()
		return nil, fmt.Errorf("%w: %q", ErrCollectionNotFound, c.name)
	}
	return sn, nil
}

// acquire returns the current snapshot, pinned until release. Callers hold the write
// lock of a live collection, or use pin.
func (c *collection) acquire() *snapshot {
	for {
		sn := c.cur.Load()
		sn.refs.Add(1)
		if c.cur.Load() == sn {
			return sn
		}
		sn.release()
	}
}

// snapshot is an immutable view of a committed generation: its manifest, open shards
// and dense machinery. Readers pin it; a snapshot replaced by a newer one releases its
// shards once its last reader is done.
type snapshot struct {
	m      *manifest
	shards []*shard
	emb    embed.Embedder // nil: no embedder available (client vectors or unconfigured)
	embErr error          // why emb is nil when the collection has an embedder
	proj   *pca.Projection
	quant  *pca.Quantizer
	lex    lexical.Stats // summed over shards, live passages only
	// dead[i] holds the tombstones of shards[i] (nil: none); live[i] its live count.
	dead []deadSet
	live []int

	refs    atomic.Int64
	retired atomic.Bool
	once    sync.Once
}

func (sn *snapshot) release() {
	if sn.refs.Add(-1) == 0 && sn.retired.Load() {
		sn.finish()
	}
}

// retire marks the snapshot replaced; its shards are released when no reader pins it.
func (sn *snapshot) retire() {
	sn.retired.Store(true)
	if sn.refs.Load() == 0 {
		sn.finish()
	}
}

func (sn *snapshot) finish() {
	sn.once.Do(func() {
		for _, sh := range sn.shards {
			sh.unref()
		}
	})
}

// openSnapshot builds a snapshot for m, reusing already open shards from prev.
func (s *Store) openSnapshot(m *manifest, prev *snapshot) (*snapshot, error) {
	sn := &snapshot{m: m}
	open := map[string]*shard{}
	if prev != nil {
		for _, sh := range prev.shards {
			open[sh.ref.Dir] = sh
		}
	}
	cdir := filepath.Join(s.opts.Dir, "collections", m.Name)
	for _, ref := range m.Shards {
		sh := open[ref.Dir]
		if sh != nil {
			sh.users.Add(1)
		} else {
			var err error
			sh, err = openShard(filepath.Join(cdir, ref.Dir), ref, m)
			if err != nil {
				for _, o := range sn.shards {
					o.unref()
				}
				return nil, err
			}
		}
		sn.shards = append(sn.shards, sh)
		st := sh.lex.Stats()
		sn.lex.Docs += st.Docs
		sn.lex.TotalLength += st.TotalLength
		var ds deadSet
		if len(ref.Deleted) > 0 {
			ds = newDeadSet(sh.n)
			for _, o := range ref.Deleted {
				if int(o) >= sh.n {
					sn.finish()
					return nil, fmt.Errorf("%w: shard %s tombstones ordinal %d of %d", ErrCorrupt, ref.Dir, o, sh.n)
				}
				if !ds.has(o) {
					ds.add(o)
					sn.lex.Docs--
					sn.lex.TotalLength -= int64(sh.lex.Len(int(o)))
				}
			}
		}
		sn.dead = append(sn.dead, ds)
		sn.live = append(sn.live, sh.n-ds.count())
	}
	if len(m.PCA) > 0 {
		p, err := pca.UnmarshalProjection(m.PCA)
		if err != nil {
			sn.finish()
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		sn.proj = p
	}
	if len(m.Quant) > 0 {
		q, err := pca.UnmarshalQuantizer(m.Quant)
		if err != nil {
			sn.finish()
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		sn.quant = q
	}
	if m.Embedder != "" && m.Embedder != ClientVectors {
		e, err := s.embedderFor(m)
		if err != nil {
			sn.embErr = err
		} else {
			sn.emb = e
		}
	}
	return sn, nil
}

// embedderFor returns the collection's embedder with its fitted state applied.
func (s *Store) embedderFor(m *manifest) (embed.Embedder, error) {
	e := s.embedders[m.Embedder]
	if e == nil {
		return nil, fmt.Errorf("%w: collection %q was built with embedder %q, which this server is not configured with", ErrEmbedderUnavailable, m.Name, m.Embedder)
	}
	if e.Dim() != m.Dim {
		return nil, fmt.Errorf("%w: embedder %q now has dimension %d, collection %q was built with %d", ErrDimension, m.Embedder, e.Dim(), m.Name, m.Dim)
	}
	if f, ok := e.(embed.Fitter); ok && len(m.EmbedderState) > 0 {
		fe, err := f.WithState(m.EmbedderState)
		if err != nil {
			return nil, fmt.Errorf("%w: embedder state of %q: %v", ErrCorrupt, m.Name, err)
		}
		return fe, nil
	}
	return e, nil
}

// writeManifest commits m (and deletes the pending marker) in one transaction, synced.
func (s *Store) writeManifest(m *manifest) error {
	m.Format = manifestFormat
	m.Updated = time.Now().UTC()
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("retrieval: encode manifest: %w", err)
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(kManifest+m.Name), b); err != nil {
			return err
		}
		return txn.Delete([]byte(kPending + m.Name))
	})
	if err != nil {
		return fmt.Errorf("retrieval: commit manifest of %q: %w", m.Name, err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("retrieval: sync manifest of %q: %w", m.Name, err)
	}
	return nil
}

// passageRecord is a stored passage.
type passageRecord struct {
	Doc   string `json:"d"`
	Title string `json:"ti,omitempty"`
	Text  string `json:"t"`
	// Vector is the full dense vector (nil for lexical collections).
	Vector []float32 `json:"-"`
}

func encodePassage(gen uint64, p *passageRecord) []byte {
	js, _ := json.Marshal(p)
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(js)))
	v := genValue(gen, hdr[:n], js)
	vb := make([]byte, 4*len(p.Vector))
	for i, x := range p.Vector {
		binary.LittleEndian.PutUint32(vb[4*i:], math.Float32bits(x))
	}
	return append(v, vb...)
}

func decodePassage(v []byte) (uint64, *passageRecord, error) {
	gen, rest, err := valueGen(v)
	if err != nil {
		return 0, nil, err
	}
	n, k := binary.Uvarint(rest)
	if k <= 0 || uint64(len(rest)-k) < n {
		return 0, nil, fmt.Errorf("%w: passage record header", ErrCorrupt)
	}
	var p passageRecord
	if err := json.Unmarshal(rest[k:k+int(n)], &p); err != nil {
		return 0, nil, fmt.Errorf("%w: passage record: %v", ErrCorrupt, err)
	}
	vb := rest[k+int(n):]
	if len(vb)%4 != 0 {
		return 0, nil, fmt.Errorf("%w: passage vector of %d bytes", ErrCorrupt, len(vb))
	}
	if len(vb) > 0 {
		p.Vector = make([]float32, len(vb)/4)
		for i := range p.Vector {
			p.Vector[i] = math.Float32frombits(binary.LittleEndian.Uint32(vb[4*i:]))
		}
	}
	return gen, &p, nil
}

// getPassages loads passages by id (missing ones are an ErrCorrupt: shards only
// reference committed passages). With redo > 0 (the generation of a snapshot whose
// commit left a redo log) a passage's pending new value in that generation's log wins
// over the stored one; entries of a later, uncommitted generation are ignored.
func (s *Store) getPassages(coll string, pids []string, redo uint64) ([]*passageRecord, error) {
	out := make([]*passageRecord, len(pids))
	err := s.db.View(func(txn *badger.Txn) error {
		for i, pid := range pids {
			pk := collKey(kPassage, coll, []byte(pid))
			if redo > 0 {
				it, err := txn.Get(collKey(kRedo, coll, pk))
				if err == nil {
					var p *passageRecord
					err = it.Value(func(v []byte) error {
						if len(v) > 9 && v[0] == 1 && binary.BigEndian.Uint64(v[1:9]) == redo {
							var err error
							_, p, err = decodePassage(v[9:])
							return err
						}
						return nil
					})
					if err != nil {
						return err
					}
					if p != nil {
						out[i] = p
						continue
					}
				} else if !errors.Is(err, badger.ErrKeyNotFound) {
					return err
				}
			}
			it, err := txn.Get(pk)
			if err != nil {
				if errors.Is(err, badger.ErrKeyNotFound) {
					return fmt.Errorf("%w: passage %q of %q is missing", ErrCorrupt, pid, coll)
				}
				return err
			}
			err = it.Value(func(v []byte) error {
				_, p, err := decodePassage(v)
				out[i] = p
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retrieval: load passages: %w", err)
	}
	return out, nil
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Debugf(f string, a ...any) {}

// Embed embeds texts with a collection's embedder (with its fitted state), as its
// passages and dense queries are embedded: for an OpenAI-style /v1/embeddings whose
// model is the collection. ErrNoDense where the collection has no embedder (BM25 only,
// or client vectors).
func (s *Store) Embed(ctx context.Context, collection string, texts []string) ([][]float32, error) {
	sn, err := s.pin(collection)
	if err != nil {
		return nil, err
	}
	defer sn.release()
	if sn.emb == nil {
		if sn.embErr != nil {
			return nil, sn.embErr
		}
		return nil, fmt.Errorf("%w: collection %q has no embedder", ErrNoDense, collection)
	}
	return sn.emb.Embed(ctx, texts)
}
