// Package gguf reads and writes GGUF version 3 files, the single-file model format of
// the ggml library (llama.cpp): a little-endian header, typed metadata key/value pairs,
// tensor infos (name, dimensions with ne[0] the fastest-varying, ggml type, offset) and an
// aligned data section (general.alignment, default 32). Format reference: ggml's
// docs/gguf.md and gguf.c.
//
// The reader memory-maps the file (golang.org/x/sys/unix.Mmap; it falls back to reading
// the file when mapping fails), so tensor data returned by File.TensorData aliases the
// mapping and is valid until File.Close; it must never be written. Every count, length,
// offset and size is checked against the file before use: a malformed or truncated file
// gives an error wrapping ErrMalformed that names the file and the problem, never a panic.
//
// The writer streams: metadata and tensor infos are declared first, then tensor data is
// written in declaration order, so multi-gigabyte files never sit in memory. A file read
// with this package and written back with the same metadata, tensors and alignment is
// byte-identical to what ggml's writer produces.
//
// This package knows the block size of each ggml tensor type through a small local table
// (TypeInfo), so that it does not import the kernels package.
package gguf
