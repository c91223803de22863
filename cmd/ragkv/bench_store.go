package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/store"
)

// benchStoreResult is the JSON line of `ragkv bench store`. Throughputs are in MB/s
// (10^6 bytes) and GB/s (10^9 bytes); read figures are the median of the read passes.
type benchStoreResult struct {
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

func init() {
	var (
		tier                  string
		chunkBytes            int64
		count, layers, passes int
		dir                   string
		keep, sync, asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Write and read chunk blobs through a storage tier, and the same bytes as plain files in the same directory",
		Long: `Writes --count chunks of --chunk-bytes (each split into --layers parts, one per
transformer layer, as the chunk cache stores them) into the memory or disk (Badger) tier,
reads them back part by part into a reused buffer, and does the same with one plain file
per chunk in the same directory. Reads are repeated --read-passes times, alternating tier
and file chunk by chunk (so both see the same machine load); the median pass is reported. Both the Badger value log and the files were just
written, so both reads come from the page cache: the ratio measures the tier's overhead
over the file system, not the device.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tier != "memory" && tier != "disk" {
				return flagErr("tier", "want memory or disk, got %q", tier)
			}
			if chunkBytes < int64(layers) || chunkBytes > 1<<30 {
				return flagErr("chunk-bytes", "want %d..1GiB, got %d", layers, chunkBytes)
			}
			if count < 1 {
				return flagErr("count", "want ≥ 1, got %d", count)
			}
			if layers < 1 || layers > store.MaxParts {
				return flagErr("layers", "want 1..%d, got %d", store.MaxParts, layers)
			}
			if passes < 1 {
				return flagErr("read-passes", "want ≥ 1, got %d", passes)
			}
			base := dir
			if base == "" {
				d, err := os.MkdirTemp("", "ragkv-bench-store-")
				if err != nil {
					return err
				}
				base = d
			} else if err := os.MkdirAll(base, 0o755); err != nil {
				return flagErr("dir", "%v", err)
			}
			if !keep {
				defer os.RemoveAll(base)
			}
			res, err := runBenchStore(cmd.Context(), tier, base, chunkBytes, count, layers, passes, sync)
			if err != nil {
				return err
			}
			if asJSON {
				return cliutil.PrintJSON(os.Stdout, res)
			}
			fmt.Printf("%s tier, %d chunks × %d bytes (%d parts each), %d read passes, dir %s\n",
				res.Tier, res.Count, res.ChunkBytes, res.Layers, res.Passes, res.Dir)
			fmt.Printf("  write: tier %.0f MB/s, files %.0f MB/s (ratio %.2f)\n", res.TierWriteMBps, res.FileWriteMBps, res.WriteVsFile)
			fmt.Printf("  read:  tier %.0f MB/s, files %.0f MB/s (ratio %.2f)\n", res.TierReadMBps, res.FileReadMBps, res.ReadVsFile)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tier, "tier", "disk", "tier to measure: memory or disk")
	f.Int64Var(&chunkBytes, "chunk-bytes", 4<<20, "bytes per chunk")
	f.IntVar(&count, "count", 200, "number of chunks")
	f.IntVar(&layers, "layers", 32, "parts per chunk (one per layer)")
	f.IntVar(&passes, "read-passes", 3, "read passes (median reported)")
	f.StringVar(&dir, "dir", "", "directory for the Badger tier and the plain files (default: a new temporary directory)")
	f.BoolVar(&keep, "keep", false, "keep the directory afterwards")
	f.BoolVar(&sync, "sync", false, "fsync each chunk (Badger SyncWrites, and fsync of each file)")
	f.BoolVar(&asJSON, "json", false, "print the result as one JSON line")
	benchCmd.AddCommand(cmd)
}

// benchStoreChunk fills parts with chunk i's bytes: a random base, stamped with the
// chunk and part index so that every part is distinct and a read can be checked.
func benchStoreChunk(base []byte, i int, parts [][]byte) {
	off := 0
	for p := range parts {
		copy(parts[p], base[off:off+len(parts[p])])
		binary.LittleEndian.PutUint32(parts[p], uint32(i))
		binary.LittleEndian.PutUint32(parts[p][4:], uint32(p))
		off += len(parts[p])
	}
}

func benchStoreSplit(buf []byte, n int) [][]byte {
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

func runBenchStore(ctx context.Context, tierName, dir string, chunkBytes int64, count, layers, passes int, sync bool) (*benchStoreResult, error) {
	if chunkBytes/int64(layers) < 8 {
		return nil, flagErr("layers", "parts of %d bytes are too small (need ≥ 8)", chunkBytes/int64(layers))
	}
	res := &benchStoreResult{Tier: tierName, ChunkBytes: chunkBytes, Count: count, Layers: layers, Passes: passes, Sync: sync, Dir: dir,
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
	prog := cliutil.NewProgress(os.Stderr, "bench store", int64(2*count*(1+passes)))
	defer prog.Finish()
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
		parts := benchStoreSplit(buf, layers)
		benchStoreChunk(base, i, parts)
		if err := tier.Put(ctx, key(i), store.Object{Manifest: []byte("bench"), Parts: parts}); err != nil {
			return nil, err
		}
		tierWrite += time.Since(start)
		prog.Add(1)
	}
	// File writes of the same bytes.
	var fileWrite time.Duration
	for i := 0; i < count; i++ {
		start := time.Now()
		benchStoreChunk(base, i, benchStoreSplit(scratch, layers))
		if err := benchStoreWriteFile(filepath.Join(fileDir, fmt.Sprintf("chunk-%05d.bin", i)), scratch, sync); err != nil {
			return nil, err
		}
		fileWrite += time.Since(start)
		prog.Add(1)
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
			prog.Add(2)
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

func benchStoreWriteFile(path string, b []byte, sync bool) error {
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
