package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/dgraph-io/badger/v4"

	"github.com/ragkv/ragkv/retrieval/beir"
	"github.com/ragkv/ragkv/retrieval/embed"
)

// Tool is a callable tool an agent may choose.
type Tool struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// ToolUsage is a labelled usage query: a user request that the named tool serves.
type ToolUsage struct {
	Query string `json:"query"`
	Tool  string `json:"tool"`
}

// ToolMethod selects how tool vectors are made.
type ToolMethod string

// Tool vector methods.
const (
	// ToolMethodTool2Vec: the mean of the embeddings of the tool's usage queries,
	// falling back to its description's embedding (Tool2Vec: Moon et al., "Efficient
	// and Scalable Estimation of Tool Representations in Vector Space", 2024).
	ToolMethodTool2Vec ToolMethod = "tool2vec"
	// ToolMethodDescription: the embedding of the tool's description.
	ToolMethodDescription ToolMethod = "description"
	// ToolMethodPrior: Tool2Vec where usage data is thin. The usage-query centroid is
	// shrunk towards a prior, the embedding of the tool's name (split into words) and
	// description, with weight n/(n+τ) on the centroid of n queries and τ/(n+τ) on the
	// prior (τ = ToolPriorStrength; a Bayesian mean with τ pseudo-queries at the prior).
	ToolMethodPrior ToolMethod = "tool2vec-prior"
	// ToolMethodKNN: k-nearest usage queries. A tool scores the mean similarity of the
	// query to its (up to ToolKNN) most similar usage queries, weighted n/(n+τ), plus
	// τ/(n+τ) times the similarity to its name-and-description prior.
	ToolMethodKNN ToolMethod = "knn"
)

// ToolPriorStrength (τ) and ToolKNN are the constants of the prior and kNN methods.
const (
	ToolPriorStrength = 2.0
	ToolKNN           = 3
)

// ParseToolMethod parses "tool2vec" (also ""), "description", "tool2vec-prior" or "knn".
func ParseToolMethod(s string) (ToolMethod, error) {
	switch s {
	case "", string(ToolMethodTool2Vec):
		return ToolMethodTool2Vec, nil
	case string(ToolMethodDescription), string(ToolMethodPrior), string(ToolMethodKNN):
		return ToolMethod(s), nil
	}
	return "", fmt.Errorf("%w: unknown tool method %q (want tool2vec, description, tool2vec-prior or knn)", ErrInvalidArgument, s)
}

// toolNameWords splits a tool name ("get_weather", "SearchFlights") into words.
func toolNameWords(name string) string {
	var b strings.Builder
	prevLower := false
	for _, r := range name {
		switch {
		case r == '_' || r == '-' || r == '.' || r == '/' || r == ' ':
			b.WriteByte(' ')
			prevLower = false
			continue
		case unicode.IsUpper(r) && prevLower:
			b.WriteByte(' ')
		}
		b.WriteRune(unicode.ToLower(r))
		prevLower = unicode.IsLower(r) || unicode.IsDigit(r)
	}
	return b.String()
}

// Limits on tool registries.
const (
	MaxTools      = 100_000
	MaxToolUsages = 10_000_000
)

// ToolHit is one retrieved tool.
type ToolHit struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Score       float64 `json:"score"`
}

// ToolIndex holds one vector per tool and finds the tools closest to a query.
type ToolIndex struct {
	Method   ToolMethod `json:"method"`
	Embedder string     `json:"embedder"`
	State    []byte     `json:"state,omitempty"`
	Tools    []Tool     `json:"tools"`
	// Usage[i] is how many usage queries tool i's vector averages (0: description).
	Usage   []int       `json:"usage"`
	Vectors [][]float32 `json:"vectors"`
	// For ToolMethodKNN: Vectors are the priors, UsageVectors[i] tool i's usage-query
	// embeddings.
	UsageVectors [][][]float32 `json:"usage_vectors,omitempty"`

	emb embed.Embedder
}

