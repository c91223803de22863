package retrieval

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"

	"github.com/ragkv/ragkv/retrieval/embed"
	"github.com/ragkv/ragkv/retrieval/internal/ann"
	"github.com/ragkv/ragkv/retrieval/internal/pca"
)

// Limits on ingested documents.
const (
	MaxDocIDBytes = 512
	MaxDocBytes   = 16 << 20
	fitSample     = 20000
	embedBatch    = 256
)

// IngestOptions configure one ingest.
type IngestOptions struct {
	// Create holds the options of a collection that does not exist yet (nil: defaults).
	// For an existing collection it must be nil or equal to the recorded options.
	Create *CollectionOptions
	// Shards is how many shards this ingest's new passages are split into (default 1).
	// Shards are built in parallel and never modified afterwards; Rebuild re-shards a
	// whole collection.
	Shards int
	// Progress, when set, is called as the commit advances (stage: "embed", "build").
	Progress func(stage string, done, total int)
	// Upsert replaces documents already in the collection (their old passages are
	// tombstoned at the commit) instead of skipping them.
	Upsert bool
}

// IngestResult summarizes a committed ingest.
type IngestResult struct {
	Collection string `json:"collection"`
	Generation uint64 `json:"generation"`
	Created    bool   `json:"created"`
	// Docs are the new documents; DocsSkipped those already in the collection (or
	// repeated in this ingest).
	Docs        int `json:"docs"`
	DocsSkipped int `json:"docs_skipped"`
	// Passages are the new passages indexed; Duplicates the passages dedup dropped.
	Passages   int `json:"passages"`
	Duplicates int `json:"duplicates"`
	// Replaced are documents this ingest replaced (upsert), Deleted those it deleted,
	// DeleteMissing the ids asked to be deleted that the collection did not hold;
	// Tombstoned the old passages they removed.
	Replaced      int   `json:"replaced,omitempty"`
	Deleted       int   `json:"deleted,omitempty"`
	DeleteMissing int   `json:"delete_missing,omitempty"`
	Tombstoned    int   `json:"tombstoned,omitempty"`
	Shards        int   `json:"shards"`
	TotalDocs     int64 `json:"total_docs"`
	TotalPass     int64 `json:"total_passages"`
	// Seconds is the commit time.
	Seconds float64 `json:"seconds"`
}

type pendingPassage struct {
	pid, doc, title, text string
	chunk                 [32]byte
	exact                 [32]byte
	sig                   *signature
	vec                   []float32
	// hashTaken: the exact-dedup key exists, owned by a passage this ingest removes.
	hashTaken bool
}

// Ingest is an ingest in progress: documents are added, then committed atomically (or
// aborted). Only one ingest per collection runs at a time. Not safe for concurrent use.
type Ingest struct {
	s       *Store
	name    string
	lock    chan struct{}
	base    *manifest
	prev    *collection
	created bool
	opts    IngestOptions

	docs     map[string]bool
	replaced map[string]bool // documents in the collection this ingest replaces
	deleted  map[string]bool // documents in the collection this ingest deletes
	pending  []*pendingPassage
	exact    map[[32]byte]bool
	bands    map[[9]byte][]int // in-ingest LSH buckets → pending indexes
	res      IngestResult
	done     bool
}

func (s *Store) writeLock(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.colls[name]; c != nil {
		return c.wmu
	}
	if s.locks == nil {
		s.locks = map[string]chan struct{}{}
	}
	l := s.locks[name]
	if l == nil {
		l = make(chan struct{}, 1)
		s.locks[name] = l
	}
	return l
}

