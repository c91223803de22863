package chunkcache

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

func TestValues(t *testing.T) {
	ctx := context.Background()
	defer func(n int) { valuePartBytes = n }(valuePartBytes)
	valuePartBytes = 1000 // several parts per value
	dir := t.TempDir()
	c, _, _ := openCache(t, cacheSetup{dir: dir, memCap: 64 << 10, diskCap: 1 << 20, writeThrough: true})
	big := bytes.Repeat([]byte("0123456789"), 350)
	if _, err := c.PutValue(ctx, "resp", []byte("big"), big, ValueOptions{WriteThrough: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutValue(ctx, "resp", []byte("empty"), nil, ValueOptions{WriteThrough: true}); err != nil {
		t.Fatal(err)
	}
	res, err := c.PutValue(ctx, "resp", []byte("ttl"), []byte("soon gone"), ValueOptions{TTL: 150 * time.Millisecond, WriteThrough: true})
	if err != nil || len(res.Tiers) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	local, err := c.PutValue(ctx, "resp", []byte("local"), []byte("only in RAM"), ValueOptions{})
	if err != nil || len(local.Tiers) != 1 || local.Tiers[0] != "memory" {
		t.Fatalf("local-only put: %+v %v", local, err)
	}
	parts, info, err := c.GetValue(ctx, "resp", []byte("big"))
	if err != nil || len(parts) != 4 || !bytes.Equal(bytes.Join(parts, nil), big) || info.Tier != "memory" || !info.Expires.IsZero() {
		t.Fatalf("get big: %d parts %+v %v", len(parts), info, err)
	}
	if parts, _, err := c.GetValue(ctx, "resp", []byte("empty")); err != nil || len(parts) != 0 {
		t.Fatalf("get empty: %v %v", parts, err)
	}
	if ttl, ok, _ := c.ValueTTL(ctx, "resp", []byte("ttl")); !ok || ttl <= 0 || ttl > 150*time.Millisecond {
		t.Fatalf("ttl %v %v", ttl, ok)
	}
	if ttl, ok, _ := c.ValueTTL(ctx, "resp", []byte("big")); !ok || ttl != 0 {
		t.Fatalf("no ttl: %v %v", ttl, ok)
	}
	present, err := c.ValuesPresent(ctx, "resp", [][]byte{[]byte("big"), []byte("nope"), []byte("ttl")})
	if err != nil || !present[0] || present[1] || !present[2] {
		t.Fatalf("present %v %v", present, err)
	}
	if n := c.CountValues("resp"); n != 4 {
		t.Fatalf("count %d", n)
	}
	// Namespaces and chunk keys are apart.
	if _, _, err := c.GetValue(ctx, "other", []byte("big")); !errors.Is(err, ErrUnknownNamespace) {
		t.Fatalf("other namespace: %v", err)
	}
	if _, err := c.Open(ctx, "resp", info.Key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a value opened as a chunk: %v", err)
	}
	// Overwrite, delete.
	if _, err := c.PutValue(ctx, "resp", []byte("big"), []byte("small now"), ValueOptions{WriteThrough: true}); err != nil {
		t.Fatal(err)
	}
	if parts, _, _ := c.GetValue(ctx, "resp", []byte("big")); !bytes.Equal(bytes.Join(parts, nil), []byte("small now")) {
		t.Fatalf("overwrite: %q", parts)
	}
	if ok, err := c.DeleteValue(ctx, "resp", []byte("empty")); !ok || err != nil {
		t.Fatalf("delete: %v %v", ok, err)
	}
	if ok, _ := c.DeleteValue(ctx, "resp", []byte("empty")); ok {
		t.Fatal("deleted twice")
	}
	// Expiry: absent once past, swept.
	time.Sleep(200 * time.Millisecond)
	if _, _, err := c.GetValue(ctx, "resp", []byte("ttl")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired value: %v", err)
	}
	if _, err := c.PutValue(ctx, "resp", []byte("ttl2"), []byte("x"), ValueOptions{TTL: time.Millisecond, WriteThrough: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if present, _ := c.ValuesPresent(ctx, "resp", [][]byte{[]byte("ttl2")}); present[0] {
		t.Fatal("expired value present")
	}
	if n := c.SweepExpired(ctx); n != 1 {
		t.Fatalf("swept %d", n)
	}
	if _, err := c.PutValue(ctx, "resp", []byte("ttl3"), []byte("x"), ValueOptions{TTL: 100 * time.Millisecond, WriteThrough: true}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// After a restart: written-through values are back from disk, the local-only one
	// is gone, an expired one is dropped.
	time.Sleep(120 * time.Millisecond)
	c, _, _ = openCache(t, cacheSetup{dir: dir, memCap: 64 << 10, diskCap: 1 << 20, writeThrough: true})
	defer c.Close()
	if parts, info, err := c.GetValue(ctx, "resp", []byte("big")); err != nil || info.Tier != "disk" || !bytes.Equal(bytes.Join(parts, nil), []byte("small now")) {
		t.Fatalf("after restart: %v %+v", err, info)
	}
	if _, _, err := c.GetValue(ctx, "resp", []byte("local")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("local-only value after restart: %v", err)
	}
	if n := c.CountValues("resp"); n != 1 {
		t.Fatalf("values after restart: %d", n)
	}
	// Bad input.
	if _, err := c.PutValue(ctx, "bad ns", []byte("k"), nil, ValueOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad namespace: %v", err)
	}
	if _, err := c.PutValue(ctx, "", make([]byte, MaxValueNameBytes+1), nil, ValueOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("long name: %v", err)
	}
}

func FuzzValueManifest(f *testing.F) {
	m := valueManifest{ns: "resp", name: []byte("key"), created: 1, expires: 2, cost: 3, sizes: []int64{4, 5}, crcs: []uint32{6, 7}}
	f.Add(m.encode())
	f.Add([]byte("RKVV\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeValueManifest(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if re := got.encode(); !bytes.Equal(re, b) {
			t.Fatalf("decode then encode differs")
		}
	})
}
