package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"

	"github.com/ragkv/ragkv/chunkcache"
	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/internal/cliutil"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/server"
	"github.com/ragkv/ragkv/store"
)

// cacheConfig configures the chunk cache: a RAM tier over a Badger disk tier in
// <data-dir>/chunkcache. YAML section `cache:`.
type cacheConfig struct {
	Memory cacheTierConfig `yaml:"memory"`
	// Disk: capacity 0 disables the disk tier (RAM only, nothing survives a restart).
	Disk cacheTierConfig `yaml:"disk"`
	// Dir is the Badger directory (default <data-dir>/chunkcache).
	Dir string `yaml:"dir"`
	// SyncWrites fsyncs every put before acknowledging it.
	SyncWrites bool `yaml:"sync_writes"`
	// DiskMinFree is the free space a disk-tier put must leave on the filesystem of
	// Dir (store.BadgerOptions.MinFreeBytes); a put that would leave less is refused
	// (ResourceExhausted). 0: the store's default, max(64MiB, 4 × Badger memtable) =
	// 128MiB. At least minDiskMinFree.
	DiskMinFree cacheBytes `yaml:"disk_min_free"`
	// WriteThrough writes every put to disk as well as RAM (durable acknowledgements);
	// without it chunks reach disk only when RAM evicts them.
	WriteThrough     bool       `yaml:"write_through"`
	MaxChunkBytes    cacheBytes `yaml:"max_chunk_bytes"`
	Namespaces       []string   `yaml:"namespaces"`
	StrictNamespaces bool       `yaml:"strict_namespaces"`
	DisablePromotion bool       `yaml:"disable_promotion"`
	// Remote is the shared remote tier on Redis (--remote).
	Remote cacheRemoteConfig `yaml:"remote"`
	// SaltSecretFile holds the secret the namespaces' key salts are derived from
	// (default <data-dir>/keys/salt.secret, created 0600 on first start). Replicas that
	// share a remote tier must use the same file.
	SaltSecretFile string `yaml:"salt_secret_file"`
	// DropForeignChunks deletes, at start, chunks stored under another salt secret
	// (instead of refusing to start).
	DropForeignChunks bool `yaml:"drop_foreign_chunks"`
	// Quotas bound namespaces' bytes per tier: namespace → tier (memory, disk) →
	// bytes (--namespace-quota NS=TIER:BYTES).
	Quotas map[string]map[string]cacheBytes `yaml:"quotas"`

	// diskPolicy is --disk-policy: it overrides the disk tier's policy after --policy
	// and the YAML file, whatever the order they were given in.
	diskPolicy string
}

// cacheTierConfig is one tier's budget and eviction settings.
type cacheTierConfig struct {
	Capacity      cacheBytes `yaml:"capacity"`
	Policy        string     `yaml:"policy"`
	Admission     string     `yaml:"admission"`
	HighWatermark float64    `yaml:"high_watermark"`
	LowWatermark  float64    `yaml:"low_watermark"`
	// Probation is the share of the tier that chunks computed on the fly may take from
	// precomputed or reused ones before they evict only each other (YAML only; 0: 0.1).
	Probation float64 `yaml:"probation"`
	// KVFormat is the tier's chunk KV format (chunkcache.ParseFormat: f16, q4, q2r,
	// mixed:bits=2.5, ...); chunks put, copied or demoted into the tier in another
	// format are re-encoded. Empty: as written.
	KVFormat string `yaml:"kv_format"`
	// KVFormats overrides KVFormat per namespace (YAML only), e.g.
	// {archive: q2, exact: f16}.
	KVFormats map[string]string `yaml:"kv_formats"`
}

// nsFormats parses KVFormats (tier names the YAML section in errors).
func (t cacheTierConfig) nsFormats(tier string) (map[string]chunkcache.Layout, error) {
	if len(t.KVFormats) == 0 {
		return nil, nil
	}
	out := make(map[string]chunkcache.Layout, len(t.KVFormats))
	for ns, s := range t.KVFormats {
		f, err := chunkcache.ParseFormat(s)
		if err != nil {
			return nil, fmt.Errorf("cache config: %s.kv_formats[%q]: %w", tier, ns, err)
		}
		out[ns] = f
	}
	return out, nil
}

// formats parses the remote tier's KVFormat and KVFormats (errors name
// --remote-kv-format or the YAML key); a format without a remote tier is an error.
func (rc cacheRemoteConfig) formats() (chunkcache.Layout, map[string]chunkcache.Layout, error) {
	t := cacheTierConfig{KVFormat: rc.KVFormat, KVFormats: rc.KVFormats}
	f, err := t.format("remote-kv-format")
	if err != nil {
		return f, nil, err
	}
	ns, err := t.nsFormats("remote")
	if err != nil {
		return f, nil, err
	}
	if rc.URL == "" && (f.DType != 0 || ns != nil) {
		return f, nil, flagErr("remote-kv-format", "a remote tier format needs a remote tier (--remote)")
	}
	return f, ns, nil
}

