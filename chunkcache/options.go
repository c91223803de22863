package chunkcache

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/store"
)

// TierConfig is one level of the cache.
type TierConfig struct {
	// Tier stores the bytes. The Cache owns it from New on and closes it in Close.
	Tier store.Tier
	// Eviction configures the tier's tracker (policy, admission, capacity,
	// watermarks).
	Eviction eviction.Config
	// WriteThrough makes every put write this tier too, not only the first tier, so
	// that an acknowledged chunk is durable. Set it on the persistent tier.
	WriteThrough bool
	// Format, if its DType is set, is the KV format of the chunks this tier stores
	// (e.g. f16 in RAM and q4 on disk): a put, write-through copy or demotion into the
	// tier re-encodes a chunk stored in another format (decoded to float32, then
	// encoded; Mixed ranks tokens by key norm). A promotion into the first tier
	// re-encodes into the first tier's format. Zero: chunks are kept as written. The
	// chunk's key (its identity) does not change. Set it with ParseFormat; the shape
	// fields are ignored.
	Format Layout
	// Quotas bound namespaces' bytes in this tier (namespace → bytes; summing to at
	// most the capacity). A namespace at its quota evicts its own least recently used
	// chunks (in this tier: they are demoted as any victim) before a put, demotion or
	// promotion of its own; no other namespace's operation evicts its chunks. A chunk
	// that cannot fit in its namespace's quota (larger than it, or the rest
	// hard-pinned) is not stored in the tier: a put fails with ErrNoSpace when no tier
	// took it (with a quota-less write-through disk tier it lands on disk only).
	// Namespaces without a quota share the rest under the tier's policy. Not for the
	// shared tier.
	Quotas map[string]int64
	// NamespaceFormats overrides Format for the chunks of these namespaces (e.g. q2 on
	// disk for a large, rarely read namespace); a zero Layout keeps them as written.
	NamespaceFormats map[string]Layout
}

// A tier implementing store.SharedTier (the Redis remote tier) must be the last one;
// its Eviction and WriteThrough are ignored: every put writes it, and its store evicts
// by its own policy (see the package doc, "Shared tier").

// Options configures a Cache.
type Options struct {
	// Tiers, fastest first (e.g. memory, disk). At least one.
	Tiers []TierConfig
	// MaxChunkBytes bounds one chunk (layer sections plus manifest). Default 1 GiB.
	MaxChunkBytes int64
	// Namespaces that exist from the start (default: just DefaultNamespace). Others
	// come into existence with their first put, or when found on disk at startup.
	Namespaces []string
	// StrictNamespaces rejects puts to namespaces that are not in Namespaces (or on
	// disk) with ErrUnknownNamespace, instead of creating them.
	StrictNamespaces bool
	// DisablePromotion stops copying a chunk read in full from a lower tier into the
	// first tier.
	DisablePromotion bool
	// VerifyMemoryReads checks layer CRCs on reads from non-persistent tiers too
	// (reads from persistent tiers are always checked).
	VerifyMemoryReads bool
	// EventLogSize is how many chunk events (see Watch) are kept for watchers that
	// resume (default 65536; negative: no event log).
	EventLogSize int
	// Keyer derives every key of the cache (default PublicKeyer: salts from the
	// namespace names alone). `ragkv serve` gives one over the data directory's salt
	// secret (OpenKeyer), so clients cannot compute keys; Cache.Key is the one way in.
	Keyer *Keyer
	// DropForeignChunks makes New delete chunks that a persistent tier stores under a
	// salt secret other than Keyer's (current or retired) instead of failing with
	// ErrForeignChunks. Chunks under a retired secret (a rotation whose sweep a crash
	// cut short) or under public salts (a data directory from before salt secrets) are
	// always deleted.
	DropForeignChunks bool
	// Logger (default slog.Default()) and Registerer (nil: no metrics).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// EnsureDefaults fills in zero fields (including each tier's eviction defaults).
func (o *Options) EnsureDefaults() {
	if o.MaxChunkBytes == 0 {
		o.MaxChunkBytes = 1 << 30
	}
	if len(o.Namespaces) == 0 {
		o.Namespaces = []string{DefaultNamespace}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Keyer == nil {
		o.Keyer = PublicKeyer()
	}
	if o.EventLogSize == 0 {
		o.EventLogSize = 1 << 16
	}
	for i := range o.Tiers {
		o.Tiers[i].Eviction.EnsureDefaults()
	}
}

// Validate checks the options.
func (o *Options) Validate() error {
	if len(o.Tiers) == 0 {
		return fmt.Errorf("%w: no tiers", ErrInvalid)
	}
	names := map[string]bool{}
	for i, t := range o.Tiers {
		if t.Tier == nil {
			return fmt.Errorf("%w: tier %d is nil", ErrInvalid, i)
		}
		if names[t.Tier.Name()] {
			return fmt.Errorf("%w: two tiers named %q", ErrInvalid, t.Tier.Name())
		}
		names[t.Tier.Name()] = true
		if st, ok := t.Tier.(store.SharedTier); ok && st.Shared() {
			if i != len(o.Tiers)-1 {
				return fmt.Errorf("%w: shared tier %q must be the last tier", ErrInvalid, t.Tier.Name())
			}
			if i == 0 {
				return fmt.Errorf("%w: shared tier %q needs a local tier above it", ErrInvalid, t.Tier.Name())
			}
			continue // the store evicts by its own policy
		}
		if err := t.Eviction.Validate(); err != nil {
			return fmt.Errorf("tier %s: %w", t.Tier.Name(), err)
		}
	}
	if o.MaxChunkBytes <= 0 {
		return fmt.Errorf("%w: max chunk bytes %d", ErrInvalid, o.MaxChunkBytes)
	}
	for _, ns := range o.Namespaces {
		if _, err := NormalizeNamespace(ns); err != nil {
			return err
		}
	}
	return nil
}

// Policies lists the eviction policy names.
func Policies() []string { return eviction.Policies() }

// Admissions lists the admission filter names.
func Admissions() []string { return eviction.Admissions() }
