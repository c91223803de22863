package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Writer streams a GGUF v3 file: declare metadata (AddKV) and tensors (AddTensor), call
// WriteHeader, then write every tensor's bytes in declaration order through Write (in
// pieces of any size; padding between tensors is inserted automatically), then Finish.
// Tensor offsets are assigned in declaration order, each aligned, exactly as ggml's
// writer does.
type Writer struct {
	bw      *bufio.Writer
	align   uint64
	kvs     []KV
	keys    map[string]bool
	tensors []TensorInfo
	sizes   []uint64

	headerDone bool
	cur        int    // tensor being written
	curDone    uint64 // bytes of tensor cur written
	finished   bool
	err        error
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 1<<20), align: DefaultAlignment, keys: map[string]bool{}}
}

// AddKV appends a metadata pair. A general.alignment pair (uint32, power of two) sets the
// data alignment.
func (w *Writer) AddKV(key string, v Value) error {
	if w.headerDone {
		return errors.New("gguf writer: AddKV after WriteHeader")
	}
	if w.keys[key] {
		return fmt.Errorf("gguf writer: duplicate metadata key %q", key)
	}
	if err := checkValue(v, 0); err != nil {
		return fmt.Errorf("gguf writer: metadata %q: %w", key, err)
	}
	if key == KeyAlignment {
		a, ok := v.V.(uint32)
		if v.Type != TypeUint32 || !ok || a == 0 || a&(a-1) != 0 {
			return fmt.Errorf("gguf writer: %s must be a uint32 power of two", KeyAlignment)
		}
		w.align = uint64(a)
	}
	w.keys[key] = true
	w.kvs = append(w.kvs, KV{Key: key, Value: v})
	return nil
}

// AddTensor declares a tensor (dims in ggml order, Dims[0] = row length).
func (w *Writer) AddTensor(name string, t TensorType, dims []uint64) error {
	if w.headerDone {
		return errors.New("gguf writer: AddTensor after WriteHeader")
	}
	if len(dims) > maxDims {
		return fmt.Errorf("gguf writer: tensor %q has %d dimensions (max %d)", name, len(dims), maxDims)
	}
	for _, ti := range w.tensors {
		if ti.Name == name {
			return fmt.Errorf("gguf writer: duplicate tensor %q", name)
		}
	}
	ti := TensorInfo{Name: name, Dims: append([]uint64(nil), dims...), Type: t}
	size, err := ti.Size()
	if err != nil {
		return fmt.Errorf("gguf writer: %w", err)
	}
	w.tensors = append(w.tensors, ti)
	w.sizes = append(w.sizes, size)
	return nil
}

// Tensors returns the declared tensors with their assigned offsets (valid after
// WriteHeader).
func (w *Writer) Tensors() []TensorInfo { return w.tensors }

// WriteHeader writes the header, metadata and tensor infos and the padding before the
// data section.
func (w *Writer) WriteHeader() error {
	if w.headerDone {
		return errors.New("gguf writer: WriteHeader called twice")
	}
	w.headerDone = true
	off := uint64(0)
	for i := range w.tensors {
		w.tensors[i].Offset = off
		off += alignUp(w.sizes[i], w.align)
	}
	var n uint64
	put := func(b []byte) {
		if w.err == nil {
			_, w.err = w.bw.Write(b)
			n += uint64(len(b))
		}
	}
	var buf [8]byte
	u32 := func(v uint32) { binary.LittleEndian.PutUint32(buf[:4], v); put(buf[:4]) }
	u64 := func(v uint64) { binary.LittleEndian.PutUint64(buf[:8], v); put(buf[:8]) }
	str := func(s string) { u64(uint64(len(s))); put([]byte(s)) }
	put([]byte(Magic))
	u32(3)
	u64(uint64(len(w.tensors)))
	u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		str(kv.Key)
		u32(uint32(kv.Value.Type))
		writeValue(kv.Value, put)
	}
	for _, t := range w.tensors {
		str(t.Name)
		u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			u64(d)
		}
		u32(uint32(t.Type))
		u64(t.Offset)
	}
	w.pad(n)
	w.skipEmpty()
	return w.err
}

func (w *Writer) pad(n uint64) {
	if p := alignUp(n, w.align) - n; p > 0 && w.err == nil {
		_, w.err = w.bw.Write(make([]byte, p))
	}
}

// skipEmpty advances past zero-size tensors.
func (w *Writer) skipEmpty() {
	for w.cur < len(w.tensors) && w.curDone == w.sizes[w.cur] {
		w.pad(w.sizes[w.cur])
		w.cur++
		w.curDone = 0
	}
}

// Write appends tensor data: the bytes continue the current tensor and move on to the
// next one (after padding) once it is complete.
func (w *Writer) Write(p []byte) (int, error) {
	if !w.headerDone {
		return 0, errors.New("gguf writer: Write before WriteHeader")
	}
	n := 0
	for len(p) > 0 {
		if w.err != nil {
			return n, w.err
		}
		if w.cur >= len(w.tensors) {
			return n, errors.New("gguf writer: more data than the declared tensors hold")
		}
		k := w.sizes[w.cur] - w.curDone
		if uint64(len(p)) < k {
			k = uint64(len(p))
		}
		if _, err := w.bw.Write(p[:k]); err != nil {
			w.err = err
			return n, err
		}
		n += int(k)
		p = p[k:]
		w.curDone += k
		w.skipEmpty()
	}
	return n, w.err
}