// format parses KVFormat, naming the flag that sets it.
func (t cacheTierConfig) format(flag string) (chunkcache.Layout, error) {
	if t.KVFormat == "" {
		return chunkcache.Layout{}, nil
	}
	f, err := chunkcache.ParseFormat(t.KVFormat)
	if err != nil {
		return chunkcache.Layout{}, flagErr(flag, "%v", err)
	}
	return f, nil
}

func defaultCacheConfig() cacheConfig {
	return cacheConfig{
		Memory:        cacheTierConfig{Capacity: 1 << 30, Policy: eviction.DefaultPolicy, Admission: eviction.AdmissionNone},
		Disk:          cacheTierConfig{Capacity: 16 << 30, Policy: eviction.DefaultPolicy, Admission: eviction.AdmissionNone},
		SyncWrites:    true,
		WriteThrough:  true,
		MaxChunkBytes: 1 << 30,
		Namespaces:    []string{chunkcache.DefaultNamespace},
	}
}

func (t cacheTierConfig) eviction() eviction.Config {
	return eviction.Config{Policy: t.Policy, Admission: t.Admission, Capacity: int64(t.Capacity),
		HighWatermark: t.HighWatermark, LowWatermark: t.LowWatermark, Probation: t.Probation}
}

// validate reports a bad value under the flag that sets it (prefix "mem" or "disk").
func (t cacheTierConfig) validate(prefix, policyFlag string) error {
	c := t.eviction()
	c.EnsureDefaults()
	if t.Capacity <= 0 {
		return flagErr(prefix+"-capacity", "capacity must be > 0, got %d", t.Capacity)
	}
	if err := c.Validate(); err != nil {
		switch {
		case errors.Is(err, eviction.ErrUnknownPolicy) && strings.Contains(err.Error(), "admission"):
			return flagErr("admission", "%v", err)
		case errors.Is(err, eviction.ErrUnknownPolicy):
			return flagErr(policyFlag, "%v", err)
		case strings.Contains(err.Error(), "probation"):
			tier := "memory"
			if prefix == "disk" {
				tier = "disk"
			}
			return fmt.Errorf("cache config: %s tier: %w", tier, err)
		default:
			return flagErr("high-watermark", "%v", err)
		}
	}
	return nil
}

// buildChunkCache is the "chunkcache" serve component.
func buildChunkCache(ctx context.Context, cfg *serveConfig, env *serveEnv, _ map[string]any) (server.Option, any, io.Closer, error) {
	cc := cfg.Cache
	if cc.diskPolicy != "" {
		cc.Disk.Policy = cc.diskPolicy
	}
	if err := cc.Memory.validate("mem", "policy"); err != nil {
		return nil, nil, nil, err
	}
	if cc.Disk.Capacity < 0 {
		return nil, nil, nil, flagErr("disk-capacity", "capacity must be ≥ 0 (0 disables the disk tier), got %d", cc.Disk.Capacity)
	}
	if cc.DiskMinFree != 0 && cc.DiskMinFree < minDiskMinFree {
		return nil, nil, nil, flagErr("disk-min-free", "the disk tier's free-space reserve must be at least %d bytes (16MiB: Badger's memtables and compactions write into it), got %d", int64(minDiskMinFree), int64(cc.DiskMinFree))
	}
	if cc.Disk.Capacity > 0 {
		policyFlag := "policy"
		if cc.diskPolicy != "" {
			policyFlag = "disk-policy"
		}
		if err := cc.Disk.validate("disk", policyFlag); err != nil {
			return nil, nil, nil, err
		}
	}
	memFormat, err := cc.Memory.format("mem-kv-format")
	if err != nil {
		return nil, nil, nil, err
	}
	diskFormat, err := cc.Disk.format("disk-kv-format")
	if err != nil {
		return nil, nil, nil, err
	}
	quotas, err := tierQuotas(cc.Quotas, cc.Disk.Capacity > 0)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := env.trust.mergeQuotas(quotas, cc.Disk.Capacity > 0); err != nil {
		return nil, nil, nil, err
	}
	memNS, err := cc.Memory.nsFormats("memory")
	if err != nil {
		return nil, nil, nil, err
	}
	diskNS, err := cc.Disk.nsFormats("disk")
	if err != nil {
		return nil, nil, nil, err
	}
	log := env.log.With("component", "chunkcache")
	tiers := []chunkcache.TierConfig{{Tier: store.NewMemory(), Eviction: cc.Memory.eviction(), Format: memFormat, NamespaceFormats: memNS, Quotas: quotas["memory"]}}
	dir := cc.Dir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "chunkcache")
	}
	if cc.Disk.Capacity > 0 {
		disk, err := store.OpenBadger(ctx, store.BadgerOptions{Dir: dir, SyncWrites: cc.SyncWrites, MinFreeBytes: int64(cc.DiskMinFree), Logger: log})
		if err != nil {
			return nil, nil, nil, err
		}
		tiers = append(tiers, chunkcache.TierConfig{Tier: disk, Eviction: cc.Disk.eviction(), WriteThrough: cc.WriteThrough, Format: diskFormat, NamespaceFormats: diskNS, Quotas: quotas["disk"]})
	}
	remoteFormat, remoteNS, err := cc.Remote.formats()
	if err != nil {
		return nil, nil, nil, err
	}
	remote, err := openRemoteTier(ctx, cc.Remote, log)
	if err != nil {
		for _, t := range tiers {
			t.Tier.Close()
		}
		return nil, nil, nil, err
	}
	if remote != nil {
		tiers = append(tiers, chunkcache.TierConfig{Tier: remote, Format: remoteFormat, NamespaceFormats: remoteNS})
	}
	var diskTier store.Tier
	if cc.Disk.Capacity > 0 {
		diskTier = tiers[1].Tier
	}
	keyer, err := openSaltKeyer(ctx, cfg.DataDir, cc.SaltSecretFile, diskTier)
	if err != nil {
		for _, t := range tiers {
			t.Tier.Close()
		}
		return nil, nil, nil, err
	}
	c, err := chunkcache.New(ctx, chunkcache.Options{
		Tiers: tiers, MaxChunkBytes: int64(cc.MaxChunkBytes), Namespaces: cc.Namespaces,
		StrictNamespaces: cc.StrictNamespaces, DisablePromotion: cc.DisablePromotion,
		Keyer: keyer, DropForeignChunks: cc.DropForeignChunks, Logger: log, Registerer: env.reg,
	})
	if errors.Is(err, chunkcache.ErrForeignChunks) {
		return nil, nil, nil, flagErr("salt-secret-file", "%v (is %s the file this data directory was written with? --drop-foreign-chunks deletes them)", err, keyer.Path())
	}
	if err != nil {
		if len(quotas) > 0 && errors.Is(err, chunkcache.ErrInvalid) && strings.Contains(err.Error(), "quota") {
			return nil, nil, nil, flagErr("namespace-quota", "%v", err)
		}
		return nil, nil, nil, err
	}
	st := c.Stats()
	log.Info("chunk cache ready", "dir", dir, "tiers", c.Tiers(), "chunks", st.Chunks)
	return server.WithChunkCache(c), c, c, nil
}

