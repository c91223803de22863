package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/ragkv/ragkv/model/internal/mmap"
)

// Magic is the first four bytes of a GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that sets the data alignment.
const KeyAlignment = "general.alignment"

// Errors.
var (
	// ErrMalformed: the bytes do not form a valid GGUF file (truncated, out-of-range
	// offsets, bad counts, ...).
	ErrMalformed = errors.New("malformed GGUF")
	// ErrUnsupported: a valid file uses something this package does not handle (version,
	// tensor type).
	ErrUnsupported = errors.New("unsupported GGUF")
	// ErrNotFound: no such metadata key or tensor.
	ErrNotFound = errors.New("not found")
	// ErrType: a metadata value has a different type than requested.
	ErrType = errors.New("metadata type mismatch")
)

// maxDims bounds the number of tensor dimensions (ggml: GGML_MAX_DIMS = 4).
const maxDims = 4

// maxNesting bounds nested arrays.
const maxNesting = 8

// File is a parsed GGUF file. Its metadata and tensor infos are plain Go values; tensor
// data aliases the file's bytes (memory-mapped when opened with Open).
type File struct {
	Path       string
	Version    uint32
	Alignment  uint64
	KVs        []KV
	Tensors    []TensorInfo
	DataOffset uint64 // start of the data section in the file

	data    []byte // whole file
	unmap   func() error
	kvIndex map[string]int
	tIndex  map[string]int
}

