package eviction

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Key is a chunk's content key (SHA-256 based; see package chunkcache).
type Key = [32]byte

// Pin protects an entry from eviction.
type Pin uint8

const (
	// Unpinned entries are evicted in the order the policy chooses.
	Unpinned Pin = iota
	// SoftPin entries are evicted only when no unpinned entry is left (least recently
	// used soft-pinned entry first).
	SoftPin
	// HardPin entries are never evicted; Reserve fails with ErrNoSpace instead.
	HardPin
)

// String returns "unpinned", "soft" or "hard".
func (p Pin) String() string {
	switch p {
	case Unpinned:
		return "unpinned"
	case SoftPin:
		return "soft"
	case HardPin:
		return "hard"
	}
	return fmt.Sprintf("Pin(%d)", uint8(p))
}

var (
	// ErrNoSpace means room cannot be made without evicting hard-pinned entries, or the
	// entry is larger than the capacity.
	ErrNoSpace = errors.New("eviction: no evictable space")
	// ErrNotAdmitted means the admission filter preferred the entries already cached.
	ErrNotAdmitted = errors.New("eviction: rejected by admission filter")
	// ErrUnknownPolicy means a policy or admission name is not one of Policies() or
	// Admissions().
	ErrUnknownPolicy = errors.New("eviction: unknown policy")
	// ErrInvalid means a bad argument: a negative size, a negative or NaN cost, a
	// non-positive capacity, watermarks outside 0 < low ≤ high ≤ 1, or an unknown pin.
	ErrInvalid = errors.New("eviction: invalid argument")
)

// Policy names.
const (
	PolicyLRU    = "lru"    // least recently used
	PolicyLFU    = "lfu"    // least frequently used with dynamic aging (LFU-DA)
	PolicyS3FIFO = "s3fifo" // S3-FIFO: small FIFO, main FIFO, ghost queue
	PolicyGDSF   = "gdsf"   // Greedy-Dual-Size-Frequency: cost per byte with aging
	// PolicyWTinyLFU is W-TinyLFU: window LRU + TinyLFU-filtered segmented LRU.
	PolicyWTinyLFU = "wtinylfu"
	PolicyFIFO     = "fifo"  // first in, first out (hits change nothing)
	PolicySIEVE    = "sieve" // SIEVE: FIFO with a visited bit and a moving hand
	PolicyARC      = "arc"   // ARC: adaptive recency/frequency lists with ghosts
	PolicyLIRS     = "lirs"  // LIRS: inter-reference recency stack
)

// Admission filter names.
const (
	AdmissionNone    = "none"
	AdmissionTinyLFU = "tinylfu"
)

// DefaultPolicy is the policy used when Config.Policy is empty.
const DefaultPolicy = PolicyLRU

var policyNames = []string{PolicyLRU, PolicyLFU, PolicyS3FIFO, PolicyGDSF, PolicyWTinyLFU, PolicyFIFO, PolicySIEVE, PolicyARC, PolicyLIRS}

// Policies returns the eviction policy names, for CLI help and validation.
func Policies() []string { return append([]string(nil), policyNames...) }

// Admissions returns the admission filter names ("none", "tinylfu").
func Admissions() []string { return []string{AdmissionNone, AdmissionTinyLFU} }

// Config of one tier's tracker.
//
// Policy is one of Policies() ("" means DefaultPolicy). Admission is "" or "none" (admit
// everything) or "tinylfu". Capacity is in bytes (> 0). When usage after an insert
// would exceed HighWatermark·Capacity, entries are evicted until usage is at most
// LowWatermark·Capacity. Zero watermarks take defaults: High 1.0, Low = High (evict
// just enough).
type Config struct {
	Policy        string  `yaml:"policy" json:"policy"`
	Admission     string  `yaml:"admission" json:"admission"`
	Capacity      int64   `yaml:"capacity" json:"capacity"`
	HighWatermark float64 `yaml:"high_watermark" json:"high_watermark"`
	LowWatermark  float64 `yaml:"low_watermark" json:"low_watermark"`
	// Probation is the share of Capacity that probationary entries (one-off chunks
	// computed on the fly) may take from the policy's entries before they evict only
	// each other; 0 means DefaultProbation.
	Probation float64 `yaml:"probation" json:"probation"`
}

// DefaultProbation is the default Config.Probation: a tenth of the tier.
const DefaultProbation = 0.1

// EnsureDefaults fills in zero fields and normalizes names to lower case.
func (c *Config) EnsureDefaults() {
	c.Policy = strings.ToLower(strings.TrimSpace(c.Policy))
	if c.Policy == "" {
		c.Policy = DefaultPolicy
	}
	c.Admission = strings.ToLower(strings.TrimSpace(c.Admission))
	if c.Admission == "" {
		c.Admission = AdmissionNone
	}
	if c.HighWatermark == 0 {
		c.HighWatermark = 1
	}
	if c.LowWatermark == 0 {
		c.LowWatermark = c.HighWatermark
	}
	if c.Probation == 0 {
		c.Probation = DefaultProbation
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if !validPolicy(c.Policy) {
		return fmt.Errorf("%w %q (want one of %s)", ErrUnknownPolicy, c.Policy, strings.Join(policyNames, ", "))
	}
	if !validAdmission(c.Admission) {
		return fmt.Errorf("%w: admission %q (want none or tinylfu)", ErrUnknownPolicy, c.Admission)
	}
	if c.Capacity <= 0 {
		return fmt.Errorf("%w: capacity %d bytes (must be > 0)", ErrInvalid, c.Capacity)
	}
	if !(c.Probation > 0 && c.Probation <= 1) {
		return fmt.Errorf("%w: probation %v (want a share of the capacity in (0, 1])", ErrInvalid, c.Probation)
	}
	return validWatermarks(c.HighWatermark, c.LowWatermark)
}

func validPolicy(name string) bool {
	for _, n := range policyNames {
		if n == name {
			return true
		}
	}
	return false
}

func validAdmission(name string) bool {
	return name == "" || name == AdmissionNone || name == AdmissionTinyLFU
}

func validWatermarks(high, low float64) error {
	if math.IsNaN(high) || math.IsNaN(low) || !(low > 0 && low <= high && high <= 1) {
		return fmt.Errorf("%w: watermarks high=%v low=%v (need 0 < low ≤ high ≤ 1)", ErrInvalid, high, low)
	}
	return nil
}
