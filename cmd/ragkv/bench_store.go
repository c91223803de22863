package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/store"
	"github.com/ragkv/ragkv/store/storebench"
)

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
			if chunkBytes/int64(layers) < 8 {
				return flagErr("layers", "parts of %d bytes are too small (need ≥ 8)", chunkBytes/int64(layers))
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
			o := storebench.Options{Tier: tier, Dir: base, ChunkBytes: chunkBytes, Count: count, Layers: layers, Passes: passes, Sync: sync}
			prog := cliutil.NewProgress(os.Stderr, "bench store", o.Total())
			o.Progress = prog.Add
			res, err := storebench.Run(cmd.Context(), o)
			prog.Finish()
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