// publicSalts is the --salt-secret-file value that keeps public salts (data
// directories written before salt secrets).
const publicSalts = "public"

// openSaltKeyer opens (or creates) the salt secret: file, or <dataDir>/keys/salt.secret;
// "public" keeps public salts. It refuses to create a secret for a disk tier that already
// holds chunks (written with public salts before salt secrets existed): under a new
// secret they would not hash to their keys and the start would delete them all.
func openSaltKeyer(ctx context.Context, dataDir, file string, disk store.Tier) (*chunkcache.Keyer, error) {
	if file == publicSalts {
		return chunkcache.PublicKeyer(), nil
	}
	if file == "" {
		file = filepath.Join(dataDir, chunkcache.SaltSecretFile)
	}
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) && disk != nil {
		held := 0
		errStop := errors.New("stop")
		if err := disk.Scan(ctx, func(store.Info) error { held++; return errStop }); err != nil && !errors.Is(err, errStop) {
			return nil, err
		}
		if held > 0 {
			return nil, flagErr("salt-secret-file", "%s does not exist but the disk tier already holds chunks, keyed with public salts "+
				"(written before salt secrets): a new secret would make every one of them unreachable and this start would delete them. "+
				"Keep them with --salt-secret-file %s (keys from public salts, as before: Lookup can then tell whether a namespace cached a text), "+
				"or move the chunk cache directory away to start empty with a secret", file, publicSalts)
		}
	}
	k, err := chunkcache.OpenKeyer(file)
	if err != nil {
		return nil, flagErr("salt-secret-file", "%v", err)
	}
	return k, nil
}

// cacheBytes is a byte count that parses "512MiB", "4GiB", "1G", "100MB" or a plain
// number (flags and YAML).
type cacheBytes int64

func (b *cacheBytes) String() string { return strconv.FormatInt(int64(*b), 10) }
func (b *cacheBytes) Type() string   { return "bytes" }
func (b *cacheBytes) Set(s string) error {
	v, err := parseCacheBytes(s)
	if err != nil {
		return err
	}
	*b = cacheBytes(v)
	return nil
}

func (b *cacheBytes) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	return b.Set(s)
}

var cacheByteUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"b", 1},
}

func parseCacheBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range cacheByteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || f*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("bad byte size %q (want e.g. 512MiB, 4GiB, 100MB or a number of bytes)", s)
	}
	return int64(f * mult), nil
}

// minDiskMinFree is the least --disk-min-free.
const minDiskMinFree cacheBytes = 16 << 20

// cacheBothPolicy sets the policy of both tiers (--policy).
type cacheBothPolicy struct{ cfg *cacheConfig }

func (p cacheBothPolicy) String() string { return p.cfg.Memory.Policy }
func (p cacheBothPolicy) Type() string   { return "name" }
func (p cacheBothPolicy) Set(s string) error {
	p.cfg.Memory.Policy, p.cfg.Disk.Policy = s, s
	return nil
}

// cacheBothFloat sets a float field of both tiers (--high-watermark, --low-watermark).
type cacheBothFloat struct{ mem, disk *float64 }

