package kernels

import (
	"errors"
	"fmt"
	"strings"
)

// DType is a tensor element type. Its values equal ggml's ggml_type ids, so GGUF tensor
// types map to it one to one.
type DType uint32

// Supported types (ggml_type ids).
const (
	F32  DType = 0
	F16  DType = 1
	Q4_0 DType = 2
	Q5_0 DType = 6
	Q5_1 DType = 7
	Q8_0 DType = 8
	Q4_K DType = 12
	Q5_K DType = 13
	Q6_K DType = 14
	BF16 DType = 30
)

var (
	// ErrUnsupportedType is returned for a DType this package cannot handle.
	ErrUnsupportedType = errors.New("kernels: unsupported tensor type")
	// ErrShape is returned when buffer lengths or dimensions do not fit together.
	ErrShape = errors.New("kernels: shape mismatch")
)

// Block sizes of the quantized formats (ggml's QK8_0, QK4_0 and QK_K).
const (
	qk8_0 = 32
	qk4_0 = 32
	qk5_0 = 32
	qk5_1 = 32
	qkK   = 256
)

// Block byte sizes (sizeof(block_*) in ggml-common.h).
const (
	blockQ8_0Bytes = 2 + qk8_0                  // d, qs[32]
	blockQ4_0Bytes = 2 + qk4_0/2                // d, qs[16]
	blockQ5_0Bytes = 2 + 4 + qk5_0/2            // d, qh[4], qs[16]
	blockQ5_1Bytes = 2 + 2 + 4 + qk5_1/2        // d, m, qh[4], qs[16]
	blockQ4_KBytes = 2 + 2 + 12 + qkK/2         // d, dmin, scales[12], qs[128]
	blockQ5_KBytes = 2 + 2 + 12 + qkK/8 + qkK/2 // d, dmin, scales[12], qh[32], qs[128]
	blockQ6_KBytes = qkK/2 + qkK/4 + qkK/16 + 2 // ql[128], qh[64], scales[16], d
	blockQ8_KBytes = 4 + qkK + 2*(qkK/16)       // d (f32), qs[256], bsums[16]
)

type typeInfo struct {
	name       string
	blockElems int
	blockBytes int
}

var types = map[DType]typeInfo{
	F32:  {"f32", 1, 4},
	F16:  {"f16", 1, 2},
	BF16: {"bf16", 1, 2},
	Q8_0: {"q8_0", qk8_0, blockQ8_0Bytes},
	Q4_0: {"q4_0", qk4_0, blockQ4_0Bytes},
	Q5_0: {"q5_0", qk5_0, blockQ5_0Bytes},
	Q5_1: {"q5_1", qk5_1, blockQ5_1Bytes},
	Q4_K: {"q4_K", qkK, blockQ4_KBytes},
	Q5_K: {"q5_K", qkK, blockQ5_KBytes},
	Q6_K: {"q6_K", qkK, blockQ6_KBytes},
}

// String returns ggml's name for the type ("f32", "f16", "q8_0", "q4_K", ...).
func (t DType) String() string {
	if ti, ok := types[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("dtype(%d)", uint32(t))
}

// Supported reports whether the package handles the type.
func (t DType) Supported() bool {
	_, ok := types[t]
	return ok
}

// ParseDType parses a type name as printed by String (case-insensitive).
func ParseDType(s string) (DType, error) {
	for t, ti := range types {
		if strings.EqualFold(ti.name, s) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnsupportedType, s)
}

// BlockElems is the number of elements per block: 1 for f32/f16/bf16, 32 for q8_0/q4_0,
// 256 for the k-quants. It is 0 for an unsupported type.
func (t DType) BlockElems() int { return types[t].blockElems }

// BlockBytes is the size in bytes of one block. It is 0 for an unsupported type.
func (t DType) BlockBytes() int { return types[t].blockBytes }

// RowBytes is the size in bytes of a row of cols elements of type t. It fails if t is
// unsupported or cols is not a multiple of the block size.
func RowBytes(t DType, cols int) (int, error) {
	ti, ok := types[t]
	if !ok {
		return 0, fmt.Errorf("%w: %v", ErrUnsupportedType, t)
	}
	if cols < 0 || cols%ti.blockElems != 0 {
		return 0, fmt.Errorf("%w: %d columns is not a multiple of the %v block size %d", ErrShape, cols, t, ti.blockElems)
	}
	return cols / ti.blockElems * ti.blockBytes, nil
}
