package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ragkv/ragkv/internal/shared"
)

func sharedGGUFs(t testing.TB) []string {
	d := shared.Path(t)
	return []string{
		filepath.Join(d, "models/stories260K/stories260K-f32.gguf"),
		filepath.Join(d, "models/stories260K/stories260K-f16.gguf"),
		filepath.Join(d, "models/stories260K/stories260K-q8_0.gguf"),
		filepath.Join(d, "testdata/quant_vectors.gguf"),
	}
}

func TestOpenShared(t *testing.T) {
	for _, p := range sharedGGUFs(t) {
		f, err := Open(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if f.Version != 3 || len(f.Tensors) == 0 || len(f.KVs) == 0 {
			t.Fatalf("%s: version %d, %d tensors, %d kvs", p, f.Version, len(f.Tensors), len(f.KVs))
		}
		for _, ti := range f.Tensors {
			if _, _, err := f.TensorData(ti.Name); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Open(sharedGGUFs(t)[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	arch, err := f.String("general.architecture")
	if err != nil || arch != "llama" {
		t.Fatalf("architecture %q, %v", arch, err)
	}
	n, err := f.Uint("llama.block_count")
	if err != nil || n != 5 {
		t.Fatalf("block_count %d, %v", n, err)
	}
	toks, err := f.Array("tokenizer.ggml.tokens")
	if err != nil || toks.Len() != 512 {
		t.Fatalf("tokens: %d %v", toks.Len(), err)
	}
	ti, b, err := f.TensorData("token_embd.weight")
	if err != nil || ti.Dims[0] != 64 || ti.Dims[1] != 512 || len(b) != 64*512*4 {
		t.Fatalf("token_embd: %+v %d %v", ti, len(b), err)
	}
	if _, err := f.String("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if _, err := f.String("llama.block_count"); !errors.Is(err, ErrType) {
		t.Fatalf("wrong type: %v", err)
	}
}

// TestRoundTripShared: files written by ggml's writer are reproduced byte for byte.
func TestRoundTripShared(t *testing.T) {
	for _, p := range sharedGGUFs(t) {
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(p, orig)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := WriteFile(&buf, f); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), orig) {
			got := buf.Bytes()
			i := 0
			for i < len(got) && i < len(orig) && got[i] == orig[i] {
				i++
			}
			t.Fatalf("%s: round trip differs at byte %d (len %d vs %d)", p, i, len(got), len(orig))
		}
	}
}

func buildSample(t testing.TB) []byte {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	nested, _ := ArrayOf([]Array{{Elem: TypeInt32, V: []int32{1, -2}}, {Elem: TypeString, V: []string{"a", ""}}})
	vals := []KV{
		{"u8", Uint8(7)}, {"i8", Int8(-7)}, {"u16", Uint16(65535)}, {"i16", Int16(-300)},
		{"u32", Uint32(1 << 31)}, {"i32", Int32(-5)}, {"f32", Float32(1.5)}, {"b", Bool(true)},
		{"s", String("héllo")}, {"u64", Uint64(1 << 40)}, {"i64", Int64(-1 << 40)}, {"f64", Float64(-2.25)},
		{"nested", nested},
	}
	for _, ty := range [][]any{{[]uint8{1, 2}}, {[]int8{-1}}, {[]uint16{3}}, {[]int16{-3}}, {[]uint32{4}}, {[]int32{-4}}, {[]float32{0.5}}, {[]bool{true, false}}, {[]string{"x", "▁y"}}, {[]uint64{9}}, {[]int64{-9}}, {[]float64{1e300}}} {
		v, err := ArrayOf(ty[0])
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, KV{"arr." + v.V.(Array).Elem.String(), v})
	}
	vals = append(vals, KV{KeyAlignment, Uint32(64)})
	for _, kv := range vals {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.AddTensor("a", TensorF32, []uint64{3, 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("q", TensorQ8_0, []uint64{64}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("h", TensorF16, []uint64{5}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 24+68+10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	// Write in odd-sized pieces across tensor boundaries.
	for lo := 0; lo < len(data); lo += 13 {
		hi := min(lo+13, len(data))
		if _, err := w.Write(data[lo:hi]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriterReaderRoundTrip(t *testing.T) {
	b := buildSample(t)
	f, err := Parse("sample", b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Alignment != 64 || f.DataOffset%64 != 0 {
		t.Fatalf("alignment %d, data offset %d", f.Alignment, f.DataOffset)
	}
	if v, _ := f.Lookup("s"); v.V.(string) != "héllo" {
		t.Fatalf("s = %v", v)
	}
	if v, _ := f.Lookup("i16"); v.V.(int16) != -300 {
		t.Fatalf("i16 = %v", v)
	}
	if v, _ := f.Lookup("nested"); v.V.(Array).V.([]Array)[1].V.([]string)[0] != "a" {
		t.Fatalf("nested = %v", v)
	}
	_, q, err := f.TensorData("q")
	if err != nil || len(q) != 68 || q[0] != byte(24*7) {
		t.Fatalf("q: %d %v", len(q), err)
	}
	var buf bytes.Buffer
	if err := WriteFile(&buf, f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), b) {
		t.Fatal("writer round trip differs")
	}
}

func TestWriterErrors(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	if err := w.AddTensor("x", TensorQ8_0, []uint64{33}); err == nil {
		t.Fatal("q8_0 row of 33 accepted")
	}
	if err := w.AddKV("bad", Value{TypeUint32, "str"}); err == nil {
		t.Fatal("mistyped value accepted")
	}
	if err := w.AddTensor("x", TensorF32, []uint64{2}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 9)); err == nil {
		t.Fatal("extra data accepted")
	}
	w = NewWriter(&bytes.Buffer{})
	_ = w.AddTensor("x", TensorF32, []uint64{2})
	_ = w.WriteHeader()
	if err := w.Finish(); err == nil {
		t.Fatal("incomplete tensor accepted")
	}
}

// TestTruncated: every prefix of a valid file is rejected with ErrMalformed (never a panic).
func TestTruncated(t *testing.T) {
	b := buildSample(t)
	full, err := Parse("sample", b)
	if err != nil {
		t.Fatal(err)
	}
	last := full.Tensors[len(full.Tensors)-1]
	size, _ := last.Size()
	end := int(full.DataOffset + last.Offset + size) // the final padding is optional
	for n := 0; n < end; n++ {
		_, err := Parse("trunc.gguf", b[:n])
		if err == nil {
			t.Fatalf("prefix of %d/%d bytes parsed", n, len(b))
		}
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix %d: %v is not ErrMalformed", n, err)
		}
		if !bytes.Contains([]byte(err.Error()), []byte("trunc.gguf")) {
			t.Fatalf("error does not name the file: %v", err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.gguf")
	if err := os.WriteFile(p, []byte("GGUF\x02\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("version 2: %v", err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p); !errors.Is(err, ErrMalformed) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.gguf")); err == nil {
		t.Fatal("missing file opened")
	}
}

// TestRowSizeOverflow: a row length whose byte size wraps past 2^64 (f32 with 2^62+32
// elements: 128 bytes modulo 2^64) is rejected, not taken as a 128-byte tensor.
func TestRowSizeOverflow(t *testing.T) {
	le := binary.LittleEndian
	b := []byte(Magic)
	b = le.AppendUint32(b, 3)
	b = le.AppendUint64(b, 1) // tensors
	b = le.AppendUint64(b, 0) // metadata
	b = le.AppendUint64(b, 1)
	b = append(b, 't')
	b = le.AppendUint32(b, 1)        // dimensions
	b = le.AppendUint64(b, 1<<62+32) // ne[0]
	b = le.AppendUint32(b, uint32(TensorF32))
	b = le.AppendUint64(b, 0) // offset
	b = append(b, make([]byte, alignUp(uint64(len(b)), DefaultAlignment)-uint64(len(b))+128)...)
	if f, err := Parse("wrap.gguf", b); !errors.Is(err, ErrMalformed) {
		var size uint64
		if err == nil {
			size, _ = f.Tensors[0].Size()
		}
		t.Fatalf("2^62+32 f32 elements: err %v, size %d", err, size)
	}
}

func TestHasMagic(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		data string
		want bool
	}{{"GGUF\x03\x00\x00\x00", true}, {"GGUF", true}, {"GGU", false}, {"ggml-ish", false}, {"", false}} {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, []byte(c.data), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := HasMagic(p); got != c.want {
			t.Errorf("HasMagic(%q) = %v, want %v", c.data, got, c.want)
		}
	}
	if HasMagic(filepath.Join(dir, "missing")) {
		t.Error("HasMagic of a missing file")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(buildSample(f))
	f.Add([]byte("GGUF\x03\x00\x00\x00"))
	if b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "models", "stories260K", "stories260K-q8_0.gguf")); err == nil {
		f.Add(b[:4096])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse("fuzz.gguf", b)
		if err != nil {
			return
		}
		for _, ti := range file.Tensors {
			if _, _, err := file.TensorData(ti.Name); err != nil {
				t.Fatalf("parsed file has unreadable tensor %q: %v", ti.Name, err)
			}
		}
		var buf bytes.Buffer
		if err := WriteFile(&buf, file); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		if _, err := Parse("rewritten.gguf", buf.Bytes()); err != nil {
			t.Fatalf("rewritten file does not parse: %v", err)
		}
	})
}