func (p cacheBothFloat) String() string { return strconv.FormatFloat(*p.mem, 'g', -1, 64) }
func (p cacheBothFloat) Type() string   { return "fraction" }
func (p cacheBothFloat) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*p.mem, *p.disk = f, f
	return nil
}

func init() {
	f := serveCmd.Flags()
	cc := &serveCfg.Cache
	f.Var(&cc.Memory.Capacity, "mem-capacity", "chunk cache RAM tier budget (e.g. 1GiB)")
	f.Var(&cc.Disk.Capacity, "disk-capacity", "chunk cache disk tier budget (e.g. 16GiB; 0 disables the disk tier)")
	f.Var(cacheBothPolicy{cc}, "policy", "eviction policy of both tiers: "+strings.Join(eviction.Policies(), ", "))
	f.StringVar(&cc.Memory.KVFormat, "mem-kv-format", "", "KV format of chunks in the RAM tier (f16, int8, q4, q2r, mixed:bits=2.5, ...; empty: as put)")
	f.StringVar(&cc.Disk.KVFormat, "disk-kv-format", "", "KV format of chunks on the disk tier, re-encoded on write-through and demotion (e.g. q4; empty: as put)")
	f.StringVar(&cc.diskPolicy, "disk-policy", "", "eviction policy of the disk tier (overrides --policy and the config file)")
	f.StringVar(&cc.Memory.Admission, "admission", cc.Memory.Admission, "admission filter of the RAM tier: none or tinylfu")
	f.Var(cacheBothFloat{&cc.Memory.HighWatermark, &cc.Disk.HighWatermark}, "high-watermark", "evict when usage would exceed this fraction of capacity (both tiers; default 1)")
	f.Var(cacheBothFloat{&cc.Memory.LowWatermark, &cc.Disk.LowWatermark}, "low-watermark", "evict down to this fraction of capacity (both tiers; default = high)")
	f.BoolVar(&cc.SyncWrites, "sync-writes", cc.SyncWrites, "fsync every chunk put before acknowledging it")
	f.Var(&cc.DiskMinFree, "disk-min-free", "free space a disk tier put must leave on its filesystem, else it is refused (ResourceExhausted); ≥ 16MiB (default: max(64MiB, 4 × Badger memtable) = 128MiB)")
	f.Var(&cc.MaxChunkBytes, "max-chunk-bytes", "largest chunk accepted (e.g. 1GiB)")
	f.BoolVar(&cc.DropForeignChunks, "drop-foreign-chunks", false, "at start, delete chunks stored under another salt secret instead of refusing to start")
	f.StringVar(&cc.SaltSecretFile, "salt-secret-file", "", "secret the namespaces' key salts are derived from (default <data-dir>/keys/salt.secret, created 0600; replicas sharing --remote need the same file; \"public\": public salts, for data dirs written before salt secrets)")
	serveComponents = append(serveComponents, serveComponent{name: "chunkcache", build: buildChunkCache})

	cacheCmd.AddCommand(newCacheStatsCmd(), newCacheLookupCmd(), newCacheGetCmd(), newCachePutCmd(),
		newCacheDeleteCmd(), newCachePinCmd(true), newCachePinCmd(false), newCachePolicyCmd())
}

// cacheClientFlags are the flags every client subcommand shares.
type cacheClientFlags struct {
	addr      string
	namespace string
	timeout   time.Duration
	json      bool
}

func (c *cacheClientFlags) register(cmd *cobra.Command, withNamespace bool) {
	f := cmd.Flags()
	f.StringVar(&c.addr, "addr", "127.0.0.1:7431", "address of the ragkv server")
	f.DurationVar(&c.timeout, "timeout", 60*time.Second, "deadline of the call")
	f.BoolVar(&c.json, "json", false, "print the result as one JSON line")
	if withNamespace {
		f.StringVar(&c.namespace, "namespace", "", "namespace (default \"default\")")
	}
}

func (c *cacheClientFlags) dial(cmd *cobra.Command) (ragkvv1.ChunkCacheClient, func(), context.Context, error) {
	conn, err := dialServer(c.addr)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
	return ragkvv1.NewChunkCacheClient(conn), func() { cancel(); conn.Close() }, ctx, nil
}

// cacheRPCErr turns a gRPC status into a readable error.
func cacheRPCErr(op string, err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s: %s", op, st.Code(), st.Message())
	}
	return fmt.Errorf("%s: %w", op, err)
}

func cacheParseKey(arg string) ([]byte, error) {
	k, err := chunkcache.ParseKey(arg)
	if err != nil {
		return nil, usageError{err}
	}
	return k[:], nil
}

func cacheKeyRef(ns string, key []byte) *ragkvv1.ChunkRef {
	return &ragkvv1.ChunkRef{Namespace: ns, Ref: &ragkvv1.ChunkRef_Key{Key: key}}
}

func cacheHuman(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f, i = f/1024, i+1
	}
	if i == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

