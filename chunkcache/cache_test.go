package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

var testModel = Fingerprint{Architecture: "llama", WeightsDigest: "sha256:test", TokenizerDigest: "sha256:tok",
	RoPE: RoPEConfig{Theta: 10000, Style: "interleaved"}}

type cacheSetup struct {
	dir          string
	memCap       int64
	diskCap      int64
	writeThrough bool
	reg          prometheus.Registerer
	namespaces   []string
	keyer        *Keyer
}

func openCache(t testing.TB, s cacheSetup) (*Cache, *store.Memory, *store.Badger) {
	t.Helper()
	ctx := context.Background()
	mem := store.NewMemory()
	tiers := []TierConfig{{Tier: mem, Eviction: eviction.Config{Capacity: s.memCap}}}
	var disk *store.Badger
	if s.dir != "" {
		var err error
		disk, err = store.OpenBadger(ctx, store.BadgerOptions{Dir: s.dir, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		tiers = append(tiers, TierConfig{Tier: disk, Eviction: eviction.Config{Capacity: s.diskCap}, WriteThrough: s.writeThrough})
	}
	c, err := New(ctx, Options{Tiers: tiers, Registerer: s.reg, Namespaces: s.namespaces, Keyer: s.keyer, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return c, mem, disk
}

// testChunk builds a chunk whose content is determined by seed.
func testChunk(seed uint64, ns string, dt DType, layers, tokens int) (PutSpec, [][]float32, [][]float32) {
	r := rand.New(rand.NewPCG(seed, 11))
	l := Layout{Layers: layers, KVHeads: 2, HeadDim: 8, DType: dt}
	toks := make([]uint32, tokens)
	for i := range toks {
		toks[i] = uint32(seed*1000) + uint32(i)
	}
	spec := PutSpec{Namespace: ns, Model: testModel, Tokens: toks, Layout: l, PositionBase: int64(seed % 7),
		Metadata: map[string][]byte{"cachecraft/summary": []byte(fmt.Sprintf("s%d", seed))}}
	n := l.Elems(tokens)
	var ks, vs [][]float32
	for i := 0; i < layers; i++ {
		k, v := make([]float32, n), make([]float32, n)
		for j := range k {
			k[j], v[j] = float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		ks, vs = append(ks, k), append(vs, v)
	}
	return spec, ks, vs
}

func put(t testing.TB, c *Cache, spec PutSpec, ks, vs [][]float32) PutResult {
	t.Helper()
	res, err := c.PutFloat32(context.Background(), spec, ks, vs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// encoded returns the stored bytes of each layer for the given float inputs.
func encoded(t tb, spec PutSpec, ks, vs [][]float32) [][]byte {
	l := spec.Layout
	l.EnsureDefaults()
	var out [][]byte
	for i := range ks {
		s, err := l.AppendLayer(nil, len(spec.Tokens), ks[i], vs[i])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// checkChunk reads the chunk layer by layer (last layer first) and compares the
// stored bytes with what encoding the inputs gives.
func checkChunk(t testing.TB, c *Cache, spec PutSpec, ks, vs [][]float32) *ChunkInfo {
	t.Helper()
	k, err := c.Key(spec.ID())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := c.Open(ctx, spec.Namespace, k)
	if err != nil {
		t.Fatalf("open %s: %v", k.Short(), err)
	}
	defer r.Close()
	want := encoded(t, spec, ks, vs)
	for i := len(want) - 1; i >= 0; i-- {
		s, err := r.Section(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s, want[i]) {
			t.Fatalf("chunk %s layer %d differs", k.Short(), i)
		}
	}
	info := *r.Info()
	if info.PositionBase != spec.PositionBase || !equalTokens(info.Tokens, spec.Tokens) ||
		!bytes.Equal(info.Metadata["cachecraft/summary"], spec.Metadata["cachecraft/summary"]) {
		t.Fatalf("info %+v does not match spec", info)
	}
	return &info
}

func equalTokens(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func keyOf(t tb, spec PutSpec) Key {
	id := spec.ID()
	k, err := PublicKeyer().ChunkKey(&id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPutGetEveryDType(t *testing.T) {
	c, _, _ := openCache(t, cacheSetup{dir: t.TempDir(), memCap: 1 << 20, diskCap: 1 << 24, writeThrough: true})
	defer c.Close()
	ctx := context.Background()
	for i, dt := range []DType{F32, F16, BF16, Int8} {
		spec, ks, vs := testChunk(uint64(i), "", dt, 3, 5)
		res := put(t, c, spec, ks, vs)
		if !res.Admitted || strings.Join(res.Tiers, ",") != "memory,disk" {
			t.Fatalf("%v: put result %+v", dt, res)
		}
		checkChunk(t, c, spec, ks, vs)
		// Float decode matches decoding the stored bytes; f32 is exact.
		info, gk, gv, err := c.GetFloat32(ctx, "", res.Key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Tier != "memory" || info.Layout.DType != dt {
			t.Fatalf("info %+v", info)
		}
		if dt == F32 && (gk[2][7] != ks[2][7] || gv[0][0] != vs[0][0]) {
			t.Fatal("f32 round trip not exact")
		}
		// Re-encoding what was read gives the stored bytes again (bit-exact).
		again := encoded(t, spec, gk, gv)
		want := encoded(t, spec, ks, vs)
		for l := range want {
			if !bytes.Equal(again[l], want[l]) {
				t.Fatalf("%v layer %d: decode/encode not bit-exact", dt, l)
			}
		}
	}
}

func TestReadLayerIntoCallerBuffersDoesNotAllocate(t *testing.T) {
	c, _, _ := openCache(t, cacheSetup{memCap: 1 << 20})
	defer c.Close()
	spec, ks, vs := testChunk(1, "", F16, 4, 16)
	res := put(t, c, spec, ks, vs)
	ctx := context.Background()
	r, err := c.Open(ctx, "", res.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	k := make([]float32, len(ks[0]))
	v := make([]float32, len(vs[0]))
	allocs := testing.AllocsPerRun(20, func() {
		for i := 0; i < 4; i++ {
			if err := r.ReadLayer(ctx, i, k, v); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("ReadLayer allocates %v per run", allocs)
	}
}

func TestEvictionPromotionAndDemotion(t *testing.T) {
	ctx := context.Background()
	for _, wt := range []bool{true, false} {
		t.Run(fmt.Sprintf("writeThrough=%v", wt), func(t *testing.T) {
			spec0, _, _ := testChunk(0, "", F16, 2, 64)
			size := int64(2*encodedLayerBytes(spec0)) + 2000 // chunk + manifest, roughly
			c, mem, _ := openCache(t, cacheSetup{dir: t.TempDir(), memCap: 2*size + size/2, diskCap: 100 * size, writeThrough: wt})
			defer c.Close()
			var specs []PutSpec
			var kss, vss [][][]float32
			for i := 0; i < 5; i++ {
				spec, ks, vs := testChunk(uint64(i), "", F16, 2, 64)
				put(t, c, spec, ks, vs)
				specs, kss, vss = append(specs, spec), append(kss, ks), append(vss, vs)
			}
			st := c.Stats()
			wantDisk := int64(5) // write-through: every put; else the 3 demoted chunks
			if !wt {
				wantDisk = 3
			}
			if st.Tiers[0].Entries != 2 || st.Tiers[1].Entries != wantDisk || st.Chunks != 5 {
				t.Fatalf("stats after 5 puts: %+v", st)
			}
			if mem.Bytes() > st.Tiers[0].Capacity || mem.Bytes() != st.Tiers[0].Bytes {
				t.Fatalf("memory tier holds %d bytes, accounted %d, capacity %d", mem.Bytes(), st.Tiers[0].Bytes, st.Tiers[0].Capacity)
			}
			if !wt && st.Tiers[0].Demotions != 3 {
				t.Fatalf("demotions %d, want 3", st.Tiers[0].Demotions)
			}
			lr, err := c.Lookup(ctx, "", []Key{keyOf(t, specs[0]), keyOf(t, specs[4])})
			if err != nil {
				t.Fatal(err)
			}
			if lr[0].Tier != "disk" || len(lr[0].Tiers) != 1 || lr[1].Tier != "memory" {
				t.Fatalf("lookup %+v", lr)
			}
			// A full read of chunk 0 from disk promotes it.
			info := checkChunk(t, c, specs[0], kss[0], vss[0])
			if info.Tier != "disk" {
				t.Fatalf("served from %s", info.Tier)
			}
			lr, _ = c.Lookup(ctx, "", []Key{keyOf(t, specs[0])})
			if lr[0].Tier != "memory" {
				t.Fatalf("not promoted: %+v", lr[0])
			}
			st = c.Stats()
			if st.Tiers[0].Promotions != 1 || st.Tiers[1].Hits != 1 || st.Tiers[0].Misses != 1 {
				t.Fatalf("counters %+v", st.Tiers)
			}
			for i := range specs {
				checkChunk(t, c, specs[i], kss[i], vss[i])
			}
		})
	}
}

func encodedLayerBytes(spec PutSpec) int {
	l := spec.Layout
	l.EnsureDefaults()
	return int(l.LayerBytes(len(spec.Tokens)))
}

func TestRestartKeepsChunksAndAccounting(t *testing.T) {
	dir := t.TempDir()
	c, _, _ := openCache(t, cacheSetup{dir: dir, memCap: 1 << 20, diskCap: 1 << 24, writeThrough: true})
	var specs []PutSpec
	var kss, vss [][][]float32
	for i := 0; i < 6; i++ {
		spec, ks, vs := testChunk(uint64(i), []string{"a", "b"}[i%2], DType(1+i%4), 2, 8)
		spec.Pin = Pin(i % 3)
		put(t, c, spec, ks, vs)
		specs, kss, vss = append(specs, spec), append(kss, ks), append(vss, vs)
	}
	before := c.Stats()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, _, _ = openCache(t, cacheSetup{dir: dir, memCap: 1 << 20, diskCap: 1 << 24, writeThrough: true})
	defer c.Close()
	after := c.Stats()
	if after.Tiers[1].Bytes != before.Tiers[1].Bytes || after.Tiers[1].Entries != 6 || after.Tiers[0].Entries != 0 {
		t.Fatalf("disk accounting before %+v after %+v", before.Tiers[1], after.Tiers[1])
	}
	if after.Tiers[1].PinnedBytes != before.Tiers[1].PinnedBytes {
		t.Fatalf("pins not restored: %d vs %d", after.Tiers[1].PinnedBytes, before.Tiers[1].PinnedBytes)
	}
	if strings.Join(after.Namespaces, ",") != "a,b,default" {
		t.Fatalf("namespaces %v", after.Namespaces)
	}
	for i := range specs {
		checkChunk(t, c, specs[i], kss[i], vss[i])
	}
}

func TestNamespacesIsolate(t *testing.T) {
	c, _, _ := openCache(t, cacheSetup{memCap: 1 << 20})
	defer c.Close()
	ctx := context.Background()
	specA, ks, vs := testChunk(1, "tenant-a", F16, 1, 4)
	keyA := put(t, c, specA, ks, vs).Key
	if _, err := c.Open(ctx, "tenant-b", keyA); !errors.Is(err, ErrUnknownNamespace) || !strings.Contains(err.Error(), "tenant-b") {
		t.Fatalf("unknown namespace: %v", err)
	}
	specB, ks2, vs2 := testChunk(2, "tenant-b", F16, 1, 4)
	put(t, c, specB, ks2, vs2)
	if _, err := c.Open(ctx, "tenant-b", keyA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cross-namespace open: %v", err)
	}
	lr, err := c.Lookup(ctx, "tenant-b", []Key{keyA})
	if err != nil || lr[0].Present {
		t.Fatalf("cross-namespace lookup: %+v %v", lr, err)
	}
	if _, err := c.Delete(ctx, "tenant-b", keyA); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cross-namespace delete: %v", err)
	}
	if err := c.SetPin(ctx, "tenant-b", keyA, HardPin); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cross-namespace pin: %v", err)
	}
	// The same tokens in another namespace are another chunk.
	specA2 := specA
	specA2.Namespace = "tenant-b"
	if keyOf(t, specA2) == keyA {
		t.Fatal("namespaces share a key")
	}
	checkChunk(t, c, specA, ks, vs)
}

func TestPinsAndNoSpace(t *testing.T) {
	ctx := context.Background()
	spec0, _, _ := testChunk(0, "", F32, 1, 64)
	size := int64(encodedLayerBytes(spec0)) + 1000
	c, mem, _ := openCache(t, cacheSetup{memCap: 3 * size})
	defer c.Close()
	specH, ks, vs := testChunk(100, "", F32, 1, 64)
	specH.Pin = HardPin
	hard := put(t, c, specH, ks, vs).Key
	specS, ks2, vs2 := testChunk(101, "", F32, 1, 64)
	soft := put(t, c, specS, ks2, vs2).Key
	if err := c.SetPin(ctx, "", soft, SoftPin); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		spec, ks, vs := testChunk(uint64(i), "", F32, 1, 64)
		put(t, c, spec, ks, vs)
		lr, _ := c.Lookup(ctx, "", []Key{hard, soft})
		if !lr[0].Present || lr[0].Pin != HardPin {
			t.Fatalf("hard-pinned chunk evicted after put %d", i)
		}
		if !lr[1].Present {
			t.Fatalf("soft-pinned chunk evicted while unpinned ones were left (put %d)", i)
		}
		if mem.Bytes() > 3*size {
			t.Fatalf("budget exceeded: %d > %d", mem.Bytes(), 3*size)
		}
	}
	// Fill the rest with hard pins: then a new chunk has no space.
	for i := 20; i < 22; i++ {
		spec, ks, vs := testChunk(uint64(i), "", F32, 1, 64)
		spec.Pin = HardPin
		put(t, c, spec, ks, vs)
	}
	lr, _ := c.Lookup(ctx, "", []Key{soft})
	if lr[0].Present {
		t.Fatal("soft pin survived while hard pins needed room")
	}
	specX, ksx, vsx := testChunk(50, "", F32, 1, 64)
	before := c.Stats()
	if _, err := c.PutFloat32(ctx, specX, ksx, vsx); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("put into a hard-pinned-full cache: %v", err)
	}
	if after := c.Stats(); after.Tiers[0].Bytes != before.Tiers[0].Bytes || after.Chunks != before.Chunks {
		t.Fatal("a failed put changed the cache")
	}
	if err := c.SetPin(ctx, "", hard, Unpinned); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutFloat32(ctx, specX, ksx, vsx); err != nil {
		t.Fatalf("put after unpin: %v", err)
	}
	lr, _ = c.Lookup(ctx, "", []Key{hard})
	if lr[0].Present {
		t.Fatal("unpinned chunk was not the victim")
	}
}

// TestPinnedPutBypassesAdmission: a pin is an explicit request to keep a chunk, so a
// pinned put is reserved and pinned in one step and never rejected by TinyLFU.
func TestPinnedPutBypassesAdmission(t *testing.T) {
	ctx := context.Background()
	spec0, _, _ := testChunk(0, "", F32, 1, 64)
	size := int64(encodedLayerBytes(spec0)) + 1000
	c, err := New(ctx, Options{Logger: slog.New(slog.DiscardHandler), Tiers: []TierConfig{{Tier: store.NewMemory(),
		Eviction: eviction.Config{Capacity: 3 * size, Admission: eviction.AdmissionTinyLFU}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 3; i++ {
		spec, ks, vs := testChunk(uint64(i), "", F32, 1, 64)
		put(t, c, spec, ks, vs)
		for j := 0; j < 3; j++ { // make the cached chunks popular
			r, err := c.Open(ctx, "", keyOf(t, spec))
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
		}
	}
	specU, ksu, vsu := testChunk(10, "", F32, 1, 64)
	if res, err := c.PutFloat32(ctx, specU, ksu, vsu); err != nil || res.Admitted {
		t.Fatalf("unpinned newcomer: admitted %v, err %v; want a TinyLFU rejection", res.Admitted, err)
	}
	for i, p := range []Pin{SoftPin, HardPin} {
		spec, ks, vs := testChunk(uint64(20+i), "", F32, 1, 64)
		spec.Pin = p
		res, err := c.PutFloat32(ctx, spec, ks, vs)
		if err != nil || !res.Admitted {
			t.Fatalf("%v-pinned newcomer: admitted %v, err %v", p, res.Admitted, err)
		}
		lr, _ := c.Lookup(ctx, "", []Key{res.Key})
		if !lr[0].Present || lr[0].Pin != p {
			t.Fatalf("%v-pinned newcomer: lookup %+v", p, lr[0])
		}
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	c, _, _ := openCache(t, cacheSetup{dir: t.TempDir(), memCap: 1 << 20, diskCap: 1 << 22, writeThrough: true})
	defer c.Close()
	ctx := context.Background()
	good, ks, vs := testChunk(1, "", F16, 2, 4)
	put(t, c, good, ks, vs)
	before := c.Stats()
	cases := map[string]func() error{
		"empty token list": func() error {
			s := good
			s.Tokens = nil
			_, err := c.NewWriter(ctx, s)
			return err
		},
		"unknown dtype": func() error {
			s := good
			s.Layout.DType = 9
			_, err := c.NewWriter(ctx, s)
			return err
		},
		"out of order": func() error {
			s, ks, vs := testChunk(2, "", F16, 2, 4)
			w, err := c.NewWriter(ctx, s)
			if err != nil {
				return err
			}
			return w.WriteLayer(1, ks[1], vs[1])
		},
		"V is": func() error {
			s, ks, _ := testChunk(3, "", F16, 2, 4)
			w, err := c.NewWriter(ctx, s)
			if err != nil {
				return err
			}
			return w.WriteLayerRaw(0, LayerParts{K: make([]byte, 2*len(ks[0])), V: make([]byte, 7)}, nil)
		},
		"commit after 1 of 2 layers": func() error {
			s, ks, vs := testChunk(4, "", F16, 2, 4)
			w, err := c.NewWriter(ctx, s)
			if err != nil {
				return err
			}
			if err := w.WriteLayer(0, ks[0], vs[0]); err != nil {
				return err
			}
			_, err = w.Commit(ctx)
			return err
		},
		"crc32c": func() error {
			s, ks, _ := testChunk(5, "", F16, 2, 4)
			w, err := c.NewWriter(ctx, s)
			if err != nil {
				return err
			}
			bad := uint32(1)
			n := 2 * len(ks[0])
			return w.WriteLayerRaw(0, LayerParts{K: make([]byte, n), V: make([]byte, n)}, &bad)
		},
		"exceeds the": func() error {
			s := good
			s.Layout = Layout{Layers: 4096, KVHeads: 64, HeadDim: 256, DType: F32}
			s.Tokens = make([]uint32, 4096)
			_, err := c.NewWriter(ctx, s)
			if !errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("want ErrTooLarge: %w", err)
			}
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		},
		"metadata key": func() error {
			s := good
			s.Metadata = map[string][]byte{"": nil}
			_, err := c.NewWriter(ctx, s)
			return err
		},
	}
	for want, f := range cases {
		err := f()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v", want, err)
		}
	}
	after := c.Stats()
	for i := range after.Tiers {
		if after.Tiers[i].Bytes != before.Tiers[i].Bytes || after.Tiers[i].Entries != before.Tiers[i].Entries {
			t.Fatalf("bad input changed tier %s: %+v -> %+v", after.Tiers[i].Name, before.Tiers[i], after.Tiers[i])
		}
	}
	checkChunk(t, c, good, ks, vs)
}

func TestCorruptDiskLayerIsDetected(t *testing.T) {
	dir := t.TempDir()
	c, _, disk := openCache(t, cacheSetup{dir: dir, memCap: 1 << 20, diskCap: 1 << 22, writeThrough: true})
	defer c.Close()
	ctx := context.Background()
	spec, ks, vs := testChunk(1, "", BF16, 3, 4)
	k := put(t, c, spec, ks, vs).Key
	// Drop it from memory so the read goes to disk, then flip a byte of layer 1.
	if _, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "memory", Capacity: ptr(int64(1))}}); err != nil {
		t.Fatal(err)
	}
	// The chunk's layers are its blob file, one after the other: flip a byte inside
	// layer 1.
	blob := flipDiskByte(t, disk, k, encodedLayerBytes(spec)+3)
	r, err := c.Open(ctx, "", k)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Section(ctx, 0); err != nil {
		t.Fatalf("layer 0 is intact: %v", err)
	}
	if _, err := r.Section(ctx, 1); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "layer 1") {
		t.Fatalf("corrupt layer: %v", err)
	}
	if st := c.Stats(); st.Tiers[1].CorruptReads != 1 || st.Tiers[0].CorruptReads != 0 {
		t.Fatalf("corrupt reads: memory %d, disk %d; want 0, 1", st.Tiers[0].CorruptReads, st.Tiers[1].CorruptReads)
	}
	// Quarantined: the corrupt copy is never served again, and a new put stores a good one.
	if st := c.Stats(); st.Tiers[1].Quarantined != 1 || st.Tiers[1].Entries != 0 || st.Chunks != 0 {
		t.Fatalf("after the corrupt read: quarantined %d, disk entries %d, chunks %d; want 1, 0, 0",
			st.Tiers[1].Quarantined, st.Tiers[1].Entries, st.Chunks)
	}
	if _, err := c.Open(ctx, "", k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open after quarantine: %v, want ErrNotFound", err)
	}
	if _, ok, err := disk.BlobPath(k); ok || err != nil {
		t.Fatalf("corrupt record still on disk: %v %v", ok, err)
	}
	if _, err := os.Stat(blob); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("corrupt blob file still on disk: %v", err)
	}
	r.Close()
	put(t, c, spec, ks, vs)
	checkChunk(t, c, spec, ks, vs)
}

// flipDiskByte flips the byte at off of k's blob file in the disk tier and returns
// the file's path.
func flipDiskByte(t *testing.T, disk *store.Badger, k Key, off int) string {
	t.Helper()
	path, ok, err := disk.BlobPath(k)
	if err != nil || !ok {
		t.Fatalf("blob file of %s: %v %v", k.Short(), ok, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], int64(off)); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b[:], int64(off)); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCorruptDiskRecordIsQuarantined(t *testing.T) {
	dir := t.TempDir()
	c, _, disk := openCache(t, cacheSetup{dir: dir, memCap: 1 << 20, diskCap: 1 << 22, writeThrough: true})
	defer c.Close()
	ctx := context.Background()
	spec, ks, vs := testChunk(2, "", F16, 2, 4)
	k := put(t, c, spec, ks, vs).Key
	if _, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "memory", Capacity: ptr(int64(1))}}); err != nil {
		t.Fatal(err)
	}
	// Break the record header itself (store.ErrCorrupt from the disk tier's Open).
	var broke int
	if err := disk.DB().Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			if kk := it.Item().KeyCopy(nil); kk[0] == 'r' && bytes.Equal(kk[1:], k[:]) {
				keys = append(keys, kk)
			}
		}
		for _, kk := range keys {
			if err := txn.Set(kk, []byte{1, 2, 3}); err != nil {
				return err
			}
			broke++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if broke == 0 {
		t.Fatal("found no record header to break")
	}
	_, err := c.Open(ctx, "", k)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("open of a corrupt record: %v, want ErrCorrupt wrapping store.ErrCorrupt", err)
	}
	if st := c.Stats(); st.Tiers[1].Quarantined != 1 || st.Tiers[1].CorruptReads != 1 || st.Chunks != 0 {
		t.Fatalf("quarantined %d, corrupt reads %d, chunks %d; want 1, 1, 0", st.Tiers[1].Quarantined, st.Tiers[1].CorruptReads, st.Chunks)
	}
	if _, err := c.Open(ctx, "", k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second open: %v, want ErrNotFound (quarantined)", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestSetPolicy(t *testing.T) {
	c, mem, _ := openCache(t, cacheSetup{memCap: 1 << 20})
	defer c.Close()
	ctx := context.Background()
	for i := 0; i < 8; i++ {
		spec, ks, vs := testChunk(uint64(i), "", F32, 1, 64)
		put(t, c, spec, ks, vs)
	}
	pol, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "memory", Policy: ptr("s3fifo"), Admission: ptr("tinylfu"), Capacity: ptr(int64(20000))}})
	if err != nil {
		t.Fatal(err)
	}
	if pol[0].Policy != "s3fifo" || pol[0].Admission != "tinylfu" || pol[0].Capacity != 20000 {
		t.Fatalf("policy %+v", pol[0])
	}
	if mem.Bytes() > 20000 {
		t.Fatalf("shrink did not evict: %d bytes", mem.Bytes())
	}
	if _, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "memory", Policy: ptr("fifo-ish")}}); !errors.Is(err, ErrUnknownPolicy) {
		t.Fatalf("unknown policy: %v", err)
	}
	if _, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "gpu"}}); !errors.Is(err, ErrUnknownTier) {
		t.Fatalf("unknown tier: %v", err)
	}
	if _, err := c.SetPolicy(ctx, []TierPolicyUpdate{{Tier: "memory", HighWatermark: ptr(0.5), LowWatermark: ptr(0.9)}}); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("bad watermarks: %v", err)
	}
	if c.Policy()[0].Policy != "s3fifo" {
		t.Fatal("a rejected update changed the policy")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c, _, _ := openCache(t, cacheSetup{memCap: 1 << 20, reg: reg})
	defer c.Close()
	ctx := context.Background()
	spec, ks, vs := testChunk(1, "", F16, 1, 4)
	k := put(t, c, spec, ks, vs).Key
	for i := 0; i < 3; i++ {
		r, err := c.Open(ctx, "", k)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	_, _ = c.Open(ctx, "", Key{1})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+labelOf(m)] = valueOf(m)
		}
	}
	want := map[string]float64{
		`ragkv_chunkcache_hits_total{tier="memory"}`:       3,
		`ragkv_chunkcache_misses_total{tier="memory"}`:     1,
		`ragkv_chunkcache_entries{tier="memory"}`:          1,
		`ragkv_chunkcache_capacity_bytes{tier="memory"}`:   1 << 20,
		`ragkv_chunkcache_admissions_total{tier="memory"}`: 1,
		`ragkv_chunkcache_evictions_total{tier="memory"}`:  0,
		`ragkv_chunkcache_bytes{tier="memory"}`:            float64(c.Stats().Tiers[0].Bytes),
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
}

