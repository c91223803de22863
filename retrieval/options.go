package retrieval

import (
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragkv/ragkv/retrieval/embed"
)

// Mode selects how a query is scored.
type Mode string

// Search modes.
const (
	ModeDefault Mode = ""
	ModeBM25    Mode = "bm25"
	ModeDense   Mode = "dense"
	ModeHybrid  Mode = "hybrid"
)

// ParseMode parses "bm25", "dense", "hybrid" or "" (the collection's default).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeDefault, ModeBM25, ModeDense, ModeHybrid:
		return m, nil
	}
	return "", fmt.Errorf("%w: unknown mode %q (want bm25, dense or hybrid)", ErrInvalidArgument, s)
}

// Fusion selects how hybrid search combines the lexical and dense rankings.
type Fusion string

// Fusion methods.
const (
	FusionDefault Fusion = ""
	// FusionWeighted: min-max normalized scores, weighted (Weight on BM25, 1−Weight on
	// dense), over the union of both candidate lists.
	FusionWeighted Fusion = "weighted"
	// FusionRRF: reciprocal-rank fusion, Σ 1/(60 + rank) (Cormack et al., SIGIR 2009).
	FusionRRF Fusion = "rrf"
)

// ParseFusion parses "weighted", "rrf" or "" (weighted).
func ParseFusion(s string) (Fusion, error) {
	switch f := Fusion(s); f {
	case FusionDefault, FusionWeighted, FusionRRF:
		return f, nil
	}
	return "", fmt.Errorf("%w: unknown fusion %q (want weighted or rrf)", ErrInvalidArgument, s)
}

// DenseIndex selects the dense search structure.
type DenseIndex string

// Dense index kinds.
const (
	DenseAuto  DenseIndex = ""      // exact below ANNThreshold vectors per shard, ANN above
	DenseExact DenseIndex = "exact" // scan every compressed vector
	DenseANN   DenseIndex = "ann"   // approximate index (retrieval/internal/ann)
)

// ParseDenseIndex parses "auto", "exact" or "ann".
func ParseDenseIndex(s string) (DenseIndex, error) {
	switch s {
	case "", "auto":
		return DenseAuto, nil
	case "exact":
		return DenseExact, nil
	case "ann":
		return DenseANN, nil
	}
	return "", fmt.Errorf("%w: unknown dense index %q (want auto, exact or ann)", ErrInvalidArgument, s)
}

// Dedup selects duplicate-passage detection at ingest.
type Dedup string

// Dedup methods.
const (
	DedupExact   Dedup = "exact"   // SHA-256 of the normalized passage text
	DedupMinHash Dedup = "minhash" // MinHash + LSH over word 3-gram shingles (Broder 1997)
	DedupNone    Dedup = "none"
)

// ClientVectors is the embedder name of collections whose vectors clients supply.
const ClientVectors = "client"

// Defaults.
const (
	DefaultChunkWords   = 256 // MassiveDS passage length
	DefaultChunkOverlap = 32
	// DefaultPCADims is the projected dimension a collection uses unless told otherwise:
	// the smallest of {16, 32, 50, 64, 100} that kept ≥ 95% of the full-vector dense
	// nDCG@10 on SciFact (train) with GloVe-SIF vectors and full-vector rescoring (see
	// the package doc). Collections whose vectors have no more dimensions keep them all.
	DefaultPCADims      = 32
	DefaultANNThreshold = 200_000
	DefaultMaxK         = 1000
	DefaultRescore      = 100
	// DefaultFusionWeight is the BM25 weight of weighted fusion until weights are
	// fitted on labelled queries.
	DefaultFusionWeight = 0.7
	maxShards           = 256
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func checkName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: %s name %q must be 1-64 characters of letters, digits, '_', '.', '-' starting with a letter or digit", ErrInvalidArgument, kind, name)
	}
	return nil
}

