// Package safetensors reads and writes the safetensors format (huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON mapping tensor names to
// {"dtype","shape","data_offsets":[begin,end]} (offsets relative to the data that follows
// the header) plus an optional "__metadata__" string map, then the raw tensor data.
// Every offset and size is validated against the file; files are memory-mapped.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/ragkv/ragkv/model/internal/mmap"
)

// ErrFormat marks a malformed file.
var ErrFormat = errors.New("malformed safetensors")

// maxHeader bounds the JSON header (the reference implementation uses 100 MB).
const maxHeader = 100 << 20

// Tensor is one tensor's entry.
type Tensor struct {
	Name  string
	DType string // "F32", "F16", "BF16", "I64", ...
	Shape []int
	Data  []byte // aliases the file
}

// File is a parsed safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	Tensors  map[string]Tensor
	unmap    func() error
}

var dtypeSize = map[string]int{"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}

// Open memory-maps and parses a file.
func Open(path string) (*File, error) {
	b, unmap, err := mmap.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := Parse(path, b)
	if err != nil {
		_ = unmap()
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Close releases the mapping.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	u := f.unmap
	f.unmap = nil
	return u()
}

type entry struct {
	DType   string  `json:"dtype"`
	Shape   []int64 `json:"shape"`
	Offsets []int64 `json:"data_offsets"`
}

// Parse parses a whole file held in b (name is for errors). The File aliases b.
func Parse(name string, b []byte) (*File, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("safetensors %s: %w: %s", name, ErrFormat, fmt.Sprintf(format, args...))
	}
	if len(b) < 8 {
		return nil, bad("file of %d bytes has no header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, bad("header length %d exceeds the file (%d bytes) or the %d-byte limit", n, len(b), maxHeader)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, bad("header: %v", err)
	}
	data := b[8+n:]
	f := &File{Path: name, Tensors: map[string]Tensor{}}
	type span struct {
		lo, hi int64
		name   string
	}
	var spans []span
	for k, v := range raw {
		if k == "__metadata__" {
			if err := json.Unmarshal(v, &f.Metadata); err != nil {
				return nil, bad("__metadata__: %v", err)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, bad("tensor %q: %v", k, err)
		}
		sz, ok := dtypeSize[e.DType]
		if !ok {
			return nil, bad("tensor %q has unknown dtype %q", k, e.DType)
		}
		if len(e.Offsets) != 2 || e.Offsets[0] < 0 || e.Offsets[1] < e.Offsets[0] || e.Offsets[1] > int64(len(data)) {
			return nil, bad("tensor %q data_offsets %v outside the %d data bytes", k, e.Offsets, len(data))
		}
		numel := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && numel > (1<<50)/d) {
				return nil, bad("tensor %q has bad shape %v", k, e.Shape)
			}
			numel *= d
		}
		if numel*int64(sz) != e.Offsets[1]-e.Offsets[0] {
			return nil, bad("tensor %q: shape %v of %s needs %d bytes, offsets give %d", k, e.Shape, e.DType, numel*int64(sz), e.Offsets[1]-e.Offsets[0])
		}
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			shape[i] = int(d)
		}
		f.Tensors[k] = Tensor{Name: k, DType: e.DType, Shape: shape, Data: data[e.Offsets[0]:e.Offsets[1]:e.Offsets[1]]}
		spans = append(spans, span{e.Offsets[0], e.Offsets[1], k})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	for i := 1; i < len(spans); i++ {
		if spans[i].lo < spans[i-1].hi {
			return nil, bad("tensors %q and %q overlap", spans[i-1].name, spans[i].name)
		}
	}
	return f, nil
}

// Write writes tensors (in the given order) and metadata as a safetensors file.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	hdr := map[string]any{}
	if metadata != nil {
		hdr["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		if _, ok := dtypeSize[t.DType]; !ok {
			return fmt.Errorf("safetensors: unknown dtype %q", t.DType)
		}
		hdr[t.Name] = map[string]any{"dtype": t.DType, "shape": t.Shape, "data_offsets": []int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	j, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(j)%8 != 0 {
		j = append(j, ' ')
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(j)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	if _, err := w.Write(j); err != nil {
		return err
	}
	for _, t := range tensors {
		if _, err := w.Write(t.Data); err != nil {
			return err
		}
	}
	return nil
}