// BeginIngest starts an ingest into the named collection, creating it at commit if it
// does not exist. It waits (until ctx is done) for another ingest of the collection.
func (s *Store) BeginIngest(ctx context.Context, name string, opts IngestOptions) (*Ingest, error) {
	if err := checkName("collection", name); err != nil {
		return nil, err
	}
	if opts.Shards == 0 {
		opts.Shards = 1
	}
	if opts.Shards < 1 || opts.Shards > maxShards {
		return nil, fmt.Errorf("%w: shards %d must be in [1, %d]", ErrInvalidArgument, opts.Shards, maxShards)
	}
	var copts CollectionOptions
	if opts.Create != nil {
		copts = *opts.Create
	}
	copts.EnsureDefaults()
	if err := s.resolveEmbedder(&copts); err != nil {
		return nil, err
	}
	if err := copts.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkFreeSpace(0); err != nil {
		return nil, err
	}
	for {
		lock := s.writeLock(name)
		select {
		case lock <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %q: %w", ErrBusy, name, ctx.Err())
		}
		// The collection may have been created (moving its lock) while we waited.
		if s.writeLock(name) != lock {
			<-lock
			continue
		}
		in := &Ingest{s: s, name: name, lock: lock, opts: opts, docs: map[string]bool{}, replaced: map[string]bool{}, deleted: map[string]bool{}, exact: map[[32]byte]bool{}, bands: map[[9]byte][]int{}}
		s.mu.Lock()
		closed := s.closed
		c := s.colls[name]
		s.mu.Unlock()
		if closed {
			<-lock
			return nil, ErrClosed
		}
		if c != nil {
			sn := c.acquire()
			in.base = sn.m.clone()
			sn.release()
			in.prev = c
			if opts.Create != nil && !sameOptions(in.base.Options, copts) {
				<-lock
				return nil, fmt.Errorf("%w: collection %q exists with options %+v; these options (%+v) differ (delete or rebuild it instead)", ErrInvalidArgument, name, in.base.Options, copts)
			}
		} else {
			in.created = true
			in.base = &manifest{Name: name, Options: copts, Embedder: copts.Embedder, Dim: copts.Dim}
			if in.base.Embedder == "none" {
				in.base.Embedder = ""
			}
			if e := s.embedders[in.base.Embedder]; e != nil {
				in.base.Dim = e.Dim()
			}
		}
		in.res = IngestResult{Collection: name, Generation: in.base.Generation, Created: in.created}
		return in, nil
	}
}

// sameOptions compares recorded options with requested ones, ignoring what the store
// resolved at creation (PCA dims, embedder default).
func sameOptions(have, want CollectionOptions) bool {
	if want.PCADims == 0 {
		want.PCADims = have.PCADims
	}
	return have == want
}

func (s *Store) resolveEmbedder(o *CollectionOptions) error {
	switch o.Embedder {
	case "":
		switch {
		case s.opts.DefaultEmbedder != "":
			o.Embedder = s.opts.DefaultEmbedder
		case len(s.opts.Embedders) > 0:
			o.Embedder = s.opts.Embedders[0].Name()
		default:
			o.Embedder = "none"
		}
	case "none", ClientVectors:
	default:
		if s.embedders[o.Embedder] == nil {
			names := []string{"none", ClientVectors}
			for n := range s.embedders {
				names = append(names, n)
			}
			slices.Sort(names)
			return fmt.Errorf("%w: unknown embedder %q (configured: %v)", ErrInvalidArgument, o.Embedder, names)
		}
	}
	return nil
}

// Add chunks, validates and deduplicates documents. A document already in the
// collection is skipped, or with IngestOptions.Upsert (or after Delete of its id in
// this ingest) replaced; one added earlier in this ingest is skipped. An invalid document returns
// an ErrInvalidArgument error naming it and leaves the ingest as it was before the call.
func (in *Ingest) Add(ctx context.Context, docs ...Document) error {
	if in.done {
		return fmt.Errorf("%w: ingest already committed or aborted", ErrInvalidArgument)
	}
	for i := range docs {
		if err := in.validate(&docs[i]); err != nil {
			return err
		}
	}
	existing, err := in.existingDocs(docs)
	if err != nil {
		return err
	}
	for i := range docs {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		d := &docs[i]
		if in.docs[d.ID] || (existing[d.ID] && !in.opts.Upsert && !in.deleted[d.ID]) {
			in.res.DocsSkipped++
			continue
		}
		if existing[d.ID] {
			delete(in.deleted, d.ID)
			in.replaced[d.ID] = true
		}
		in.docs[d.ID] = true
		in.res.Docs++
		// (A client-vector collection has negative ChunkWords: one passage per document.)
		chunks := Chunk(d.Text, in.base.Options.ChunkWords, in.base.Options.ChunkOverlap)
		if len(chunks) == 0 {
			chunks = []string{""} // a title-only document is one passage
		}
		for ci, text := range chunks {
			p := &pendingPassage{pid: PassageID(d.ID, ci), doc: d.ID, title: d.Title, text: text, vec: d.Vector}
			p.chunk = sha256.Sum256([]byte(text))
			dup, err := in.isDuplicate(p)
			if err != nil {
				return err
			}
			if dup {
				in.res.Duplicates++
				continue
			}
			in.addPending(p)
		}
	}
	return nil
}

