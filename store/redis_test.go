package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ragkv/ragkv/internal/redistest"
)

func openRedisTier(t testing.TB, addrs []string, mod func(*RedisOptions)) *Redis {
	t.Helper()
	o := RedisOptions{Addrs: addrs, Logger: slog.New(slog.DiscardHandler), UsageInterval: -1, Prefix: "t:"}
	if mod != nil {
		mod(&o)
	}
	r, err := OpenRedis(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func redisTestObject(seed uint64, parts, partBytes int) Object {
	rng := rand.New(rand.NewPCG(seed, 7))
	o := Object{Manifest: []byte(fmt.Sprintf("manifest-%d", seed))}
	for i := 0; i < parts; i++ {
		p := make([]byte, partBytes+i)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		o.Parts = append(o.Parts, p)
	}
	return o
}

func keyOf(i uint64) Key {
	var k Key
	for j := range k {
		k[j] = byte(i >> (8 * (j % 8)))
	}
	k[31] = byte(i * 31)
	return k
}

func readAll(t testing.TB, tier Tier, k Key) (Object, error) {
	t.Helper()
	r, err := tier.Open(context.Background(), k)
	if err != nil {
		return Object{}, err
	}
	defer r.Close()
	o := Object{Manifest: append([]byte(nil), r.Manifest()...)}
	for i := 0; i < r.NumParts(); i++ {
		p, err := r.ReadPart(context.Background(), i, nil)
		if err != nil {
			return Object{}, err
		}
		if int64(len(p)) != r.PartSize(i) {
			t.Fatalf("part %d: %d bytes, PartSize %d", i, len(p), r.PartSize(i))
		}
		o.Parts = append(o.Parts, p)
	}
	if r.Size() != o.Size() {
		t.Fatalf("Size %d, read %d", r.Size(), o.Size())
	}
	return o, nil
}

func sameObject(a, b Object) bool {
	if !bytes.Equal(a.Manifest, b.Manifest) || len(a.Parts) != len(b.Parts) {
		return false
	}
	for i := range a.Parts {
		if !bytes.Equal(a.Parts[i], b.Parts[i]) {
			return false
		}
	}
	return true
}

// redisTargets runs f against one redis-server and against a 3-node Redis Cluster.
func redisTargets(t *testing.T, f func(t *testing.T, addrs []string, nodes []*redistest.Server)) {
	t.Run("single", func(t *testing.T) {
		s := redistest.Start(t, redistest.Options{})
		f(t, []string{s.Addr()}, []*redistest.Server{s})
	})
	t.Run("cluster", func(t *testing.T) {
		c := redistest.StartCluster(t, 3, redistest.Options{})
		// One node's address is enough: cluster mode is detected.
		f(t, c.Addrs()[:1], c.Nodes)
	})
}

// smallSegments makes objects span several segments and reads several batches.
func smallSegments(o *RedisOptions) {
	o.SegmentBytes, o.FirstBatchBytes, o.BatchBytes = 2500, 1200, 5000
}

func TestRedisTier(t *testing.T) {
	redisTargets(t, func(t *testing.T, addrs []string, nodes []*redistest.Server) {
		ctx := context.Background()
		var mod func(*RedisOptions)
		if len(nodes) > 1 {
			mod = smallSegments // the cluster runs the multi-segment layout
		}
		r := openRedisTier(t, addrs, mod)
		if r.Cluster() != (len(nodes) > 1) {
			t.Fatalf("cluster detected %v with %d nodes", r.Cluster(), len(nodes))
		}
		objs := map[Key]Object{}
		for i := uint64(0); i < 24; i++ {
			k, o := keyOf(i), redisTestObject(i, 1+int(i%5), 1000+int(i)*37)
			if i == 3 {
				o.Parts = nil // an object without parts
			}
			if err := r.Put(ctx, k, o); err != nil {
				t.Fatal(err)
			}
			objs[k] = o
		}
		for k, o := range objs {
			got, err := readAll(t, r, k)
			if err != nil || !sameObject(got, o) {
				t.Fatalf("read %x: %v (equal %v)", k[:4], err, sameObject(got, o))
			}
		}
		// Layers in any order, and into a caller buffer.
		rd, err := r.Open(ctx, keyOf(7))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 0, 1<<16)
		for _, i := range []int{2, 0, 1} {
			p, err := rd.ReadPart(ctx, i, buf)
			if err != nil || !bytes.Equal(p, objs[keyOf(7)].Parts[i]) || &p[0] != &buf[:1][0] {
				t.Fatalf("part %d: %v", i, err)
			}
		}
		if _, err := rd.ReadPart(ctx, 9, nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("part out of range: %v", err)
		}
		rd.Close()

		seen := map[Key]bool{}
		if err := r.Scan(ctx, func(in Info) error {
			o, ok := objs[in.Key]
			if !ok || in.Size != o.Size() || in.Parts != len(o.Parts) || !bytes.Equal(in.Manifest, o.Manifest) {
				return fmt.Errorf("scan %x: %+v", in.Key[:4], in)
			}
			seen[in.Key] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(seen) != len(objs) {
			t.Fatalf("scan saw %d of %d", len(seen), len(objs))
		}
		if u := r.RefreshUsage(ctx); u.Err != nil || u.Objects != int64(len(objs)) || u.UsedBytes <= 0 {
			t.Fatalf("usage %+v", u)
		}
		keys := []Key{keyOf(1), keyOf(1000), keyOf(2)}
		has, err := r.HasMany(ctx, keys)
		if err != nil || !has[0] || has[1] || !has[2] {
			t.Fatalf("HasMany %v %v", has, err)
		}

		// Overwrite with fewer parts; delete.
		k := keyOf(4)
		o2 := redisTestObject(99, 1, 10)
		if err := r.Put(ctx, k, o2); err != nil {
			t.Fatal(err)
		}
		if got, err := readAll(t, r, k); err != nil || !sameObject(got, o2) {
			t.Fatalf("overwrite: %v", err)
		}
		if err := r.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := r.Delete(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := r.Open(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("open deleted: %v", err)
		}
		if ok, err := r.Has(ctx, k); ok || err != nil {
			t.Fatalf("has deleted: %v %v", ok, err)
		}
		// Nothing of the deleted object or of its replaced generation stays without
		// an expiry.
		c := r.Client()
		assertNoImmortalKeys(t, ctx, r, k)

		// A part that Redis evicted: the object reads as absent and its record goes.
		k = keyOf(5)
		rec, err := c.Get(ctx, r.RecordKey(k)).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		dr, _ := decodeRedisRecord(rec)
		if err := c.Del(ctx, segmentKey(r.RecordKey(k), dr.gen, 0)).Err(); err != nil {
			t.Fatal(err)
		}
		if ok, err := r.Has(ctx, k); ok || err != nil {
			t.Fatalf("has with an evicted part: %v %v", ok, err)
		}
		if _, err := r.Open(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("open with an evicted part: %v", err)
		}
		if n, _ := c.Exists(ctx, r.RecordKey(k), segmentKey(r.RecordKey(k), dr.gen, 1)).Result(); n != 0 {
			t.Fatalf("stale record or parts left: %d", n)
		}

		// A corrupt part fails its checksum.
		k = keyOf(6)
		rec, _ = c.Get(ctx, r.RecordKey(k)).Bytes()
		dr, _ = decodeRedisRecord(rec)
		bad, _ := c.Get(ctx, segmentKey(r.RecordKey(k), dr.gen, 0)).Bytes()
		bad = append([]byte(nil), bad...)
		bad[10] ^= 1
		if err := c.Set(ctx, segmentKey(r.RecordKey(k), dr.gen, 0), bad, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, r, k); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("corrupt part: %v", err)
		}
	})
}

// assertNoImmortalKeys checks that every key the tier holds for k has a TTL (so a
// crashed or replaced put cannot leak memory forever) unless it is a live record or
// part of the committed generation, which the tier's TTL (none here) governs.
func assertNoImmortalKeys(t *testing.T, ctx context.Context, r *Redis, k Key) {
	t.Helper()
	rec, err := r.Client().Get(ctx, r.RecordKey(k)).Bytes()
	live := ""
	if err == nil {
		dr, _ := decodeRedisRecord(rec)
		live = dr.gen
	}
	err = r.forEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, r.RecordKey(k)+":*").Result()
		if err != nil {
			return err
		}
		for _, name := range keys {
			if live != "" && strings.Contains(name, ":"+live+":") {
				continue
			}
			if ttl, err := c.PTTL(ctx, name).Result(); err == nil && ttl == -1 {
				return fmt.Errorf("%s has no expiry", name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRedisTierTTLAndUncommittedPut(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	r := openRedisTier(t, []string{s.Addr()}, func(o *RedisOptions) { o.TTL = 300 * time.Millisecond })
	k := keyOf(1)
	if err := r.Put(ctx, k, redisTestObject(1, 3, 100)); err != nil {
		t.Fatal(err)
	}
	// Opening refreshes the TTL (sliding expiry).
	for i := 0; i < 4; i++ {
		time.Sleep(150 * time.Millisecond)
		if _, err := readAll(t, r, k); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if _, err := r.Open(ctx, k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the TTL: %v", err)
	}

	// A put cut off before its commit (its context ends during the parts) leaves
	// nothing readable, only parts that expire.
	r2 := openRedisTier(t, []string{s.Addr()}, nil)
	cctx, cancel := context.WithCancel(ctx)
	big := redisTestObject(2, 64, 1<<20)
	go func() { time.Sleep(2 * time.Millisecond); cancel() }()
	err := r2.Put(cctx, keyOf(2), big)
	if err == nil {
		t.Skip("the put finished before it could be cancelled")
	}
	if _, err := r2.Open(ctx, keyOf(2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cut-off put is visible: %v", err)
	}
	keys, _ := r2.Client().Keys(ctx, r2.RecordKey(keyOf(2))+"*").Result()
	for _, name := range keys {
		if ttl, _ := r2.Client().PTTL(ctx, name).Result(); ttl == -1 {
			t.Fatalf("staged part %s has no expiry (%v)", name, ttl)
		}
	}
}

// TestRedisTierConcurrentWriters overwrites keys from several writers with different
// objects while readers read them: every read returns one writer's whole object.
func TestRedisTierConcurrentWriters(t *testing.T) {
	redisTargets(t, func(t *testing.T, addrs []string, _ []*redistest.Server) {
		ctx := context.Background()
		w1 := openRedisTier(t, addrs, smallSegments)
		w2 := openRedisTier(t, addrs, nil) // another process's pool and layout
		variants := map[string]Object{}
		for v := uint64(0); v < 4; v++ {
			o := redisTestObject(100+v, 6, 20000)
			variants[string(o.Manifest)] = o
		}
		list := make([]Object, 0, len(variants))
		for _, o := range variants {
			list = append(list, o)
		}
		keys := []Key{keyOf(1), keyOf(2)}
		for _, k := range keys {
			if err := w1.Put(ctx, k, list[0]); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		errc := make(chan error, 16)
		for wi, w := range []*Redis{w1, w2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					if err := w.Put(ctx, keys[i%2], list[(i+wi)%len(list)]); err != nil {
						errc <- err
						return
					}
				}
			}()
		}
		reads := 0
		deadline := time.Now().Add(700 * time.Millisecond)
		for time.Now().Before(deadline) {
			got, err := readAll(t, w2, keys[reads%2])
			if err != nil {
				t.Fatalf("read %d: %v", reads, err)
			}
			want, ok := variants[string(got.Manifest)]
			if !ok || !sameObject(got, want) {
				t.Fatalf("read %d returned a mix of objects", reads)
			}
			reads++
		}
		close(stop)
		wg.Wait()
		select {
		case err := <-errc:
			t.Fatal(err)
		default:
		}
		if reads < 10 {
			t.Fatalf("only %d reads", reads)
		}
	})
}

// TestRedisTierUnderRedisEviction fills a small Redis (allkeys-lru) far past its
// maxmemory: every object either reads back whole or is absent, never an error.
func TestRedisTierUnderRedisEviction(t *testing.T) {
	s := redistest.Start(t, redistest.Options{MaxMemory: "8mb", Policy: "allkeys-lru"})
	ctx := context.Background()
	r := openRedisTier(t, []string{s.Addr()}, nil)
	objs := map[Key]Object{}
	for i := uint64(0); i < 60; i++ {
		o := redisTestObject(i, 8, 64<<10)
		err := r.Put(ctx, keyOf(i), o)
		if err != nil && !errors.Is(err, ErrNoSpace) {
			t.Fatalf("put %d: %v", i, err)
		}
		if err == nil {
			objs[keyOf(i)] = o
		}
	}
	present := 0
	for k, o := range objs {
		got, err := readAll(t, r, k)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			t.Fatalf("read %x: %v", k[:4], err)
		case !sameObject(got, o):
			t.Fatalf("read %x: wrong bytes", k[:4])
		default:
			present++
		}
	}
	if present == 0 || present == len(objs) {
		t.Fatalf("%d of %d present: Redis should have evicted some but not all", present, len(objs))
	}
	t.Logf("%d of %d objects survived Redis's eviction", present, len(objs))
}

// TestRedisTierRestart: Redis restarted empty; the tier reconnects, misses, and
// accepts puts again (its scripts are reloaded).
func TestRedisTierRestart(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	r := openRedisTier(t, []string{s.Addr()}, nil)
	if err := r.Put(ctx, keyOf(1), redisTestObject(1, 2, 100)); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if _, err := r.Open(ctx, keyOf(1)); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("open while Redis is down: %v (want a connection error)", err)
	}
	s.Restart()
	var err error
	for i := 0; i < 50; i++ {
		if _, err = r.Open(ctx, keyOf(1)); errors.Is(err, ErrNotFound) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("open after restart: %v", err)
	}
	if err := r.Put(ctx, keyOf(1), redisTestObject(1, 2, 100)); err != nil {
		t.Fatal(err)
	}
	if has, err := r.HasMany(ctx, []Key{keyOf(1)}); err != nil || !has[0] {
		t.Fatalf("has after re-put: %v %v", has, err)
	}
}

func TestParseRedisURL(t *testing.T) {
	o, err := ParseRedisURL("redis://u:p%40ss@10.0.0.1:6379,10.0.0.2:6380/0?prefix=x:&ttl=24h")
	if err != nil || len(o.Addrs) != 2 || o.Username != "u" || o.Password != "p@ss" || o.Prefix != "x:" || o.TTL != 24*time.Hour {
		t.Fatalf("%+v %v", o, err)
	}
	if o, err := ParseRedisURL("redis://secret@h:1/3"); err != nil || o.Password != "secret" || o.DB != 3 {
		t.Fatalf("%+v %v", o, err)
	}
	for _, bad := range []string{"http://h:1", "redis://", "redis://h", "redis://h:1/x", "redis://h:1?ttl=abc", "redis://h:1?foo=1"} {
		if _, err := ParseRedisURL(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	o = RedisOptions{Addrs: []string{"h:1"}, Prefix: "a{b"}
	o.EnsureDefaults()
	if err := o.Validate(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("prefix with a brace: %v", err)
	}
}

func FuzzRedisRecord(f *testing.F) {
	o := redisTestObject(1, 3, 5)
	lay := layout([]int64{5, 6, 7}, 11)
	f.Add(encodeRedisRecord("0123456789abcdef", &lay, &o, []uint32{1, 2, 3}))
	f.Add([]byte("RRD20123456789abcdef0000000100000001"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRedisRecord(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if len(rec.lay.parts) != len(rec.crcs) || len(rec.man) > len(b) {
			t.Fatalf("inconsistent record")
		}
	})
}
