package ann

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read: it must fail cleanly or return an index that
// answers searches without panicking.
func FuzzRead(f *testing.F) {
	// Small seeds: the fuzzer minimizes interesting inputs byte by byte.
	for _, kind := range testKinds {
		ix, err := Build(context.Background(), clustered(minIVFVectors, 2, 4, 9), 2, Options{Kind: kind, NList: 2, M: 2, Rescore: 3})
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
		fuzzOne(t, data)
		// Mutations rarely keep the checksum valid: also parse them with it fixed, so
		// that the decoder behind the checksum gets fuzzed too.
		if len(data) >= 4 {
			fixed := append([]byte(nil), data[:len(data)-4]...)
			fixed = binary.LittleEndian.AppendUint32(fixed, crc32.Checksum(fixed, castagnol))
			fuzzOne(t, fixed)
		}
	})
}

func fuzzOne(t *testing.T, data []byte) {
	ix, err := Read(bytes.NewReader(data))
	if err != nil {
		return
	}
	{
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
	}
}
