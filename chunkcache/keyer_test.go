package chunkcache

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/redistest"
	"github.com/ragkv/ragkv/store"
)

// TestKeyerSecretSalts: with a secret the keys differ from the public ones and between
// secrets, agree for the same secret, and stay distinct per namespace.
func TestKeyerSecretSalts(t *testing.T) {
	id := testIDs()[2]
	pub, err := PublicKeyer().ChunkKey(&id)
	if err != nil {
		t.Fatal(err)
	}
	var nilKeyer *Keyer
	if k, _ := nilKeyer.ChunkKey(&id); k != pub {
		t.Fatal("a nil keyer does not use public salts")
	}
	a1, _ := NewKeyer([]byte("secret-a-0123456789"))
	a2, _ := NewKeyer([]byte("secret-a-0123456789"))
	b, _ := NewKeyer([]byte("secret-b-0123456789"))
	ka1, _ := a1.ChunkKey(&id)
	ka2, _ := a2.ChunkKey(&id)
	kb, _ := b.ChunkKey(&id)
	if ka1 != ka2 || ka1 == pub || ka1 == kb {
		t.Fatalf("keys: a %s a' %s b %s public %s", ka1.Short(), ka2.Short(), kb.Short(), pub.Short())
	}
	other := id
	other.Namespace = "tenant-b"
	if ko, _ := a1.ChunkKey(&other); ko == ka1 {
		t.Fatal("namespaces share a key under a secret")
	}
	va, _ := a1.ValueKey("resp", []byte("x"))
	vp, _ := PublicKeyer().ValueKey("resp", []byte("x"))
	if va == vp {
		t.Fatal("value keys ignore the secret")
	}
	if _, err := NewKeyer([]byte("short")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := PublicKeyer().Rotate(""); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("rotating public salts: %v", err)
	}
}

