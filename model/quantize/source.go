package quantize

import (
	"fmt"

	"github.com/ragkv/ragkv/internal/kernels"
	"github.com/ragkv/ragkv/model/gguf"
)

// tensor is one input tensor in GGUF terms (name, ggml dims with dims[0] the row length).
type tensor struct {
	name string
	dims []uint64
	// typ is the stored type; raw its bytes in that type (nil when the tensor only exists
	// as rows, e.g. a permuted HF tensor).
	typ gguf.TensorType
	raw []byte
	// keep is the type the tensor gets when it is not quantized.
	keep gguf.TensorType
	// rows writes rows [r, r+len(dst)/dims[0]) as float32 into dst.
	rows func(dst []float32, r int) error
	// inBytes is the size of the tensor's data in the input.
	inBytes int64
}

func (t *tensor) cols() int { return int(t.dims[0]) }

func (t *tensor) nrows() int {
	n := 1
	for _, d := range t.dims[1:] {
		n *= int(d)
	}
	return n
}

// source is a model to quantize: metadata and tensors in output order.
type source struct {
	format  string // "gguf" or "safetensors"
	kvs     []gguf.KV
	info    modelInfo
	tensors []*tensor
	close   func() error
}

// floatRows returns a row reader for data stored as f32, f16 or bf16 (or another type
// with a dequantizer); perm, if not nil, maps an output row to the stored row.
func floatRows(name string, data []byte, typ gguf.TensorType, cols int, perm func(int) int) (func([]float32, int) error, error) {
	dt := kernels.DType(typ)
	rb, err := kernels.RowBytes(dt, cols)
	if err != nil {
		return nil, fmt.Errorf("%w: tensor %q: %w", ErrUnsupported, name, err)
	}
	return func(dst []float32, r int) error {
		for k := 0; k < len(dst)/cols; k++ {
			sr := r + k
			if perm != nil {
				sr = perm(sr)
			}
			if err := kernels.Dequantize(dst[k*cols:(k+1)*cols], data[sr*rb:(sr+1)*rb], dt); err != nil {
				return fmt.Errorf("tensor %q row %d: %w", name, sr, err)
			}
		}
		return nil
	}, nil
}

// openGGUF reads a GGUF model.
func openGGUF(path string) (*source, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s := &source{format: "gguf", close: f.Close}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	if v, err := f.Uint("split.count"); err == nil && v > 1 {
		return nil, fmt.Errorf("%w: %s is one of %d split files (merge them first)", ErrUnsupported, path, v)
	}
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
	}
	u := func(key string) int {
		v, err := f.Uint(arch + "." + key)
		if err != nil || v > 1<<30 {
			return 0
		}
		return int(v)
	}
	s.info = modelInfo{arch: arch, layers: u("block_count"), heads: u("attention.head_count"), kvHeads: u("attention.head_count_kv"),
		experts: u("expert_count"), vocab: u("vocab_size")}
	if _, err := f.Uint(arch + ".block_count"); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, path, err)
	}
	if s.info.kvHeads == 0 {
		s.info.kvHeads = s.info.heads
	}
	s.kvs = f.KVs
	for _, ti := range f.Tensors {
		_, data, err := f.TensorData(ti.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if len(ti.Dims) == 0 {
			return nil, fmt.Errorf("%w: %s: tensor %q has no dimensions", ErrInvalid, path, ti.Name)
		}
		t := &tensor{name: ti.Name, dims: ti.Dims, typ: ti.Type, raw: data, keep: ti.Type, inBytes: int64(len(data))}
		if ti.Dims[0] == 0 {
			return nil, fmt.Errorf("%w: %s: tensor %q has an empty row", ErrInvalid, path, ti.Name)
		}
		if kernels.DType(ti.Type).Supported() {
			t.rows, err = floatRows(ti.Name, data, ti.Type, int(ti.Dims[0]), nil)
			if err != nil {
				return nil, err
			}
		}
		if ti.Name == "output.weight" {
			s.info.hasOutput = true
		}
		s.tensors = append(s.tensors, t)
	}
	sortTensors(s.tensors, func(t *tensor) string { return t.name })
	ok = true
	return s, nil
}
