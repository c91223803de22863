package retrieval

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/ragkv/ragkv/retrieval/internal/pca"
)

// This file holds what a collection does over time: tombstones, the redo log that
// carries changes to existing keys across the commit point, compaction, value-log GC
// and the background compactor.

// kRedo keys hold changes to keys that already exist (a replaced or deleted document's
// passage, marker and dedup keys): r/<coll>\0<key> → op | generation | value (op 1:
// set value, 0: delete; the generation whose commit they belong to). They are written before the manifest that needs them and applied after it
// commits; Open applies those of a committed generation and drops those of an
// interrupted one, so an overwrite never destroys the last committed state.
const kRedo = "r/"

// deadSet is a bitset of tombstoned ordinals of one shard (nil: none).
type deadSet []uint64

func newDeadSet(n int) deadSet { return make(deadSet, (n+63)/64) }

func (d deadSet) has(o uint32) bool {
	w := int(o >> 6)
	return w < len(d) && d[w]&(1<<(o&63)) != 0
}

func (d deadSet) add(o uint32) { d[o>>6] |= 1 << (o & 63) }

func (d deadSet) count() int {
	n := 0
	for _, w := range d {
		n += bits.OnesCount64(w)
	}
	return n
}

// loc is a passage in a snapshot: shard index and ordinal.
type loc struct {
	shard int
	ord   uint32
	pid   string
}

// livePassagesOf returns the live passages of document doc in sn, in shard order.
// Shards hold their passage ids sorted, so the document's passages are one run per
// shard starting at the first id ≥ doc+"#".
func (sn *snapshot) livePassagesOf(doc string) []loc {
	var out []loc
	prefix := doc + "#"
	for i, sh := range sn.shards {
		j := sh.searchPid(prefix)
		for ; j < sh.n; j++ {
			pid := sh.pid(uint32(j))
			if !strings.HasPrefix(pid, prefix) {
				break
			}
			if DocOfPassage(pid) != doc || sn.dead[i].has(uint32(j)) {
				continue
			}
			out = append(out, loc{shard: i, ord: uint32(j), pid: pid})
		}
	}
	return out
}

// redoOps are changes to existing keys: key → new value (nil: delete).
type redoOps map[string][]byte

func (o redoOps) set(k, v []byte) { o[string(k)] = v }
func (o redoOps) del(k []byte) {
	if _, ok := o[string(k)]; !ok {
		o[string(k)] = nil
	}
}

// writeRedo stores ops in the redo log of coll for generation gen, synced.
func (s *Store) writeRedo(coll string, gen uint64, ops redoOps) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for k, v := range ops {
		val := make([]byte, 9, 9+len(v))
		binary.BigEndian.PutUint64(val[1:], gen)
		if v != nil {
			val[0] = 1
			val = append(val, v...)
		}
		if err := wb.Set(collKey(kRedo, coll, []byte(k)), val); err != nil {
			return fmt.Errorf("retrieval: write redo log: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("retrieval: write redo log: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("retrieval: sync redo log: %w", err)
	}
	return nil
}

// applyRedo applies (apply) or drops (!apply) the redo log of coll. Both are
// idempotent: the log is removed only after its changes are synced.
func (s *Store) applyRedo(coll string, apply bool) error {
	prefix := collKey(kRedo, coll)
	var redoKeys [][]byte
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: apply})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			redoKeys = append(redoKeys, k)
			if !apply {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) < 9 {
				return fmt.Errorf("%w: redo entry of %d bytes", ErrCorrupt, len(v))
			}
			target := k[len(prefix):]
			if v[0] == 1 {
				err = wb.Set(target, v[9:])
			} else {
				err = wb.Delete(target)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err == nil {
		err = s.db.Sync()
	}
	if err != nil {
		return fmt.Errorf("retrieval: redo log of %q: %w", coll, err)
	}
	if len(redoKeys) == 0 {
		return nil
	}
	del := s.db.NewWriteBatch()
	defer del.Cancel()
	for _, k := range redoKeys {
		if err := del.Delete(k); err != nil {
			return fmt.Errorf("retrieval: redo log of %q: %w", coll, err)
		}
	}
	if err := del.Flush(); err != nil {
		return fmt.Errorf("retrieval: redo log of %q: %w", coll, err)
	}
	return s.db.Sync()
}

