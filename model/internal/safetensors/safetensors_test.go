package safetensors

import (
	"bytes"
	"errors"
	"testing"
)

func sample(t testing.TB) []byte {
	var buf bytes.Buffer
	err := Write(&buf, []Tensor{
		{Name: "a", DType: "F32", Shape: []int{2, 2}, Data: make([]byte, 16)},
		{Name: "b", DType: "BF16", Shape: []int{3}, Data: []byte{1, 2, 3, 4, 5, 6}},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	b := sample(t)
	f, err := Parse("x.safetensors", b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" || len(f.Tensors) != 2 || !bytes.Equal(f.Tensors["b"].Data, []byte{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("%+v", f)
	}
	for n := 0; n < len(b); n++ {
		if _, err := Parse("x.safetensors", b[:n]); !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix %d: %v", n, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample(f))
	f.Add([]byte("\x02\x00\x00\x00\x00\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse("fuzz.safetensors", b)
		if err != nil {
			return
		}
		for _, tn := range file.Tensors {
			_ = len(tn.Data)
		}
	})
}
