// Package lexical owns one shard's inverted index and scores it with textbook Okapi BM25
// (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009;
// k1 = 1.2, b = 0.75, idf = ln(1 + (N − df + 0.5)/(df + 0.5)), as Lucene/Anserini).
//
// bleve v2 does the English analysis (unicode tokenizer, possessive filter, lower case,
// English stop words, Porter stemmer: analyzer "en") and keeps the inverted index in an
// on-disk scorch index. Scoring is done here, on bleve's postings (term frequencies from
// TermFieldReader), rather than by bleve's searcher, because bleve's BM25 is not textbook
// BM25 and cannot be merged exactly across shards:
//
//   - it only scores BM25 on a scorch index with ScoringModel "bm25" (an in-memory index
//     silently falls back to TF-IDF);
//   - its average document length is the field's term cardinality divided by the
//     document count, rounded up, not the mean token count;
//   - its disjunction multiplies every score by a coord factor (matched/total clauses),
//     a TF-IDF-era heuristic.
//
// On BEIR SciFact (train) bleve's BM25 reaches nDCG@10 0.679; this scorer, on the same
// tokens, reaches ≈ 0.70 (see retrieval's package doc for the measured numbers).
//
// Exact sharding (MassiveDS, Shao et al. 2024): a shard only contributes its postings,
// document lengths and per-term document frequencies; the caller sums N, total length and
// df over all shards and passes the collection-global idf and average length back, so a
// document gets the same score whichever shard holds it and per-shard top-k lists merge
// exactly.
package lexical