func newCacheStatsCmd() *cobra.Command {
	var cf cacheClientFlags
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Per-tier usage and counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, done, ctx, err := cf.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			st, err := cl.Stats(ctx, &ragkvv1.ChunkCacheStatsRequest{})
			if err != nil {
				return cacheRPCErr("stats", err)
			}
			w := cmd.OutOrStdout()
			if cf.json {
				return cliutil.PrintJSON(w, st)
			}
			fmt.Fprintf(w, "chunks: %d   namespaces: %s\n", st.Chunks, strings.Join(st.Namespaces, ", "))
			tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIER\tUSED\tCAPACITY\tENTRIES\tHITS\tMISSES\tEVICTIONS\tADMISSIONS\tREJECTED\tPROMOTED\tDEMOTED\tPINNED\tBYTES/TOKEN")
			for _, t := range st.Tiers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.0f\n", t.Name, cacheHuman(t.Bytes), cacheHuman(t.CapacityBytes),
					t.Entries, t.Hits, t.Misses, t.Evictions, t.Admissions, t.Rejections, t.Promotions, t.Demotions, cacheHuman(t.PinnedBytes), t.BytesPerToken)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			return printNamespaceStats(w, st.GetNamespaceStats())
		},
	}
	cf.register(cmd, false)
	return cmd
}

func newCacheLookupCmd() *cobra.Command {
	var cf cacheClientFlags
	cmd := &cobra.Command{
		Use:   "lookup KEY...",
		Short: "Which chunks are present, and in which tier (nothing is loaded)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &ragkvv1.ChunkLookupRequest{Namespace: cf.namespace}
			for _, a := range args {
				k, err := cacheParseKey(a)
				if err != nil {
					return err
				}
				req.Keys = append(req.Keys, k)
			}
			cl, done, ctx, err := cf.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := cl.Lookup(ctx, req)
			if err != nil {
				return cacheRPCErr("lookup", err)
			}
			if cf.json {
				type row struct {
					Key     string   `json:"key"`
					Present bool     `json:"present"`
					Tier    string   `json:"tier,omitempty"`
					Tiers   []string `json:"tiers,omitempty"`
					Bytes   uint64   `json:"stored_bytes,omitempty"`
					Pin     string   `json:"pin,omitempty"`
				}
				out := struct {
					Results []row `json:"results"`
				}{}
				for _, r := range res.Results {
					out.Results = append(out.Results, row{hex.EncodeToString(r.Key), r.Present, r.Tier, r.Tiers, r.StoredBytes, cachePinName(r.Pin)})
				}
				return cliutil.PrintJSON(os.Stdout, out)
			}
			for _, r := range res.Results {
				if r.Present {
					fmt.Printf("%x  %-7s %s  %s  pin=%s\n", r.Key, r.Tier, strings.Join(r.Tiers, "+"), cacheHuman(r.StoredBytes), cachePinName(r.Pin))
				} else {
					fmt.Printf("%x  absent\n", r.Key)
				}
			}
			return nil
		},
	}
	cf.register(cmd, true)
	return cmd
}

func cachePinName(p ragkvv1.ChunkPin) string {
	switch p {
	case ragkvv1.ChunkPin_CHUNK_PIN_SOFT:
		return "soft"
	case ragkvv1.ChunkPin_CHUNK_PIN_HARD:
		return "hard"
	}
	return "none"
}

func cacheDTypeName(d ragkvv1.ChunkKVDType) string {
	return chunkcache.DType(d).String()
}