// Options configure a Store.
type Options struct {
	// Dir holds the Badger database and the shard directories.
	Dir string
	// Embedders are the embedders collections may use, by Name(). A collection records
	// its embedder's name and can be searched densely only where it is configured.
	Embedders []embed.Embedder
	// DefaultEmbedder names the embedder new collections use when their options name
	// none ("" = the first of Embedders, if any).
	DefaultEmbedder string
	// BuildParallelism bounds concurrent shard builds (default GOMAXPROCS).
	BuildParallelism int
	// BuildMemory bounds the estimated memory of the shard builds running at once,
	// across all ingests, rebuilds and compactions of the store (bytes; 0: no bound
	// beyond BuildParallelism). A build's estimate is its passages' indexed text bytes
	// (the in-memory postings take about as much) plus 8 bytes per vector value; a
	// build larger than the budget runs alone.
	BuildMemory int64
	// MaxK bounds k per request (default 1000).
	MaxK int
	// Logger and Registerer are injected (defaults: slog.Default(), no metrics).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Compaction is the merge policy of Compact and of the background compactor.
	Compaction CompactionPolicy
	// CompactEvery > 0 runs a background compactor: every CompactEvery, and after every
	// commit, each collection is compacted by the policy (then Badger's value log is
	// garbage-collected if anything merged). 0: compaction only on Compact calls.
	CompactEvery time.Duration
	// MinFreeBytes is the free space (of the filesystem holding Dir) an ingest must
	// leave: BeginIngest, and Commit with its passages' estimated size, fail with
	// ErrNoSpace before writing when less would remain. Badger writes its memtables and
	// value log through memory maps, and a write through a map into a full filesystem
	// is a SIGBUS that kills the process. Default 64 MiB; negative: no check.
	MinFreeBytes int64
	// testHook, when set, is called at named points of a commit or delete (crash tests).
	testHook func(point string) error
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.BuildParallelism == 0 {
		o.BuildParallelism = runtime.GOMAXPROCS(0)
	}
	if o.MaxK == 0 {
		o.MaxK = DefaultMaxK
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Compaction.EnsureDefaults()
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = 64 << 20
	}
}

// Validate reports invalid options.
func (o *Options) Validate() error {
	if o.Dir == "" {
		return fmt.Errorf("%w: store directory is empty", ErrInvalidArgument)
	}
	if o.BuildMemory < 0 {
		return fmt.Errorf("%w: build memory %d is negative", ErrInvalidArgument, o.BuildMemory)
	}
	if o.BuildParallelism < 1 || o.MaxK < 1 {
		return fmt.Errorf("%w: build parallelism %d and max k %d must be positive", ErrInvalidArgument, o.BuildParallelism, o.MaxK)
	}
	if err := o.Compaction.Validate(); err != nil {
		return err
	}
	if o.CompactEvery < 0 {
		return fmt.Errorf("%w: compact interval %v is negative", ErrInvalidArgument, o.CompactEvery)
	}
	seen := map[string]bool{}
	for _, e := range o.Embedders {
		if e == nil {
			return fmt.Errorf("%w: nil embedder", ErrInvalidArgument)
		}
		if e.Name() == ClientVectors || seen[e.Name()] {
			return fmt.Errorf("%w: embedder name %q is reserved or repeated", ErrInvalidArgument, e.Name())
		}
		seen[e.Name()] = true
	}
	if o.DefaultEmbedder != "" && !seen[o.DefaultEmbedder] {
		return fmt.Errorf("%w: default embedder %q is not among the configured embedders", ErrInvalidArgument, o.DefaultEmbedder)
	}
	return nil
}