func labelOf(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	return fmt.Sprintf(`{%s="%s"}`, m.GetLabel()[0].GetName(), m.GetLabel()[0].GetValue())
}

func valueOf(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestCacheConcurrent(t *testing.T) {
	spec0, _, _ := testChunk(0, "", F16, 2, 32)
	size := int64(2*encodedLayerBytes(spec0)) + 1000
	c, mem, _ := openCache(t, cacheSetup{dir: t.TempDir(), memCap: 4 * size, diskCap: 10 * size, writeThrough: true})
	defer c.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	stop := make(chan struct{})
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 0))
			for i := 0; i < 60; i++ {
				seed := uint64(r.IntN(20))
				spec, ks, vs := testChunk(seed, "", F16, 2, 32)
				switch r.IntN(3) {
				case 0:
					if _, err := c.PutFloat32(ctx, spec, ks, vs); err != nil {
						errc <- err
						return
					}
				case 1:
					rd, err := c.Open(ctx, "", keyOf(t, spec))
					if errors.Is(err, ErrNotFound) {
						continue
					}
					if err != nil {
						errc <- err
						return
					}
					want := encoded(t, spec, ks, vs)
					for l := range want {
						s, err := rd.Section(ctx, l)
						if err != nil || !bytes.Equal(s, want[l]) {
							errc <- fmt.Errorf("chunk %d layer %d: %v", seed, l, err)
						}
					}
					rd.Close()
				case 2:
					if _, err := c.Delete(ctx, "", keyOf(t, spec)); err != nil && !errors.Is(err, ErrNotFound) {
						errc <- err
						return
					}
				}
			}
		}(g)
	}
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, ts := range c.Stats().Tiers {
				if ts.Bytes > ts.Capacity {
					errc <- fmt.Errorf("tier %s over budget: %d > %d", ts.Name, ts.Bytes, ts.Capacity)
					return
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	st := c.Stats()
	if mem.Bytes() != st.Tiers[0].Bytes || mem.Bytes() > st.Tiers[0].Capacity {
		t.Fatalf("memory tier holds %d, accounted %d, capacity %d", mem.Bytes(), st.Tiers[0].Bytes, st.Tiers[0].Capacity)
	}
}

func FuzzManifest(f *testing.F) {
	spec, _, _ := testChunk(1, "ns", Int8, 2, 3)
	l := spec.Layout
	l.EnsureDefaults()
	m := manifest{ns: "ns", model: testModel, cost: 3, created: 42, pin: 1, tokens: spec.Tokens, meta: spec.Metadata,
		header: headerFor(l, 3)}
	b, err := m.encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte(manifestMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeManifest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		again, err := m.encode()
		if err != nil {
			t.Fatalf("decoded manifest does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("decode/encode is not the identity")
		}
	})
}

func headerFor(l Layout, tokens int) kvblobHeader {
	return kvblobHeader{Layout: l, Tokens: tokens, LayerCRC: make([]uint32, l.Layers)}
}

// tb is what the helpers need from testing.TB and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// The grouped low-bit formats go through every tier: a Badger tier reopened after a
// restart serves the version-2 blobs, decoded within the format's error.
func TestPutGetGroupedDTypes(t *testing.T) {
	dir := t.TempDir()
	c, _, _ := openCache(t, cacheSetup{dir: dir, memCap: 1 << 20, diskCap: 1 << 24, writeThrough: true})
	ctx := context.Background()
	type stored struct {
		spec   PutSpec
		ks, vs [][]float32
		key    Key
		tol    float64
	}
	var all []stored
	for i, f := range []string{"q4", "q2r", "mixed:bits=2.5", "q4:group=4"} {
		lf, err := ParseFormat(f)
		if err != nil {
			t.Fatal(err)
		}
		spec, ks, vs := testChunk(uint64(40+i), "", lf.DType, 3, 37)
		spec.Layout = spec.Layout.WithFormat(lf)
		res := put(t, c, spec, ks, vs)
		checkChunk(t, c, spec, ks, vs)
		tol := 0.6 // q2 of N(0,1) values: half a step of ~1.3
		if lf.DType == Q4 {
			tol = 0.2
		}
		all = append(all, stored{spec, ks, vs, res.Key, tol})
	}
	// Stats reports each tier's chunk tokens and stored bytes per token: below f16's
	// 3 layers × (K + V) × 16 channels × 2 bytes = 192 for these formats.
	for _, ts := range c.Stats().Tiers {
		if ts.ChunkTokens != 4*37 || !(ts.BytesPerToken > 50 && ts.BytesPerToken < 192) {
			t.Fatalf("tier %s: %d chunk tokens, %.1f bytes/token", ts.Name, ts.ChunkTokens, ts.BytesPerToken)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, _, _ = openCache(t, cacheSetup{dir: dir, memCap: 1 << 20, diskCap: 1 << 24, writeThrough: true})
	defer c.Close()
	for _, s := range all {
		info, gk, gv, err := c.GetFloat32(ctx, "", s.key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Tier != "disk" || info.Layout != s.spec.Layout {
			t.Fatalf("info %+v", info)
		}
		var se float64
		var n int
		for l := range gk {
			for j := range gk[l] {
				se += math.Pow(float64(gk[l][j]-s.ks[l][j]), 2) + math.Pow(float64(gv[l][j]-s.vs[l][j]), 2)
				n += 2
			}
		}
		if rmse := math.Sqrt(se / float64(n)); rmse > s.tol || rmse == 0 {
			t.Fatalf("%s: RMSE %v (bound %v)", info.Layout.Format(), rmse, s.tol)
		}
	}
}

// A tier with a Format stores chunks in it: f16 in RAM, q4 on disk, both for the
// write-through copy and for demotions; reads from the disk tier decode the q4 copy.
func TestTierFormatReencodes(t *testing.T) {
	q4, err := ParseFormat("q4")
	if err != nil {
		t.Fatal(err)
	}
	for _, wt := range []bool{true, false} {
		ctx := context.Background()
		dir := t.TempDir()
		spec0, _, _ := testChunk(1, "", F16, 3, 40)
		size := int64(encodedLayerBytes(spec0)*3) + 1024
		open := func() *Cache {
			disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, GCInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			c, err := New(ctx, Options{Tiers: []TierConfig{
				{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 2*size + size/2}},
				{Tier: disk, Eviction: eviction.Config{Capacity: 100 * size}, WriteThrough: wt, Format: q4},
			}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		c := open()
		type put1 struct {
			spec   PutSpec
			ks, vs [][]float32
		}
		var puts []put1
		for i := range 4 { // the memory tier holds two: the first ones are demoted
			spec, ks, vs := testChunk(uint64(60+i), "", F16, 3, 40)
			spec.PreRoPE = i%2 == 1 // kept through re-encoding
			put(t, c, spec, ks, vs)
			puts = append(puts, put1{spec, ks, vs})
		}
		st := c.Stats()
		mem, disk := st.Tiers[0], st.Tiers[1]
		// f16: 3 layers × 2 × 16 channels × 2 B = 192 B/token; q4 (group 32, 40 tokens):
		// 3 × (2×8 + K pairs 2×16×4/40 + V pairs 4) ≈ 70 B/token.
		if !(mem.BytesPerToken > 192 && mem.BytesPerToken < 210) || !(disk.BytesPerToken > 60 && disk.BytesPerToken < 90) {
			t.Fatalf("write-through %v: bytes/token memory %.1f, disk %.1f", wt, mem.BytesPerToken, disk.BytesPerToken)
		}
		if wt && disk.ChunkTokens != 4*40 || !wt && disk.ChunkTokens < 2*40 {
			t.Fatalf("write-through %v: disk holds %d tokens", wt, disk.ChunkTokens)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		c = open()
		found := 0
		for _, p := range puts {
			info, gk, _, err := c.GetFloat32(ctx, "", keyOf(t, p.spec))
			if !wt && errors.Is(err, ErrNotFound) {
				continue // still in RAM when the cache closed (no write-through)
			}
			if err != nil {
				t.Fatal(err)
			}
			found++
			if info.Tier != "disk" || info.Layout.DType != Q4 {
				t.Fatalf("write-through %v: read %s from %s", wt, info.Layout.Format(), info.Tier)
			}
			if info.PreRoPE != p.spec.PreRoPE {
				t.Fatalf("write-through %v: PreRoPE %v after re-encoding, put with %v", wt, info.PreRoPE, p.spec.PreRoPE)
			}
			var se float64
			for l := range gk {
				for j := range gk[l] {
					se += math.Pow(float64(gk[l][j]-p.ks[l][j]), 2)
				}
			}
			if rmse := math.Sqrt(se / float64(3*len(gk[0]))); rmse > 0.2 || rmse == 0 {
				t.Fatalf("q4 copy RMSE %v", rmse)
			}
		}
		if found < 2 {
			t.Fatalf("write-through %v: %d chunks on disk after a restart", wt, found)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A chunk read from a q4 disk tier is promoted into the memory tier in that tier's own
// format (f16), not as the q4 copy.
func TestPromotionReencodes(t *testing.T) {
	f16, _ := ParseFormat("f16")
	q4, _ := ParseFormat("q4")
	ctx := context.Background()
	dir := t.TempDir()
	open := func() *Cache {
		disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(ctx, Options{Tiers: []TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 1 << 20}, Format: f16},
			{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 24}, WriteThrough: true, Format: q4},
		}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	spec, ks, _ := testChunk(80, "", F16, 2, 40)
	spec.PreRoPE = true
	put(t, c, spec, ks, ks)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = open() // the memory tier starts empty
	defer c.Close()
	info, k1, _, err := c.GetFloat32(ctx, "", keyOf(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	if info.Tier != "disk" || info.Layout.DType != Q4 {
		t.Fatalf("first read %s from %s", info.Layout.Format(), info.Tier)
	}
	info, k2, _, err := c.GetFloat32(ctx, "", keyOf(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	if info.Tier != "memory" || info.Layout.DType != F16 || !info.PreRoPE {
		t.Fatalf("after promotion: %s from %s (pre-RoPE %v)", info.Layout.Format(), info.Tier, info.PreRoPE)
	}
	for l := range k1 {
		for j := range k1[l] {
			if d := math.Abs(float64(k1[l][j] - k2[l][j])); d > 1e-3*(1+math.Abs(float64(k1[l][j]))) {
				t.Fatalf("layer %d value %d: q4 read %v, promoted f16 %v", l, j, k1[l][j], k2[l][j])
			}
		}
	}
	if st := c.Stats(); st.Tiers[0].BytesPerToken < 2*2*16*2 {
		t.Fatalf("memory tier holds %.1f bytes/token: not f16", st.Tiers[0].BytesPerToken)
	}
}

// TierConfig.NamespaceFormats overrides the tier's format per namespace: q4 on disk
// except for namespace "exact", kept f16; a bad format there is refused at New.
func TestNamespaceFormats(t *testing.T) {
	ctx := context.Background()
	q4, _ := ParseFormat("q4")
	f16, _ := ParseFormat("f16")
	dir := t.TempDir()
	open := func() *Cache {
		disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(ctx, Options{Tiers: []TierConfig{
			{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 1 << 20}},
			{Tier: disk, Eviction: eviction.Config{Capacity: 1 << 24}, WriteThrough: true, Format: q4, NamespaceFormats: map[string]Layout{"exact": f16}},
		}, Namespaces: []string{DefaultNamespace, "exact"}, DisablePromotion: true, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	want := map[string]DType{"": Q4, "exact": F16}
	specs := map[string]PutSpec{}
	for ns := range want {
		spec, ks, vs := testChunk(90, ns, F32, 2, 20)
		put(t, c, spec, ks, vs)
		specs[ns] = spec
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = open() // RAM starts empty: reads come from the disk copies
	defer c.Close()
	for ns, want := range want {
		info, _, _, err := c.GetFloat32(ctx, ns, keyOf(t, specs[ns]))
		if err != nil {
			t.Fatal(err)
		}
		if info.Tier != "disk" || info.Layout.DType != want {
			t.Fatalf("namespace %q: %s from %s, want %v on disk", ns, info.Layout.Format(), info.Tier, want)
		}
	}
	bad := Layout{DType: Q4, Group: -1}
	if _, err := New(ctx, Options{Tiers: []TierConfig{{Tier: store.NewMemory(), Eviction: eviction.Config{Capacity: 1 << 20},
		NamespaceFormats: map[string]Layout{"x": bad}}}, Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `namespace "x"`) {
		t.Fatalf("bad namespace format: %v", err)
	}
}

// PutSpec.Importance chooses a Mixed chunk's high-precision tokens per layer.
func TestMixedImportance(t *testing.T) {
	c, _, _ := openCache(t, cacheSetup{memCap: 1 << 20})
	defer c.Close()
	ctx := context.Background()
	spec, ks, vs := testChunk(70, "", Mixed, 2, 16)
	f, _ := ParseFormat("mixed:bits=2.5")
	spec.Layout = spec.Layout.WithFormat(f)
	// Layer 0 keeps the last tokens, layer 1 the first ones (4 of 16 at 2.5 bits).
	spec.Importance = [][]float32{make([]float32, 16), make([]float32, 16)}
	for i := range 16 {
		spec.Importance[0][i], spec.Importance[1][i] = float32(i), float32(-i)
	}
	res := put(t, c, spec, ks, vs)
	r, err := c.Open(ctx, "", res.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for l, want := range []uint16{0xf000, 0x000f} {
		p, err := r.LayerParts(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		if got := uint16(p.K[0]) | uint16(p.K[1])<<8; got != want {
			t.Fatalf("layer %d bitmap %04x, want %04x", l, got, want)
		}
	}
	spec.Importance = spec.Importance[:1]
	if _, err := c.PutFloat32(ctx, spec, ks, vs); !errors.Is(err, ErrInvalid) {
		t.Fatalf("importance for 1 of 2 layers: %v", err)
	}
}
