package retrievaleval

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math"
	"time"

	"github.com/ragkv/ragkv/retrieval"
)

// Holdout reports whether a query id falls in the held-out fraction frac: a hash of seed
// and id, so the split is deterministic and independent of file order.
func Holdout(id string, seed uint64, frac float64) bool {
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h := sha256.Sum256(append(b[:], id...))
	u := uint64(h[0])<<45 | uint64(h[1])<<37 | uint64(h[2])<<29 | uint64(h[3])<<21 | uint64(h[4])<<13 | uint64(h[5])<<5 | uint64(h[6])>>3
	return float64(u)/float64(1<<53) < frac
}

// SplitHoldout splits labelled queries into train and test by Holdout.
func SplitHoldout(qs []retrieval.LabeledToolQuery, seed uint64, frac float64) (train, test []retrieval.LabeledToolQuery) {
	for _, q := range qs {
		if Holdout(q.ID, seed, frac) {
			test = append(test, q)
		} else {
			train = append(train, q)
		}
	}
	return train, test
}

// CapUsage keeps the first maxPerTool queries of each tool (thin usage data, as on
// Gorilla-style API hubs); maxPerTool ≤ 0 keeps all.
func CapUsage(qs []retrieval.LabeledToolQuery, maxPerTool int) []retrieval.LabeledToolQuery {
	if maxPerTool <= 0 {
		return qs
	}
	per := map[string]int{}
	var kept []retrieval.LabeledToolQuery
	for _, q := range qs {
		if per[q.Tool] < maxPerTool {
			per[q.Tool]++
			kept = append(kept, q)
		}
	}
	return kept
}

// ToolScores are the scores of one tool index on labelled queries (one relevant tool each).
type ToolScores struct {
	Recall1 float64 `json:"recall@1"`
	Recall3 float64 `json:"recall@3"`
	Recall5 float64 `json:"recall@5"`
	NDCG5   float64 `json:"ndcg@5"`
	Queries int     `json:"queries"`
	QPS     float64 `json:"qps"`
}

// ErrUnknownTool is returned when a test query is labelled with a tool the index lacks.
var ErrUnknownTool = fmt.Errorf("query labelled with an unknown tool")

// EvaluateTools retrieves the top 5 tools of every test query. bar, if not nil, is
// advanced per query.
func EvaluateTools(ctx context.Context, ti *retrieval.ToolIndex, tools []retrieval.Tool, test []retrieval.LabeledToolQuery, bar Bar) (ToolScores, error) {
	if bar == nil {
		bar = noBar{}
	}
	defer bar.Finish()
	if len(test) == 0 {
		return ToolScores{}, fmt.Errorf("no test queries")
	}
	known := map[string]bool{}
	for _, t := range tools {
		known[t.Name] = true
	}
	var r1, r3, r5, nd float64
	start := time.Now()
	for _, q := range test {
		if !known[q.Tool] {
			return ToolScores{}, fmt.Errorf("query %q, tool %q: %w", q.ID, q.Tool, ErrUnknownTool)
		}
		hits, err := ti.Search(ctx, q.Query, 5)
		if err != nil {
			return ToolScores{}, err
		}
		for rank, h := range hits {
			if h.Name != q.Tool {
				continue
			}
			if rank < 1 {
				r1++
			}
			if rank < 3 {
				r3++
			}
			r5++
			nd += 1 / math.Log2(float64(rank)+2)
			break
		}
		bar.Add(1)
	}
	n := float64(len(test))
	s := ToolScores{Recall1: r1 / n, Recall3: r3 / n, Recall5: r5 / n, NDCG5: nd / n, Queries: len(test)}
	if el := time.Since(start).Seconds(); el > 0 {
		s.QPS = n / el
	}
	return s, nil
}