// redoGen is the generation whose redo entries readers of m's snapshot prefer (0:
// none).
func redoGen(m *manifest) uint64 {
	if m.RedoPending {
		return m.Generation
	}
	return 0
}

// redoCollections lists the collections with a redo log.
func (s *Store) redoCollections() (map[string]bool, error) {
	out := map[string]bool{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(kRedo)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(kRedo):]
			if i := slices.Index(k, 0); i >= 0 {
				out[string(k[:i])] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("retrieval: list redo logs: %w", err)
	}
	return out, nil
}

// drain waits until no search pins sn (a retired snapshot), so that changes its
// readers must not see can be applied. Searches are short; the wait is bounded.
func drain(sn *snapshot) {
	deadline := time.Now().Add(time.Minute)
	for sn.refs.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Microsecond)
	}
}

// planMutations tombstones the live passages of the documents this ingest replaces or
// deletes (in m's shard refs) and returns the redo operations that remove their keys
// and re-mark the replaced documents. It returns how many passages it tombstoned.
func (in *Ingest) planMutations(m *manifest, gen uint64) (redoOps, int, error) {
	s := in.s
	ops := redoOps{}
	sn := in.prev.acquire()
	defer sn.release()
	if len(sn.shards) != len(m.Shards) {
		return nil, 0, fmt.Errorf("%w: snapshot of %q changed during the ingest", ErrCorrupt, in.name)
	}
	docs := make([]string, 0, len(in.replaced)+len(in.deleted))
	for d := range in.replaced {
		docs = append(docs, d)
	}
	for d := range in.deleted {
		docs = append(docs, d)
	}
	slices.Sort(docs)
	var old []loc
	for _, d := range docs {
		old = append(old, sn.livePassagesOf(d)...)
		if in.deleted[d] {
			ops.del(collKey(kDoc, in.name, []byte(d)))
		} else {
			ops.set(collKey(kDoc, in.name, []byte(d)), genValue(gen))
		}
	}
	for _, l := range old {
		m.Shards[l.shard].Deleted = append(m.Shards[l.shard].Deleted, l.ord)
	}
	for i := range m.Shards {
		slices.Sort(m.Shards[i].Deleted)
	}
	pids := make([]string, len(old))
	for i, l := range old {
		pids[i] = l.pid
	}
	recs, err := s.getPassages(in.name, pids, 0)
	if err != nil {
		return nil, 0, err
	}
	err = s.db.View(func(txn *badger.Txn) error {
		for i, pid := range pids {
			ops.del(collKey(kPassage, in.name, []byte(pid)))
			switch in.base.Options.Dedup {
			case DedupExact:
				hk := exactKey(recs[i].Text)
				k := collKey(kHash, in.name, hk[:])
				item, err := txn.Get(k)
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				err = item.Value(func(v []byte) error {
					_, owner, err := valueGen(v)
					if err == nil && string(owner) == pid {
						ops.del(k)
					}
					return err
				})
				if err != nil {
					return err
				}
			case DedupMinHash:
				sk := collKey(kSig, in.name, []byte(pid))
				item, err := txn.Get(sk)
				if errors.Is(err, badger.ErrKeyNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				var sig signature
				err = item.Value(func(v []byte) error {
					_, rest, err := valueGen(v)
					if err != nil {
						return err
					}
					var ok bool
					if sig, ok = unmarshalSignature(rest); !ok {
						return fmt.Errorf("%w: signature of %q", ErrCorrupt, pid)
					}
					return nil
				})
				if err != nil {
					return err
				}
				ops.del(sk)
				for b, h := range sig.bandKeys() {
					bk := bandKey(b, h)
					ops.del(collKey(kBand, in.name, bk[:], []byte(pid)))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("retrieval: plan deletions: %w", err)
	}
	return ops, len(old), nil
}

// DeleteDocuments deletes documents from a collection in one commit (ids not in the
// collection are counted in DeleteMissing). Their passages are tombstoned in their
// immutable shards at once and dropped from disk by compaction.
func (s *Store) DeleteDocuments(ctx context.Context, name string, ids []string) (IngestResult, error) {
	if _, err := s.collection(name); err != nil {
		return IngestResult{}, err
	}
	in, err := s.BeginIngest(ctx, name, IngestOptions{})
	if err != nil {
		return IngestResult{}, err
	}
	if err := in.Delete(ctx, ids...); err != nil {
		in.Abort()
		return IngestResult{}, err
	}
	return in.Commit(ctx)
}

// CompactionPolicy bounds a collection's shards (tiered merging, as LSM trees and
// Lucene's TieredMergePolicy do).
type CompactionPolicy struct {
	// MergeFactor: when this many shards fall in one size tier (live passages within a
	// factor MergeFactor of each other), they are merged into one (default 8).
	MergeFactor int
	// MaxShards bounds the shards of a collection: above it the smallest are merged
	// (default 16).
	MaxShards int
	// MaxDeadFraction: a shard whose tombstoned fraction reaches it is rewritten
	// without them (default 0.25).
	MaxDeadFraction float64
}

// EnsureDefaults fills zero fields.
func (p *CompactionPolicy) EnsureDefaults() {
	if p.MergeFactor == 0 {
		p.MergeFactor = 8
	}
	if p.MaxShards == 0 {
		p.MaxShards = 16
	}
	if p.MaxDeadFraction == 0 {
		p.MaxDeadFraction = 0.25
	}
}

// Validate reports invalid policies.
func (p *CompactionPolicy) Validate() error {
	if p.MergeFactor < 2 || p.MaxShards < 1 || p.MaxShards > maxShards || p.MaxDeadFraction <= 0 || p.MaxDeadFraction > 1 {
		return fmt.Errorf("%w: compaction merge factor %d (≥ 2), max shards %d (1..%d) and max dead fraction %v ((0, 1])",
			ErrInvalidArgument, p.MergeFactor, p.MaxShards, maxShards, p.MaxDeadFraction)
	}
	return nil
}

// tier is the size class of a shard of n live passages.
func tier(n, factor int) int {
	if n < 1 {
		return 0
	}
	return int(math.Floor(math.Log(float64(n)) / math.Log(float64(factor))))
}

// compactionPlan picks the shards the next compaction step merges (nil: none). ns are
// the shards' passage counts, live their live counts.
func compactionPlan(ns, live []int, p CompactionPolicy) []int {
	idx := make([]int, len(ns))
	for i := range idx {
		idx[i] = i
	}
	bySize := func(a, b int) int {
		if live[a] != live[b] {
			return live[a] - live[b]
		}
		return a - b
	}
	// Shards with no live passage go first (dropping them costs nothing).
	var empty []int
	for i := range ns {
		if live[i] == 0 {
			empty = append(empty, i)
		}
	}
	if len(empty) > 0 {
		return empty
	}
	tiers := map[int][]int{}
	for _, i := range idx {
		t := tier(live[i], p.MergeFactor)
		tiers[t] = append(tiers[t], i)
	}
	keys := make([]int, 0, len(tiers))
	for t := range tiers {
		keys = append(keys, t)
	}
	slices.Sort(keys)
	for _, t := range keys {
		if g := tiers[t]; len(g) >= p.MergeFactor {
			slices.SortFunc(g, bySize)
			return g[:p.MergeFactor]
		}
	}
	if len(ns) > p.MaxShards {
		slices.SortFunc(idx, bySize)
		return idx[:len(ns)-p.MaxShards+1]
	}
	for i := range ns {
		if float64(ns[i]-live[i]) >= p.MaxDeadFraction*float64(ns[i]) && ns[i] > live[i] {
			return []int{i}
		}
	}
	return nil
}

// CompactResult reports a compaction.
type CompactResult struct {
	Collection string `json:"collection"`
	Generation uint64 `json:"generation"`
	// Merges is how many merge steps ran; ShardsBefore/After the shard counts.
	Merges       int     `json:"merges"`
	ShardsBefore int     `json:"shards_before"`
	ShardsAfter  int     `json:"shards_after"`
	Dropped      int     `json:"tombstones_dropped"`
	Seconds      float64 `json:"seconds"`
}

// Compact merges a collection's shards by the store's compaction policy until the
// policy asks for nothing more: tiers of similar-sized shards are merged, the shard
// count is bounded, tombstones are dropped. Each step commits atomically (the merged
// shard replaces its inputs in one manifest switch); searches see the same rankings
// before and after (the shard layout does not change exact scores).
func (s *Store) Compact(ctx context.Context, name string) (CompactResult, error) {
	c, err := s.lockCollection(ctx, name)
	if err != nil {
		return CompactResult{}, err
	}
	defer c.unlock()
	start := time.Now()
	res := CompactResult{Collection: name, ShardsBefore: len(c.cur.Load().shards)}
	for step := 0; step < 4*maxShards; step++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		sn := c.cur.Load()
		ns := make([]int, len(sn.shards))
		for i, sh := range sn.shards {
			ns[i] = sh.n
		}
		plan := compactionPlan(ns, sn.live, s.opts.Compaction)
		if plan == nil {
			break
		}
		dropped, err := s.mergeShards(ctx, c, plan)
		if err != nil {
			return res, err
		}
		res.Merges++
		res.Dropped += dropped
	}
	sn := c.cur.Load()
	res.Generation, res.ShardsAfter = sn.m.Generation, len(sn.shards)
	res.Seconds = time.Since(start).Seconds()
	if res.Merges > 0 {
		s.log.Info("retrieval: compacted", "collection", name, "generation", res.Generation, "merges", res.Merges, "shards_before", res.ShardsBefore, "shards_after", res.ShardsAfter, "tombstones_dropped", res.Dropped, "seconds", res.Seconds)
	}
	return res, nil
}

// mergeShards replaces the listed shards of c's current snapshot by one shard of their
// live passages (none if they have none). c's write lock is held.
func (s *Store) mergeShards(ctx context.Context, c *collection, which []int) (int, error) {
	sn := c.acquire()
	defer sn.release()
	m := sn.m.clone()
	gen := m.Generation + 1
	cdir := filepath.Join(s.opts.Dir, "collections", c.name)
	sel := map[int]bool{}
	var pids []string
	var chunks [][32]byte
	dropped := 0
	for _, i := range which {
		sel[i] = true
		sh := sn.shards[i]
		for o := 0; o < sh.n; o++ {
			if sn.dead[i].has(uint32(o)) {
				dropped++
				continue
			}
			pids = append(pids, sh.pid(uint32(o)))
			var ch [32]byte
			copy(ch[:], sh.chunkBytes(uint32(o)))
			chunks = append(chunks, ch)
		}
	}
	var refs []shardRef
	if len(pids) > 0 {
		recs, err := s.getPassages(c.name, pids, redoGen(m))
		if err != nil {
			return 0, err
		}
		ps := make([]*pendingPassage, len(pids))
		for i, pid := range pids {
			ps[i] = &pendingPassage{pid: pid, doc: recs[i].Doc, title: recs[i].Title, text: recs[i].Text, chunk: chunks[i], vec: recs[i].Vector}
		}
		slices.SortFunc(ps, func(a, b *pendingPassage) int { return cmpString(a.pid, b.pid) })
		var parts []*shardInput
		parts, refs = partition(ps, 1, gen)
		refs[0].Dir = fmt.Sprintf("g%06d-c%03d", gen, 0)
		_ = os.RemoveAll(filepath.Join(cdir, refs[0].Dir))
		if err := s.buildShards(ctx, cdir, m, refs, parts, sn.proj, sn.quant, nil); err != nil {
			_ = os.RemoveAll(filepath.Join(cdir, refs[0].Dir))
			return 0, err
		}
		if err := syncDir(cdir); err != nil {
			_ = os.RemoveAll(filepath.Join(cdir, refs[0].Dir))
			return 0, err
		}
	}
	cleanup := func() {
		for _, r := range refs {
			_ = os.RemoveAll(filepath.Join(cdir, r.Dir))
		}
	}
	if err := s.hook("compact-built"); err != nil {
		cleanup()
		return 0, err
	}
	var keep []shardRef
	for i, r := range m.Shards {
		if !sel[i] {
			keep = append(keep, r)
		}
	}
	m.Shards = append(keep, refs...)
	m.Generation = gen
	if err := s.writeManifest(m); err != nil {
		cleanup()
		return 0, err
	}
	if err := s.hook("compact-committed"); err != nil {
		return 0, err
	}
	var obsolete []string
	for i := range sel {
		obsolete = append(obsolete, sn.shards[i].ref.Dir)
	}
	if err := s.switchTo(c, m, obsolete); err != nil {
		return 0, err
	}
	return dropped, nil
}

// switchTo publishes m as c's snapshot (reusing open shards) and deletes the listed
// shard directories once no search uses them.
func (s *Store) switchTo(c *collection, m *manifest, obsolete []string) error {
	prev := c.cur.Load()
	nsn, err := s.openSnapshot(m, prev)
	if err != nil {
		return fmt.Errorf("retrieval: open generation %d of %q: %w", m.Generation, c.name, err)
	}
	c.cur.Store(nsn)
	gone := map[string]bool{}
	for _, d := range obsolete {
		gone[d] = true
	}
	for _, sh := range prev.shards {
		if gone[sh.ref.Dir] {
			sh.obsolete.Store(true)
		}
	}
	prev.retire()
	return nil
}

// CollectGarbage runs Badger's value-log GC until it finds nothing to rewrite (deleted
// and overwritten passages leave dead values behind). It returns how many value-log
// files were rewritten.
func (s *Store) CollectGarbage(ctx context.Context) (int, error) {
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		err := s.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			n++
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		default:
			return n, fmt.Errorf("retrieval: value-log GC: %w", err)
		}
	}
}

// compactor is the background compaction loop of a Store (Options.CompactEvery > 0):
// it owns one goroutine, started by Open and stopped by Close.
type compactor struct {
	cancel context.CancelFunc
	kick   chan struct{}
	wg     sync.WaitGroup
}

func (s *Store) startCompactor() {
	ctx, cancel := context.WithCancel(context.Background())
	s.bg = &compactor{cancel: cancel, kick: make(chan struct{}, 1)}
	s.bg.wg.Add(1)
	go func() {
		defer s.bg.wg.Done()
		t := time.NewTicker(s.opts.CompactEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-s.bg.kick:
			}
			s.compactAll(ctx)
		}
	}()
}

// kickCompactor asks the background compactor (if any) to look at the collections now.
func (s *Store) kickCompactor() {
	if s.bg == nil {
		return
	}
	select {
	case s.bg.kick <- struct{}{}:
	default:
	}
}

func (s *Store) stopCompactor() {
	if s.bg == nil {
		return
	}
	s.bg.cancel()
	s.bg.wg.Wait()
}

func (s *Store) compactAll(ctx context.Context) {
	s.mu.Lock()
	names := make([]string, 0, len(s.colls))
	for n := range s.colls {
		names = append(names, n)
	}
	s.mu.Unlock()
	slices.Sort(names)
	merged := 0
	for _, n := range names {
		r, err := s.Compact(ctx, n)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, ErrCollectionNotFound) {
				s.log.Error("retrieval: background compaction", "collection", n, "err", err)
			}
			continue
		}
		merged += r.Merges
	}
	if merged > 0 {
		if _, err := s.CollectGarbage(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("retrieval: value-log GC", "err", err)
		}
	}
}

// refitRecords re-fits the collection's embedder state, PCA and quantizer on recs (all
// its live passages, in passage-id order, as a from-scratch build of the same corpus
// would see them), re-embeds them and returns the redo operations that store the new
// vectors.
func (s *Store) refitRecords(ctx context.Context, m *manifest, recs []*pendingPassage, gens []uint64) (redoOps, *pca.Projection, *pca.Quantizer, error) {
	m.EmbedderState, m.PCA, m.Quant = nil, nil, nil
	in := &Ingest{s: s, name: m.Name, base: m}
	proj, quant, err := in.prepareDense(ctx, m, recs)
	if err != nil {
		return nil, nil, nil, err
	}
	ops := redoOps{}
	for i, p := range recs {
		rec := &passageRecord{Doc: p.doc, Title: p.title, Text: p.text, Vector: p.vec}
		ops.set(collKey(kPassage, m.Name, []byte(p.pid)), encodePassage(gens[i], rec))
	}
	return ops, proj, quant, nil
}
