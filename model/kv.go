package model

import "fmt"

// KV is the key/value cache of a token sequence: for each layer, K (post-RoPE) and V
// rows of KVDim = KVHeads×HeadDim float32 values, one row per token, and the absolute
// position of each row. Rows need not be in position order (attention masks by
// position), but positions must be unique. A KV is not safe for concurrent use.
type KV struct {
	Layers int
	KVDim  int
	// Pos[i] is the absolute position of row i; len(Pos) is the number of rows.
	Pos []int
	// K[l] and V[l] hold layer l: row i is K[l][i*KVDim : (i+1)*KVDim]. Their length may
	// exceed len(Pos)*KVDim (spare capacity).
	K, V [][]float32
}

// NewKV returns an empty KV shaped for c with room for capacity rows.
func NewKV(c *Config, capacity int) *KV {
	kv := &KV{Layers: c.Layers, KVDim: c.KVDim(), Pos: make([]int, 0, capacity), K: make([][]float32, c.Layers), V: make([][]float32, c.Layers)}
	for l := range kv.K {
		kv.K[l] = make([]float32, capacity*kv.KVDim)
		kv.V[l] = make([]float32, capacity*kv.KVDim)
	}
	return kv
}

// Len is the number of rows.
func (kv *KV) Len() int { return len(kv.Pos) }

// Cap is the number of rows the slices can hold without growing.
func (kv *KV) Cap() int {
	c := cap(kv.Pos)
	for l := range kv.K {
		c = min(c, len(kv.K[l])/kv.KVDim, len(kv.V[l])/kv.KVDim)
	}
	return c
}

// Reserve makes room for n more rows (reallocating and copying if needed).
func (kv *KV) Reserve(n int) {
	need := len(kv.Pos) + n
	if need <= kv.Cap() {
		return
	}
	c := max(need, 2*kv.Cap(), 16)
	pos := make([]int, len(kv.Pos), c)
	copy(pos, kv.Pos)
	kv.Pos = pos
	used := len(kv.Pos) * kv.KVDim
	for l := range kv.K {
		k := make([]float32, c*kv.KVDim)
		copy(k, kv.K[l][:used])
		kv.K[l] = k
		v := make([]float32, c*kv.KVDim)
		copy(v, kv.V[l][:used])
		kv.V[l] = v
	}
}

// KRow returns row i of layer l's K (aliasing the KV).
func (kv *KV) KRow(l, i int) []float32 { return kv.K[l][i*kv.KVDim : (i+1)*kv.KVDim] }

// VRow returns row i of layer l's V (aliasing the KV).
func (kv *KV) VRow(l, i int) []float32 { return kv.V[l][i*kv.KVDim : (i+1)*kv.KVDim] }

// Slice returns a copy of rows [lo, hi).
func (kv *KV) Slice(lo, hi int) *KV {
	out := &KV{Layers: kv.Layers, KVDim: kv.KVDim, Pos: append([]int(nil), kv.Pos[lo:hi]...), K: make([][]float32, kv.Layers), V: make([][]float32, kv.Layers)}
	for l := range kv.K {
		out.K[l] = append([]float32(nil), kv.K[l][lo*kv.KVDim:hi*kv.KVDim]...)
		out.V[l] = append([]float32(nil), kv.V[l][lo*kv.KVDim:hi*kv.KVDim]...)
	}
	return out
}

// Clone returns a deep copy.
func (kv *KV) Clone() *KV { return kv.Slice(0, kv.Len()) }

// Truncate drops rows from n on.
func (kv *KV) Truncate(n int) { kv.Pos = kv.Pos[:n] }

// ConcatKV returns a new KV with the rows of kvs in order (positions unchanged; re-rotate
// them with Model.RotateK first to place chunks at new positions). extra reserves room.
func ConcatKV(extra int, kvs ...*KV) (*KV, error) {
	if len(kvs) == 0 {
		return nil, fmt.Errorf("%w: ConcatKV of nothing", ErrInvalid)
	}
	n := 0
	for _, kv := range kvs {
		if kv.Layers != kvs[0].Layers || kv.KVDim != kvs[0].KVDim {
			return nil, fmt.Errorf("%w: ConcatKV of differently shaped caches", ErrInvalid)
		}
		n += kv.Len()
	}
	out := &KV{Layers: kvs[0].Layers, KVDim: kvs[0].KVDim, Pos: make([]int, 0, n+extra), K: make([][]float32, kvs[0].Layers), V: make([][]float32, kvs[0].Layers)}
	for l := range out.K {
		out.K[l] = make([]float32, 0, (n+extra)*out.KVDim)
		out.V[l] = make([]float32, 0, (n+extra)*out.KVDim)
		for _, kv := range kvs {
			out.K[l] = append(out.K[l], kv.K[l][:kv.Len()*kv.KVDim]...)
			out.V[l] = append(out.V[l], kv.V[l][:kv.Len()*kv.KVDim]...)
		}
		out.K[l] = out.K[l][:cap(out.K[l])]
		out.V[l] = out.V[l][:cap(out.V[l])]
	}
	for _, kv := range kvs {
		out.Pos = append(out.Pos, kv.Pos...)
	}
	return out, nil
}

func (kv *KV) check(c *Config) error {
	if kv == nil || kv.Layers != c.Layers || kv.KVDim != c.KVDim() || len(kv.K) != c.Layers || len(kv.V) != c.Layers {
		return fmt.Errorf("%w: KV shape does not match the model", ErrInvalid)
	}
	return nil
}
