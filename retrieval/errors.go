package retrieval

import (
	"errors"

	"github.com/ragkv/ragkv/retrieval/embed"
)

// Sentinel errors; the server maps them to gRPC codes.
var (
	// ErrCollectionNotFound: no collection has that name.
	ErrCollectionNotFound = errors.New("retrieval: collection not found")
	// ErrToolsNotFound: no tool registry has that name.
	ErrToolsNotFound = errors.New("retrieval: tool registry not found")
	// ErrInvalidArgument: a request field is out of range or malformed (bad name, mode,
	// option, document).
	ErrInvalidArgument = errors.New("retrieval: invalid argument")
	// ErrEmptyQuery: the query has no text (and, for dense search, no vector).
	ErrEmptyQuery = errors.New("retrieval: empty query")
	// ErrInvalidK: k is not in [1, MaxK].
	ErrInvalidK = errors.New("retrieval: invalid k")
	// ErrDimension: a vector's length is not the collection's dimension.
	ErrDimension = embed.ErrDimension
	// ErrNoDense: dense or hybrid search on a collection without vectors, or a query
	// that needs an embedder the store was not given.
	ErrNoDense = errors.New("retrieval: collection has no dense vectors")
	// ErrEmbedderUnavailable: the collection was built with an embedder this store was
	// not configured with.
	ErrEmbedderUnavailable = errors.New("retrieval: embedder unavailable")
	// ErrBusy: another ingest or rebuild of the collection is in progress.
	ErrBusy = errors.New("retrieval: collection busy")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("retrieval: store closed")
	// ErrNoSpace: the store's filesystem is too full for an ingest (Options.MinFreeBytes).
	ErrNoSpace = errors.New("retrieval: no space left for an ingest")
	// ErrCorrupt: stored data does not decode.
	ErrCorrupt = errors.New("retrieval: corrupt data")
)