// BuildToolIndex embeds the tools. A fitted embedder (GloVe-SIF) is fitted on the
// descriptions and usage queries together, so both methods see the same word weights.
func BuildToolIndex(ctx context.Context, e embed.Embedder, tools []Tool, usage []ToolUsage, method ToolMethod) (*ToolIndex, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: tool retrieval needs an embedder", ErrNoDense)
	}
	method, err := ParseToolMethod(string(method))
	if err != nil {
		return nil, err
	}
	if len(tools) == 0 || len(tools) > MaxTools {
		return nil, fmt.Errorf("%w: %d tools (want 1 to %d)", ErrInvalidArgument, len(tools), MaxTools)
	}
	if len(usage) > MaxToolUsages {
		return nil, fmt.Errorf("%w: %d usage queries (at most %d)", ErrInvalidArgument, len(usage), MaxToolUsages)
	}
	pos := map[string]int{}
	for i, t := range tools {
		if strings.TrimSpace(t.Name) == "" {
			return nil, fmt.Errorf("%w: tool %d has no name", ErrInvalidArgument, i)
		}
		if _, dup := pos[t.Name]; dup {
			return nil, fmt.Errorf("%w: tool %q is listed twice", ErrInvalidArgument, t.Name)
		}
		pos[t.Name] = i
	}
	byTool := make([][]string, len(tools))
	for i, u := range usage {
		j, ok := pos[u.Tool]
		if !ok {
			return nil, fmt.Errorf("%w: usage query %d names unknown tool %q", ErrInvalidArgument, i, u.Tool)
		}
		if strings.TrimSpace(u.Query) == "" {
			return nil, fmt.Errorf("%w: usage query %d (tool %q) is empty", ErrInvalidArgument, i, u.Tool)
		}
		byTool[j] = append(byTool[j], u.Query)
	}
	for i, t := range tools {
		if strings.TrimSpace(t.Description) == "" && (method == ToolMethodDescription || len(byTool[i]) == 0) {
			return nil, fmt.Errorf("%w: tool %q has no description and no usage queries", ErrInvalidArgument, t.Name)
		}
	}
	ti := &ToolIndex{Method: method, Embedder: e.Name(), Tools: slices.Clone(tools), Usage: make([]int, len(tools)), Vectors: make([][]float32, len(tools))}
	if f, ok := e.(embed.Fitter); ok {
		texts := make([]string, 0, len(tools)+len(usage))
		for _, t := range tools {
			texts = append(texts, t.Description)
		}
		for _, u := range usage {
			texts = append(texts, u.Query)
		}
		if ti.State, err = f.Fit(ctx, texts); err != nil {
			return nil, fmt.Errorf("retrieval: fit tool embedder: %w", err)
		}
		if e, err = f.WithState(ti.State); err != nil {
			return nil, err
		}
	}
	ti.emb = e
	// Two Embed calls in all (batched by the embedder): the descriptions that make a
	// vector, then every usage query, grouped by tool.
	var descIdx []int
	var descs, queries []string
	withPrior := method == ToolMethodPrior || method == ToolMethodKNN
	for i, t := range tools {
		switch {
		case withPrior:
			descIdx = append(descIdx, i)
			descs = append(descs, toolNameWords(t.Name)+". "+t.Description)
			queries = append(queries, byTool[i]...)
		case method == ToolMethodDescription || len(byTool[i]) == 0:
			descIdx = append(descIdx, i)
			descs = append(descs, t.Description)
		default:
			queries = append(queries, byTool[i]...)
		}
	}
	dv, err := e.Embed(ctx, descs)
	if err != nil {
		return nil, fmt.Errorf("retrieval: embed tool descriptions: %w", err)
	}
	for j, i := range descIdx {
		ti.Vectors[i] = dv[j]
	}
	qv, err := embed.EmbedQueries(ctx, e, queries)
	if err != nil {
		return nil, fmt.Errorf("retrieval: embed usage queries: %w", err)
	}
	if method == ToolMethodKNN {
		ti.UsageVectors = make([][][]float32, len(tools))
	}
	for i := range tools {
		n := len(byTool[i])
		if method == ToolMethodDescription || n == 0 {
			continue
		}
		ti.Usage[i] = n
		if method == ToolMethodKNN {
			ti.UsageVectors[i], qv = qv[:n], qv[n:]
			continue
		}
		mean := make([]float32, e.Dim())
		for _, v := range qv[:n] {
			for j, x := range v {
				mean[j] += x
			}
		}
		qv = qv[n:]
		embed.Normalize(mean)
		if method == ToolMethodPrior {
			w := float32(float64(n) / (float64(n) + ToolPriorStrength))
			prior := slices.Clone(ti.Vectors[i])
			embed.Normalize(prior)
			for j := range mean {
				mean[j] = w*mean[j] + (1-w)*prior[j]
			}
			embed.Normalize(mean)
		}
		ti.Vectors[i] = mean
	}
	if method == ToolMethodKNN {
		for _, v := range ti.Vectors {
			embed.Normalize(v)
		}
	}
	return ti, nil
}

