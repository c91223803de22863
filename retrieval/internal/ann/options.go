package ann

import (
	"fmt"
	"math"
	"runtime"
)

// Kind names an index structure.
type Kind string

// Index kinds.
const (
	KindAuto  Kind = "auto"  // flat below Options.AutoThreshold vectors, ivfpq above
	KindFlat  Kind = "flat"  // exact scan
	KindIVFPQ Kind = "ivfpq" // inverted file + 4-bit product quantization (fast-scan)
)

// ParseKind parses a kind name ("auto", "flat", "ivfpq").
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindAuto, KindFlat, KindIVFPQ:
		return k, nil
	case "":
		return KindAuto, nil
	}
	return "", fmt.Errorf("%w: unknown index kind %q (want auto, flat or ivfpq)", ErrInvalidOptions, s)
}

// Options configure Build. The zero value is usable: EnsureDefaults fills in every
// field left zero, from the collection size where it matters.
type Options struct {
	// Kind of index; "" or "auto" choose flat below AutoThreshold vectors, ivfpq above.
	Kind Kind
	// AutoThreshold is the collection size from which "auto" builds ivfpq (default 50,000).
	AutoThreshold int

	// NList is the number of inverted lists (k-means centroids). 0: about 4·√n rounded
	// to a power of two, at least 16, at most 65,536, never more than n/16.
	NList int
	// M is the number of 4-bit sub-quantizers (a code takes M/2 bytes); it must be even,
	// at most 128 and at most 8·dim. Bits go where the expected inner-product error is
	// largest (see pq.go). 0: 1.5·dim rounded up to even, at most 48 (24-byte codes).
	M int
	// NProbe is the default number of lists scanned per query (0: NList/128, at least
	// min(8, NList); 32 for a million vectors, where it gives recall@10 ≈ 0.96 after
	// rescoring 100 candidates in `ragkv bench retrieval`).
	NProbe int
	// Rescore is the default number of candidates re-ranked exactly by the Rescorer (and
	// with float lookup tables before that); 0: 100. It is raised to k when smaller.
	Rescore int

	// Threads bounds the parallelism of Build (0: GOMAXPROCS).
	Threads int
	// Seed makes training deterministic: the same vectors, options and seed give the
	// same index, byte for byte, whatever Threads is.
	Seed int64
	// TrainSize is the number of vectors sampled to train the coarse quantizer
	// (0: 40·NList, at most n). The product quantizer trains on min(n, 16,384).
	TrainSize int
	// KMeansIters is the number of Lloyd iterations (0: 10).
	KMeansIters int

	// Rescorer, when set, re-ranks the best candidates of every search exactly (it is not
	// serialized: set it again with Index.SetRescorer after Read).
	Rescorer Rescorer
}

// EnsureDefaults fills the zero fields of o for a collection of n vectors of dimension dim.
func (o *Options) EnsureDefaults(n, dim int) {
	if o.Kind == "" {
		o.Kind = KindAuto
	}
	if o.AutoThreshold == 0 {
		o.AutoThreshold = 50_000
	}
	if o.Kind == KindAuto {
		if n < o.AutoThreshold || n < minIVFVectors {
			o.Kind = KindFlat
		} else {
			o.Kind = KindIVFPQ
		}
	}
	if o.Threads == 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
	if o.Rescore == 0 {
		o.Rescore = 100
	}
	if o.KMeansIters == 0 {
		o.KMeansIters = 10
	}
	if o.Kind != KindIVFPQ {
		return
	}
	if o.NList == 0 {
		nl := 1 << int(math.Round(math.Log2(4*math.Sqrt(float64(max(n, 1))))))
		nl = min(max(nl, 16), 65536)
		for nl > 1 && nl > n/16 {
			nl /= 2
		}
		o.NList = nl
	}
	if o.M == 0 {
		m := (3*dim + 1) / 2
		o.M = min(48, max(2, m+m%2))
	}
	if o.NProbe == 0 {
		o.NProbe = max(o.NList/128, min(8, o.NList))
	}
	if o.TrainSize == 0 {
		o.TrainSize = min(40*o.NList, n)
	}
}

// Validate reports options that cannot build an index of n vectors of dimension dim.
func (o *Options) Validate(n, dim int) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
	}
	if dim <= 0 {
		return fmt.Errorf("%w: dimension %d must be positive", ErrDimension, dim)
	}
	if dim > maxDim {
		return fmt.Errorf("%w: dimension %d exceeds %d", ErrDimension, dim, maxDim)
	}
	if n < 0 || n > maxVectors {
		return bad("%d vectors (at most %d)", n, maxVectors)
	}
	switch o.Kind {
	case KindFlat, KindIVFPQ:
	default:
		return bad("unknown kind %q (EnsureDefaults resolves auto)", o.Kind)
	}
	if o.Threads < 0 || o.Rescore < 0 || o.KMeansIters < 0 || o.TrainSize < 0 || o.NProbe < 0 || o.AutoThreshold < 0 {
		return bad("negative value in %+v", *o)
	}
	if o.Rescore > maxK {
		return bad("rescore %d exceeds %d", o.Rescore, maxK)
	}
	if o.Kind != KindIVFPQ {
		return nil
	}
	if n < minIVFVectors {
		return fmt.Errorf("%w: ivfpq needs at least %d vectors, got %d", ErrTooFewVectors, minIVFVectors, n)
	}
	if o.NList < 1 || o.NList > 1<<20 || o.NList > n {
		return bad("nlist %d must be in [1, min(n=%d, 2^20)]", o.NList, n)
	}
	if o.M < 2 || o.M%2 != 0 || o.M > 128 {
		return bad("m %d must be even and in [2, 128]", o.M)
	}
	if o.M > maxStages*dim {
		return bad("m %d exceeds %d·dim=%d", o.M, maxStages, maxStages*dim)
	}
	if o.NProbe < 1 || o.NProbe > o.NList {
		return bad("nprobe %d must be in [1, nlist=%d]", o.NProbe, o.NList)
	}
	if o.TrainSize < o.NList {
		return bad("train size %d is below nlist %d", o.TrainSize, o.NList)
	}
	if o.KMeansIters < 1 {
		return bad("kmeans iterations %d must be positive", o.KMeansIters)
	}
	return nil
}

const (
	maxDim        = 1 << 16
	maxVectors    = math.MaxInt32
	maxK          = 1 << 20
	minIVFVectors = 256
)
