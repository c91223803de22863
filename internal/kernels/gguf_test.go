package kernels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
)

// A tiny self-contained GGUF v3 reader for the test vectors (the real parser lives in
// package model/gguf; this one exists so that the kernels tests depend on nothing else).

type testTensor struct {
	name string
	dims []uint64
	typ  DType
	data []byte
}

type ggufReader struct {
	b   []byte
	off int
	err error
}

func (r *ggufReader) need(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.off+n > len(r.b) {
		r.err = fmt.Errorf("truncated at offset %d (need %d bytes)", r.off, n)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *ggufReader) u32() uint32 {
	if s := r.need(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *ggufReader) u64() uint64 {
	if s := r.need(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

func (r *ggufReader) str() string {
	n := r.u64()
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("string length %d too large", n)
		return ""
	}
	return string(r.need(int(n)))
}

// value reads a KV value of GGUF type t; it returns integers as uint64 when they fit.
func (r *ggufReader) value(t uint32) any {
	switch t {
	case 0, 1, 7: // u8, i8, bool
		return uint64(r.need(1)[0])
	case 2, 3: // u16, i16
		return uint64(binary.LittleEndian.Uint16(r.need(2)))
	case 4, 5: // u32, i32
		return uint64(r.u32())
	case 6: // f32
		return math.Float32frombits(r.u32())
	case 8:
		return r.str()
	case 9: // array
		et := r.u32()
		n := r.u64()
		if n > uint64(len(r.b)) {
			r.err = fmt.Errorf("array length %d too large", n)
			return nil
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			r.value(et)
		}
		return nil
	case 10, 11: // u64, i64
		return r.u64()
	case 12: // f64
		return math.Float64frombits(r.u64())
	}
	r.err = fmt.Errorf("unknown value type %d", t)
	return nil
}

func readTestGGUF(b []byte) (map[string]testTensor, error) {
	r := &ggufReader{b: b}
	if string(r.need(4)) != "GGUF" {
		return nil, errors.New("bad magic")
	}
	if v := r.u32(); v != 3 {
		return nil, fmt.Errorf("version %d, want 3", v)
	}
	nt, nkv := r.u64(), r.u64()
	align := uint64(32)
	for i := uint64(0); i < nkv && r.err == nil; i++ {
		k := r.str()
		v := r.value(r.u32())
		if k == "general.alignment" {
			if a, ok := v.(uint64); ok && a > 0 {
				align = a
			}
		}
	}
	type info struct {
		name string
		dims []uint64
		typ  DType
		off  uint64
	}
	var infos []info
	for i := uint64(0); i < nt && r.err == nil; i++ {
		in := info{name: r.str()}
		nd := r.u32()
		if nd > 4 {
			return nil, fmt.Errorf("tensor %q has %d dims", in.name, nd)
		}
		for range nd {
			in.dims = append(in.dims, r.u64())
		}
		in.typ = DType(r.u32())
		in.off = r.u64()
		infos = append(infos, in)
	}
	if r.err != nil {
		return nil, r.err
	}
	base := (uint64(r.off) + align - 1) / align * align
	out := map[string]testTensor{}
	for _, in := range infos {
		n := uint64(1)
		for _, d := range in.dims {
			n *= d
		}
		if !in.typ.Supported() {
			return nil, fmt.Errorf("tensor %q: type %d", in.name, in.typ)
		}
		size, err := RowBytes(in.typ, int(n))
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", in.name, err)
		}
		start := base + in.off
		if start+uint64(size) > uint64(len(b)) {
			return nil, fmt.Errorf("tensor %q: data out of file", in.name)
		}
		out[in.name] = testTensor{name: in.name, dims: in.dims, typ: in.typ, data: b[start : start+uint64(size)]}
	}
	return out, nil
}

func loadQuantVectors(t testing.TB) map[string]testTensor {
	path := filepath.Join(shared.Path(t), "testdata", "quant_vectors.gguf")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m, err := readTestGGUF(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

func f32s(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
