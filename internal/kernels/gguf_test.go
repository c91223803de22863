package kernels

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model/gguf"
)

type testTensor struct {
	name string
	dims []uint64
	typ  DType
	data []byte
}

// loadQuantVectors reads the tensors of ../shared/testdata/quant_vectors.gguf (written by
// ggml's reference quantizers) with package model/gguf; their data is valid until the
// test ends.
func loadQuantVectors(t testing.TB) map[string]testTensor {
	path := filepath.Join(shared.Path(t), "testdata", "quant_vectors.gguf")
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	out := map[string]testTensor{}
	for _, ti := range f.Tensors {
		_, data, err := f.TensorData(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		out[ti.Name] = testTensor{name: ti.Name, dims: ti.Dims, typ: DType(ti.Type), data: data}
	}
	return out
}

func f32s(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