// Search returns the k tools whose vectors are closest to the query's embedding.
func (ti *ToolIndex) Search(ctx context.Context, query string, k int) ([]ToolHit, error) {
	if strings.TrimSpace(query) == "" {
		return nil, fmt.Errorf("%w: tool retrieval needs query text", ErrEmptyQuery)
	}
	if k < 1 {
		return nil, fmt.Errorf("%w: k = %d, must be positive", ErrInvalidK, k)
	}
	vs, err := embed.EmbedQueries(ctx, ti.emb, []string{query})
	if err != nil {
		return nil, fmt.Errorf("retrieval: embed query: %w", err)
	}
	return ti.searchVector(vs[0], k), nil
}

func (ti *ToolIndex) searchVector(q []float32, k int) []ToolHit {
	hits := make([]ToolHit, len(ti.Tools))
	var top []float64
	for i, t := range ti.Tools {
		score := float64(embed.Dot(q, ti.Vectors[i]))
		if ti.Method == ToolMethodKNN && len(ti.UsageVectors) == len(ti.Tools) && len(ti.UsageVectors[i]) > 0 {
			top = top[:0]
			for _, u := range ti.UsageVectors[i] {
				top = append(top, float64(embed.Dot(q, u)))
			}
			slices.SortFunc(top, func(a, b float64) int {
				switch {
				case a > b:
					return -1
				case a < b:
					return 1
				}
				return 0
			})
			m := min(ToolKNN, len(top))
			knn := 0.0
			for _, x := range top[:m] {
				knn += x
			}
			knn /= float64(m)
			n := float64(len(ti.UsageVectors[i]))
			w := n / (n + ToolPriorStrength)
			score = w*knn + (1-w)*score
		}
		hits[i] = ToolHit{Name: t.Name, Description: t.Description, Score: score}
	}
	slices.SortFunc(hits, func(a, b ToolHit) int {
		if a.Score != b.Score {
			if a.Score > b.Score {
				return -1
			}
			return 1
		}
		return cmpString(a.Name, b.Name)
	})
	if len(hits) > k {
		hits = hits[:k]
	}
	return hits
}

// RegisterToolsOptions configure a tool registry.
type RegisterToolsOptions struct {
	// Embedder names the embedder ("" = the store's default).
	Embedder string
	Method   ToolMethod
}

// ToolRegistryInfo describes a registry.
type ToolRegistryInfo struct {
	Name      string     `json:"name"`
	Tools     int        `json:"tools"`
	WithUsage int        `json:"with_usage"`
	Usages    int        `json:"usages"`
	Embedder  string     `json:"embedder"`
	Method    ToolMethod `json:"method"`
}

type toolRegistry struct {
	name string
	idx  *ToolIndex
}

func (r *toolRegistry) info() ToolRegistryInfo {
	in := ToolRegistryInfo{Name: r.name, Tools: len(r.idx.Tools), Embedder: r.idx.Embedder, Method: r.idx.Method}
	for _, u := range r.idx.Usage {
		if u > 0 {
			in.WithUsage++
		}
		in.Usages += u
	}
	return in
}

// RegisterTools builds and stores the named tool registry, replacing an earlier one
// atomically.
func (s *Store) RegisterTools(ctx context.Context, name string, tools []Tool, usage []ToolUsage, opts RegisterToolsOptions) (ToolRegistryInfo, error) {
	if err := checkName("tool registry", name); err != nil {
		return ToolRegistryInfo{}, err
	}
	en := opts.Embedder
	if en == "" {
		en = s.opts.DefaultEmbedder
		if en == "" && len(s.opts.Embedders) > 0 {
			en = s.opts.Embedders[0].Name()
		}
	}
	e := s.embedders[en]
	if e == nil {
		return ToolRegistryInfo{}, fmt.Errorf("%w: tool registry %q needs an embedder; %q is not configured", ErrEmbedderUnavailable, name, en)
	}
	ti, err := BuildToolIndex(ctx, e, tools, usage, opts.Method)
	if err != nil {
		return ToolRegistryInfo{}, err
	}
	b, err := json.Marshal(ti)
	if err != nil {
		return ToolRegistryInfo{}, fmt.Errorf("retrieval: encode tool registry: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ToolRegistryInfo{}, ErrClosed
	}
	s.mu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(kTools+name), b) }); err != nil {
		return ToolRegistryInfo{}, fmt.Errorf("retrieval: store tool registry: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return ToolRegistryInfo{}, fmt.Errorf("retrieval: store tool registry: %w", err)
	}
	r := &toolRegistry{name: name, idx: ti}
	s.mu.Lock()
	s.tools[name] = r
	s.mu.Unlock()
	return r.info(), nil
}