// Open memory-maps and parses the GGUF file at path. Close releases the mapping.
func Open(path string) (*File, error) {
	data, unmap, err := mmap.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if len(data) == 0 {
		_ = unmap()
		return nil, fmt.Errorf("gguf %s: %w: empty file", path, ErrMalformed)
	}
	f, err := Parse(path, data)
	if err != nil {
		_ = unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// HasMagic reports whether the file at path starts with the GGUF magic. It reads four
// bytes; a file that cannot be read gives false (opening it then says why).
func HasMagic(path string) bool {
	fd, err := os.Open(path)
	if err != nil {
		return false
	}
	defer fd.Close()
	var b [len(Magic)]byte
	_, err = io.ReadFull(fd, b[:])
	return err == nil && string(b[:]) == Magic
}

// Close releases the file's memory mapping. Tensor data returned earlier must not be
// used afterwards.
func (f *File) Close() error {
	if f == nil || f.unmap == nil {
		return nil
	}
	u := f.unmap
	f.unmap = nil
	f.data = nil
	return u()
}

// Parse parses a whole GGUF file held in data; name is used in error messages. The
// returned File aliases data.
func Parse(name string, data []byte) (*File, error) {
	p := &parser{name: name, b: data}
	f, err := p.file()
	if err != nil {
		return nil, err
	}
	f.Path = name
	f.data = data
	return f, nil
}

type parser struct {
	name string
	b    []byte
	off  uint64
}

func (p *parser) errf(format string, args ...any) error {
	return fmt.Errorf("gguf %s: %w: %s", p.name, ErrMalformed, fmt.Sprintf(format, args...))
}

func (p *parser) need(n uint64, what string) error {
	if n > uint64(len(p.b))-p.off {
		return p.errf("truncated at byte %d reading %s (need %d bytes, %d left)", p.off, what, n, uint64(len(p.b))-p.off)
	}
	return nil
}

func (p *parser) u32(what string) (uint32, error) {
	if err := p.need(4, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint32(p.b[p.off:])
	p.off += 4
	return v, nil
}

func (p *parser) u64(what string) (uint64, error) {
	if err := p.need(8, what); err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(p.b[p.off:])
	p.off += 8
	return v, nil
}

func (p *parser) str(what string) (string, error) {
	n, err := p.u64(what + " length")
	if err != nil {
		return "", err
	}
	if err := p.need(n, what); err != nil {
		return "", err
	}
	s := string(p.b[p.off : p.off+n])
	p.off += n
	return s, nil
}

func (p *parser) left() uint64 { return uint64(len(p.b)) - p.off }

func (p *parser) file() (*File, error) {
	if err := p.need(4, "magic"); err != nil {
		return nil, err
	}
	if string(p.b[:4]) != Magic {
		return nil, p.errf("bad magic %q (want %q)", p.b[:4], Magic)
	}
	p.off = 4
	ver, err := p.u32("version")
	if err != nil {
		return nil, err
	}
	if ver != 3 {
		return nil, fmt.Errorf("gguf %s: %w: version %d (only version 3 is supported)", p.name, ErrUnsupported, ver)
	}
	nt, err := p.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nkv, err := p.u64("metadata count")
	if err != nil {
		return nil, err
	}
	// Each KV needs at least 8 (key length) + 4 (type) + 1 bytes; each tensor info at
	// least 8 + 4 + 4 + 8.
	if nkv > p.left()/13 {
		return nil, p.errf("metadata count %d exceeds what the file can hold", nkv)
	}
	if nt > p.left()/24 {
		return nil, p.errf("tensor count %d exceeds what the file can hold", nt)
	}
	f := &File{Version: ver, Alignment: DefaultAlignment, KVs: make([]KV, 0, nkv), kvIndex: make(map[string]int, nkv)}
	for i := uint64(0); i < nkv; i++ {
		key, err := p.str(fmt.Sprintf("metadata key %d", i))
		if err != nil {
			return nil, err
		}
		t, err := p.u32(fmt.Sprintf("type of metadata %q", key))
		if err != nil {
			return nil, err
		}
		v, err := p.value(ValueType(t), key, 0)
		if err != nil {
			return nil, err
		}
		if _, dup := f.kvIndex[key]; dup {
			return nil, p.errf("duplicate metadata key %q", key)
		}
		f.kvIndex[key] = len(f.KVs)
		f.KVs = append(f.KVs, KV{Key: key, Value: v})
	}
	if i, ok := f.kvIndex[KeyAlignment]; ok {
		v := f.KVs[i].Value
		a, ok := v.V.(uint32)
		if v.Type != TypeUint32 || !ok {
			return nil, p.errf("%s has type %s (want uint32)", KeyAlignment, v.Type)
		}
		if a == 0 || a&(a-1) != 0 {
			return nil, p.errf("%s = %d is not a power of two", KeyAlignment, a)
		}
		f.Alignment = uint64(a)
	}
	f.Tensors = make([]TensorInfo, 0, nt)
	f.tIndex = make(map[string]int, nt)
	for i := uint64(0); i < nt; i++ {
		name, err := p.str(fmt.Sprintf("tensor %d name", i))
		if err != nil {
			return nil, err
		}
		nd, err := p.u32(fmt.Sprintf("tensor %q dimension count", name))
		if err != nil {
			return nil, err
		}
		if nd > maxDims {
			return nil, p.errf("tensor %q has %d dimensions (max %d)", name, nd, maxDims)
		}
		dims := make([]uint64, nd)
		for d := range dims {
			if dims[d], err = p.u64(fmt.Sprintf("tensor %q dimension %d", name, d)); err != nil {
				return nil, err
			}
		}
		t, err := p.u32(fmt.Sprintf("tensor %q type", name))
		if err != nil {
			return nil, err
		}
		off, err := p.u64(fmt.Sprintf("tensor %q offset", name))
		if err != nil {
			return nil, err
		}
		if _, dup := f.tIndex[name]; dup {
			return nil, p.errf("duplicate tensor name %q", name)
		}
		if off%f.Alignment != 0 {
			return nil, p.errf("tensor %q offset %d is not a multiple of the alignment %d", name, off, f.Alignment)
		}
		f.tIndex[name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, TensorInfo{Name: name, Dims: dims, Type: TensorType(t), Offset: off})
	}
	f.DataOffset = alignUp(p.off, f.Alignment)
	if nt > 0 && f.DataOffset > uint64(len(p.b)) {
		return nil, p.errf("data section at byte %d starts beyond the end of the file (%d bytes)", f.DataOffset, len(p.b))
	}
	dataLen := uint64(0)
	if f.DataOffset <= uint64(len(p.b)) {
		dataLen = uint64(len(p.b)) - f.DataOffset
	}
	// Check every tensor lies inside the data section and that tensors do not overlap.
	type span struct{ lo, hi uint64 }
	spans := make([]span, 0, len(f.Tensors))
	for _, t := range f.Tensors {
		size, err := t.Size()
		if err != nil {
			return nil, fmt.Errorf("gguf %s: %w", p.name, err)
		}
		if t.Offset > dataLen || size > dataLen-t.Offset {
			return nil, p.errf("tensor %q data [%d, +%d) extends beyond the end of the file (data section holds %d bytes)", t.Name, t.Offset, size, dataLen)
		}
		spans = append(spans, span{t.Offset, t.Offset + size})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	for i := 1; i < len(spans); i++ {
		if spans[i].lo < spans[i-1].hi {
			return nil, p.errf("tensor data regions overlap at data offset %d", spans[i].lo)
		}
	}
	return f, nil
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) / a * a }

func (p *parser) value(t ValueType, key string, depth int) (Value, error) {
	what := fmt.Sprintf("value of metadata %q", key)
	switch t {
	case TypeUint8, TypeInt8, TypeBool, TypeUint16, TypeInt16, TypeUint32, TypeInt32, TypeFloat32, TypeUint64, TypeInt64, TypeFloat64:
		sz := uint64(t.fixedSize())
		if err := p.need(sz, what); err != nil {
			return Value{}, err
		}
		b := p.b[p.off : p.off+sz]
		p.off += sz
		v, err := p.scalar(t, b, key)
		return Value{t, v}, err
	case TypeString:
		s, err := p.str(what)
		return Value{t, s}, err
	case TypeArray:
		if depth >= maxNesting {
			return Value{}, p.errf("metadata %q: arrays nested deeper than %d", key, maxNesting)
		}
		et, err := p.u32(what + " element type")
		if err != nil {
			return Value{}, err
		}
		n, err := p.u64(what + " element count")
		if err != nil {
			return Value{}, err
		}
		a, err := p.array(ValueType(et), n, key, depth)
		return Value{t, a}, err
	}
	return Value{}, p.errf("metadata %q has unknown value type %d", key, uint32(t))
}

func (p *parser) scalar(t ValueType, b []byte, key string) (any, error) {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return b[0], nil
	case TypeInt8:
		return int8(b[0]), nil
	case TypeBool:
		if b[0] > 1 {
			return nil, p.errf("metadata %q: bool byte %d is neither 0 nor 1", key, b[0])
		}
		return b[0] == 1, nil
	case TypeUint16:
		return le.Uint16(b), nil
	case TypeInt16:
		return int16(le.Uint16(b)), nil
	case TypeUint32:
		return le.Uint32(b), nil
	case TypeInt32:
		return int32(le.Uint32(b)), nil
	case TypeFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case TypeUint64:
		return le.Uint64(b), nil
	case TypeInt64:
		return int64(le.Uint64(b)), nil
	case TypeFloat64:
		return math.Float64frombits(le.Uint64(b)), nil
	}
	return nil, p.errf("metadata %q: bad scalar type %d", key, t)
}

// decodeFixed decodes len(b)/size little-endian values of one fixed-size type.
func decodeFixed[T any](b []byte, size int, dec func([]byte) T) []T {
	v := make([]T, len(b)/size)
	for i := range v {
		v[i] = dec(b[i*size:])
	}
	return v
}

func (p *parser) array(et ValueType, n uint64, key string, depth int) (Array, error) {
	what := fmt.Sprintf("array %q", key)
	le := binary.LittleEndian
	if sz := uint64(et.fixedSize()); sz > 0 {
		if n > p.left()/sz {
			return Array{}, p.errf("%s of %d %s elements extends beyond the end of the file", what, n, et)
		}
		b := p.b[p.off : p.off+n*sz]
		p.off += n * sz
		a := Array{Elem: et}
		switch et {
		case TypeUint8:
			a.V = append([]uint8(nil), b...)
		case TypeInt8:
			v := make([]int8, n)
			for i := range v {
				v[i] = int8(b[i])
			}
			a.V = v
		case TypeBool:
			v := make([]bool, n)
			for i := range v {
				if b[i] > 1 {
					return Array{}, p.errf("%s: bool byte %d is neither 0 nor 1", what, b[i])
				}
				v[i] = b[i] == 1
			}
			a.V = v
		case TypeUint16:
			a.V = decodeFixed(b, 2, le.Uint16)
		case TypeInt16:
			a.V = decodeFixed(b, 2, func(b []byte) int16 { return int16(le.Uint16(b)) })
		case TypeUint32:
			a.V = decodeFixed(b, 4, le.Uint32)
		case TypeInt32:
			a.V = decodeFixed(b, 4, func(b []byte) int32 { return int32(le.Uint32(b)) })
		case TypeFloat32:
			a.V = decodeFixed(b, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
		case TypeUint64:
			a.V = decodeFixed(b, 8, le.Uint64)
		case TypeInt64:
			a.V = decodeFixed(b, 8, func(b []byte) int64 { return int64(le.Uint64(b)) })
		case TypeFloat64:
			a.V = decodeFixed(b, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
		}
		return a, nil
	}
	switch et {
	case TypeString:
		if n > p.left()/8 {
			return Array{}, p.errf("%s of %d strings extends beyond the end of the file", what, n)
		}
		v := make([]string, n)
		for i := range v {
			s, err := p.str(fmt.Sprintf("%s element %d", what, i))
			if err != nil {
				return Array{}, err
			}
			v[i] = s
		}
		return Array{Elem: et, V: v}, nil
	case TypeArray:
		if n > p.left()/12 {
			return Array{}, p.errf("%s of %d arrays extends beyond the end of the file", what, n)
		}
		v := make([]Array, n)
		for i := range v {
			sub, err := p.value(TypeArray, key, depth+1)
			if err != nil {
				return Array{}, err
			}
			v[i] = sub.V.(Array)
		}
		return Array{Elem: et, V: v}, nil
	}
	return Array{}, p.errf("%s has unknown element type %d", what, uint32(et))
}

// Lookup returns the value of a metadata key.
func (f *File) Lookup(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KVs[i].Value, true
}

func (f *File) get(key string, t ValueType) (any, error) {
	v, ok := f.Lookup(key)
	if !ok {
		return nil, fmt.Errorf("gguf %s: metadata %q: %w", f.Path, key, ErrNotFound)
	}
	if v.Type != t {
		return nil, fmt.Errorf("gguf %s: metadata %q is %s, want %s: %w", f.Path, key, v.Type, t, ErrType)
	}
	return v.V, nil
}

// String returns a string metadata value.
func (f *File) String(key string) (string, error) {
	v, err := f.get(key, TypeString)
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// Uint returns an integer metadata value of any integer type as uint64 (negative values
// are an error).
func (f *File) Uint(key string) (uint64, error) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, fmt.Errorf("gguf %s: metadata %q: %w", f.Path, key, ErrNotFound)
	}
	var x int64
	switch t := v.V.(type) {
	case uint8:
		return uint64(t), nil
	case uint16:
		return uint64(t), nil
	case uint32:
		return uint64(t), nil
	case uint64:
		return t, nil
	case int8:
		x = int64(t)
	case int16:
		x = int64(t)
	case int32:
		x = int64(t)
	case int64:
		x = t
	default:
		return 0, fmt.Errorf("gguf %s: metadata %q is %s, want an integer: %w", f.Path, key, v.Type, ErrType)
	}
	if x < 0 {
		return 0, fmt.Errorf("gguf %s: metadata %q = %d is negative: %w", f.Path, key, x, ErrType)
	}
	return uint64(x), nil
}

// Float returns a float32 or float64 metadata value as float64.
func (f *File) Float(key string) (float64, error) {
	v, ok := f.Lookup(key)
	if !ok {
		return 0, fmt.Errorf("gguf %s: metadata %q: %w", f.Path, key, ErrNotFound)
	}
	switch t := v.V.(type) {
	case float32:
		return float64(t), nil
	case float64:
		return t, nil
	}
	return 0, fmt.Errorf("gguf %s: metadata %q is %s, want a float: %w", f.Path, key, v.Type, ErrType)
}

// Array returns an array metadata value.
func (f *File) Array(key string) (Array, error) {
	v, err := f.get(key, TypeArray)
	if err != nil {
		return Array{}, err
	}
	return v.(Array), nil
}

// Tensor returns the info of a named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.tIndex[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// TensorData returns the raw bytes of a named tensor. They alias the file (read-only,
// valid until Close).
func (f *File) TensorData(name string) (TensorInfo, []byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return TensorInfo{}, nil, fmt.Errorf("gguf %s: tensor %q: %w", f.Path, name, ErrNotFound)
	}
	size, err := t.Size()
	if err != nil {
		return t, nil, fmt.Errorf("gguf %s: %w", f.Path, err)
	}
	if f.data == nil {
		return t, nil, fmt.Errorf("gguf %s: file is closed", f.Path)
	}
	lo := f.DataOffset + t.Offset
	return t, f.data[lo : lo+size : lo+size], nil
}

// Bytes returns the whole file's bytes (aliasing the mapping).
func (f *File) Bytes() []byte { return f.data }
