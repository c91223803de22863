// Package storebench measures a storage tier against the file system, with the protocol
// of `ragkv bench store`: chunks of ChunkBytes split into Layers parts (one per
// transformer layer, as the chunk cache stores them) are written through the memory or
// disk (Badger) tier and as one plain file each in the same directory, then read back
// part by part into a reused buffer, alternating tier and file chunk by chunk so that
// both see the same machine load; the median of the read passes is reported. Both were
// just written, so reads come from the page cache: the ratio measures the tier's
// overhead over the file system, not the device.
package storebench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ragkv/ragkv/store"
)

// Result is the JSON line of `ragkv bench store`. Throughputs are in MB/s
// (10^6 bytes) and GB/s (10^9 bytes); read figures are the median of the read passes.
type Result struct {
	Tier       string `json:"tier"`
	ChunkBytes int64  `json:"chunk_bytes"`
	Count      int    `json:"count"`
	Layers     int    `json:"layers"`
	Passes     int    `json:"read_passes"`
	Sync       bool   `json:"sync"`
	Dir        string `json:"dir"`

	TierWriteMBps float64 `json:"tier_write_mbps"`
	TierReadMBps  float64 `json:"tier_read_mbps"`
	FileWriteMBps float64 `json:"file_write_mbps"`
	FileReadMBps  float64 `json:"file_read_mbps"`
	ReadVsFile    float64 `json:"read_vs_file"`
	WriteVsFile   float64 `json:"write_vs_file"`

	DiskReadVsFile  float64 `json:"disk_read_vs_file,omitempty"`
	DiskWriteVsFile float64 `json:"disk_write_vs_file,omitempty"`
	MemoryReadGBps  float64 `json:"memory_read_gbps,omitempty"`
	MemoryWriteGBps float64 `json:"memory_write_gbps,omitempty"`
	Note            string  `json:"note"`
}

// Options configure a run.
type Options struct {
	// Tier is "memory" or "disk".
	Tier string
	// Dir holds the Badger tier (Dir/badger) and the plain files (Dir/files); it must exist.
	Dir        string
	ChunkBytes int64
	Count      int
	Layers     int
	// Passes is the number of read passes (median reported).
	Passes int
	// Sync fsyncs each chunk (Badger SyncWrites, fsync of each file).
	Sync bool
	// Progress, if set, is called with units done (2 × Count × (1 + Passes) in all).
	Progress func(n int64)
}

// Total is the number of progress units of a run.
func (o Options) Total() int64 { return int64(2 * o.Count * (1 + o.Passes)) }

// ErrInvalid wraps every Validate error.
var ErrInvalid = errors.New("storebench: invalid options")

// Validate reports the first invalid field.
func (o Options) Validate() error {
	switch {
	case o.Tier != "memory" && o.Tier != "disk":
		return fmt.Errorf("%w: tier: want memory or disk, got %q", ErrInvalid, o.Tier)
	case o.Layers < 1 || o.Layers > store.MaxParts:
		return fmt.Errorf("%w: layers: want 1..%d, got %d", ErrInvalid, store.MaxParts, o.Layers)
	case o.ChunkBytes < int64(o.Layers) || o.ChunkBytes > 1<<30:
		return fmt.Errorf("%w: chunk bytes: want %d..1GiB, got %d", ErrInvalid, o.Layers, o.ChunkBytes)
	case o.ChunkBytes/int64(o.Layers) < 8:
		return fmt.Errorf("%w: layers: parts of %d bytes are too small (need ≥ 8)", ErrInvalid, o.ChunkBytes/int64(o.Layers))
	case o.Count < 1:
		return fmt.Errorf("%w: count: want ≥ 1, got %d", ErrInvalid, o.Count)
	case o.Passes < 1:
		return fmt.Errorf("%w: read passes: want ≥ 1, got %d", ErrInvalid, o.Passes)
	case o.Dir == "":
		return fmt.Errorf("%w: no directory", ErrInvalid)
	}
	return nil
}

// fillChunk fills parts with chunk i's bytes: a random base, stamped with the
// chunk and part index so that every part is distinct and a read can be checked.
func fillChunk(base []byte, i int, parts [][]byte) {
	off := 0
	for p := range parts {
		copy(parts[p], base[off:off+len(parts[p])])
		binary.LittleEndian.PutUint32(parts[p], uint32(i))
		binary.LittleEndian.PutUint32(parts[p][4:], uint32(p))
		off += len(parts[p])
	}
}

func split(buf []byte, n int) [][]byte {
	parts := make([][]byte, n)
	size := len(buf) / n
	for p := range parts {
		end := (p + 1) * size
		if p == n-1 {
			end = len(buf)
		}
		parts[p] = buf[p*size : end : end]
	}
	return parts
}