func newCacheGetCmd() *cobra.Command {
	var cf cacheClientFlags
	var layersFlag, out string
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Stream a chunk layer by layer; check its CRCs; optionally write it as a KV blob file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := cacheParseKey(args[0])
			if err != nil {
				return err
			}
			var layers []uint32
			if layersFlag != "" {
				for _, s := range strings.Split(layersFlag, ",") {
					v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
					if err != nil {
						return flagErr("layers", "bad layer %q", s)
					}
					layers = append(layers, uint32(v))
				}
			}
			if out != "" && len(layers) > 0 {
				return flagErr("out", "a blob file needs every layer; drop --layers")
			}
			cl, done, ctx, err := cf.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			start := time.Now()
			st, err := cl.GetChunk(ctx, &ragkvv1.GetChunkRequest{Chunk: cacheKeyRef(cf.namespace, key), Layers: layers})
			if err != nil {
				return cacheRPCErr("get", err)
			}
			var info *ragkvv1.ChunkInfo
			var sections [][]byte
			var firstLayer time.Duration
			var bytesRecv uint64
			for {
				m, err := st.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return cacheRPCErr("get", err)
				}
				if m.GetInfo() != nil {
					info = m.GetInfo()
					continue
				}
				f := m.GetLayer()
				if len(sections) == 0 {
					firstLayer = time.Since(start)
				}
				sec := append(append(append(append([]byte(nil), f.K...), f.V...), f.KScales...), f.VScales...)
				if f.Crc32C != nil && chunkcache.Checksum(sec) != f.GetCrc32C() {
					return fmt.Errorf("get: layer %d failed its CRC check", f.Layer)
				}
				bytesRecv += uint64(len(sec))
				sections = append(sections, sec)
			}
			if info == nil {
				return errors.New("get: the server sent no chunk info")
			}
			total := time.Since(start)
			if out != "" {
				l := info.Layout
				h := chunkcache.BlobHeader{
					Layout: chunkcache.Layout{Layers: int(l.Layers), KVHeads: int(l.KvHeads), HeadDim: int(l.HeadDim),
						DType: chunkcache.DType(l.Dtype), KScale: chunkcache.ScaleMode(l.KScale), VScale: chunkcache.ScaleMode(l.VScale),
						Group: int(l.Group), Rotate: l.Rotate, HiBits: int(l.HiBits), MixCentibits: int(l.MixCentibits)},
					Tokens: len(info.TokenIds), PositionBase: info.PositionBase, PreRoPE: info.KPreRope,
				}
				blob, err := chunkcache.EncodeBlob(h, sections)
				if err != nil {
					return fmt.Errorf("get: %w", err)
				}
				if err := os.WriteFile(out, blob, 0o644); err != nil {
					return flagErr("out", "%v", err)
				}
			}
			metaKeys := make([]string, 0, len(info.Metadata))
			for k := range info.Metadata {
				metaKeys = append(metaKeys, k)
			}
			res := map[string]any{
				"key": hex.EncodeToString(info.Key), "namespace": info.Namespace, "tier": info.Tier,
				"layers": info.Layout.Layers, "kv_heads": info.Layout.KvHeads, "head_dim": info.Layout.HeadDim,
				"dtype": cacheDTypeName(info.Layout.Dtype), "tokens": len(info.TokenIds), "position_base": info.PositionBase,
				"layers_received": len(sections), "bytes_received": bytesRecv, "crc_ok": true,
				"metadata_keys": metaKeys, "pin": cachePinName(info.Pin), "model": info.Model,
				"first_layer_ms": float64(firstLayer.Microseconds()) / 1000, "total_ms": float64(total.Microseconds()) / 1000,
			}
			if out != "" {
				res["out"] = out
			}
			if cf.json {
				return cliutil.PrintJSON(os.Stdout, res)
			}
			fmt.Printf("chunk %x (namespace %s) from %s: %d layers × %d kv heads × %d head dim, %s, %d tokens at position %d\n",
				info.Key, info.Namespace, info.Tier, info.Layout.Layers, info.Layout.KvHeads, info.Layout.HeadDim,
				cacheDTypeName(info.Layout.Dtype), len(info.TokenIds), info.PositionBase)
			fmt.Printf("received %d layers, %s, CRCs ok; first layer after %v, all after %v\n", len(sections), cacheHuman(bytesRecv), firstLayer.Round(time.Microsecond), total.Round(time.Microsecond))
			if len(metaKeys) > 0 {
				fmt.Printf("metadata: %s\n", strings.Join(metaKeys, ", "))
			}
			if out != "" {
				fmt.Printf("wrote %s\n", out)
			}
			return nil
		},
	}
	cf.register(cmd, true)
	cmd.Flags().StringVar(&layersFlag, "layers", "", "comma-separated layer indexes, ascending (default: all)")
	cmd.Flags().StringVar(&out, "out", "", "write the chunk as a KV blob file")
	return cmd
}