func (s *Store) toolRegistry(name string) (*toolRegistry, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	r := s.tools[name]
	s.mu.Unlock()
	if r != nil {
		return r, nil
	}
	var b []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(kTools + name))
		if err != nil {
			return err
		}
		b, err = it.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrToolsNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("retrieval: load tool registry %q: %w", name, err)
	}
	var ti ToolIndex
	if err := json.Unmarshal(b, &ti); err != nil {
		return nil, fmt.Errorf("%w: tool registry %q: %v", ErrCorrupt, name, err)
	}
	e := s.embedders[ti.Embedder]
	if e == nil {
		return nil, fmt.Errorf("%w: tool registry %q was built with embedder %q, which this server is not configured with", ErrEmbedderUnavailable, name, ti.Embedder)
	}
	if f, ok := e.(embed.Fitter); ok && len(ti.State) > 0 {
		if e, err = f.WithState(ti.State); err != nil {
			return nil, fmt.Errorf("%w: tool registry %q: %v", ErrCorrupt, name, err)
		}
	}
	for i, v := range ti.Vectors {
		if len(v) != e.Dim() {
			return nil, fmt.Errorf("%w: tool registry %q: vector %d has %d values, want %d", ErrCorrupt, name, i, len(v), e.Dim())
		}
	}
	if ti.UsageVectors != nil && len(ti.UsageVectors) != len(ti.Tools) {
		return nil, fmt.Errorf("%w: tool registry %q: %d usage vector lists for %d tools", ErrCorrupt, name, len(ti.UsageVectors), len(ti.Tools))
	}
	for i, us := range ti.UsageVectors {
		for _, v := range us {
			if len(v) != e.Dim() {
				return nil, fmt.Errorf("%w: tool registry %q: a usage vector of tool %d has %d values, want %d", ErrCorrupt, name, i, len(v), e.Dim())
			}
		}
	}
	ti.emb = e
	r = &toolRegistry{name: name, idx: &ti}
	s.mu.Lock()
	s.tools[name] = r
	s.mu.Unlock()
	return r, nil
}

// RetrieveTools returns the k tools of the registry closest to query.
func (s *Store) RetrieveTools(ctx context.Context, registry, query string, k int) ([]ToolHit, error) {
	if k < 1 || k > s.opts.MaxK {
		return nil, fmt.Errorf("%w: k = %d, must be in [1, %d]", ErrInvalidK, k, s.opts.MaxK)
	}
	if strings.TrimSpace(query) == "" {
		return nil, fmt.Errorf("%w: tool retrieval needs query text", ErrEmptyQuery)
	}
	r, err := s.toolRegistry(registry)
	if err != nil {
		return nil, err
	}
	return r.idx.Search(ctx, query, k)
}

// ToolRegistry describes a registry.
func (s *Store) ToolRegistry(name string) (ToolRegistryInfo, error) {
	r, err := s.toolRegistry(name)
	if err != nil {
		return ToolRegistryInfo{}, err
	}
	return r.info(), nil
}

// LabeledToolQuery is one line of a MetaTool-style query file.
type LabeledToolQuery struct {
	ID    string `json:"_id"`
	Query string `json:"query"`
	Tool  string `json:"tool"`
}

// ReadTools parses a JSON array of {"name","description"}.
func ReadTools(r io.Reader, name string) ([]Tool, error) {
	var tools []Tool
	dec := json.NewDecoder(r)
	if err := dec.Decode(&tools); err != nil {
		return nil, fmt.Errorf("%w: %s: want a JSON array of {\"name\",\"description\"}: %v", beir.ErrMalformed, name, err)
	}
	for i, t := range tools {
		if strings.TrimSpace(t.Name) == "" {
			return nil, fmt.Errorf("%w: %s: tool %d has no name", beir.ErrMalformed, name, i)
		}
	}
	return tools, nil
}

// ReadToolQueries parses JSONL lines {"_id","query","tool"} (an "_id" is optional).
func ReadToolQueries(r io.Reader, name string) ([]LabeledToolQuery, error) {
	var out []LabeledToolQuery
	err := beir.ScanJSONL(r, name, func(line int, b []byte) error {
		var q LabeledToolQuery
		if err := beir.DecodeStrict(b, &q); err != nil {
			return beir.LineError(name, line, "invalid JSON: %v", err)
		}
		if strings.TrimSpace(q.Query) == "" {
			return beir.LineError(name, line, `missing "query"`)
		}
		if strings.TrimSpace(q.Tool) == "" {
			return beir.LineError(name, line, `missing "tool"`)
		}
		if q.ID == "" {
			q.ID = fmt.Sprintf("line-%d", line)
		}
		out = append(out, q)
		return nil
	})
	return out, err
}