// Delete deletes documents of the collection at the commit (their passages are
// tombstoned). Ids the collection does not hold are counted in DeleteMissing; an id
// added in this same ingest is an error.
func (in *Ingest) Delete(ctx context.Context, ids ...string) error {
	if in.done {
		return fmt.Errorf("%w: ingest already committed or aborted", ErrInvalidArgument)
	}
	docs := make([]Document, len(ids))
	for i, id := range ids {
		if id == "" || len(id) > MaxDocIDBytes || !utf8.ValidString(id) || containsNUL(id) {
			return fmt.Errorf("%w: document id %.40q to delete must be non-empty valid UTF-8 without NUL, at most %d bytes", ErrInvalidArgument, id, MaxDocIDBytes)
		}
		if in.docs[id] {
			return fmt.Errorf("%w: document %q is added and deleted in the same ingest", ErrInvalidArgument, id)
		}
		docs[i].ID = id
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	existing, err := in.existingDocs(docs)
	if err != nil {
		return err
	}
	for _, id := range ids {
		switch {
		case in.deleted[id]:
		case existing[id]:
			in.deleted[id] = true
		default:
			in.res.DeleteMissing++
		}
	}
	return nil
}

// removed says whether the passage pid belongs to a document this ingest replaces or
// deletes (a dedup hit on it does not count).
func (in *Ingest) removed(pid string) bool {
	d := DocOfPassage(pid)
	return in.replaced[d] || in.deleted[d]
}

func (in *Ingest) validate(d *Document) error {
	switch {
	case d.ID == "":
		return fmt.Errorf("%w: document with an empty id", ErrInvalidArgument)
	case len(d.ID) > MaxDocIDBytes || !utf8.ValidString(d.ID) || containsNUL(d.ID):
		return fmt.Errorf("%w: document id %.40q… must be valid UTF-8 without NUL, at most %d bytes", ErrInvalidArgument, d.ID, MaxDocIDBytes)
	case len(d.Text)+len(d.Title) > MaxDocBytes:
		return fmt.Errorf("%w: document %q is larger than %d bytes", ErrInvalidArgument, d.ID, MaxDocBytes)
	case isBlank(d.Text) && isBlank(d.Title):
		return fmt.Errorf("%w: document %q has neither title nor text", ErrInvalidArgument, d.ID)
	case !utf8.ValidString(d.Text) || !utf8.ValidString(d.Title):
		return fmt.Errorf("%w: document %q is not valid UTF-8", ErrInvalidArgument, d.ID)
	}
	if in.base.Embedder == ClientVectors {
		if len(d.Vector) != in.base.Dim {
			return fmt.Errorf("%w: document %q has a vector of %d values, collection %q has dimension %d", ErrDimension, d.ID, len(d.Vector), in.name, in.base.Dim)
		}
		for _, x := range d.Vector {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%w: document %q has a non-finite vector value", ErrInvalidArgument, d.ID)
			}
		}
		var norm float64
		for _, x := range d.Vector {
			norm += float64(x) * float64(x)
		}
		if norm == 0 {
			return fmt.Errorf("%w: document %q has a zero vector", ErrInvalidArgument, d.ID)
		}
	} else if d.Vector != nil {
		return fmt.Errorf("%w: document %q carries a vector but collection %q embeds text itself (vectors are for client-vector collections)", ErrInvalidArgument, d.ID, in.name)
	}
	return nil
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

func isBlank(s string) bool {
	for _, r := range s {
		if r != ' ' && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}

func (in *Ingest) existingDocs(docs []Document) (map[string]bool, error) {
	out := map[string]bool{}
	if in.created {
		return out, nil
	}
	err := in.s.db.View(func(txn *badger.Txn) error {
		for i := range docs {
			_, err := txn.Get(collKey(kDoc, in.name, []byte(docs[i].ID)))
			if err == nil {
				out[docs[i].ID] = true
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retrieval: look up documents: %w", err)
	}
	return out, nil
}

func (in *Ingest) isDuplicate(p *pendingPassage) (bool, error) {
	switch in.base.Options.Dedup {
	case DedupExact:
		p.exact = exactKey(p.text)
		if in.exact[p.exact] {
			return true, nil
		}
		if in.created {
			return false, nil
		}
		found := false
		err := in.s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(collKey(kHash, in.name, p.exact[:]))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			return item.Value(func(v []byte) error {
				_, owner, err := valueGen(v)
				if err != nil {
					return err
				}
				if in.removed(string(owner)) {
					p.hashTaken = true
				} else {
					found = true
				}
				return nil
			})
		})
		return found, err
	case DedupMinHash:
		sig := minhash(p.text)
		p.sig = &sig
		keys := sig.bandKeys()
		thr := in.base.Options.MinHashThreshold
		for b, k := range keys {
			for _, j := range in.bands[bandKey(b, k)] {
				if in.pending[j].sig.similarity(&sig) >= thr {
					return true, nil
				}
			}
		}
		if in.created {
			return false, nil
		}
		found := false
		err := in.s.db.View(func(txn *badger.Txn) error {
			for b, k := range keys {
				bk := bandKey(b, k)
				it := txn.NewIterator(badger.IteratorOptions{Prefix: collKey(kBand, in.name, bk[:])})
				for it.Rewind(); it.Valid(); it.Next() {
					pid := it.Item().Key()[len(collKey(kBand, in.name, bk[:])):]
					if in.removed(string(pid)) {
						continue
					}
					item, err := txn.Get(collKey(kSig, in.name, pid))
					if err != nil {
						it.Close()
						return err
					}
					var other signature
					err = item.Value(func(v []byte) error {
						_, rest, err := valueGen(v)
						if err != nil {
							return err
						}
						var ok bool
						if other, ok = unmarshalSignature(rest); !ok {
							return fmt.Errorf("%w: signature of %q", ErrCorrupt, pid)
						}
						return nil
					})
					if err != nil {
						it.Close()
						return err
					}
					if other.similarity(&sig) >= thr {
						found = true
						it.Close()
						return nil
					}
				}
				it.Close()
			}
			return nil
		})
		return found, err
	}
	return false, nil
}

func bandKey(b int, h uint64) [9]byte {
	var k [9]byte
	k[0] = byte(b)
	for i := 0; i < 8; i++ {
		k[1+i] = byte(h >> (56 - 8*i))
	}
	return k
}

func (in *Ingest) addPending(p *pendingPassage) {
	idx := len(in.pending)
	in.pending = append(in.pending, p)
	switch in.base.Options.Dedup {
	case DedupExact:
		in.exact[p.exact] = true
	case DedupMinHash:
		for b, k := range p.sig.bandKeys() {
			bk := bandKey(b, k)
			in.bands[bk] = append(in.bands[bk], idx)
		}
	}
}

// Abort drops the ingest; nothing it added becomes visible.
func (in *Ingest) Abort() {
	if in.done {
		return
	}
	in.done = true
	<-in.lock
}

func (in *Ingest) progress(stage string, done, total int) {
	if in.opts.Progress != nil {
		in.opts.Progress(stage, done, total)
	}
}

// Commit embeds, builds the new shards in parallel, stores the passages and switches
// the collection to the new generation atomically. If it fails — or the process dies —
// before the switch, the collection stays searchable at its previous generation and
// nothing of this ingest remains once the store is reopened.
func (in *Ingest) Commit(ctx context.Context) (res IngestResult, err error) {
	if in.done {
		return IngestResult{}, fmt.Errorf("%w: ingest already committed or aborted", ErrInvalidArgument)
	}
	defer in.Abort()
	start := time.Now()
	s := in.s
	if err := s.checkFreeSpace(in.estimatedBytes()); err != nil {
		return IngestResult{}, err
	}
	m := in.base.clone()
	gen := m.Generation + 1
	cdir := filepath.Join(s.opts.Dir, "collections", in.name)
	var newDirs []string
	markerWritten := false
	defer func() {
		if err == nil {
			return
		}
		for _, d := range newDirs {
			_ = os.RemoveAll(d)
		}
		if markerWritten {
			// The redo log first, while the pending marker still says "uncommitted".
			if derr := s.applyRedo(in.name, false); derr != nil {
				s.log.Error("retrieval: clean up failed ingest", "collection", in.name, "err", derr)
			}
			if derr := s.dropAbove(in.name, in.base.Generation); derr != nil {
				s.log.Error("retrieval: clean up failed ingest", "collection", in.name, "err", derr)
			}
		}
	}()
	if len(in.pending) == 0 && !in.created && len(in.deleted) == 0 && len(in.replaced) == 0 {
		in.res.TotalDocs, in.res.TotalPass = m.Docs, m.Passages
		return in.res, nil
	}

	ps := in.pending
	slices.SortFunc(ps, func(a, b *pendingPassage) int { return cmpString(a.pid, b.pid) })
	var proj *pca.Projection
	var quant *pca.Quantizer
	if m.Embedder != "" && len(ps) > 0 {
		if proj, quant, err = in.prepareDense(ctx, m, ps); err != nil {
			return IngestResult{}, err
		}
	}

	// Split into shards by a hash of the passage id; build them in parallel.
	parts, refs := partition(ps, in.opts.Shards, gen)
	nsh := len(refs)
	for _, r := range refs {
		d := filepath.Join(cdir, r.Dir)
		_ = os.RemoveAll(d)
		newDirs = append(newDirs, d)
	}
	if err := s.buildShards(ctx, cdir, m, refs, parts, proj, quant, in.progress); err != nil {
		return IngestResult{}, err
	}
	if err := syncDir(cdir); err != nil {
		return IngestResult{}, err
	}
	if err := s.hook("shards-built"); err != nil {
		return IngestResult{}, err
	}

	// Passages and dedup keys, tagged with the generation, behind a pending marker.
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(kPending+in.name), genValue(gen)[:8])
	}); err != nil {
		return IngestResult{}, fmt.Errorf("retrieval: %w", err)
	}
	markerWritten = true
	// Documents replaced or deleted: their old passages are tombstoned in m's shard
	// refs, and every change to an existing key goes through the redo log.
	var ops redoOps
	tomb := 0
	if len(in.replaced)+len(in.deleted) > 0 {
		if ops, tomb, err = in.planMutations(m, gen); err != nil {
			return IngestResult{}, err
		}
	}
	if err := in.writeRecords(gen, ps, ops); err != nil {
		return IngestResult{}, err
	}
	if err := s.hook("passages-written"); err != nil {
		return IngestResult{}, err
	}
	m.RedoPending = len(ops) > 0
	if m.RedoPending {
		if err := s.writeRedo(in.name, gen, ops); err != nil {
			return IngestResult{}, err
		}
		if err := s.hook("redo-written"); err != nil {
			return IngestResult{}, err
		}
	}

	m.Generation = gen
	m.Shards = append(m.Shards, refs...)
	m.Docs += int64(in.res.Docs - len(in.replaced) - len(in.deleted))
	m.Passages += int64(len(ps) - tomb)
	in.res.Replaced, in.res.Deleted, in.res.Tombstoned = len(in.replaced), len(in.deleted), tomb
	if in.created { // the collection's directory entry must be durable before the commit point
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return IngestResult{}, fmt.Errorf("retrieval: %w", err)
		}
		if err := syncDir(filepath.Dir(cdir)); err != nil {
			return IngestResult{}, err
		}
	}
	if err := s.writeManifest(m); err != nil {
		return IngestResult{}, err
	}
	newDirs, markerWritten = nil, false // committed: nothing to clean up any more
	if err := s.hook("committed"); err != nil {
		return IngestResult{}, err
	}
	var prevSn *snapshot
	if in.prev != nil {
		prevSn = in.prev.cur.Load()
	}
	if err := s.publish(in.name, m, in.prev); err != nil {
		return IngestResult{}, err
	}
	if m.RedoPending {
		// Readers of the previous generation must not see the changed keys: wait for
		// them, then apply the log (readers of this generation look there first).
		if prevSn != nil {
			drain(prevSn)
		}
		if err := s.applyRedo(in.name, true); err != nil {
			return IngestResult{}, err
		}
	}
	s.kickCompactor()
	in.res.Generation = gen
	in.res.Passages = len(ps)
	in.res.Shards = nsh
	in.res.TotalDocs, in.res.TotalPass = m.Docs, m.Passages
	in.res.Seconds = time.Since(start).Seconds()
	s.met.ingested.Add(float64(len(ps)))
	s.met.ingestSeconds.Observe(in.res.Seconds)
	s.log.Info("retrieval: ingest committed", "collection", in.name, "generation", gen, "docs", in.res.Docs, "passages", len(ps), "shards", nsh, "seconds", in.res.Seconds)
	return in.res, nil
}

