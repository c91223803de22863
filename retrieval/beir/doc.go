// Package beir reads the BEIR benchmark formats and computes BEIR's retrieval metrics.
//
// Formats (Thakur et al., "BEIR: A Heterogeneous Benchmark for Zero-shot Evaluation of
// Information Retrieval Models", NeurIPS 2021 Datasets and Benchmarks):
//
//   - corpus: JSON Lines, one document per line, {"_id", "title", "text"};
//   - queries: JSON Lines, {"_id", "text"};
//   - qrels: TSV with a header line, then "query-id <TAB> corpus-id <TAB> score" (graded,
//     integer relevance; 0 means judged not relevant).
//
// Every parser reports malformed input with its line number and wraps ErrMalformed.
//
// Metrics follow BEIR's EvaluateRetrieval (which calls pytrec_eval / trec_eval):
// nDCG@k with graded gains rel/log2(rank+1) and the ideal ranking built from all judged
// relevant documents; recall@k = |relevant ∩ top k| / |relevant|; MRR@k = 1/rank of the
// first relevant document within the top k. Only queries that have at least one
// relevant judgement are averaged, and a document whose id equals the query id is
// ignored (BEIR's ignore_identical_ids default).
package beir
