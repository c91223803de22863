package store

import (
	"context"
	"errors"
	"fmt"
)

var (
	// ErrNotFound means the tier holds no object under the key.
	ErrNotFound = errors.New("store: object not found")
	// ErrClosed means the tier was closed.
	ErrClosed = errors.New("store: tier closed")
	// ErrInvalid means an object that cannot be stored (too many parts, oversized
	// manifest) or a part index out of range.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrCorrupt means a stored record could not be parsed.
	ErrCorrupt = errors.New("store: corrupt record")
	// ErrNoSpace means a tier could not keep an object (the remote tier: Redis evicted
	// a part of a put before it committed).
	ErrNoSpace = errors.New("store: no space")
)

// Key is an object's 32-byte content key.
type Key = [32]byte

// Bounds on objects.
const (
	MaxParts         = 1 << 16
	MaxManifestBytes = 16 << 20
)

// Object is what a tier stores under one key.
type Object struct {
	// Manifest is small and read whole when the object is opened.
	Manifest []byte
	// Parts are read one at a time.
	Parts [][]byte
}

// Size is the object's size in bytes: manifest plus parts. The chunk cache accounts
// this size against the tier's budget.
func (o *Object) Size() int64 {
	n := int64(len(o.Manifest))
	for _, p := range o.Parts {
		n += int64(len(p))
	}
	return n
}

// Validate checks the object's bounds.
func (o *Object) Validate() error {
	if len(o.Parts) > MaxParts {
		return fmt.Errorf("%w: %d parts (max %d)", ErrInvalid, len(o.Parts), MaxParts)
	}
	if len(o.Manifest) > MaxManifestBytes {
		return fmt.Errorf("%w: manifest of %d bytes (max %d)", ErrInvalid, len(o.Manifest), MaxManifestBytes)
	}
	return nil
}

// Info describes a stored object without its parts.
type Info struct {
	Key      Key
	Size     int64 // Object.Size
	Parts    int
	Manifest []byte // owned by the callee of Scan's callback only during the call
}

// Tier is one storage level (host RAM, local disk, later GPU memory or a remote
// store).
//
// Concurrency: every method is safe for concurrent use. Operations on one key are
// linearizable: after Put returns, Open sees the new object; after Delete returns, Open
// returns ErrNotFound. A Reader is a snapshot: it keeps reading the object it opened
// even if the key is deleted or overwritten meanwhile.
//
// Ownership: Put may retain obj's byte slices (the memory tier keeps them as they
// are); the caller must not modify them after Put returns, whether or not Put
// succeeded. Slices returned by a Reader are the caller's (ReadPart copies into the
// caller's buffer), except where an optional interface says otherwise (PartViewer).
type Tier interface {
	// Name is a short lower-case name ("memory", "disk"), used in stats and metrics.
	Name() string
	// Persistent reports whether objects survive a restart of the process.
	Persistent() bool
	// Put stores obj under key atomically, replacing any previous object: readers see
	// either the old object or the whole new one, never a mix or a part of it.
	Put(ctx context.Context, key Key, obj Object) error
	// Open returns a reader of the object under key, or ErrNotFound.
	Open(ctx context.Context, key Key) (Reader, error)
	// Has reports whether an object is stored under key.
	Has(ctx context.Context, key Key) (bool, error)
	// Delete removes the object under key; ErrNotFound if there is none.
	Delete(ctx context.Context, key Key) error
	// Scan calls fn for every stored object (in no particular order) until fn
	// returns an error, which Scan then returns.
	Scan(ctx context.Context, fn func(Info) error) error
	// Close releases the tier. Readers must be closed first.
	Close() error
}

// Reader reads one stored object. It is not safe for concurrent use; Close it when
// done (it may pin a snapshot).
type Reader interface {
	// Manifest is the object's manifest, valid until Close.
	Manifest() []byte
	// NumParts is the number of parts.
	NumParts() int
	// PartSize is the size of part i.
	PartSize(i int) int64
	// ReadPart copies part i into dst (grown when its capacity is too small) and
	// returns the filled slice.
	ReadPart(ctx context.Context, i int, dst []byte) ([]byte, error)
	// Size is the object's size (Object.Size).
	Size() int64
	Close() error
}

// SharedTier is implemented by tiers that other processes read and write too (the
// remote tier): the chunk cache does not budget or track what they hold, it asks them.
type SharedTier interface {
	Tier
	// Shared returns true.
	Shared() bool
	// HasMany is Has for many keys in one round trip.
	HasMany(ctx context.Context, keys []Key) ([]bool, error)
}

// PartViewer is implemented by readers that can expose a part without copying (the
// memory tier). The returned slice must not be modified; it stays valid (and
// unchanged) even after the object is deleted, until the garbage collector frees it.
type PartViewer interface {
	ViewPart(i int) ([]byte, error)
}
