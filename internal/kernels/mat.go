package kernels

import (
	"fmt"
	"unsafe"
)

// Mat is a read-only weight matrix in ggml layout: Rows rows (output features) of Cols
// elements each, row-major, every row stored as RowBytes(Type, Cols) bytes. Data holds the
// raw bytes; it may alias a memory-mapped file and is never written by this package.
type Mat struct {
	Type       DType
	Rows, Cols int
	Data       []byte
}

// F32Mat returns a zero-copy view of rows×cols float32 values as a Mat. The view aliases
// data; the caller keeps data alive and unchanged while the Mat is in use.
func F32Mat(rows, cols int, data []float32) Mat {
	var b []byte
	if len(data) > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(data))), 4*len(data))
	}
	return Mat{Type: F32, Rows: rows, Cols: cols, Data: b}
}

// RowBytes is the size in bytes of one row of m.
func (m *Mat) RowBytes() int {
	n, _ := RowBytes(m.Type, m.Cols)
	return n
}

// Row returns the raw bytes of row r.
func (m *Mat) Row(r int) []byte {
	rb := m.RowBytes()
	return m.Data[r*rb : (r+1)*rb]
}

// Validate checks that the type is supported, Cols is a multiple of its block size and
// Data holds Rows full rows.
func (m *Mat) Validate() error {
	if m.Rows < 0 || m.Cols < 0 {
		return fmt.Errorf("%w: negative matrix dimensions %d×%d", ErrShape, m.Rows, m.Cols)
	}
	rb, err := RowBytes(m.Type, m.Cols)
	if err != nil {
		return err
	}
	if len(m.Data) < m.Rows*rb {
		return fmt.Errorf("%w: %d×%d %v matrix needs %d bytes, has %d", ErrShape, m.Rows, m.Cols, m.Type, m.Rows*rb, len(m.Data))
	}
	return nil
}

// f32Data returns the float32 view of an F32 matrix's data.
func (m *Mat) f32Data() []float32 {
	n := m.Rows * m.Cols
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(m.Data))), n)
}
