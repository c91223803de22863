package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/cliutil"
	"github.com/ragkv/ragkv/store"
)

// cacheCheckResult is the JSON line of `ragkv cache check`.
type cacheCheckResult struct {
	Dir string `json:"dir"`
	chunkcache.VerifyReport
}

func init() {
	var dataDir, dir, saltFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a stopped server's disk tier offline (every chunk's manifest and layer checksums, accounting)",
		Long: `Opens the Badger disk tier of --data-dir (or --dir) as a restart of ragkv serve would —
repairing what a restart repairs: records whose segments are missing, segments without a
record, unreadable chunks (each logged on stderr) — and runs chunkcache.Verify over it:
every chunk's manifest parses and hashes to its key, every layer matches its CRC-32C, and
the tier's accounting agrees with what it stores. Exit status 1 when a problem is found.
Stop the server first (Badger allows one process per directory).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				dir = filepath.Join(dataDir, "chunkcache")
			}
			if _, err := os.Stat(dir); err != nil {
				return flagErr("data-dir", "%v", err)
			}
			if saltFile == "" {
				saltFile = filepath.Join(dataDir, chunkcache.SaltSecretFile)
			}
			keyer := chunkcache.PublicKeyer()
			if _, err := os.Stat(saltFile); err == nil {
				if keyer, err = chunkcache.OpenKeyer(saltFile); err != nil {
					return flagErr("salt-secret-file", "%v", err)
				}
			} else if cmd.Flags().Changed("salt-secret-file") {
				return flagErr("salt-secret-file", "%v", err)
			}
			rep, err := checkCacheDir(cmd.Context(), dir, keyer, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn})))
			if err != nil {
				return err
			}
			if asJSON {
				if err := cliutil.PrintJSON(cmd.OutOrStdout(), cacheCheckResult{Dir: dir, VerifyReport: rep}); err != nil {
					return err
				}
			} else {
				for _, t := range rep.Tiers {
					fmt.Fprintf(cmd.OutOrStdout(), "%s: %d objects, %d bytes, %d corrupt, %d untracked, %d missing\n", t.Name, t.Objects, t.Bytes, t.Corrupt, t.Untracked, t.Missing)
				}
				for _, p := range rep.Problems {
					fmt.Fprintln(cmd.OutOrStdout(), "  "+p)
				}
			}
			if !rep.OK {
				return fmt.Errorf("cache check: %d problems in %s", rep.Count, dir)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "data", "the server's data directory")
	f.StringVar(&dir, "dir", "", "the Badger directory itself (default <data-dir>/chunkcache)")
	f.StringVar(&saltFile, "salt-secret-file", "", "the server's salt secret (default <data-dir>/keys/salt.secret when it exists; without it, chunks stored under secret salts would not hash to their keys)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object")
	cacheCmd.AddCommand(cmd)
}

// checkCacheDir opens the disk tier in dir (no capacity limit, so nothing is evicted)
// and verifies it.
func checkCacheDir(ctx context.Context, dir string, keyer *chunkcache.Keyer, log *slog.Logger) (chunkcache.VerifyReport, error) {
	disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, GCInterval: -1, Logger: log})
	if err != nil {
		return chunkcache.VerifyReport{}, err
	}
	c, err := chunkcache.New(ctx, chunkcache.Options{
		Tiers:  []chunkcache.TierConfig{{Tier: disk, Eviction: eviction.Config{Capacity: math.MaxInt64 / 4}}},
		Keyer:  keyer,
		Logger: log,
	})
	if err != nil {
		return chunkcache.VerifyReport{}, err
	}
	defer c.Close()
	return c.Verify(ctx)
}
