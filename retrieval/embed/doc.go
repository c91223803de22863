// Package embed turns text into dense vectors for retrieval. It owns the Embedder
// interface and its implementations:
//
//   - SIF, a sentence embedder over GloVe word vectors (Pennington et al., EMNLP 2014)
//     with smooth inverse frequency weighting a/(a + p(w)) and removal of the first
//     principal ("common discourse") component (Arora, Liang & Ma, "A Simple but
//     Tough-to-Beat Baseline for Sentence Embeddings", ICLR 2017). Word vectors are read
//     from the GloVe text format ("word v1 … vd" per line), plain or gzip. Word
//     probabilities p(w) come from the corpus the embedder is fitted on (add-one smoothed)
//     or, unfitted, from the GloVe file's frequency rank under Zipf's law.
//   - HTTP, a client of OpenAI-compatible /v1/embeddings servers (vLLM, llama.cpp server,
//     text-embeddings-inference, OpenAI): the drop-in for a real neural sentence encoder.
//
// Vectors supplied by clients need no Embedder: the retrieval package checks their
// dimension against the collection's.
//
// Every Embedder returns unit-length vectors, so inner product is cosine similarity. An
// Embedder whose output depends on corpus statistics also implements Fitter; the fitted
// state is an opaque byte string that the caller persists with its collection.
package embed
