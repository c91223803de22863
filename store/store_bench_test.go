package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkReadChunk reads 4 MiB chunks of 32 parts (one per layer) through each tier
// into a reused buffer, next to plain files holding the same bytes in the same
// directory: compare disk with file (target ≥ 0.7, `ragkv bench store` reports the
// ratio) and memory against 5 GB/s.
func BenchmarkReadChunk(b *testing.B) {
	const chunkBytes, parts, count = 4 << 20, 32, 32
	ctx := context.Background()
	dir := b.TempDir()
	disk, err := OpenBadger(ctx, BadgerOptions{Dir: filepath.Join(dir, "badger"), GCInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer disk.Close()
	mem := NewMemory()
	for i := 0; i < count; i++ {
		buf := make([]byte, chunkBytes)
		binary.LittleEndian.PutUint64(buf, uint64(i))
		obj := Object{Manifest: []byte("m")}
		for p := 0; p < parts; p++ {
			obj.Parts = append(obj.Parts, buf[p*chunkBytes/parts:(p+1)*chunkBytes/parts])
		}
		if err := disk.Put(ctx, key(i), obj); err != nil {
			b.Fatal(err)
		}
		if err := mem.Put(ctx, key(i), obj); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, tier := range []Tier{mem, disk} {
		b.Run(tier.Name(), func(b *testing.B) {
			b.SetBytes(chunkBytes)
			dst := make([]byte, 0, chunkBytes/parts)
			for i := 0; b.Loop(); i++ {
				r, err := tier.Open(ctx, key(i%count))
				if err != nil {
					b.Fatal(err)
				}
				for p := 0; p < parts; p++ {
					if dst, err = r.ReadPart(ctx, p, dst); err != nil {
						b.Fatal(err)
					}
				}
				r.Close()
			}
		})
	}
	b.Run("file", func(b *testing.B) {
		b.SetBytes(chunkBytes)
		buf := make([]byte, chunkBytes)
		for i := 0; b.Loop(); i++ {
			f, err := os.Open(filepath.Join(dir, fmt.Sprint(i%count)))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(f, buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
}
