package ann

import (
	"bytes"
	"context"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read: it must fail cleanly or return an index that
// answers searches without panicking.
func FuzzRead(f *testing.F) {
	for _, kind := range testKinds {
		ix, err := Build(context.Background(), clustered(600, 8, 8, 9), 8, Options{Kind: kind, NList: 16, M: 4})
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := ix.WriteTo(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte("RKVANN\x00\x01\x01\x00\x00\x00"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ix, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		q := make([]float32, ix.Dim())
		for i := range q {
			q[i] = float32(i%3) - 1
		}
		ix.Search(q, 5, nil)
		var out bytes.Buffer
		if _, err := ix.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatal("re-encoding differs from accepted input")
		}
	})
}