// Run writes and reads o.Count chunks through the tier and as plain files in o.Dir.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	tierName, dir, chunkBytes, count, layers, passes, sync := o.Tier, o.Dir, o.ChunkBytes, o.Count, o.Layers, o.Passes, o.Sync
	progress := o.Progress
	if progress == nil {
		progress = func(int64) {}
	}
	res := &Result{Tier: tierName, ChunkBytes: chunkBytes, Count: count, Layers: layers, Passes: passes, Sync: sync, Dir: dir,
		Note: "reads are from the page cache for both (just written); MB/s = 1e6 bytes/s, GB/s = 1e9 bytes/s"}
	var tier store.Tier
	switch tierName {
	case "memory":
		tier = store.NewMemory()
	case "disk":
		b, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: filepath.Join(dir, "badger"), SyncWrites: sync, GCInterval: -1,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return nil, err
		}
		tier = b
	}
	defer tier.Close()
	fileDir := filepath.Join(dir, "files")
	if err := os.MkdirAll(fileDir, 0o755); err != nil {
		return nil, err
	}
	base := make([]byte, chunkBytes)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(base)
	total := float64(chunkBytes) * float64(count)
	key := func(i int) store.Key {
		var k store.Key
		binary.LittleEndian.PutUint64(k[:], uint64(i)+1)
		return k
	}

	// Tier writes. The memory tier keeps the object's slices, so each chunk gets its
	// own buffer, filled inside the timed loop (as the cache's writer fills its own).
	scratch := make([]byte, chunkBytes)
	var tierWrite time.Duration
	for i := 0; i < count; i++ {
		buf := scratch
		if tierName == "memory" {
			buf = make([]byte, chunkBytes)
		}
		start := time.Now()
		parts := split(buf, layers)
		fillChunk(base, i, parts)
		if err := tier.Put(ctx, key(i), store.Object{Manifest: []byte("bench"), Parts: parts}); err != nil {
			return nil, err
		}
		tierWrite += time.Since(start)
		progress(1)
	}
	// File writes of the same bytes.
	var fileWrite time.Duration
	for i := 0; i < count; i++ {
		start := time.Now()
		fillChunk(base, i, split(scratch, layers))
		if err := writeFile(filepath.Join(fileDir, fmt.Sprintf("chunk-%05d.bin", i)), scratch, sync); err != nil {
			return nil, err
		}
		fileWrite += time.Since(start)
		progress(1)
	}

	dst := make([]byte, 0, chunkBytes/int64(layers)+int64(layers))
	fileBuf := make([]byte, chunkBytes)
	// Each pass reads every chunk through the tier and then from its file, chunk by
	// chunk, so that both see the same machine load (the ratio stays meaningful on a
	// busy machine); per pass, throughput = bytes / summed read time of each kind.
	var tierReads, fileReads []float64
	for pass := 0; pass < passes; pass++ {
		var tierTime, fileTime time.Duration
		for i := 0; i < count; i++ {
			start := time.Now()
			r, err := tier.Open(ctx, key(i))
			if err != nil {
				return nil, err
			}
			for p := 0; p < r.NumParts(); p++ {
				if dst, err = r.ReadPart(ctx, p, dst); err != nil {
					r.Close()
					return nil, err
				}
				if binary.LittleEndian.Uint32(dst) != uint32(i) || binary.LittleEndian.Uint32(dst[4:]) != uint32(p) {
					r.Close()
					return nil, fmt.Errorf("bench store: chunk %d part %d read back wrong bytes", i, p)
				}
			}
			r.Close()
			tierTime += time.Since(start)

			start = time.Now()
			f, err := os.Open(filepath.Join(fileDir, fmt.Sprintf("chunk-%05d.bin", i)))
			if err != nil {
				return nil, err
			}
			_, err = io.ReadFull(f, fileBuf)
			f.Close()
			if err != nil {
				return nil, err
			}
			if binary.LittleEndian.Uint32(fileBuf) != uint32(i) {
				return nil, fmt.Errorf("bench store: file %d read back wrong bytes", i)
			}
			fileTime += time.Since(start)
			progress(2)
		}
		tierReads = append(tierReads, total/tierTime.Seconds())
		fileReads = append(fileReads, total/fileTime.Seconds())
	}
	median := func(x []float64) float64 {
		s := slices.Clone(x)
		slices.Sort(s)
		return s[len(s)/2]
	}
	res.TierWriteMBps = total / tierWrite.Seconds() / 1e6
	res.FileWriteMBps = total / fileWrite.Seconds() / 1e6
	res.TierReadMBps = median(tierReads) / 1e6
	res.FileReadMBps = median(fileReads) / 1e6
	res.ReadVsFile = res.TierReadMBps / res.FileReadMBps
	res.WriteVsFile = res.TierWriteMBps / res.FileWriteMBps
	if tierName == "disk" {
		res.DiskReadVsFile, res.DiskWriteVsFile = res.ReadVsFile, res.WriteVsFile
	} else {
		res.MemoryReadGBps, res.MemoryWriteGBps = res.TierReadMBps/1e3, res.TierWriteMBps/1e3
	}
	return res, nil
}

func writeFile(path string, b []byte, sync bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
