// Package tokenizer turns text into token ids and back for Llama-family models.
//
// Three algorithms are implemented:
//
//   - SentencePiece-style BPE with piece scores and byte fallback (SPM), as used by
//     llama2.c tokenizer files (tok512.bin) and GGUF files with tokenizer.ggml.model =
//     "llama" (spaces written as U+2581). Encoding follows llama2.c's encode() exactly: an
//     optional BOS, a dummy-prefix space when the text is not empty, one symbol per UTF-8
//     character (byte-fallback tokens <0xXX> for characters not in the vocabulary), then
//     repeated merging of the adjacent pair whose concatenated piece has the highest score
//     (ties: leftmost). The merge loop uses a priority queue, which yields the same result
//     as llama2.c's quadratic scan.
//   - Byte-level BPE (GPT-2 style), as used by GGUF tokenizer.ggml.model = "gpt2" and
//     HuggingFace tokenizer.json files (Llama 3, Qwen2, SmolLM): a regex pre-tokenizer
//     (the Llama-3, Qwen2 and GPT-2 patterns are built in; tokenizer.json supplies its
//     own), bytes mapped to printable code points, then merges applied by rank. The
//     pre-tokenizer patterns need look-ahead and Unicode classes, so they run on
//     github.com/dlclark/regexp2 (Go's regexp has no look-ahead).
//   - WordPiece (BERT encoders; see WordPiece): HF's BertNormalizer and BertPreTokenizer,
//     then greedy longest-match pieces, from GGUF tokenizer.ggml.model = "bert", a
//     tokenizer.json with a WordPiece model, or a vocab.txt.
//
// Decode round-trips: Decode(Encode(s, ...)) == s for every string s (valid UTF-8 or not)
// for SPM tokenizers, and for byte-level BPE whenever the vocabulary covers all 256 bytes.
// Piece returns the bytes llama2.c's decode() would print for one token after another
// (leading space stripped after BOS, <0xXX> pieces as raw bytes).
package tokenizer
