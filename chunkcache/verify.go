package chunkcache

import (
	"context"
	"fmt"
	"hash/crc32"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// VerifyReport is what Verify found. OK is true when Problems is empty.
type VerifyReport struct {
	OK     bool         `json:"ok"`
	Tiers  []TierVerify `json:"tiers"`
	Index  int          `json:"index_entries"`
	Chunks int          `json:"chunks"`
	Values int          `json:"values"`
	// Problems lists every inconsistency, one line each (capped at 100; Count has all).
	Problems []string `json:"problems,omitempty"`
	Count    int      `json:"problem_count"`
}

// TierVerify is one local tier's part of a VerifyReport.
type TierVerify struct {
	Name    string `json:"name"`
	Objects int    `json:"objects"`
	Bytes   int64  `json:"bytes"`
	// Corrupt: objects whose manifest, key or a layer (part) checksum is wrong.
	Corrupt int `json:"corrupt"`
	// Untracked: objects the tier holds that its tracker does not account (bytes
	// outside the budget); Missing: tracked keys the tier does not hold.
	Untracked int `json:"untracked"`
	Missing   int `json:"missing"`
	// SizeMismatch: tracked sizes that differ from the stored object's.
	SizeMismatch int `json:"size_mismatch"`
	// StrayFiles: files of the tier that no stored object references (the disk
	// tier's blob files whose unlink failed or was cut short; the next start removes
	// them).
	StrayFiles int `json:"stray_files,omitempty"`
}

// strayCounter is a tier that can count its files that no object references
// (store.Badger).
type strayCounter interface {
	StrayBlobs(ctx context.Context) (int, error)
}

// Verify reads everything the local tiers hold and checks it against the cache's own
// accounting: every object's manifest parses and hashes to its key, every layer (a
// value's every part) matches its CRC-32C, every stored object is tracked by its tier
// with its size, every tracked key is stored, every tracked key is in the index and
// every index entry is tracked by some tier, and no tier keeps files that no object
// references. It changes nothing (corrupt objects are
// reported, not quarantined) and does not touch hit counts or recency. Run it on a
// quiescent cache (`ragkv cache check` runs it offline on a data directory): a put or
// eviction running meanwhile can show up as a transient mismatch. The shared tier is
// not verified (other replicas write it). The error is for I/O failures that stop the
// scan, not for what it found.
func (c *Cache) Verify(ctx context.Context) (VerifyReport, error) {
	if !c.gate.enter() {
		return VerifyReport{}, ErrClosed
	}
	defer c.gate.exit()
	var rep VerifyReport
	problem := func(f string, a ...any) {
		rep.Count++
		if len(rep.Problems) < 100 {
			rep.Problems = append(rep.Problems, fmt.Sprintf(f, a...))
		}
	}
	c.mu.RLock()
	index := make(map[Key]entry, len(c.index))
	for k, e := range c.index {
		index[k] = *e
	}
	c.mu.RUnlock()
	rep.Index = len(index)
	tracked := map[Key]bool{}
	for _, t := range c.tiers {
		tv := TierVerify{Name: t.name}
		seen := map[Key]bool{}
		type obj struct {
			key   Key
			size  int64
			parts int
			man   []byte
		}
		var objs []obj
		err := t.tier.Scan(ctx, func(in store.Info) error {
			objs = append(objs, obj{Key(in.Key), in.Size, in.Parts, append([]byte(nil), in.Manifest...)})
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("chunkcache: verify tier %s: %w", t.name, err)
		}
		for _, o := range objs {
			seen[o.key] = true
			tv.Objects++
			tv.Bytes += o.size
			e, _, err := checkStored(c.keyer, o.key, o.man, o.parts)
			if err == nil {
				err = verifyParts(ctx, t.tier, o.key, o.man, e.value)
			}
			if err != nil {
				tv.Corrupt++
				problem("tier %s: object %s: %v", t.name, o.key.Short(), err)
			}
			if e.value {
				rep.Values++
			} else if err == nil {
				rep.Chunks++
			}
			ei, ok := t.tracker.Lookup(eviction.Key(o.key))
			switch {
			case !ok:
				tv.Untracked++
				problem("tier %s: object %s (%d bytes) is stored but not tracked", t.name, o.key.Short(), o.size)
			case ei.Size != o.size:
				tv.SizeMismatch++
				problem("tier %s: object %s is %d bytes, tracked as %d", t.name, o.key.Short(), o.size, ei.Size)
			}
			if ix, ok := index[o.key]; ok && err == nil && ix.ns != e.ns {
				problem("tier %s: object %s is in namespace %q, the index says %q", t.name, o.key.Short(), e.ns, ix.ns)
			}
		}
		for _, k := range t.tracker.Keys() {
			tracked[Key(k)] = true
			if !seen[Key(k)] {
				tv.Missing++
				problem("tier %s: tracked key %s is not stored", t.name, Key(k).Short())
			}
			if _, ok := index[Key(k)]; !ok {
				problem("tier %s: tracked key %s is not in the index", t.name, Key(k).Short())
			}
		}
		if sc, ok := t.tier.(strayCounter); ok {
			n, err := sc.StrayBlobs(ctx)
			if err != nil {
				return rep, fmt.Errorf("chunkcache: verify tier %s: %w", t.name, err)
			}
			if n > 0 {
				tv.StrayFiles = n
				problem("tier %s: %d blob files that no object references", t.name, n)
			}
		}
		rep.Tiers = append(rep.Tiers, tv)
	}
	for k := range index {
		if !tracked[k] {
			problem("index entry %s is in no tier", k.Short())
		}
	}
	rep.OK = rep.Count == 0
	return rep, nil
}

// verifyParts reads every part of k from tier t and checks it against the manifest's
// CRCs (a chunk's layer CRCs, a value's part CRCs and sizes).
func verifyParts(ctx context.Context, t store.Tier, k Key, man []byte, value bool) error {
	r, err := t.Open(ctx, k)
	if err != nil {
		return err
	}
	defer r.Close()
	var buf []byte
	if value {
		m, err := decodeValueManifest(man)
		if err != nil {
			return err
		}
		for i := range m.sizes {
			if buf, err = r.ReadPart(ctx, i, buf[:0]); err != nil {
				return err
			}
			if int64(len(buf)) != m.sizes[i] || crc32.Checksum(buf, castagnoli) != m.crcs[i] {
				return fmt.Errorf("%w: value part %d does not match its size or checksum", ErrCorrupt, i)
			}
		}
		return nil
	}
	m, err := decodeManifest(man)
	if err != nil {
		return err
	}
	for i := 0; i < m.header.Layers; i++ {
		if buf, err = r.ReadPart(ctx, i, buf[:0]); err != nil {
			return err
		}
		if err := m.header.CheckLayer(i, buf); err != nil {
			return fmt.Errorf("layer %d: %w", i, asInvalid(err))
		}
	}
	return nil
}
