package ann

import "github.com/ragkv/ragkv/internal/cpu"

// useAVX2 follows the kernel path chosen in internal/cpu (RAGKV_CPU, tests).
func useAVX2() bool { return cpu.HasAVX2() }

// dotAVX2 is dot for len(a) ≥ 16 with AVX2 and FMA.
//
//go:noescape
func dotAVX2(a, b []float32) float32

// dotsTAVX2 is dotsT with AVX2 and FMA (dp even).
//
//go:noescape
func dotsTAVX2(out, q, blk, bias []float32, dp int)

// scanBlocksAVX2 is scanBlocks with AVX2 byte shuffles.
//
//go:noescape
func scanBlocksAVX2(codes []byte, nb, m2 int, lut []byte, thr int, acc []uint16, masks []uint32)

// prefetchRows prefetches the rows ids of data (rowBytes each) into the caches.
//
//go:noescape
func prefetchRows(data []float32, ids []int32, rowBytes int)

// argmaxAVX2 is argmax for a positive multiple of 8 elements.
//
//go:noescape
func argmaxAVX2(x []float32) int

// prefetchBytes prefetches every cache line of b.
//
//go:noescape
func prefetchBytes(b []byte)

// groupMax32AVX2 is groupMax32 with AVX2.
//
//go:noescape
func groupMax32AVX2(x []float32, out []float32)
