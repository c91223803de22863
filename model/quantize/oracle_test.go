package quantize

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
	"github.com/ragkv/ragkv/model/gguf"
)

func oracleDir(t testing.TB) string {
	return filepath.Join(shared.Path(t), "models", "oracle")
}

// oracleCases are the files llama.cpp's llama-quantize (commit c392e5094, no importance
// matrix) wrote from the f32 oracle models.
var oracleCases = []struct {
	ft     FileType
	suffix string
}{{Q8_0, "q8_0"}, {Q4_K_M, "q4_k_m"}, {Q6_K, "q6_k"}, {Q5_K_S, "q5_k_s"}}

var oracleModels = []string{"tiny-llama", "tiny-llama3", "tiny-qwen2"}

// TestMatchesLlamaQuantize quantizes each f32 oracle model with each mix and requires
// the file llama-quantize wrote for it, byte for byte; on a difference it names the first
// differing metadata pair or tensor (type, dims, data).
func TestMatchesLlamaQuantize(t *testing.T) {
	dir := oracleDir(t)
	for _, m := range oracleModels {
		for _, c := range oracleCases {
			t.Run(m+"-"+c.suffix, func(t *testing.T) {
				t.Parallel()
				in := filepath.Join(dir, m+"-f32.gguf")
				ref := filepath.Join(dir, m+"-"+c.suffix+".gguf")
				out := filepath.Join(t.TempDir(), "out.gguf")
				res, err := Run(context.Background(), in, out, Options{Type: c.ft, Threads: 2})
				if err != nil {
					t.Fatal(err)
				}
				if res.Fallbacks != 0 {
					t.Errorf("%d fallbacks", res.Fallbacks)
				}
				compareGGUF(t, out, ref)
				want, _ := os.ReadFile(ref)
				got, _ := os.ReadFile(out)
				if !bytes.Equal(got, want) {
					t.Errorf("files differ (%d vs %d bytes)", len(got), len(want))
				}
				if res.FileBytes != int64(len(want)) {
					t.Errorf("Result.FileBytes %d, file %d", res.FileBytes, len(want))
				}
			})
		}
	}
}

// compareGGUF reports every structural difference between two GGUF files and the
// number of differing blocks per tensor.
func compareGGUF(t *testing.T, gotPath, wantPath string) {
	t.Helper()
	g, err := gguf.Open(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w, err := gguf.Open(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if len(g.KVs) != len(w.KVs) {
		t.Errorf("%d metadata pairs, want %d", len(g.KVs), len(w.KVs))
	}
	for i := range min(len(g.KVs), len(w.KVs)) {
		if g.KVs[i].Key != w.KVs[i].Key || !reflect.DeepEqual(g.KVs[i].Value, w.KVs[i].Value) {
			t.Errorf("metadata %d: %s = %v, want %s = %v", i, g.KVs[i].Key, summary(g.KVs[i].Value), w.KVs[i].Key, summary(w.KVs[i].Value))
		}
	}
	if len(g.Tensors) != len(w.Tensors) {
		t.Errorf("%d tensors, want %d", len(g.Tensors), len(w.Tensors))
	}
	for i := range min(len(g.Tensors), len(w.Tensors)) {
		gt, wt := g.Tensors[i], w.Tensors[i]
		if gt.Name != wt.Name || gt.Type != wt.Type || !reflect.DeepEqual(gt.Dims, wt.Dims) || gt.Offset != wt.Offset {
			t.Errorf("tensor %d: %s %s %v @%d, want %s %s %v @%d", i, gt.Name, gt.Type, gt.Dims, gt.Offset, wt.Name, wt.Type, wt.Dims, wt.Offset)
			continue
		}
		_, gb, _ := g.TensorData(gt.Name)
		_, wb, _ := w.TensorData(wt.Name)
		if !bytes.Equal(gb, wb) {
			ti, _ := gt.Type.Info()
			bad := 0
			for b := 0; b+ti.BlockBytes <= len(gb); b += ti.BlockBytes {
				if !bytes.Equal(gb[b:b+ti.BlockBytes], wb[b:b+ti.BlockBytes]) {
					bad++
				}
			}
			t.Errorf("tensor %s (%s): %d of %d blocks differ", gt.Name, gt.Type, bad, len(gb)/ti.BlockBytes)
		}
	}
}

func summary(v gguf.Value) string {
	if a, ok := v.V.(gguf.Array); ok {
		return fmt.Sprintf("[%d × %s]", a.Len(), a.Elem)
	}
	return fmt.Sprint(v.V)
}
