// Package retrieval owns ragkv's retrieval datastore: named collections of passages
// searched with BM25, PCA-compressed dense vectors or a fusion of both, sharded and
// merged exactly in the style of MassiveDS (Shao et al., "Scaling Retrieval-Based
// Language Models with a Trillion-Token Datastore", NeurIPS 2024), and tool registries
// searched with Tool2Vec (Moon et al., "Efficient and Scalable Estimation of Tool
// Representations in Vector Space", 2024).
//
// # Ingestion
//
// Documents (BEIR corpus lines {"_id","title","text"}, or the Ingest RPC) are cut into
// word windows (default 256 words, as MassiveDS, with a 32-word overlap; the original
// text of each window is kept). A passage's id is "<document id>#<index>", stable across
// restarts and rebuilds; its chunk id — what a Prefill uses — is the hex SHA-256 of its
// text (ChunkID). Duplicate passages are dropped at ingest by SHA-256 of the normalized
// text or by MinHash (128 permutations, 16 LSH bands; Broder 1997) against both the
// ingest and the committed collection. A document id already present is skipped, or
// replaced with IngestOptions.Upsert; Ingest.Delete deletes documents.
//
// # Documents over time
//
// Shards never change. Replacing or deleting a document tombstones its live passages
// in the manifest's shard entries (found by binary search of the shards' sorted passage
// ids); searches skip tombstoned ordinals and subtract them from the collection-global
// BM25 statistics (N, total length, and the document frequency of every query term,
// counted on the postings), so a collection with tombstones ranks — to the float64 —
// exactly as a from-scratch build of its live documents. Compact merges shards by a
// tiered policy (CompactionPolicy: MergeFactor shards of one size tier, at most
// MaxShards, rewrites shards with MaxDeadFraction tombstoned) and drops tombstones;
// RebuildWith(Refit) re-fits the SIF weights, PCA and quantizer on the current corpus
// (in passage-id order, as a fresh ingest samples them) and re-embeds it, after which
// dense and hybrid rankings equal a from-scratch build's too; CollectGarbage runs
// Badger's value-log GC; Options.CompactEvery runs both in the background.
// Changes to keys that exist already (a replaced passage's record, document markers,
// dedup keys) go through a redo log tagged with the new generation: written before the
// manifest switch, applied after it once readers of the previous generation are done
// (readers of the new one look in the log first). Open applies the log of a committed
// generation and drops that of an interrupted one, so a kill at any step — tested with
// failpoints at every step (internal/failpoint, "retrieval/<step>"), in process and as
// a child process killed there — leaves the last committed state searchable.
//
// # Storage and crash safety
//
// Passages, dedup keys and each collection's manifest live in one Badger database
// (values above 256 bytes — the passage records — in its value log, so the LSM tree
// that compactions rewrite holds only keys, markers and value pointers); each
// shard is an immutable directory (a memory-mapped inverted index of package
// retrieval/internal/lexical, the memory-mapped passage table and its record offsets,
// full vectors read on demand for rescoring, compressed codes, optionally an ANN index). A commit builds the new shards in
// parallel, syncs them, writes the passages tagged with the new generation behind a
// pending marker, syncs, and then switches the manifest — the commit point — in one
// Badger transaction. An ingest that fails or a process that dies before the switch
// leaves the collection at its last committed generation; Open drops whatever the
// interrupted ingest wrote (keys of a later generation, unreferenced shard directories).
// Readers pin an immutable snapshot, so searches run concurrently with ingests,
// rebuilds and fusion updates.
//
// # Search
//
// BM25 is textbook Okapi BM25 (k1 1.2, b 0.75) with collection-global statistics (N,
// average length, document frequencies summed over the shards), so a passage scores
// the same float64 in every shard layout; each shard returns its exact top list by
// MaxScore with block-max bounds, and hybrid candidates get their BM25 by seeking the
// postings: see package retrieval/internal/lexical (its own index, holding exactly
// bleve's postings, and why). Dense search embeds
// the query (embed.Embedder: GloVe-SIF built in, any OpenAI-compatible /v1/embeddings
// server, an in-engine encoder of package model/encoder, or vectors supplied by the
// client; an embed.QueryEmbedder encodes queries apart from passages, as E5's "query: "
// prefix asks), projects it with the collection's PCA
// (PCA-RAG: Khaledian et al. 2025; fitted with gonum on a sample at the first commit and
// persisted), scans the projected — optionally int8 — codes of every shard, merges the
// per-shard top lists exactly and rescores the best max(k′, 100) with the full vectors
// read from disk. Shards above ANNThreshold passages (or every shard, with dense index
// "ann") use the IVF-PQ index of retrieval/internal/ann instead of the scan; a request
// may force the exact scan. Hybrid search takes both candidate lists (depth max(k′, 100)),
// gives every candidate both exact raw scores, and fuses them by weighted min-max
// normalized scores (the BM25 weight fitted on labelled queries and kept with the
// collection; FitFusion) or by reciprocal-rank fusion (k = 60; Cormack et al., SIGIR
// 2009). After the exact merge (score, then passage id) come chunk dedup, document
// filters, grouping by document and truncation to k; if filters leave fewer than k, the
// per-shard depth grows, so the result equals filtering the full ranking.
//
// # Measured (BEIR SciFact train: 5,183 abstracts → 6,247 passages, 809 queries)
//
// With `ragkv eval retrieval --corpus ../shared/data/scifact/corpus.jsonl
// --queries ../shared/data/scifact/queries.train.jsonl --qrels
// ../shared/data/scifact/qrels.train.tsv --embeddings
// ../shared/embeddings/glove.6B.100d.top50k.txt.gz --mode M --shards S --json`
// (hybrid adds --fit-queries/--fit-qrels = the same queries; each query is then ranked
// with the weight fitted on the other four of five folds):
//
//	mode                 nDCG@10  recall@100  MRR@10   (1 and 4 shards: identical runs, bit for bit)
//	bm25                 0.7007   0.9357      0.6718   (bleve's BM25 scorer: 0.679)
//	dense (GloVe-SIF)    0.2268   0.5147      0.2080   (PCA 32 + rescoring; full vectors 0.2276)
//	hybrid, weighted     0.6980   0.9344      0.6687   (fitted BM25 weight 0.95; in-sample 0.7016)
//	hybrid, RRF k=60     0.4080   0.9165      0.3696
//
// PCA (`--mode dense --pca-sweep 16,32,50,64,100`): dense nDCG@10 retained relative to
// full 100-d vectors is 97.7 / 99.7 / 100 / 100 / 100 % with rescoring (recall@100:
// 89 / 96 / 99 / 100 / 100 %) and 43 / 67 / 84 / 92 / 100 % from the codes alone.
// DefaultPCADims is 32, the smallest dimension keeping ≥ 95% of both nDCG@10 and
// recall@100 (16 keeps nDCG@10 only thanks to rescoring 200 of 6,247 candidates). int8
// codes give the same figures at 16 and 32 dims (one byte per dimension in RAM).
//
// Tool2Vec on MetaTool (`ragkv eval tools --tools ../shared/data/metatool/tools.json
// --train ../shared/data/metatool/queries.train.jsonl --method M --embeddings … --json`,
// 20% of the queries held out by a seeded hash of their ids): recall@1/3/5 and nDCG@5
// are 0.526 / 0.700 / 0.764 / 0.655 for tool2vec and 0.255 / 0.383 / 0.452 / 0.358 for
// description embeddings (+31.8 points recall@3). ToolMethodPrior shrinks the centroid
// towards the embedding of the tool's name and description (n/(n+2)); ToolMethodKNN
// scores the 3 nearest usage queries of each tool, plus the same prior. Recall@1/3/5:
//
//	usage queries             description          tool2vec             tool2vec-prior       knn
//	all (13,233)              0.255 0.383 0.452    0.526 0.700 0.764    0.526 0.702 0.766    0.672 0.834 0.876
//	2 per tool (398, thin)    0.241 0.362 0.423    0.274 0.426 0.500    0.355 0.510 0.584    0.293 0.462 0.537
//
// (`--max-usage 2` keeps the first two training queries of each tool: where usage data
// is thin the prior helps most, +8.4 recall@3 points over tool2vec; with plenty, kNN
// gains +13.4.)
package retrieval