// TestOpenKeyerFile: the secret file is created 0600 in a 0700 directory, reopening it
// gives the same keys, a rotation is persisted, and a file readable by others or
// malformed is refused.
func TestOpenKeyerFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "salt.secret")
	k1, err := OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode %v, %v", fi.Mode().Perm(), err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("keys directory mode %v", di.Mode().Perm())
	}
	id := testIDs()[2]
	key1, _ := k1.ChunkKey(&id)
	k2, err := OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	if key2, _ := k2.ChunkKey(&id); key2 != key1 || k2.Generation("tenant-a") != 1 {
		t.Fatalf("reopened keyer: key %s vs %s, generation %d", key2.Short(), key1.Short(), k2.Generation("tenant-a"))
	}
	// Rotating one namespace changes its keys only, and survives a reopen.
	other := id
	other.Namespace = "tenant-b"
	ob, _ := k2.ChunkKey(&other)
	if g, err := k2.Rotate("tenant-a"); err != nil || g != 2 {
		t.Fatalf("rotate: %d %v", g, err)
	}
	k3, err := OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	key3, _ := k3.ChunkKey(&id)
	ob3, _ := k3.ChunkKey(&other)
	if key3 == key1 || ob3 != ob || k3.Generation("tenant-a") != 2 || k3.Generation("tenant-b") != 1 {
		t.Fatalf("after rotating tenant-a: a changed %v, b unchanged %v, generations %d %d",
			key3 != key1, ob3 == ob, k3.Generation("tenant-a"), k3.Generation("tenant-b"))
	}
	// Rotating the base changes every namespace, own secrets included.
	if g, err := k3.Rotate(""); err != nil || g != 3 {
		t.Fatalf("rotate base: %d %v", g, err)
	}
	if k, _ := k3.ChunkKey(&other); k == ob {
		t.Fatal("base rotation left tenant-b's keys")
	}
	if k, _ := k3.ChunkKey(&id); k == key3 {
		t.Fatal("base rotation left tenant-a's own secret")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyer(path); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable secret: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.secret")
	if err := os.WriteFile(bad, []byte("ragkv-salt-secret 1\nbase 1 abcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeyer(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("malformed secret: %v", err)
	}
}

// TestRotateSaltInvalidatesOldKeys: rotating a namespace's salt deletes its chunks
// from every tier (memory and disk), leaves the other namespaces', gives the same
// content a new key, and lets it be stored again; a full rotation deletes the rest.
// After a restart the deleted chunks stay gone.
func TestRotateSaltInvalidatesOldKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "salt.secret")
	keyer, err := OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	setup := cacheSetup{dir: filepath.Join(dir, "badger"), memCap: 1 << 20, diskCap: 1 << 24, writeThrough: true, keyer: keyer}
	c, _, _ := openCache(t, setup)
	var keysA, keysB []Key
	for i := range 4 {
		ns := []string{"a", "b"}[i%2]
		spec, ks, vs := testChunk(uint64(i), ns, F16, 2, 8)
		if i == 0 {
			spec.Pin = HardPin // deleted too: its key is gone
		}
		k := put(t, c, spec, ks, vs).Key
		if pk, _ := PublicKeyer().ChunkKey(&ChunkID{Namespace: ns, Model: spec.Model, DType: F16, Tokens: spec.Tokens}); pk == k {
			t.Fatal("the cache used public salts")
		}
		if ns == "a" {
			keysA = append(keysA, k)
		} else {
			keysB = append(keysB, k)
		}
	}
	before := c.Stats()
	res, err := c.RotateSalt(ctx, "a")
	if err != nil || res.Generation != 2 || res.Deleted != 2 || res.FreedBytes <= 0 {
		t.Fatalf("rotate a: %+v %v", res, err)
	}
	la, _ := c.Lookup(ctx, "a", keysA)
	lb, _ := c.Lookup(ctx, "b", keysB)
	for _, r := range la {
		if r.Present {
			t.Fatalf("chunk %s of a still present after the rotation: %+v", r.Key.Short(), r)
		}
	}
	for _, r := range lb {
		if !r.Present {
			t.Fatalf("chunk %s of b gone after rotating a", r.Key.Short())
		}
	}
	after := c.Stats()
	for i := range after.Tiers {
		if after.Tiers[i].Entries != before.Tiers[i].Entries-2 {
			t.Fatalf("tier %s: %d entries, want %d", after.Tiers[i].Name, after.Tiers[i].Entries, before.Tiers[i].Entries-2)
		}
	}
	spec, ks, vs := testChunk(0, "a", F16, 2, 8)
	nk := put(t, c, spec, ks, vs).Key
	if nk == keysA[0] {
		t.Fatal("the same content kept its key across the rotation")
	}
	checkChunk(t, c, spec, ks, vs)
	if _, err := c.RotateSalt(ctx, "bad name!"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad namespace: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Restart: the disk holds b's two chunks and a's new one, all still reachable.
	keyer2, err := OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	setup.keyer = keyer2
	c, _, _ = openCache(t, setup)
	if st := c.Stats(); st.Tiers[1].Entries != 3 {
		t.Fatalf("after restart: %d chunks on disk, want 3", st.Tiers[1].Entries)
	}
	checkChunk(t, c, spec, ks, vs)
	res, err = c.RotateSalt(ctx, "")
	if err != nil || res.Deleted != 3 || res.Generation != 3 {
		t.Fatalf("rotate all: %+v %v", res, err)
	}
	if st := c.Stats(); st.Chunks != 0 || st.Tiers[0].Entries != 0 || st.Tiers[1].Entries != 0 {
		t.Fatalf("after rotating every namespace: %+v", st)
	}
	c.Close()

	pub, _, _ := openCache(t, cacheSetup{memCap: 1 << 20})
	defer pub.Close()
	if _, err := pub.RotateSalt(ctx, ""); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("public salts: %v", err)
	}
}

// TestRotatedButNotSweptIsDeletedOnRestart: a crash after the secret file was rewritten
// but before the old chunks were deleted leaves chunks that no longer hash to their
// keys; the next start deletes them.
func TestRotatedButNotSweptIsDeletedOnRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "salt.secret")
	keyer, err := OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	setup := cacheSetup{dir: filepath.Join(dir, "badger"), memCap: 1 << 20, diskCap: 1 << 24, writeThrough: true, keyer: keyer}
	c, _, _ := openCache(t, setup)
	for i := range 3 {
		spec, ks, vs := testChunk(uint64(i), []string{"a", "a", "b"}[i], F16, 2, 8)
		put(t, c, spec, ks, vs)
	}
	if _, err := keyer.Rotate("a"); err != nil { // the file only, as if killed right after
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	setup.keyer, err = OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	c, _, disk := openCache(t, setup)
	defer c.Close()
	if st := c.Stats(); st.Tiers[1].Entries != 1 || strings.Contains(strings.Join(st.Namespaces, ","), "a,") {
		t.Fatalf("after restart: %d chunks, namespaces %v; want only b's chunk", st.Tiers[1].Entries, st.Namespaces)
	}
	n := 0
	if err := disk.Scan(context.Background(), func(store.Info) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("badger holds %d objects (%v), want 1", n, err)
	}
	// The start pruned the retired secret: the file has none left.
	if b, err := os.ReadFile(path); err != nil || strings.Contains(string(b), "retired") {
		t.Fatalf("secret file after the start: %v\n%s", err, b)
	}
}

