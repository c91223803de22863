package chunkcache

import (
	"context"
	"testing"
)

func TestUsage(t *testing.T) {
	c, _, _ := openCache(t, cacheSetup{dir: t.TempDir(), memCap: 1 << 20, diskCap: 1 << 22, writeThrough: true,
		namespaces: []string{"default", "a", "b", "empty"}})
	defer c.Close()
	ctx := context.Background()
	type chunk struct {
		k     Key
		ns    string
		bytes int64
		reads int
	}
	var chunks []chunk
	for i := 0; i < 12; i++ {
		ns := "a"
		if i%3 == 0 {
			ns = "b"
		}
		spec, ks, vs := testChunk(uint64(i+1), ns, F16, 2, 2+i) // sizes grow with i
		res := put(t, c, spec, ks, vs)
		chunks = append(chunks, chunk{k: res.Key, ns: ns, bytes: res.StoredBytes, reads: (i * 7) % 5})
	}
	for _, ch := range chunks {
		for r := 0; r < ch.reads; r++ {
			rd, err := c.Open(ctx, ch.ns, ch.k)
			if err != nil {
				t.Fatal(err)
			}
			rd.Close()
		}
	}
	if err := c.SetPin(ctx, chunks[2].ns, chunks[2].k, HardPin); err != nil {
		t.Fatal(err)
	}
	if err := c.SetPin(ctx, chunks[5].ns, chunks[5].k, SoftPin); err != nil {
		t.Fatal(err)
	}
	u := c.Usage(3)
	want := map[string]NamespaceUsage{}
	for i, ch := range chunks {
		n := want[ch.ns]
		n.Name = ch.ns
		n.Chunks++
		n.Bytes += ch.bytes
		n.Hits += uint64(ch.reads)
		if i == 2 || i == 5 {
			n.PinnedChunks++
			n.PinnedBytes += ch.bytes
		}
		want[ch.ns] = n
	}
	if len(u.Namespaces) != 4 {
		t.Fatalf("namespaces %+v", u.Namespaces)
	}
	for _, n := range u.Namespaces {
		if n != want[n.Name] && !(n.Name == "default" || n.Name == "empty") {
			t.Errorf("namespace %s: %+v, want %+v", n.Name, n, want[n.Name])
		}
		if (n.Name == "default" || n.Name == "empty") && n.Chunks != 0 {
			t.Errorf("namespace %s has %d chunks", n.Name, n.Chunks)
		}
	}
	if len(u.Largest) != 3 || u.Largest[0].Key != chunks[11].k.String() || u.Largest[1].Key != chunks[10].k.String() || u.Largest[0].Bytes != chunks[11].bytes {
		t.Errorf("largest %+v", u.Largest)
	}
	for i := 1; i < len(u.Hottest); i++ {
		if u.Hottest[i].Hits > u.Hottest[i-1].Hits {
			t.Errorf("hottest not in order: %+v", u.Hottest)
		}
	}
	if len(u.Hottest) != 3 || u.Hottest[0].Hits != 4 {
		t.Errorf("hottest %+v (the most-read chunks were read 4 times)", u.Hottest)
	}
	if u.PinnedChunks != 2 || len(u.Pinned) != 2 || u.Pinned[0].Key != chunks[2].k.String() || u.Pinned[0].Pin != HardPin || u.Pinned[1].Pin != SoftPin {
		t.Errorf("pinned %+v (%d)", u.Pinned, u.PinnedChunks)
	}
	if tiers := u.Largest[0].Tiers; len(tiers) != 2 || tiers[0] != "memory" || tiers[1] != "disk" {
		t.Errorf("tiers of a write-through chunk: %v", tiers)
	}
}