func newCachePutCmd() *cobra.Command {
	var cf cacheClientFlags
	var (
		in, arch, weights, tokDigest, ropeStyle, tokensFlag, dtypeFlag, pinFlag string
		ropeTheta                                                               float64
		layers, kvHeads, headDim, tokenCount                                    int
		positionBase                                                            int64
		seed                                                                    uint64
		meta                                                                    []string
	)
	var preRoPE bool // from the --in blob's header
	cmd := &cobra.Command{
		Use:   "put",
		Short: "Store a chunk from a KV blob file (--in) or synthetic random KV (for trying the service)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if weights == "" {
				return flagErr("weights-digest", "required: it identifies the model whose KV this is")
			}
			var toks []uint32
			if tokensFlag != "" {
				for _, s := range strings.Split(tokensFlag, ",") {
					v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
					if err != nil {
						return flagErr("tokens", "bad token id %q", s)
					}
					toks = append(toks, uint32(v))
				}
			} else {
				for i := 0; i < tokenCount; i++ {
					toks = append(toks, uint32(i))
				}
			}
			if len(toks) == 0 {
				return flagErr("tokens", "empty token list")
			}
			var layout chunkcache.Layout
			var sections [][]byte
			if in != "" {
				b, err := os.ReadFile(in)
				if err != nil {
					return flagErr("in", "%v", err)
				}
				h, secs, err := chunkcache.DecodeBlob(b)
				if err != nil {
					return flagErr("in", "%s: %v", in, err)
				}
				if h.Tokens != len(toks) {
					return flagErr("tokens", "%d token ids for a %d-token blob", len(toks), h.Tokens)
				}
				layout, sections, positionBase, preRoPE = h.Layout, secs, h.PositionBase, h.PreRoPE
			} else {
				dt, err := chunkcache.ParseDType(dtypeFlag)
				if err != nil {
					return flagErr("dtype", "%v", err)
				}
				layout = chunkcache.Layout{Layers: layers, KVHeads: kvHeads, HeadDim: headDim, DType: dt}
				layout.EnsureDefaults()
				if err := layout.Validate(); err != nil {
					return flagErr("layers", "%v", err)
				}
				r := rand.New(rand.NewPCG(seed, 1))
				n := layout.Elems(len(toks))
				k, v := make([]float32, n), make([]float32, n)
				for l := 0; l < layers; l++ {
					for i := range k {
						k[i], v[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
					}
					s, err := layout.AppendLayer(nil, len(toks), k, v)
					if err != nil {
						return err
					}
					sections = append(sections, s)
				}
			}
			md := map[string][]byte{}
			for _, kv := range meta {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return flagErr("meta", "want key=value, got %q", kv)
				}
				md[k] = []byte(v)
			}
			pin := ragkvv1.ChunkPin_CHUNK_PIN_UNPINNED
			switch pinFlag {
			case "", "none":
			case "soft":
				pin = ragkvv1.ChunkPin_CHUNK_PIN_SOFT
			case "hard":
				pin = ragkvv1.ChunkPin_CHUNK_PIN_HARD
			default:
				return flagErr("pin", "want none, soft or hard, got %q", pinFlag)
			}
			h := &ragkvv1.ChunkPutHeader{
				Namespace: cf.namespace, TokenIds: toks, PositionBase: positionBase, KPreRope: preRoPE, Metadata: md, Pin: pin,
				Model: &ragkvv1.ChunkModelFingerprint{Architecture: arch, WeightsDigest: weights, TokenizerDigest: tokDigest,
					Rope: &ragkvv1.ChunkRoPEConfig{Theta: ropeTheta, Style: ropeStyle}},
				Layout: server.LayoutToProto(layout),
			}
			cl, done, ctx, err := cf.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			st, err := cl.PutChunk(ctx)
			if err != nil {
				return cacheRPCErr("put", err)
			}
			send := func(m *ragkvv1.PutChunkRequest) error {
				if err := st.Send(m); err != nil && !errors.Is(err, io.EOF) {
					return cacheRPCErr("put", err)
				}
				return nil
			}
			if err := send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Header{Header: h}}); err != nil {
				return err
			}
			for i, s := range sections {
				p, err := layout.Split(s, len(toks))
				if err != nil {
					return err
				}
				crc := chunkcache.Checksum(s)
				f := &ragkvv1.ChunkLayerFrame{Layer: uint32(i), K: p.K, V: p.V, KScales: p.KScales, VScales: p.VScales, Crc32C: &crc}
				if err := send(&ragkvv1.PutChunkRequest{Msg: &ragkvv1.PutChunkRequest_Layer{Layer: f}}); err != nil {
					return err
				}
			}
			res, err := st.CloseAndRecv()
			if err != nil {
				return cacheRPCErr("put", err)
			}
			if cf.json {
				return cliutil.PrintJSON(os.Stdout, map[string]any{"key": hex.EncodeToString(res.Key), "tiers": res.Tiers,
					"admitted": res.Admitted, "stored_bytes": res.StoredBytes})
			}
			if !res.Admitted {
				fmt.Printf("%x not admitted (every tier's admission filter preferred its current chunks)\n", res.Key)
				return nil
			}
			fmt.Printf("%x stored in %s (%s)\n", res.Key, strings.Join(res.Tiers, ", "), cacheHuman(res.StoredBytes))
			return nil
		},
	}
	cf.register(cmd, true)
	f := cmd.Flags()
	f.StringVar(&in, "in", "", "KV blob file to store (e.g. written by `ragkv cache get --out`)")
	f.StringVar(&arch, "arch", "llama", "model architecture")
	f.StringVar(&weights, "weights-digest", "", "model weights digest (required)")
	f.StringVar(&tokDigest, "tokenizer-digest", "", "tokenizer digest")
	f.Float64Var(&ropeTheta, "rope-theta", 10000, "RoPE base frequency")
	f.StringVar(&ropeStyle, "rope-style", "interleaved", "RoPE pairing: interleaved or half")
	f.StringVar(&tokensFlag, "tokens", "", "comma-separated token ids")
	f.IntVar(&tokenCount, "token-count", 16, "without --tokens: use token ids 0..n-1")
	f.IntVar(&layers, "layers", 4, "synthetic: layers")
	f.IntVar(&kvHeads, "kv-heads", 4, "synthetic: KV heads")
	f.IntVar(&headDim, "head-dim", 64, "synthetic: head dim")
	f.StringVar(&dtypeFlag, "dtype", "f16", "synthetic: stored dtype (f32, f16, bf16, int8)")
	f.Uint64Var(&seed, "seed", 1, "synthetic: random seed")
	f.Int64Var(&positionBase, "position-base", 0, "synthetic: position of the first token")
	f.StringArrayVar(&meta, "meta", nil, "metadata key=value (repeatable)")
	f.StringVar(&pinFlag, "pin", "", "pin at put time: soft or hard")
	return cmd
}