// hook is the named step point of a commit: Options.testHook, then the failpoint
// "retrieval/<point>" (failpoints.go).
func (s *Store) hook(point string) error {
	if s.opts.testHook != nil {
		if err := s.opts.testHook(point); err != nil {
			return err
		}
	}
	if fp := failpoints[point]; fp != nil {
		return fp.Inject()
	}
	return nil
}

// partition splits passages sorted by id into at most shards shards of generation gen
// by a hash of the passage id (none when there are no passages).
func partition(ps []*pendingPassage, shards int, gen uint64) ([]*shardInput, []shardRef) {
	if len(ps) == 0 {
		return nil, nil
	}
	nsh := min(shards, len(ps))
	parts := make([]*shardInput, nsh)
	for i := range parts {
		parts[i] = &shardInput{}
	}
	for _, p := range ps {
		h := fnv.New32a()
		_, _ = h.Write([]byte(p.pid))
		si := parts[int(h.Sum32()%uint32(nsh))]
		si.pids = append(si.pids, p.pid)
		si.titles = append(si.titles, p.title)
		si.texts = append(si.texts, p.text)
		si.chunks = append(si.chunks, p.chunk)
		if p.vec != nil {
			si.vecs = append(si.vecs, p.vec)
		}
	}
	refs := make([]shardRef, nsh)
	for i := range refs {
		refs[i] = shardRef{Dir: fmt.Sprintf("g%06d-s%03d", gen, i), Passages: len(parts[i].pids)}
	}
	return parts, refs
}

