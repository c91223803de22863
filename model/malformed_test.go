package model

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragkv/ragkv/model/gguf"
	"github.com/ragkv/ragkv/model/tokenizer"
)

// tinyGGUF returns a small valid GGUF model (1 layer, dim 8) with the stories tokenizer.
func tinyGGUF(t testing.TB) []byte { return tinyGGUFWith(t, nil, nil) }

// tinyGGUFWith is tinyGGUF with extra metadata and, if ropeFreqs is not nil, a
// rope_freqs.weight tensor holding it.
func tinyGGUFWith(t testing.TB, extra []gguf.KV, ropeFreqs []float32) []byte {
	tok, err := tokenizer.LoadLlama2C(storiesPath(t, "tok512.bin"), 512)
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := tokenizer.GGUFMetadata(tok, "")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := gguf.NewWriter(&buf)
	for _, kv := range append([]gguf.KV{
		{Key: "general.architecture", Value: gguf.String("llama")},
		{Key: "llama.context_length", Value: gguf.Uint32(64)},
		{Key: "llama.embedding_length", Value: gguf.Uint32(8)},
		{Key: "llama.feed_forward_length", Value: gguf.Uint32(16)},
		{Key: "llama.block_count", Value: gguf.Uint32(1)},
		{Key: "llama.attention.head_count", Value: gguf.Uint32(2)},
		{Key: "llama.attention.head_count_kv", Value: gguf.Uint32(1)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: gguf.Float32(1e-5)},
	}, append(extra, kvs...)...) {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	shapes := []struct {
		name string
		dims []uint64
	}{{"token_embd.weight", []uint64{8, 512}}, {"output_norm.weight", []uint64{8}}, {"blk.0.attn_norm.weight", []uint64{8}},
		{"blk.0.ffn_norm.weight", []uint64{8}}, {"blk.0.attn_q.weight", []uint64{8, 8}}, {"blk.0.attn_k.weight", []uint64{8, 4}},
		{"blk.0.attn_v.weight", []uint64{8, 4}}, {"blk.0.attn_output.weight", []uint64{8, 8}}, {"blk.0.ffn_gate.weight", []uint64{8, 16}},
		{"blk.0.ffn_up.weight", []uint64{8, 16}}, {"blk.0.ffn_down.weight", []uint64{16, 8}}}
	total := 0
	for _, s := range shapes {
		if err := w.AddTensor(s.name, gguf.TensorF32, s.dims); err != nil {
			t.Fatal(err)
		}
		n := 1
		for _, d := range s.dims {
			n *= int(d)
		}
		total += n
	}
	if ropeFreqs != nil {
		if err := w.AddTensor("rope_freqs.weight", gguf.TensorF32, []uint64{uint64(len(ropeFreqs))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	vals := make([]float32, total)
	for i := range vals {
		vals[i] = float32((i*37)%17-8) / 16
	}
	vals = append(vals, ropeFreqs...)
	if _, err := w.Write(f32bytes(vals)); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func loadGGUFBytes(name string, b []byte) (*Model, error) {
	f, err := gguf.Parse(name, b)
	if err != nil {
		return nil, err
	}
	return fromGGUF(f, Options{Threads: 1})
}

func TestTinyGGUF(t *testing.T) {
	m, err := loadGGUFBytes("tiny.gguf", tinyGGUF(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, _, err := m.Prefill(context.Background(), m.Tok.Encode("hi there", true, false), 0, 0, ExtendOptions{Logits: []int{0}}); err != nil {
		t.Fatal(err)
	}
}

// TestMalformedFiles: truncated or corrupted model files give an error naming the file.
func TestMalformedFiles(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"stories260K.bin", "stories260K-q8_0.gguf"} {
		b, err := os.ReadFile(storiesPath(t, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, cut := range []int{0, 3, 20, 100, 5000, len(b) / 2, len(b) - 1} {
			p := filepath.Join(dir, "cut-"+name)
			if err := os.WriteFile(p, b[:cut], 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Open(p, Options{Tokenizer: storiesPath(t, "tok512.bin"), Threads: 1})
			if err == nil {
				t.Fatalf("%s cut to %d bytes loaded", name, cut)
			}
			if !strings.Contains(err.Error(), p) || !errors.Is(err, ErrFormat) {
				t.Fatalf("%s cut to %d: error %q does not name the file or is not ErrFormat", name, cut, err)
			}
		}
	}
	// Wrong tensor shape in an otherwise valid GGUF.
	b := tinyGGUF(t)
	i := bytes.Index(b, []byte("blk.0.attn_k.weight"))
	b[i+len("blk.0.attn_k.weight")+4+8] = 5 // second dimension 4 -> 5 (offsets then overlap or shape mismatch)
	if _, err := loadGGUFBytes("bad.gguf", b); err == nil || !strings.Contains(err.Error(), "bad.gguf") {
		t.Fatalf("bad shape: %v", err)
	}
}

func FuzzLoadGGUF(f *testing.F) {
	f.Add(tinyGGUF(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := loadGGUFBytes("fuzz.gguf", b)
		if err != nil {
			return
		}
		defer m.Close()
		toks := m.Tok.Encode("a b", true, false)
		for i := range toks {
			toks[i] %= m.Config.Vocab
		}
		if m.Config.Dim*m.Config.Hidden < 1<<16 {
			_, _, _ = m.Prefill(context.Background(), toks, 0, 0, ExtendOptions{Logits: []int{0}})
		}
	})
}
