package chunkcache

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ragkv/ragkv/chunkcache/eviction"
	"github.com/ragkv/ragkv/chunkcache/internal/kvblob"
)

// Sentinel errors. Every error the package returns wraps one of these (or a context
// error); server/chunkcache.go maps them to gRPC codes.
var (
	// ErrInvalid: a bad argument (layout, dtype, empty token list, frame out of order,
	// a K/V size that does not match the layout, bad namespace name, ...).
	ErrInvalid = errors.New("chunkcache: invalid argument")
	// ErrNotFound: no such chunk in the namespace.
	ErrNotFound = errors.New("chunkcache: chunk not found")
	// ErrUnknownNamespace: the namespace is neither configured nor has it been used.
	ErrUnknownNamespace = errors.New("chunkcache: unknown namespace")
	// ErrTooLarge: the chunk exceeds Options.MaxChunkBytes.
	ErrTooLarge = errors.New("chunkcache: chunk too large")
	// ErrCorrupt: a stored chunk failed its checksum or could not be parsed.
	ErrCorrupt = errors.New("chunkcache: stored chunk is corrupt")
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("chunkcache: closed")
	// ErrUnknownTier: a policy update names a tier the cache does not have.
	ErrUnknownTier = errors.New("chunkcache: unknown tier")

	// ErrNoSpace (from the eviction package): no tier can make room without evicting
	// hard-pinned chunks, or the chunk is larger than every tier.
	ErrNoSpace = eviction.ErrNoSpace
	// ErrUnknownPolicy (from the eviction package): an unknown policy or admission
	// filter name.
	ErrUnknownPolicy = eviction.ErrUnknownPolicy
	// ErrInvalidPolicy (from the eviction package): a bad capacity or watermark.
	ErrInvalidPolicy = eviction.ErrInvalid
)

// DType is the stored element type of K/V values.
type DType = kvblob.DType

// DTypes.
const (
	F32  = kvblob.F32
	F16  = kvblob.F16
	BF16 = kvblob.BF16
	Int8 = kvblob.Int8
	// Q4, Q2 and Mixed are the grouped low-bit dtypes (KIVI-style grouping, optional
	// Hadamard rotation, token-importance mixed precision); see kvblob's doc.
	Q4    = kvblob.Q4
	Q2    = kvblob.Q2
	Mixed = kvblob.Mixed
)

// DefaultGroup is the default group size of the grouped dtypes.
const DefaultGroup = kvblob.DefaultGroup

// ParseDType parses "f32", "f16", "bf16", "int8", "q4", "q2" or "mixed".
func ParseDType(s string) (DType, error) {
	d, err := kvblob.ParseDType(s)
	return d, asInvalid(err)
}

// ParseFormat parses a storage format, a dtype with options: "q4", "q2r" (rotated),
// "q4:group=64", "mixed:bits=2.5,hi=4". The returned Layout has only its encoding
// fields set; apply it to a shape with Layout.WithFormat.
func ParseFormat(s string) (Layout, error) {
	l, err := kvblob.ParseFormat(s)
	return l, asInvalid(err)
}

// asInvalid rewraps a kvblob argument error as ErrInvalid, keeping its message; a
// kvblob corruption error becomes ErrCorrupt.
func asInvalid(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kvblob.ErrInvalid):
		return fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), kvblob.ErrInvalid.Error()+": "))
	case errors.Is(err, kvblob.ErrCorrupt):
		return fmt.Errorf("%w: %s", ErrCorrupt, strings.TrimPrefix(err.Error(), kvblob.ErrCorrupt.Error()+": "))
	}
	return err
}

// ScaleMode says how int8 values are scaled (per token or per channel).
type ScaleMode = kvblob.ScaleMode

// Scale modes.
const (
	ScaleNone       = kvblob.ScaleNone
	ScalePerToken   = kvblob.ScalePerToken
	ScalePerChannel = kvblob.ScalePerChannel
)

// Layout is the shape and encoding of a chunk's KV: layers, KV heads, head dim, dtype
// and (int8) scale modes.
type Layout = kvblob.Layout
