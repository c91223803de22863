package gguf

import "fmt"

// ValueType is the type tag of a metadata value (gguf_type).
type ValueType uint32

// Metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// fixedSize is the encoded size of a scalar of type t (0 for string/array/unknown).
func (t ValueType) fixedSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	}
	return 0
}

// TensorType is a ggml tensor type id (ggml_type). The values equal those of the
// kernels package's DType.
type TensorType uint32

// Tensor types with a known layout.
const (
	TensorF32  TensorType = 0
	TensorF16  TensorType = 1
	TensorQ4_0 TensorType = 2
	TensorQ4_1 TensorType = 3
	TensorQ5_0 TensorType = 6
	TensorQ5_1 TensorType = 7
	TensorQ8_0 TensorType = 8
	TensorQ8_1 TensorType = 9
	TensorQ2_K TensorType = 10
	TensorQ3_K TensorType = 11
	TensorQ4_K TensorType = 12
	TensorQ5_K TensorType = 13
	TensorQ6_K TensorType = 14
	TensorQ8_K TensorType = 15
	TensorI8   TensorType = 24
	TensorI16  TensorType = 25
	TensorI32  TensorType = 26
	TensorI64  TensorType = 27
	TensorF64  TensorType = 28
	TensorBF16 TensorType = 30
)

// TypeInfo describes the block layout of a tensor type.
type TypeInfo struct {
	Name       string
	BlockElems int // elements per block
	BlockBytes int // bytes per block
}

var typeInfos = map[TensorType]TypeInfo{
	TensorF32:  {"f32", 1, 4},
	TensorF16:  {"f16", 1, 2},
	TensorQ4_0: {"q4_0", 32, 18},
	TensorQ4_1: {"q4_1", 32, 20},
	TensorQ5_0: {"q5_0", 32, 22},
	TensorQ5_1: {"q5_1", 32, 24},
	TensorQ8_0: {"q8_0", 32, 34},
	TensorQ8_1: {"q8_1", 32, 36},
	TensorQ2_K: {"q2_K", 256, 84},
	TensorQ3_K: {"q3_K", 256, 110},
	TensorQ4_K: {"q4_K", 256, 144},
	TensorQ5_K: {"q5_K", 256, 176},
	TensorQ6_K: {"q6_K", 256, 210},
	TensorQ8_K: {"q8_K", 256, 292},
	TensorI8:   {"i8", 1, 1},
	TensorI16:  {"i16", 1, 2},
	TensorI32:  {"i32", 1, 4},
	TensorI64:  {"i64", 1, 8},
	TensorF64:  {"f64", 1, 8},
	TensorBF16: {"bf16", 1, 2},
}

// Info returns the layout of t; ok is false for types this package does not know.
func (t TensorType) Info() (TypeInfo, bool) {
	ti, ok := typeInfos[t]
	return ti, ok
}

func (t TensorType) String() string {
	if ti, ok := typeInfos[t]; ok {
		return ti.Name
	}
	return fmt.Sprintf("ggml_type(%d)", uint32(t))
}

// Value is one metadata value. V holds, by Type: uint8, int8, uint16, int16, uint32,
// int32, float32, bool, string, uint64, int64, float64, or Array.
type Value struct {
	Type ValueType
	V    any
}

// Array is an array value. V is a typed slice by Elem: []uint8, []int8, []uint16,
// []int16, []uint32, []int32, []float32, []bool, []string, []uint64, []int64, []float64,
// or []Array for nested arrays.
type Array struct {
	Elem ValueType
	V    any
}

// Len returns the number of elements.
func (a Array) Len() int {
	switch v := a.V.(type) {
	case []uint8:
		return len(v)
	case []int8:
		return len(v)
	case []uint16:
		return len(v)
	case []int16:
		return len(v)
	case []uint32:
		return len(v)
	case []int32:
		return len(v)
	case []float32:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	case []uint64:
		return len(v)
	case []int64:
		return len(v)
	case []float64:
		return len(v)
	case []Array:
		return len(v)
	}
	return 0
}

// Convenience constructors for metadata values.
func Uint8(v uint8) Value     { return Value{TypeUint8, v} }
func Int8(v int8) Value       { return Value{TypeInt8, v} }
func Uint16(v uint16) Value   { return Value{TypeUint16, v} }
func Int16(v int16) Value     { return Value{TypeInt16, v} }
func Uint32(v uint32) Value   { return Value{TypeUint32, v} }
func Int32(v int32) Value     { return Value{TypeInt32, v} }
func Float32(v float32) Value { return Value{TypeFloat32, v} }
func Bool(v bool) Value       { return Value{TypeBool, v} }
func String(v string) Value   { return Value{TypeString, v} }
func Uint64(v uint64) Value   { return Value{TypeUint64, v} }
func Int64(v int64) Value     { return Value{TypeInt64, v} }
func Float64(v float64) Value { return Value{TypeFloat64, v} }

// ArrayOf wraps a typed slice (see Array) as an array value; it returns an error for an
// unsupported slice type.
func ArrayOf(slice any) (Value, error) {
	var e ValueType
	switch slice.(type) {
	case []uint8:
		e = TypeUint8
	case []int8:
		e = TypeInt8
	case []uint16:
		e = TypeUint16
	case []int16:
		e = TypeInt16
	case []uint32:
		e = TypeUint32
	case []int32:
		e = TypeInt32
	case []float32:
		e = TypeFloat32
	case []bool:
		e = TypeBool
	case []string:
		e = TypeString
	case []uint64:
		e = TypeUint64
	case []int64:
		e = TypeInt64
	case []float64:
		e = TypeFloat64
	case []Array:
		e = TypeArray
	default:
		return Value{}, fmt.Errorf("gguf: unsupported array element type %T", slice)
	}
	return Value{TypeArray, Array{Elem: e, V: slice}}, nil
}

// KV is one metadata pair.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor. Dims are in ggml order: Dims[0] is the number of
// elements in a row (the fastest-varying dimension). Offset is relative to the start of
// the data section.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   TensorType
	Offset uint64
}

// Elems is the number of elements (product of Dims).
func (t TensorInfo) Elems() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// Size returns the byte size of the tensor's data, or an error for an unknown type or a
// row length that is not a multiple of the type's block size.
func (t TensorInfo) Size() (uint64, error) {
	ti, ok := typeInfos[t.Type]
	if !ok {
		return 0, fmt.Errorf("%w: tensor %q has unknown type %d", ErrUnsupported, t.Name, uint32(t.Type))
	}
	if len(t.Dims) == 0 {
		return uint64(ti.BlockBytes), nil
	}
	if t.Dims[0]%uint64(ti.BlockElems) != 0 {
		return 0, fmt.Errorf("%w: tensor %q row length %d is not a multiple of the %s block size %d", ErrMalformed, t.Name, t.Dims[0], ti.Name, ti.BlockElems)
	}
	const limit = 1 << 62
	n := t.Dims[0] / uint64(ti.BlockElems)
	if n > limit/uint64(ti.BlockBytes) {
		return 0, fmt.Errorf("%w: tensor %q size overflows", ErrMalformed, t.Name)
	}
	n *= uint64(ti.BlockBytes)
	for _, d := range t.Dims[1:] {
		if d != 0 && n > limit/d {
			return 0, fmt.Errorf("%w: tensor %q size overflows", ErrMalformed, t.Name)
		}
		n *= d
	}
	return n, nil
}