// TestForeignSecretRefusesToStart: a data directory opened with another secret (the
// wrong file) fails with ErrForeignChunks and deletes nothing; DropForeignChunks deletes
// them; a data directory written with public salts is taken over by a secret (its
// chunks deleted) without an error.
func TestForeignSecretRefusesToStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ka, _ := NewKeyer([]byte("secret-a-0123456789"))
	kb, _ := NewKeyer([]byte("secret-b-0123456789"))
	open := func(k *Keyer, drop bool) (*Cache, error) {
		disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return New(ctx, Options{Tiers: []TierConfig{{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 24}}},
			Keyer: k, DropForeignChunks: drop, Logger: slog.New(slog.DiscardHandler)})
	}
	c, err := open(ka, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		spec, ks, vs := testChunk(uint64(i), "a", F16, 2, 8)
		put(t, c, spec, ks, vs)
	}
	c.Close()
	for _, k := range []*Keyer{kb, PublicKeyer()} {
		if _, err := open(k, false); !errors.Is(err, ErrForeignChunks) || !strings.Contains(err.Error(), "3 chunks") {
			t.Fatalf("another keyer: %v", err)
		}
	}
	c, err = open(ka, false) // nothing was deleted
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().Tiers[0].Entries; n != 3 {
		t.Fatalf("after the refused opens: %d chunks, want 3", n)
	}
	c.Close()
	c, err = open(kb, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Stats().Tiers[0].Entries; n != 0 {
		t.Fatalf("DropForeignChunks kept %d chunks", n)
	}
	// Public salts, then a secret: taken over.
	spec, ks, vs := testChunk(9, "a", F16, 2, 8)
	c.Close()
	c, err = open(PublicKeyer(), false)
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, spec, ks, vs)
	c.Close()
	c, err = open(ka, false)
	if err != nil {
		t.Fatalf("a public-salt data directory under a secret: %v", err)
	}
	defer c.Close()
	if n := c.Stats().Tiers[0].Entries; n != 0 {
		t.Fatalf("public-salt chunks kept under a secret: %d", n)
	}
}