// memEstimate is the memory a build of the shard takes on top of its input: postings
// about as large as the indexed text, and the projected or flattened vectors.
func (in *shardInput) memEstimate() int64 {
	var n int64
	for i, t := range in.texts {
		n += int64(len(t) + len(in.titles[i]))
	}
	for _, v := range in.vecs {
		n += 8 * int64(len(v))
	}
	return n
}

// indexText is what BM25 indexes for a passage: its document title and its text.
func indexText(title, text string) string {
	if title == "" {
		return text
	}
	if text == "" {
		return title
	}
	return title + "\n" + text
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// prepareDense embeds the passages (fitting the embedder state on the first commit)
// and fits the PCA projection and quantizer the collection does not have yet.
func (in *Ingest) prepareDense(ctx context.Context, m *manifest, ps []*pendingPassage) (*pca.Projection, *pca.Quantizer, error) {
	s := in.s
	if m.Embedder != ClientVectors {
		e := s.embedders[m.Embedder]
		if e == nil {
			return nil, nil, fmt.Errorf("%w: collection %q uses embedder %q, which this server is not configured with", ErrEmbedderUnavailable, m.Name, m.Embedder)
		}
		if f, ok := e.(embed.Fitter); ok {
			if len(m.EmbedderState) == 0 {
				texts := make([]string, 0, min(len(ps), fitSample))
				for _, i := range sampleIndexes(len(ps), fitSample) {
					texts = append(texts, indexText(ps[i].title, ps[i].text))
				}
				st, err := f.Fit(ctx, texts)
				if err != nil {
					return nil, nil, fmt.Errorf("retrieval: fit embedder %q: %w", m.Embedder, err)
				}
				m.EmbedderState = st
			}
			fe, err := f.WithState(m.EmbedderState)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: embedder state: %v", ErrCorrupt, err)
			}
			e = fe
		}
		if err := s.embedAll(ctx, e, ps, in.progress); err != nil {
			return nil, nil, err
		}
	}
	var proj *pca.Projection
	if len(m.PCA) == 0 && m.Options.PCADims >= 0 {
		dims := m.Options.PCADims
		if dims == 0 {
			dims = DefaultPCADims
		}
		if dims >= m.Dim || len(ps) < 2 {
			m.Options.PCADims = -1 // recorded: this collection searches full vectors
		} else {
			sample := make([][]float32, 0, min(len(ps), fitSample))
			for _, i := range sampleIndexes(len(ps), fitSample) {
				sample = append(sample, ps[i].vec)
			}
			p, err := pca.Fit(ctx, sample, dims)
			if err != nil {
				return nil, nil, fmt.Errorf("retrieval: fit PCA: %w", err)
			}
			m.PCA, _ = p.MarshalBinary()
			m.Options.PCADims = dims
		}
	}
	if len(m.PCA) > 0 {
		p, err := pca.UnmarshalProjection(m.PCA)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		proj = p
	}
	var quant *pca.Quantizer
	if m.Options.Int8 {
		if len(m.Quant) == 0 {
			cd := m.Dim
			if proj != nil {
				cd = proj.Out()
			}
			sample := make([][]float32, 0, min(len(ps), fitSample))
			buf := make([]float32, m.Dim)
			for _, i := range sampleIndexes(len(ps), fitSample) {
				v := make([]float32, cd)
				compress(ps[i].vec, proj, v, buf)
				sample = append(sample, v)
			}
			q, err := pca.FitQuantizer(sample)
			if err != nil {
				return nil, nil, fmt.Errorf("retrieval: fit quantizer: %w", err)
			}
			m.Quant, _ = q.MarshalBinary()
		}
		q, err := pca.UnmarshalQuantizer(m.Quant)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		quant = q
	}
	return proj, quant, nil
}

