package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/ragkv/ragkv/blend"
	"github.com/ragkv/ragkv/model/chat"
	ragkvv1 "github.com/ragkv/ragkv/proto/ragkv/v1"
	"github.com/ragkv/ragkv/retrieval"
)

// The one RAG path from a question to the prompt's chunks, shared by the gRPC
// Inference service (PrefillRequest.retrieval) and the OpenAI API (the "retrieval"
// field): validate the retrieval source, search the collection, and fuse each passage
// as PassageChunkText, after the chunks given explicitly, in rank order.
// PrecomputeCollection and Retrieve's keys use the same chunk text, so the key the
// engine looks up is the key that was precomputed.

// ErrNoRetrieval: a request has a retrieval source and the server serves no retrieval.
var ErrNoRetrieval = errors.New("server: this server serves no retrieval (a retrieval source needs the Retrieval service)")

// ErrNoInference: a request needs chunk-cache keys and the server has no engine.
var ErrNoInference = errors.New("server: chunk-cache keys need the Inference service (start the server with a model)")

func init() {
	registerErrorCodes(
		errRow{ErrNoRetrieval, codes.FailedPrecondition},
		errRow{ErrNoInference, codes.FailedPrecondition},
	)
}

// MaxRetrievalK bounds the passages one retrieval source fuses (the OpenAI API uses its
// own MaxDocuments instead).
const MaxRetrievalK = 64

// DefaultRetrievalK is the k of sources that give none where a default applies (the
// OpenAI API, `ragkv ask`).
const DefaultRetrievalK = 5

// RetrievalSource says which passages to retrieve for a prompt.
type RetrievalSource struct {
	Collection string
	// Query is the search text.
	Query string
	// K passages, in [1, maxK] (maxK given to RetrievePassages).
	K    int
	Mode retrieval.Mode
	// DocIDs keeps only passages of these documents; ExcludeDocIDs drops those.
	DocIDs, ExcludeDocIDs []string
}

// RetrievedPassage is a passage retrieved for a prompt.
type RetrievedPassage struct {
	retrieval.Hit
	// Chunk is the text the passage is fused as (PassageChunkText).
	Chunk string
}

// PassageChunkText is the chunk text a retrieved passage is fused (and precomputed)
// as: its text and the document separator of the fused prompt. It is tokenized without
// BOS, after the prompt's system prefix.
func PassageChunkText(text string) string { return text + chat.DocumentSeparator }

// RetrievePassages validates src and retrieves its passages in rank order (best first).
// Errors: ErrNoRetrieval (st nil), retrieval.ErrInvalidArgument (no collection),
// retrieval.ErrInvalidK, retrieval.ErrEmptyQuery, retrieval.ErrCollectionNotFound, and
// the search's own.
func RetrievePassages(ctx context.Context, st *retrieval.Store, src RetrievalSource, maxK int) ([]RetrievedPassage, error) {
	if st == nil {
		return nil, ErrNoRetrieval
	}
	if src.Collection == "" {
		return nil, fmt.Errorf("%w: the retrieval source names no collection", retrieval.ErrInvalidArgument)
	}
	if src.K < 1 || src.K > maxK {
		return nil, fmt.Errorf("%w: k = %d: want 1 to %d", retrieval.ErrInvalidK, src.K, maxK)
	}
	if strings.TrimSpace(src.Query) == "" {
		return nil, fmt.Errorf("%w: the retrieval source has no query text", retrieval.ErrEmptyQuery)
	}
	res, err := st.Search(ctx, retrieval.SearchRequest{Collection: src.Collection, Query: src.Query, K: src.K, Mode: src.Mode,
		DocIDs: src.DocIDs, ExcludeDocIDs: src.ExcludeDocIDs})
	if err != nil {
		return nil, fmt.Errorf("retrieve from %q: %w", src.Collection, err)
	}
	out := make([]RetrievedPassage, 0, len(res.Hits))
	for _, h := range res.Hits {
		if h.Text == "" {
			continue // an empty passage is no chunk
		}
		out = append(out, RetrievedPassage{Hit: h, Chunk: PassageChunkText(h.Text)})
	}
	return out, nil
}

// PassageChunks are the chunks a prompt fuses for ps, in order (by text: looked up in
// the chunk cache, computed and stored when missing).
func PassageChunks(ps []RetrievedPassage) []blend.ChunkRef {
	out := make([]blend.ChunkRef, len(ps))
	for i, p := range ps {
		out[i] = blend.ChunkRef{Text: p.Chunk}
	}
	return out
}

