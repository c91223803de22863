// Package lexical owns one shard's inverted index and scores it with textbook Okapi BM25
// (Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond", 2009;
// k1 = 1.2, b = 0.75, idf = ln(1 + (N − df + 0.5)/(df + 0.5)), as Lucene/Anserini).
//
// # Analysis
//
// Text is analyzed exactly as bleve v2's English analyzer "en" does (unicode word
// tokenizer, possessive filter, lower case, English stop words, Porter stemmer): its
// tokenizer and token filters are used as they are, but each distinct raw token is
// filtered once per shard build and cached (the stemmer was a third of the analysis
// time). On ASCII text the tokenizer itself is replaced by an exact fast path
// (ascii.go): bleve's unicode tokenizer allocates a token and several slices per word
// and was about 40 % of ingest CPU; restricted to ASCII, UAX #29's word rules are a
// dozen lines, checked against bleve by a fuzz target and random adversarial strings.
// Text with any non-ASCII byte goes through bleve's tokenizer.
//
// # Why not bleve's index
//
// Earlier versions kept each shard in a bleve scorch index and scored its postings
// here. Profiling `ragkv bench datastore` showed bleve indexing as the largest ingest
// cost (about half of the CPU: a second analysis inside bleve, segment building, the
// background segment merger), and its reader kept per-shard structures on the Go heap
// (ordinal maps, dictionaries). A shard is immutable and written once, so a simple
// format does the job (see build.go): a sorted term dictionary with a sparse index,
// per-term postings in blocks of 128 (delta + varint ordinals and term frequencies) with
// a skip table holding each block's last ordinal, largest term frequency and smallest
// document length, and the document lengths — one file, memory-mapped, so postings,
// dictionary and lengths live in the page cache, not in anonymous memory. The same
// block metadata gives the score upper bounds of MaxScore / block-max top-k (TopK),
// which makes a query's cost grow with the postings it cannot rule out rather than all
// postings of its terms. bleve stays the reference: the tests check that this index
// holds exactly bleve's postings (terms, ordinals, frequencies, lengths) on SciFact and
// on odd Unicode text, so rankings are unchanged.
//
// bleve's own BM25 scorer was never used, because it is not textbook BM25 and cannot be
// merged exactly across shards: it scores BM25 only on a scorch index (an in-memory
// index falls back to TF-IDF); its average length is the field's term cardinality over
// the document count, rounded up; its disjunction multiplies scores by a coord factor.
// On BEIR SciFact (train) bleve's BM25 reaches nDCG@10 0.679; this scorer, on the same
// tokens, 0.7007 (see retrieval's package doc).
//
// Exact sharding (MassiveDS, Shao et al. 2024): a shard only contributes its postings,
// document lengths and per-term document frequencies; the caller sums N, total length and
// df over all shards and passes the collection-global idf and average length back, so a
// document gets the same score whichever shard holds it and per-shard top-k lists merge
// exactly. The shards of one query can share a Floor (TopKShared): the n best scores
// found so far by any shard; a document strictly below it cannot reach the merged top
// n, so every shard prunes with the threshold of the whole collection rather than its
// own (BenchmarkTopKShards). TopK is exact: it returns the same documents and float64 scores as sorting
// Accumulate's exhaustive scores (terms are summed in query order in both).
package lexical
