package llama2c

import (
	"encoding/binary"
	"testing"
)

func header(vals ...int32) []byte {
	b := make([]byte, 28)
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(v))
	}
	return b
}

func TestParse(t *testing.T) {
	h := header(8, 16, 2, 2, 1, 10, 4)
	c := Config{Dim: 8, Hidden: 16, Layers: 2, Heads: 2, KVHeads: 1, Vocab: 10, SeqLen: 4}
	n := c.Vocab*c.Dim + 2*c.Dim + 2*8*8 + 2*(2*4*8) + 2*8*8 + 2*c.Dim + 3*2*16*8 + c.Dim + 2*4*2
	b := append(h, make([]byte, 4*n)...)
	ck, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !ck.Config.Shared || ck.Layer("wk", 1).Rows != 4 {
		t.Fatalf("%+v", ck.Config)
	}
	for _, cut := range []int{0, 27, 28, len(b) - 1} {
		if _, err := Parse(b[:cut]); err == nil {
			t.Fatalf("truncated to %d accepted", cut)
		}
	}
	if _, err := Parse(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if _, err := Parse(header(8, 16, 2, 3, 1, 10, 4)); err == nil {
		t.Fatal("bad heads accepted")
	}
}

// TestParseSizeOverflow: a header whose tensor sizes sum past 2^64 bytes, wrapping to
// exactly the file size (36 bytes), is rejected rather than giving out-of-range tensors.
func TestParseSizeOverflow(t *testing.T) {
	// dim = layers = 2^20, kv_dim = 2^18, hidden = 524287, vocab = 2^20−1: the weights
	// need 4·(2^62 + seq_len·head_size) bytes.
	b := append(header(1<<20, 524287, 1<<20, 1<<19, 1<<17, 1<<20-1, 1), make([]byte, 8)...)
	if _, err := Parse(b); err == nil {
		t.Fatal("a header needing 2^64+8 bytes of weights accepted for a 36-byte file")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(header(8, 16, 2, 2, 1, 10, 4))
	f.Add(header(8, 16, 2, 2, 1, -10, 4))
	f.Add(append(header(1<<20, 524287, 1<<20, 1<<19, 1<<17, 1<<20-1, 1), make([]byte, 8)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		ck, err := Parse(b)
		if err != nil {
			return
		}
		for name := range ck.Tensors {
			_ = ck.Tensors[name].Bytes(b)
		}
	})
}