// PromptPassage is a retrieved passage as a prefill served it.
type PromptPassage struct {
	RetrievedPassage
	// Segment is its index in PrefillOutput.Segments.
	Segment int
	blend.SegmentReport
}

// PromptPassages pairs ps with the segments of out that fused them: ps are the chunks
// from index first of the prompt's chunks on (after the explicit ones).
func PromptPassages(out *blend.PrefillOutput, first int, ps []RetrievedPassage) []PromptPassage {
	sys := 0
	if len(out.Segments) > 0 && out.Segments[0].Kind == "system" {
		sys = 1
	}
	res := make([]PromptPassage, 0, len(ps))
	for i, p := range ps {
		pp := PromptPassage{RetrievedPassage: p, Segment: sys + first + i}
		if pp.Segment < len(out.Segments) {
			pp.SegmentReport = out.Segments[pp.Segment]
		}
		res = append(res, pp)
	}
	return res
}

// retrievalSourceFromProto converts a PrefillRequest's retrieval source; query is the
// request's query (the search text when the source gives none).
func retrievalSourceFromProto(r *ragkvv1.RetrievalSource, query string) (RetrievalSource, error) {
	mode, err := modeFromProto(r.GetMode())
	if err != nil {
		return RetrievalSource{}, err
	}
	src := RetrievalSource{Collection: r.GetCollection(), Query: r.GetQuery(), K: int(r.GetK()), Mode: mode,
		DocIDs: r.GetDocIds(), ExcludeDocIDs: r.GetExcludeDocIds()}
	if src.Query == "" {
		src.Query = query
	}
	return src, nil
}

func promptPassagesToProto(ps []PromptPassage) []*ragkvv1.PromptPassage {
	out := make([]*ragkvv1.PromptPassage, len(ps))
	for i, p := range ps {
		out[i] = &ragkvv1.PromptPassage{PassageId: p.PassageID, DocId: p.DocID, Title: p.Title, Score: p.Score, ChunkId: p.ChunkID,
			Key: append([]byte(nil), p.Key[:]...), Source: p.Source, Segment: uint32(p.Segment), Tokens: uint32(p.Tokens), Text: p.Text}
	}
	return out
}

// KeyLookup keys a prompt's chunks as Prefill does and says which the chunk cache
// holds (blend.Engine; attached by WithInference).
type KeyLookup interface {
	LookupPromptKeys(ctx context.Context, ns, system string, chunks []string) ([]blend.CachedKey, error)
}

// passageKeys fills the chunk keys of passages retrieved by Retrieve with_keys: the key
// of each passage's chunk text under ns and system, and whether it is cached.
func passageKeys(ctx context.Context, kl KeyLookup, ns, system string, ps []*ragkvv1.RetrievedPassage, texts []string) error {
	if kl == nil {
		return ErrNoInference
	}
	idx := make([]int, 0, len(ps))
	chunks := make([]string, 0, len(ps))
	for i, t := range texts {
		if t != "" {
			idx = append(idx, i)
			chunks = append(chunks, PassageChunkText(t))
		}
	}
	if len(chunks) == 0 {
		return nil
	}
	keys, err := kl.LookupPromptKeys(ctx, ns, system, chunks)
	if err != nil {
		return err
	}
	keys = keys[len(keys)-len(chunks):] // after the system prefix's key
	for j, i := range idx {
		ps[i].ChunkKey = append([]byte(nil), keys[j].Key[:]...)
		ps[i].Cached, ps[i].Tier = keys[j].Cached, keys[j].Tier
	}
	return nil
}

// defaultEngineShare is PrecomputeCollection's share of the engine when the request
// gives none.
const defaultEngineShare = 0.5