// sampleIndexes returns up to n indexes of [0, total) spread evenly (deterministic).
func sampleIndexes(total, n int) []int {
	if total <= n {
		out := make([]int, total)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := make([]int, n)
	for i := range out {
		out[i] = int(int64(i) * int64(total) / int64(n))
	}
	return out
}

// embedAll embeds the passages' index texts with parallel workers.
func (s *Store) embedAll(ctx context.Context, e embed.Embedder, ps []*pendingPassage, progress func(string, int, int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
	)
	for w := 0; w < s.opts.BuildParallelism; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range batches {
				end := min(start+embedBatch, len(ps))
				texts := make([]string, 0, end-start)
				for _, p := range ps[start:end] {
					texts = append(texts, indexText(p.title, p.text))
				}
				vs, err := e.Embed(ctx, texts)
				if err == nil && len(vs) != len(texts) {
					err = fmt.Errorf("%w: embedder %q returned %d vectors for %d texts", embed.ErrRemote, e.Name(), len(vs), len(texts))
				}
				for i := 0; err == nil && i < len(vs); i++ {
					if len(vs[i]) != e.Dim() {
						err = fmt.Errorf("%w: embedder %q returned %d values, want %d", ErrDimension, e.Name(), len(vs[i]), e.Dim())
					}
				}
				mu.Lock()
				if err != nil {
					if firstErr == nil {
						firstErr = fmt.Errorf("retrieval: embed passages: %w", err)
					}
					cancel()
				} else {
					for i, v := range vs {
						ps[start+i].vec = v
					}
					done += len(vs)
					if progress != nil {
						progress("embed", done, len(ps))
					}
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for start := 0; start < len(ps); start += embedBatch {
		select {
		case batches <- start:
		case <-ctx.Done():
			break feed
		}
	}
	close(batches)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// buildShards builds the listed shards with at most BuildParallelism at a time.
func (s *Store) buildShards(ctx context.Context, cdir string, m *manifest, refs []shardRef, parts []*shardInput, proj *pca.Projection, quant *pca.Quantizer, progress func(string, int, int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.opts.BuildParallelism)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		done     int
	)
	total := 0
	for _, p := range parts {
		total += len(p.pids)
	}
	for i := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			est := parts[i].memEstimate()
			if err := s.buildMem.acquire(ctx, est); err != nil {
				return
			}
			defer s.buildMem.release(est)
			_ = s.hook("build-start")
			meta, err := buildShard(ctx, filepath.Join(cdir, refs[i].Dir), parts[i], proj, quant, s.annOptions(m, len(parts[i].pids)))
			_ = s.hook("build-end")
			mu.Lock()
			refs[i].ANN = meta.ANN
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("retrieval: build shard %s: %w", refs[i].Dir, err)
				}
				cancel()
				return
			}
			done += len(parts[i].pids)
			if progress != nil {
				progress("build", done, total)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// annOptions says whether a shard of n passages gets an ANN index (nil: exact scan).
func (s *Store) annOptions(m *manifest, n int) *ann.Options {
	if m.Embedder == "" {
		return nil
	}
	switch m.Options.DenseIndex {
	case DenseExact:
		return nil
	case DenseAuto:
		if n < m.Options.ANNThreshold {
			return nil
		}
	}
	return &ann.Options{Threads: s.opts.BuildParallelism, Seed: 1}
}

// writeRecords stores passages, document markers and dedup keys tagged with gen.
// Keys that may exist already (those of replaced documents, dedup keys owned by
// removed passages) go into ops, the redo log, instead.
func (in *Ingest) writeRecords(gen uint64, ps []*pendingPassage, ops redoOps) error {
	s := in.s
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var viaRedo bool
	set := func(k, v []byte) error {
		if viaRedo {
			ops.set(k, v)
			return nil
		}
		if err := wb.Set(k, v); err != nil {
			return fmt.Errorf("retrieval: store passages: %w", err)
		}
		return nil
	}
	for d := range in.docs {
		if in.replaced[d] {
			continue // marked by planMutations
		}
		if err := set(collKey(kDoc, in.name, []byte(d)), genValue(gen)); err != nil {
			return err
		}
	}
	for _, p := range ps {
		viaRedo = in.replaced[p.doc]
		rec := &passageRecord{Doc: p.doc, Title: p.title, Text: p.text, Vector: p.vec}
		if err := set(collKey(kPassage, in.name, []byte(p.pid)), encodePassage(gen, rec)); err != nil {
			return err
		}
		switch in.base.Options.Dedup {
		case DedupExact:
			viaRedo = viaRedo || p.hashTaken
			if err := set(collKey(kHash, in.name, p.exact[:]), genValue(gen, []byte(p.pid))); err != nil {
				return err
			}
		case DedupMinHash:
			if err := set(collKey(kSig, in.name, []byte(p.pid)), genValue(gen, p.sig.marshal())); err != nil {
				return err
			}
			for b, k := range p.sig.bandKeys() {
				bk := bandKey(b, k)
				if err := set(collKey(kBand, in.name, bk[:], []byte(p.pid)), genValue(gen)); err != nil {
					return err
				}
			}
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("retrieval: store passages: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("retrieval: sync passages: %w", err)
	}
	return nil
}

// publish makes m the collection's current snapshot.
func (s *Store) publish(name string, m *manifest, prev *collection) error {
	var prevSn *snapshot
	c := prev
	if c != nil {
		prevSn = c.cur.Load()
	}
	sn, err := s.openSnapshot(m, prevSn)
	if err != nil {
		return fmt.Errorf("retrieval: open committed generation %d of %q: %w", m.Generation, name, err)
	}
	if c == nil {
		s.mu.Lock()
		c = &collection{name: name, wmu: s.locks[name]}
		if c.wmu == nil {
			c.wmu = make(chan struct{}, 1)
		}
		c.cur.Store(sn)
		s.colls[name] = c
		s.mu.Unlock()
		return nil
	}
	c.cur.Store(sn)
	if prevSn != nil {
		prevSn.retire()
	}
	return nil
}

// RebuildOptions configure a rebuild.
type RebuildOptions struct {
	// Shards is how many shards the collection is re-split into, in [1, 256].
	Shards int
	// Refit re-fits the embedder state (SIF word weights and common component), the
	// PCA projection and the quantizer on the current corpus and re-embeds every
	// passage, exactly as a from-scratch ingest of the same documents would.
	Refit bool
}

// Rebuild re-shards a whole collection into shards shards from its stored passages
// (keeping its fitted embedder state, projection and quantizer) and switches to them
// atomically; the old shards are deleted once no search uses them.
func (s *Store) Rebuild(ctx context.Context, name string, shards int) (IngestResult, error) {
	return s.RebuildWith(ctx, name, RebuildOptions{Shards: shards})
}

// RebuildWith re-shards a collection from its live stored passages (tombstones are
// dropped), optionally re-fitting its dense models, and switches to the new shards
// atomically (new vectors reach the passage store through the redo log, so a crash
// at any point leaves the previous generation intact).
func (s *Store) RebuildWith(ctx context.Context, name string, opts RebuildOptions) (IngestResult, error) {
	shards := opts.Shards
	if shards < 1 || shards > maxShards {
		return IngestResult{}, fmt.Errorf("%w: shards %d must be in [1, %d]", ErrInvalidArgument, shards, maxShards)
	}
	c, err := s.lockCollection(ctx, name)
	if err != nil {
		return IngestResult{}, err
	}
	defer c.unlock()
	start := time.Now()
	sn := c.acquire()
	m := sn.m.clone()
	proj, quant := sn.proj, sn.quant
	sn.release()
	if m.RedoPending {
		if err := s.applyRedo(name, true); err != nil {
			return IngestResult{}, err
		}
	}
	m.RedoPending = false
	gen := m.Generation + 1
	var recs []*pendingPassage
	var gens []uint64
	err = s.db.View(func(txn *badger.Txn) error {
		prefix := collKey(kPassage, name)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			pid := string(it.Item().Key()[len(prefix):])
			err := it.Item().Value(func(v []byte) error {
				g, p, err := decodePassage(v)
				if err != nil {
					return err
				}
				if g > m.Generation {
					return nil
				}
				recs = append(recs, &pendingPassage{pid: pid, doc: p.Doc, title: p.Title, text: p.Text, chunk: sha256.Sum256([]byte(p.Text)), vec: p.Vector})
				gens = append(gens, g)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return IngestResult{}, fmt.Errorf("retrieval: rebuild %q: read passages: %w", name, err)
	}
	var ops redoOps
	if opts.Refit && m.Embedder != "" && len(recs) > 0 {
		if ops, proj, quant, err = s.refitRecords(ctx, m, recs, gens); err != nil {
			return IngestResult{}, fmt.Errorf("retrieval: rebuild %q: refit: %w", name, err)
		}
	}
	cdir := filepath.Join(s.opts.Dir, "collections", name)
	parts, refs := partition(recs, shards, gen) // recs are in passage-id order (Badger key order)
	nsh := len(refs)
	for _, r := range refs {
		_ = os.RemoveAll(filepath.Join(cdir, r.Dir))
	}
	cleanup := func() {
		for _, r := range refs {
			_ = os.RemoveAll(filepath.Join(cdir, r.Dir))
		}
	}
	if err := s.buildShards(ctx, cdir, m, refs, parts, proj, quant, nil); err != nil {
		cleanup()
		return IngestResult{}, err
	}
	if err := syncDir(cdir); err != nil {
		cleanup()
		return IngestResult{}, err
	}
	if err := s.hook("rebuild-built"); err != nil {
		cleanup()
		return IngestResult{}, err
	}
	if len(ops) > 0 {
		// A stale log of an interrupted rebuild cannot exist here: Open dropped or
		// applied it, and commits apply theirs before releasing the lock.
		if err := s.writeRedo(name, gen, ops); err != nil {
			cleanup()
			_ = s.applyRedo(name, false)
			return IngestResult{}, err
		}
		m.RedoPending = true
	}
	m.Generation = gen
	m.Shards = refs
	m.Passages = int64(len(recs))
	if err := s.writeManifest(m); err != nil {
		cleanup()
		if len(ops) > 0 {
			_ = s.applyRedo(name, false)
		}
		return IngestResult{}, err
	}
	if err := s.hook("rebuild-committed"); err != nil {
		return IngestResult{}, err
	}
	prevSn := c.cur.Load()
	var obsolete []string
	for _, sh := range prevSn.shards {
		obsolete = append(obsolete, sh.ref.Dir)
	}
	if err := s.switchTo(c, m, obsolete); err != nil {
		return IngestResult{}, err
	}
	if len(ops) > 0 {
		drain(prevSn)
		if err := s.applyRedo(name, true); err != nil {
			return IngestResult{}, err
		}
	}
	return IngestResult{Collection: name, Generation: gen, Shards: nsh, TotalDocs: m.Docs, TotalPass: m.Passages, Seconds: time.Since(start).Seconds()}, nil
}
