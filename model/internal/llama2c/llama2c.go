// Package llama2c parses llama2.c model checkpoints ("version 0" legacy format of
// karpathy/llama2.c, run.c): seven little-endian int32 header values (dim, hidden_dim,
// n_layers, n_heads, n_kv_heads, vocab_size — negative when the classifier is not shared
// with the token embedding — and seq_len), then float32 tensors in the order
// token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
// freq_cis_real, freq_cis_imag and, if not shared, wcls.
package llama2c

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrFormat marks a malformed checkpoint.
var ErrFormat = errors.New("malformed llama2.c checkpoint")

// Config is the checkpoint header.
type Config struct {
	Dim, Hidden, Layers, Heads, KVHeads, Vocab, SeqLen int
	Shared                                             bool
}

// Tensor is a byte range of float32 data in the file.
type Tensor struct {
	Name       string
	Rows, Cols int // Rows × Cols float32 values (Rows = 1 for vectors)
	Off        int // byte offset in the file
}

// Checkpoint lists the tensors of a parsed file. Layered tensors (rms_att, wq, ...,
// w3) are concatenated over layers; Layer(name, l) selects one layer.
type Checkpoint struct {
	Config  Config
	Tensors map[string]Tensor
}

// HeaderSize is the size of the version-0 header.
const HeaderSize = 28

// Parse validates the header and the file size and returns the tensor layout.
func Parse(b []byte) (*Checkpoint, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrFormat, len(b), HeaderSize)
	}
	if string(b[:4]) == "ak42" {
		return nil, fmt.Errorf("%w: versioned (ak42) checkpoints are not supported, only the legacy version 0", ErrFormat)
	}
	var h [7]int
	for i := range h {
		h[i] = int(int32(binary.LittleEndian.Uint32(b[4*i:])))
	}
	c := Config{Dim: h[0], Hidden: h[1], Layers: h[2], Heads: h[3], KVHeads: h[4], Vocab: h[5], SeqLen: h[6], Shared: h[5] > 0}
	if c.Vocab < 0 {
		c.Vocab = -c.Vocab
	}
	const lim = 1 << 20
	for _, v := range []struct {
		name string
		v    int
	}{{"dim", c.Dim}, {"hidden_dim", c.Hidden}, {"n_layers", c.Layers}, {"n_heads", c.Heads}, {"n_kv_heads", c.KVHeads}, {"vocab_size", c.Vocab}, {"seq_len", c.SeqLen}} {
		if v.v <= 0 || v.v > lim {
			return nil, fmt.Errorf("%w: header %s = %d out of range", ErrFormat, v.name, v.v)
		}
	}
	if c.Dim%c.Heads != 0 || c.Heads%c.KVHeads != 0 || (c.Dim/c.Heads)%2 != 0 {
		return nil, fmt.Errorf("%w: dim %d, n_heads %d, n_kv_heads %d are inconsistent", ErrFormat, c.Dim, c.Heads, c.KVHeads)
	}
	hs := c.Dim / c.Heads
	kvDim := hs * c.KVHeads
	L := c.Layers
	ck := &Checkpoint{Config: c, Tensors: map[string]Tensor{}}
	// need counts the bytes the header implies, saturating: the sizes of large headers
	// (up to 2^62 bytes per tensor) can sum past 2^64 and must not wrap around to the
	// file size. Offsets are only meaningful when need fits the file.
	need := uint64(HeaderSize)
	add := func(name string, rows, cols int) {
		ck.Tensors[name] = Tensor{Name: name, Rows: rows, Cols: cols, Off: int(min(need, math.MaxInt))}
		n := uint64(rows) * uint64(cols) * 4
		if need += n; need < n {
			need = math.MaxUint64
		}
	}
	add("token_embedding", c.Vocab, c.Dim)
	add("rms_att", L, c.Dim)
	add("wq", L*c.Dim, c.Dim)
	add("wk", L*kvDim, c.Dim)
	add("wv", L*kvDim, c.Dim)
	add("wo", L*c.Dim, c.Dim)
	add("rms_ffn", L, c.Dim)
	add("w1", L*c.Hidden, c.Dim)
	add("w2", L*c.Dim, c.Hidden)
	add("w3", L*c.Hidden, c.Dim)
	add("rms_final", 1, c.Dim)
	add("freq_cis_real", c.SeqLen, hs/2)
	add("freq_cis_imag", c.SeqLen, hs/2)
	if !c.Shared {
		add("wcls", c.Vocab, c.Dim)
	}
	if need > uint64(len(b)) {
		return nil, fmt.Errorf("%w: truncated: the header needs %d bytes of weights, the file has %d", ErrFormat, need, len(b))
	}
	if need != uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d unexpected trailing bytes after the weights", ErrFormat, uint64(len(b))-need)
	}
	return ck, nil
}

// Layer returns layer l's slice of a layered tensor.
func (c *Checkpoint) Layer(name string, l int) Tensor {
	t := c.Tensors[name]
	rows := t.Rows / c.Config.Layers
	return Tensor{Name: fmt.Sprintf("%s[%d]", name, l), Rows: rows, Cols: t.Cols, Off: t.Off + l*rows*t.Cols*4}
}

// Bytes returns the tensor's bytes within the file data.
func (t Tensor) Bytes(file []byte) []byte {
	n := t.Rows * t.Cols * 4
	return file[t.Off : t.Off+n : t.Off+n]
}