// Finish checks that every tensor was written in full and flushes.
func (w *Writer) Finish() error {
	if w.err != nil {
		return w.err
	}
	if !w.headerDone {
		if err := w.WriteHeader(); err != nil {
			return err
		}
	}
	if w.cur < len(w.tensors) {
		return fmt.Errorf("gguf writer: tensor %q incomplete (%d of %d bytes written)", w.tensors[w.cur].Name, w.curDone, w.sizes[w.cur])
	}
	w.finished = true
	return w.bw.Flush()
}

func checkValue(v Value, depth int) error {
	if depth > maxNesting {
		return errors.New("arrays nested too deep")
	}
	ok := false
	switch v.Type {
	case TypeUint8:
		_, ok = v.V.(uint8)
	case TypeInt8:
		_, ok = v.V.(int8)
	case TypeUint16:
		_, ok = v.V.(uint16)
	case TypeInt16:
		_, ok = v.V.(int16)
	case TypeUint32:
		_, ok = v.V.(uint32)
	case TypeInt32:
		_, ok = v.V.(int32)
	case TypeFloat32:
		_, ok = v.V.(float32)
	case TypeBool:
		_, ok = v.V.(bool)
	case TypeString:
		_, ok = v.V.(string)
	case TypeUint64:
		_, ok = v.V.(uint64)
	case TypeInt64:
		_, ok = v.V.(int64)
	case TypeFloat64:
		_, ok = v.V.(float64)
	case TypeArray:
		var a Array
		a, ok = v.V.(Array)
		if ok {
			want, err := ArrayOf(a.V)
			if err != nil {
				return err
			}
			if want.V.(Array).Elem != a.Elem {
				return fmt.Errorf("array element type %s does not match %T", a.Elem, a.V)
			}
			if sub, isNested := a.V.([]Array); isNested {
				for _, s := range sub {
					if err := checkValue(Value{TypeArray, s}, depth+1); err != nil {
						return err
					}
				}
			}
		}
	}
	if !ok {
		return fmt.Errorf("value of type %s holds %T", v.Type, v.V)
	}
	return nil
}

func writeValue(v Value, put func([]byte)) {
	var buf [8]byte
	le := binary.LittleEndian
	switch x := v.V.(type) {
	case uint8:
		put([]byte{x})
	case int8:
		put([]byte{byte(x)})
	case bool:
		b := byte(0)
		if x {
			b = 1
		}
		put([]byte{b})
	case uint16:
		le.PutUint16(buf[:], x)
		put(buf[:2])
	case int16:
		le.PutUint16(buf[:], uint16(x))
		put(buf[:2])
	case uint32:
		le.PutUint32(buf[:], x)
		put(buf[:4])
	case int32:
		le.PutUint32(buf[:], uint32(x))
		put(buf[:4])
	case float32:
		le.PutUint32(buf[:], math.Float32bits(x))
		put(buf[:4])
	case uint64:
		le.PutUint64(buf[:], x)
		put(buf[:8])
	case int64:
		le.PutUint64(buf[:], uint64(x))
		put(buf[:8])
	case float64:
		le.PutUint64(buf[:], math.Float64bits(x))
		put(buf[:8])
	case string:
		le.PutUint64(buf[:], uint64(len(x)))
		put(buf[:8])
		put([]byte(x))
	case Array:
		le.PutUint32(buf[:], uint32(x.Elem))
		put(buf[:4])
		le.PutUint64(buf[:], uint64(x.Len()))
		put(buf[:8])
		switch s := x.V.(type) {
		case []uint8:
			put(s)
		case []int8:
			for _, e := range s {
				put([]byte{byte(e)})
			}
		case []bool:
			for _, e := range s {
				writeValue(Value{TypeBool, e}, put)
			}
		case []uint16:
			for _, e := range s {
				writeValue(Value{TypeUint16, e}, put)
			}
		case []int16:
			for _, e := range s {
				writeValue(Value{TypeInt16, e}, put)
			}
		case []uint32:
			for _, e := range s {
				writeValue(Value{TypeUint32, e}, put)
			}
		case []int32:
			for _, e := range s {
				writeValue(Value{TypeInt32, e}, put)
			}
		case []float32:
			for _, e := range s {
				writeValue(Value{TypeFloat32, e}, put)
			}
		case []uint64:
			for _, e := range s {
				writeValue(Value{TypeUint64, e}, put)
			}
		case []int64:
			for _, e := range s {
				writeValue(Value{TypeInt64, e}, put)
			}
		case []float64:
			for _, e := range s {
				writeValue(Value{TypeFloat64, e}, put)
			}
		case []string:
			for _, e := range s {
				writeValue(Value{TypeString, e}, put)
			}
		case []Array:
			for _, e := range s {
				writeValue(Value{TypeArray, e}, put)
			}
		}
	}
}

// WriteFile writes a parsed File back (its metadata, tensors in file order and their
// data) to w. For a file laid out as ggml writes it, the result is byte-identical.
func WriteFile(w io.Writer, f *File) error {
	gw := NewWriter(w)
	for _, kv := range f.KVs {
		if err := gw.AddKV(kv.Key, kv.Value); err != nil {
			return err
		}
	}
	for _, t := range f.Tensors {
		if err := gw.AddTensor(t.Name, t.Type, t.Dims); err != nil {
			return err
		}
	}
	if err := gw.WriteHeader(); err != nil {
		return err
	}
	for _, t := range f.Tensors {
		_, b, err := f.TensorData(t.Name)
		if err != nil {
			return err
		}
		if _, err := gw.Write(b); err != nil {
			return err
		}
	}
	return gw.Finish()
}
