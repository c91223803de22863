package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/internal/cliutil"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
)

// Namespace salts (rotation) and per-namespace byte quotas: `ragkv cache rotate-salt`
// and `ragkv serve --namespace-quota`.

func init() {
	serveCmd.Flags().Var(&namespaceQuotaFlag{&serveCfg.Cache.Quotas}, "namespace-quota",
		"byte quota of a namespace in a tier: NS=TIER:BYTES[,...] (TIER memory or disk; repeatable; YAML cache.quotas: {NS: {TIER: BYTES}}); quotas of a tier sum to at most its capacity")
	cacheCmd.AddCommand(newCacheRotateSaltCmd())
}

// namespaceQuotaFlag parses NS=TIER:BYTES[,NS=TIER:BYTES...] into cacheConfig.Quotas.
type namespaceQuotaFlag struct {
	q *map[string]map[string]cacheBytes
}

func (f *namespaceQuotaFlag) String() string {
	if f.q == nil || *f.q == nil {
		return ""
	}
	var parts []string
	for ns, tiers := range *f.q {
		for t, b := range tiers {
			parts = append(parts, fmt.Sprintf("%s=%s:%d", ns, t, int64(b)))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (f *namespaceQuotaFlag) Type() string { return "NS=TIER:BYTES" }

func (f *namespaceQuotaFlag) Set(s string) error {
	if strings.TrimSpace(s) == "" { // the default: no quotas
		*f.q = nil
		return nil
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		ns, rest, ok := strings.Cut(item, "=")
		tier, size, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 {
			return fmt.Errorf("%q: want NS=TIER:BYTES (e.g. tenant-a=memory:2GiB)", item)
		}
		b, err := parseCacheBytes(size)
		if err != nil {
			return fmt.Errorf("%q: %v", item, err)
		}
		if *f.q == nil {
			*f.q = map[string]map[string]cacheBytes{}
		}
		if (*f.q)[ns] == nil {
			(*f.q)[ns] = map[string]cacheBytes{}
		}
		(*f.q)[ns][strings.TrimSpace(tier)] = cacheBytes(b)
	}
	return nil
}

// tierQuotas turns cacheConfig.Quotas into one map per tier name (memory, disk),
// naming the flag on a bad entry.
func tierQuotas(q map[string]map[string]cacheBytes, diskOn bool) (map[string]map[string]int64, error) {
	out := map[string]map[string]int64{}
	for ns, tiers := range q {
		n, err := chunkcache.NormalizeNamespace(ns)
		if err != nil {
			return nil, flagErr("namespace-quota", "%v", err)
		}
		for tier, b := range tiers {
			switch {
			case tier != "memory" && tier != "disk":
				return nil, flagErr("namespace-quota", "%s: tier %q (want memory or disk; the shared remote tier evicts by Redis's policy)", ns, tier)
			case tier == "disk" && !diskOn:
				return nil, flagErr("namespace-quota", "%s: a disk quota with the disk tier off (--disk-capacity 0)", ns)
			case b <= 0:
				return nil, flagErr("namespace-quota", "%s: %s quota must be > 0, got %d", ns, tier, b)
			}
			if out[tier] == nil {
				out[tier] = map[string]int64{}
			}
			out[tier][n] = int64(b)
		}
	}
	return out, nil
}

func newCacheRotateSaltCmd() *cobra.Command {
	var cf cacheClientFlags
	cmd := &cobra.Command{
		Use:   "rotate-salt [--namespace N]",
		Short: "Give a namespace (or every namespace) a new key salt secret; its chunks under the old keys are deleted (admin)",
		Long: `The server derives every chunk key with a salt that is an HMAC of the namespace
under its secret (<data-dir>/keys/salt.secret). rotate-salt replaces the secret of one
namespace (--namespace) or the base secret (every namespace) with a new random one of
the next generation: keys computed before no longer resolve, and the server deletes the
chunks stored under them from every tier. Keys handed out earlier (PutChunk, Prefill,
Retrieve with_keys, --keys-out files) are then useless; precompute again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, done, ctx, err := cf.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := cl.RotateSalt(ctx, &ragkvv1.RotateSaltRequest{Namespace: cf.namespace})
			if err != nil {
				return cacheRPCErr("rotate-salt", err)
			}
			w := cmd.OutOrStdout()
			if cf.json {
				return cliutil.PrintJSON(w, map[string]any{"namespace": res.GetNamespace(), "generation": res.GetGeneration(),
					"deleted": res.GetDeleted(), "freed_bytes": res.GetFreedBytes()})
			}
			what := "every namespace"
			if res.GetNamespace() != "" {
				what = "namespace " + res.GetNamespace()
			}
			fmt.Fprintf(w, "%s: salt generation %d; %d chunks deleted (%s freed)\n", what, res.GetGeneration(), res.GetDeleted(), cacheHuman(res.GetFreedBytes()))
			return nil
		},
	}
	cf.register(cmd, true)
	cmd.Flags().Lookup("namespace").Usage = "namespace to rotate (default: every namespace, the base secret)"
	return cmd
}

// printNamespaceStats prints each namespace's bytes per tier against its quota.
func printNamespaceStats(w io.Writer, ns []*ragkvv1.ChunkNamespaceStats) error {
	if len(ns) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tTIER\tUSED\tQUOTA\tSALT GEN")
	for _, n := range ns {
		for _, t := range n.GetTiers() {
			q := "-"
			if t.GetQuotaBytes() > 0 {
				q = cacheHuman(t.GetQuotaBytes())
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", n.GetNamespace(), t.GetTier(), cacheHuman(t.GetBytes()), q, n.GetSaltGeneration())
		}
	}
	return tw.Flush()
}