func newCacheDeleteCmd() *cobra.Command {
	var cf cacheClientFlags
	cmd := &cobra.Command{
		Use:   "delete KEY",
		Short: "Delete a chunk from every tier",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := cacheParseKey(args[0])
			if err != nil {
				return err
			}
			cl, done, ctx, err := cf.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := cl.DeleteChunk(ctx, &ragkvv1.DeleteChunkRequest{Chunk: cacheKeyRef(cf.namespace, key)})
			if err != nil {
				return cacheRPCErr("delete", err)
			}
			if cf.json {
				return cliutil.PrintJSON(os.Stdout, map[string]any{"key": args[0], "freed_bytes": res.FreedBytes})
			}
			fmt.Printf("deleted %s (%s freed)\n", args[0], cacheHuman(res.FreedBytes))
			return nil
		},
	}
	cf.register(cmd, true)
	return cmd
}

func newCachePinCmd(pin bool) *cobra.Command {
	var cf cacheClientFlags
	var soft bool
	use, short := "pin KEY", "Pin a chunk (hard: never evicted; --soft: evicted last)"
	if !pin {
		use, short = "unpin KEY", "Make a chunk evictable again"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := cacheParseKey(args[0])
			if err != nil {
				return err
			}
			cl, done, ctx, err := cf.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			state := "none"
			if pin {
				p := ragkvv1.ChunkPin_CHUNK_PIN_HARD
				if soft {
					p = ragkvv1.ChunkPin_CHUNK_PIN_SOFT
				}
				res, err := cl.Pin(ctx, &ragkvv1.PinChunkRequest{Chunk: cacheKeyRef(cf.namespace, key), Pin: p})
				if err != nil {
					return cacheRPCErr("pin", err)
				}
				state = cachePinName(res.Pin)
			} else if _, err := cl.Unpin(ctx, &ragkvv1.UnpinChunkRequest{Chunk: cacheKeyRef(cf.namespace, key)}); err != nil {
				return cacheRPCErr("unpin", err)
			}
			if cf.json {
				return cliutil.PrintJSON(os.Stdout, map[string]any{"key": args[0], "pin": state})
			}
			fmt.Printf("%s pin=%s\n", args[0], state)
			return nil
		},
	}
	cf.register(cmd, true)
	if pin {
		cmd.Flags().BoolVar(&soft, "soft", false, "soft pin: evicted only when no unpinned chunk is left")
	}
	return cmd
}

func newCachePolicyCmd() *cobra.Command {
	var cf cacheClientFlags
	var tier, policy, admission, capacity string
	var high, low float64
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show, or change at run time (--tier with --policy/--admission/--capacity/--*-watermark), each tier's eviction settings",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fl := cmd.Flags()
			u := &ragkvv1.ChunkTierPolicyUpdate{Tier: tier}
			change := false
			if fl.Changed("policy") {
				u.Policy, change = &policy, true
			}
			if fl.Changed("admission") {
				u.Admission, change = &admission, true
			}
			if fl.Changed("capacity") {
				n, err := parseCacheBytes(capacity)
				if err != nil {
					return flagErr("capacity", "%v", err)
				}
				c := uint64(n)
				u.CapacityBytes, change = &c, true
			}
			if fl.Changed("high-watermark") {
				u.HighWatermark, change = &high, true
			}
			if fl.Changed("low-watermark") {
				u.LowWatermark, change = &low, true
			}
			if change && tier == "" {
				return flagErr("tier", "required with a change (memory or disk)")
			}
			cl, done, ctx, err := cf.dial(cmd)
			if err != nil {
				return err
			}
			defer done()
			var pol *ragkvv1.ChunkPolicy
			if change {
				pol, err = cl.SetPolicy(ctx, &ragkvv1.SetChunkPolicyRequest{Tiers: []*ragkvv1.ChunkTierPolicyUpdate{u}})
			} else {
				pol, err = cl.GetPolicy(ctx, &ragkvv1.GetChunkPolicyRequest{})
			}
			if err != nil {
				return cacheRPCErr("policy", err)
			}
			if cf.json {
				return cliutil.PrintJSON(os.Stdout, pol)
			}
			tw := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIER\tPOLICY\tADMISSION\tCAPACITY\tHIGH\tLOW")
			for _, t := range pol.Tiers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%g\t%g\n", t.Tier, t.Policy, t.Admission, cacheHuman(t.CapacityBytes), t.HighWatermark, t.LowWatermark)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Printf("policies: %s; admission: %s\n", strings.Join(pol.AvailablePolicies, ", "), strings.Join(pol.AvailableAdmissions, ", "))
			return nil
		},
	}
	cf.register(cmd, false)
	f := cmd.Flags()
	f.StringVar(&tier, "tier", "", "tier to change: memory or disk")
	f.StringVar(&policy, "policy", "", "eviction policy: "+strings.Join(eviction.Policies(), ", "))
	f.StringVar(&admission, "admission", "", "admission filter: none or tinylfu")
	f.StringVar(&capacity, "capacity", "", "byte budget (e.g. 2GiB); shrinking evicts")
	f.Float64Var(&high, "high-watermark", 1, "evict when usage would exceed this fraction")
	f.Float64Var(&low, "low-watermark", 1, "evict down to this fraction")
	return cmd
}