// PrecomputeCollection precomputes a collection's passages as retrieval sources fuse
// them (PassageChunkText after the system prefix). A passage longer than the context
// is reported ("too_long") and skipped, not an error of the job.
func (s *inferenceService) PrecomputeCollection(req *ragkvv1.PrecomputeCollectionRequest, stream grpc.ServerStreamingServer[ragkvv1.PrecomputeCollectionProgress]) error {
	ctx := stream.Context()
	if s.ret == nil {
		return toStatus(fmt.Errorf("precompute collection: %w", ErrNoRetrieval))
	}
	if req.GetCollection() == "" {
		return invalidArg("precompute collection: collection is empty")
	}
	share := req.GetEngineShare()
	if share == 0 {
		share = defaultEngineShare
	}
	if !(share > 0 && share <= 1) {
		return invalidArg("precompute collection: engine_share %g: want a number in (0, 1]", req.GetEngineShare())
	}
	ps, err := s.ret.Passages(ctx, req.GetCollection())
	if err != nil {
		return toStatus(fmt.Errorf("precompute collection: %w", err))
	}
	if req.GetCoRetrievedContext() {
		ps = s.co.order(req.GetCollection(), ps)
	}
	m := s.e.Model()
	room := m.Config.Ctx - len(m.Tok.Encode(req.GetSystem(), true, false))
	var (
		chunks []blend.PrecomputeChunk
		prog   = &ragkvv1.PrecomputeCollectionProgress{Total: uint32(len(ps))}
	)
	send := func(id string, key []byte, status string, n int) error {
		prog.Done++
		switch status {
		case "computed":
			prog.Computed++
		case "skipped":
			prog.Skipped++
		case "rejected":
			prog.Computed++
			prog.Rejected++
		}
		prog.PassageId, prog.Key, prog.Status, prog.Tokens = id, key, status, uint32(n)
		return stream.Send(prog)
	}
	for _, p := range ps {
		if p.Text == "" {
			continue
		}
		text := PassageChunkText(p.Text)
		n := len(m.Tok.Encode(text, false, false))
		if n > room {
			if err := send(p.ID, nil, "too_long", n); err != nil {
				return err
			}
			continue
		}
		chunks = append(chunks, blend.PrecomputeChunk{ID: p.ID, Text: text})
	}
	if len(chunks) == 0 {
		return nil
	}
	t0 := time.Now()
	_, err = s.e.PrecomputeShare(ctx, req.GetNamespace(), req.GetSystem(), chunks, int(req.GetContextChunks()), share,
		func(ev blend.PrecomputeEvent) error {
			return send(ev.ID, append([]byte(nil), ev.Key[:]...), ev.Status, ev.Tokens)
		})
	if err != nil {
		return toStatus(fmt.Errorf("precompute collection %q: %w", req.GetCollection(), err))
	}
	s.log.Info("collection precomputed", "collection", req.GetCollection(), "namespace", req.GetNamespace(), "passages", len(ps),
		"computed", prog.Computed, "skipped", prog.Skipped, "rejected", prog.Rejected, "seconds", time.Since(t0).Seconds())
	return nil
}

// maxCoRetrievalPairs bounds the co-retrieval counts a server keeps (pairs beyond it
// are not counted; those counted keep counting).
const maxCoRetrievalPairs = 1 << 20

// coRetrieval counts, per collection, how often two passages were retrieved for the
// same prompt: Cache-Craft's statistics are the most useful when computed in the
// context the chunk is actually fused in.
type coRetrieval struct {
	mu    sync.Mutex
	pairs int
	n     map[string]map[string]map[string]uint32 // collection → passage → neighbour → count
}

func (c *coRetrieval) record(collection string, ps []RetrievedPassage) {
	if len(ps) < 2 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]map[string]map[string]uint32{}
	}
	coll := c.n[collection]
	if coll == nil {
		coll = map[string]map[string]uint32{}
		c.n[collection] = coll
	}
	for _, a := range ps {
		for _, b := range ps {
			if a.PassageID == b.PassageID {
				continue
			}
			nb := coll[a.PassageID]
			if nb == nil {
				nb = map[string]uint32{}
				coll[a.PassageID] = nb
			}
			if _, ok := nb[b.PassageID]; !ok {
				if c.pairs >= maxCoRetrievalPairs {
					continue
				}
				c.pairs++
			}
			nb[b.PassageID]++
		}
	}
}

// order returns ps reordered so that each passage follows, where it can, its most
// frequent co-retrieved neighbour not placed yet (a greedy chain from each unplaced
// passage in the original order).
func (c *coRetrieval) order(collection string, ps []retrieval.Passage) []retrieval.Passage {
	c.mu.Lock()
	defer c.mu.Unlock()
	coll := c.n[collection]
	if len(coll) == 0 {
		return ps
	}
	idx := make(map[string]int, len(ps))
	for i, p := range ps {
		idx[p.ID] = i
	}
	placed := make([]bool, len(ps))
	out := make([]retrieval.Passage, 0, len(ps))
	for start := range ps {
		for i := start; i >= 0 && !placed[i]; {
			placed[i] = true
			out = append(out, ps[i])
			next, best := -1, uint32(0)
			for nb, n := range coll[ps[i].ID] {
				j, ok := idx[nb]
				if ok && !placed[j] && (n > best || (n == best && j < next)) {
					next, best = j, n
				}
			}
			i = next
		}
	}
	return out
}