// CollectionOptions fix how a collection is built. They are recorded when the
// collection is created and apply to every later ingest.
type CollectionOptions struct {
	// ChunkWords is the passage length in words (default 256); negative: one passage
	// per document.
	ChunkWords int `json:"chunk_words"`
	// ChunkOverlap is how many words consecutive passages share (default 32; must be
	// < ChunkWords).
	ChunkOverlap int `json:"chunk_overlap"`
	// Dedup is the duplicate-passage detection (default exact).
	Dedup Dedup `json:"dedup"`
	// MinHashThreshold is the estimated Jaccard similarity above which MinHash calls two
	// passages duplicates (default 0.8).
	MinHashThreshold float64 `json:"minhash_threshold"`
	// Embedder names the embedder ("" = the store's default; "none" = lexical only;
	// ClientVectors = vectors supplied with every document and query).
	Embedder string `json:"embedder"`
	// Dim is the vector dimension of a ClientVectors collection.
	Dim int `json:"dim"`
	// PCADims is the projected dimension (0 = DefaultPCADims; negative = no PCA).
	PCADims int `json:"pca_dims"`
	// Int8 quantizes the projected vectors to one byte per dimension.
	Int8 bool `json:"int8"`
	// DenseIndex selects exact scan or ANN (default auto) and ANNThreshold the shard
	// size from which auto uses ANN (default 200,000).
	DenseIndex   DenseIndex `json:"dense_index"`
	ANNThreshold int        `json:"ann_threshold"`
	// Rescore is how many compressed candidates are rescored with full vectors
	// (default 100; at least the request's candidate depth).
	Rescore int `json:"rescore"`
	// DefaultMode is the mode of requests that name none (default hybrid when the
	// collection has vectors, else bm25).
	DefaultMode Mode `json:"default_mode"`
}

// EnsureDefaults fills zero fields.
func (o *CollectionOptions) EnsureDefaults() {
	if o.ChunkWords == 0 {
		o.ChunkWords = DefaultChunkWords
		if o.ChunkOverlap == 0 {
			o.ChunkOverlap = DefaultChunkOverlap
		}
	}
	if o.ChunkWords < 0 {
		o.ChunkWords, o.ChunkOverlap = -1, 0
	}
	if o.Dedup == "" {
		o.Dedup = DedupExact
	}
	if o.MinHashThreshold == 0 {
		o.MinHashThreshold = 0.8
	}
	if o.ANNThreshold == 0 {
		o.ANNThreshold = DefaultANNThreshold
	}
	if o.Rescore == 0 {
		o.Rescore = DefaultRescore
	}
}

// Validate reports invalid options.
func (o *CollectionOptions) Validate() error {
	switch {
	case o.ChunkWords > 0 && (o.ChunkOverlap < 0 || o.ChunkOverlap >= o.ChunkWords):
		return fmt.Errorf("%w: chunk overlap %d must be in [0, chunk words %d)", ErrInvalidArgument, o.ChunkOverlap, o.ChunkWords)
	case o.Dedup != DedupExact && o.Dedup != DedupMinHash && o.Dedup != DedupNone:
		return fmt.Errorf("%w: unknown dedup %q (want exact, minhash or none)", ErrInvalidArgument, o.Dedup)
	case o.MinHashThreshold <= 0 || o.MinHashThreshold > 1:
		return fmt.Errorf("%w: minhash threshold %v must be in (0, 1]", ErrInvalidArgument, o.MinHashThreshold)
	case o.Embedder == ClientVectors && (o.Dim < 1 || o.Dim > 65536):
		return fmt.Errorf("%w: a client-vector collection needs a dimension in [1, 65536], got %d", ErrInvalidArgument, o.Dim)
	case o.Embedder == ClientVectors && o.ChunkWords > 0:
		return fmt.Errorf("%w: a client-vector collection stores one passage per document (its vector); set chunk words negative", ErrInvalidArgument)
	case o.Embedder != ClientVectors && o.Dim != 0:
		return fmt.Errorf("%w: dim is only for client-vector collections", ErrInvalidArgument)
	case o.ANNThreshold < 1 || o.Rescore < 1 || o.Rescore > 100000:
		return fmt.Errorf("%w: ann threshold %d and rescore %d must be positive (rescore ≤ 100000)", ErrInvalidArgument, o.ANNThreshold, o.Rescore)
	}
	if _, err := ParseDenseIndex(string(o.DenseIndex)); err != nil {
		return err
	}
	if _, err := ParseMode(string(o.DefaultMode)); err != nil {
		return err
	}
	return nil
}
