package beir

import (
	"math"
	"sort"
)

// Scores are the averaged metrics of one run.
type Scores struct {
	NDCG10    float64 `json:"ndcg@10"`
	Recall100 float64 `json:"recall@100"`
	MRR10     float64 `json:"mrr@10"`
	// Queries is how many queries were averaged (those with a relevant judgement).
	Queries int `json:"queries"`
}

// NDCG returns nDCG@k of a ranked list of document ids against graded judgements
// (gain = relevance, discount log2(rank+1), as trec_eval's ndcg_cut). It returns 0 when
// nothing is relevant.
func NDCG(ranked []string, rel map[string]int, k int) float64 {
	ideal := make([]int, 0, len(rel))
	for _, g := range rel {
		if g > 0 {
			ideal = append(ideal, g)
		}
	}
	if len(ideal) == 0 {
		return 0
	}
	sort.Sort(sort.Reverse(sort.IntSlice(ideal)))
	var dcg, idcg float64
	for i := 0; i < k && i < len(ranked); i++ {
		if g := rel[ranked[i]]; g > 0 {
			dcg += float64(g) / math.Log2(float64(i)+2)
		}
	}
	for i := 0; i < k && i < len(ideal); i++ {
		idcg += float64(ideal[i]) / math.Log2(float64(i)+2)
	}
	return dcg / idcg
}

// Recall returns |relevant ∩ top k| / |relevant|.
func Recall(ranked []string, rel map[string]int, k int) float64 {
	total := 0
	for _, g := range rel {
		if g > 0 {
			total++
		}
	}
	if total == 0 {
		return 0
	}
	hit := 0
	for i := 0; i < k && i < len(ranked); i++ {
		if rel[ranked[i]] > 0 {
			hit++
		}
	}
	return float64(hit) / float64(total)
}

// MRR returns 1/rank of the first relevant document within the top k, or 0.
func MRR(ranked []string, rel map[string]int, k int) float64 {
	for i := 0; i < k && i < len(ranked); i++ {
		if rel[ranked[i]] > 0 {
			return 1 / float64(i+1)
		}
	}
	return 0
}

// HasRelevant reports whether a query has at least one positive judgement.
func (q Qrels) HasRelevant(qid string) bool {
	for _, g := range q[qid] {
		if g > 0 {
			return true
		}
	}
	return false
}

// Evaluate averages nDCG@10, recall@100 and MRR@10 over the judged queries. run maps a
// query id to its ranked document ids (best first); a judged query missing from run
// scores 0. Documents whose id equals the query id are dropped first.
func Evaluate(run map[string][]string, qrels Qrels) Scores {
	var s Scores
	qids := make([]string, 0, len(qrels))
	for qid := range qrels {
		qids = append(qids, qid)
	}
	sort.Strings(qids) // a fixed summation order: the same run gives the same float64s
	for _, qid := range qids {
		rel := qrels[qid]
		if !qrels.HasRelevant(qid) {
			continue
		}
		ranked := run[qid]
		filtered := ranked[:0:0]
		for _, d := range ranked {
			if d != qid {
				filtered = append(filtered, d)
			}
		}
		s.NDCG10 += NDCG(filtered, rel, 10)
		s.Recall100 += Recall(filtered, rel, 100)
		s.MRR10 += MRR(filtered, rel, 10)
		s.Queries++
	}
	if s.Queries > 0 {
		n := float64(s.Queries)
		s.NDCG10 /= n
		s.Recall100 /= n
		s.MRR10 /= n
	}
	return s
}