func FuzzParseSaltSecrets(f *testing.F) {
	k, _ := NewKeyer([]byte("fuzz-secret-0123456789"))
	_, _ = k.Rotate("tenant-a")
	f.Add(k.encodeLocked())
	f.Add([]byte("ragkv-salt-secret 1\nbase 1 " + strings.Repeat("ab", 32) + "\n"))
	f.Add([]byte("ragkv-salt-secret 2\n"))
	f.Add([]byte("ragkv-salt-secret 1\nns a 0 00\n"))
	f.Add([]byte("ragkv-salt-secret 1\nbase 2 " + strings.Repeat("cd", 32) + "\nretired * 1 " + strings.Repeat("ab", 32) + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := parseSaltSecrets(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// What parses re-encodes to something that parses to the same secrets.
		k2, err := parseSaltSecrets(k.encodeLocked())
		if err != nil {
			t.Fatalf("re-encoded file does not parse: %v", err)
		}
		if k2.base != k.base || len(k2.ns) != len(k.ns) || !slices.Equal(k2.retired, k.retired) {
			t.Fatal("re-encoded secrets differ")
		}
		for n, s := range k.ns {
			if k2.ns[n] != s {
				t.Fatalf("namespace %q differs after re-encoding", n)
			}
		}
	})
}

// BenchmarkChunkKey: key derivation with public and secret salts (a 512-token chunk).
//
//	go test -run '^$' -bench ChunkKey ./chunkcache
func BenchmarkChunkKey(b *testing.B) {
	id := testIDs()[2]
	id.Tokens = make([]uint32, 512)
	sec, _ := NewKeyer([]byte("bench-secret-0123456789"))
	for _, k := range []struct {
		name string
		k    *Keyer
	}{{"public", PublicKeyer()}, {"secret", sec}} {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := k.k.ChunkKey(&id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRotateSaltDuringPuts: a put staged before a rotation and committed after it is
// stored under the new key; puts racing with rotations never leave a chunk under an old
// key: after the dust settles, a restart (which deletes every chunk that does not hash
// to its key under the current secret) finds exactly the chunks the cache held.
func TestRotateSaltDuringPuts(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "salt.secret")
	keyer, err := OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	setup := cacheSetup{dir: filepath.Join(dir, "badger"), memCap: 1 << 20, diskCap: 1 << 26, writeThrough: true, keyer: keyer}
	c, _, _ := openCache(t, setup)
	// A put staged before a rotation and committed after it lands under the new key.
	spec, ks, vs := testChunk(7, "a", F16, 2, 8)
	w, err := c.NewWriter(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for l := range ks {
		if err := w.WriteLayer(l, ks[l], vs[l]); err != nil {
			t.Fatal(err)
		}
	}
	old := w.Key()
	if _, err := c.RotateSalt(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	res, err := w.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := c.Key(spec.ID()); res.Key != now || res.Key == old {
		t.Fatalf("put across a rotation stored under %s (old key %s, current %s)", res.Key.Short(), old.Short(), now.Short())
	}
	checkChunk(t, c, spec, ks, vs)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			for i := range 25 {
				spec, ks, vs := testChunk(uint64(1000*w+i), "a", F16, 2, 8)
				if _, err := c.PutFloat32(ctx, spec, ks, vs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 3 {
		if _, err := c.RotateSalt(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range 5 { // after the last rotation, so that the check below is never 0 of 0
		spec, ks, vs := testChunk(uint64(9000+i), "a", F16, 2, 8)
		put(t, c, spec, ks, vs)
	}
	held := c.Stats().Tiers[1].Entries
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	setup.keyer, err = OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	c, _, _ = openCache(t, setup)
	defer c.Close()
	if got := c.Stats().Tiers[1].Entries; got != held || held == 0 {
		t.Fatalf("restart found %d of the %d chunks held: some were stored under a rotated key", got, held)
	}
}

// TestRotateSaltSharedTier: two replicas sharing a Redis tier and the salt secret file
// agree on keys; a rotation on one deletes the namespace's chunks from the shared tier
// too, so the other (once it reloads the rotated secret) finds nothing under either
// key; a replica with another secret never sees the chunks.
func TestRotateSaltSharedTier(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "salt.secret")
	ka, err := OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := OpenKeyer(path)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewKeyer([]byte("another-secret-0123456789"))
	a := openSharedCacheKeyed(t, []string{srv.Addr()}, 64<<20, ka)
	b := openSharedCacheKeyed(t, []string{srv.Addr()}, 64<<20, kb)
	x := openSharedCacheKeyed(t, []string{srv.Addr()}, 64<<20, other)
	spec, ks, vs := testChunk(1, "docs", F16, 2, 8)
	k := put(t, a, spec, ks, vs).Key
	if kk, _ := b.Key(spec.ID()); kk != k {
		t.Fatal("replicas with the same secret file derive different keys")
	}
	checkChunk(t, b, spec, ks, vs) // from the shared tier
	if kx, _ := x.Key(spec.ID()); kx == k {
		t.Fatal("a replica with another secret derives the same key")
	}
	if lr, _ := x.Lookup(ctx, "docs", []Key{mustKey(t, x, spec)}); lr[0].Present {
		t.Fatal("a replica with another secret finds the chunk")
	}
	res, err := a.RotateSalt(ctx, "docs")
	if err != nil || res.Deleted != 1 {
		t.Fatalf("rotate: %+v %v", res, err)
	}
	kb2, err := OpenKeyer(path) // b restarted with the rotated file
	if err != nil {
		t.Fatal(err)
	}
	b2 := openSharedCacheKeyed(t, []string{srv.Addr()}, 64<<20, kb2)
	nk, _ := b2.Key(spec.ID())
	lr, err := b2.Lookup(ctx, "docs", []Key{k, nk})
	if err != nil || lr[0].Present || lr[1].Present {
		t.Fatalf("after the rotation the shared tier still answers: %+v %v", lr, err)
	}
}

func mustKey(t *testing.T, c *Cache, spec PutSpec) Key {
	t.Helper()
	k, err := c.Key(spec.ID())
	if err != nil {
		t.Fatal(err)
	}
	return k
}
