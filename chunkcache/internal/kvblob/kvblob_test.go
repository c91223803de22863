package kvblob

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/ragkv/ragkv/internal/kernels"
)

func layouts() []Layout {
	return []Layout{
		{Layers: 3, KVHeads: 2, HeadDim: 4, DType: F32},
		{Layers: 2, KVHeads: 3, HeadDim: 8, DType: F16},
		{Layers: 2, KVHeads: 1, HeadDim: 16, DType: BF16},
		{Layers: 2, KVHeads: 2, HeadDim: 8, DType: Int8, KScale: ScalePerChannel, VScale: ScalePerToken},
		{Layers: 1, KVHeads: 2, HeadDim: 8, DType: Int8, KScale: ScalePerToken, VScale: ScalePerChannel},
	}
}

func randKV(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 3)
	}
	return x
}

// buildBlob encodes a random blob and returns it with the float32 inputs per layer.
func buildBlob(t testing.TB, l Layout, tokens int, seed uint64) ([]byte, [][]float32, [][]float32) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	var ks, vs [][]float32
	var sections [][]byte
	for i := 0; i < l.Layers; i++ {
		k, v := randKV(r, l.Elems(tokens)), randKV(r, l.Elems(tokens))
		s, err := l.AppendLayer(nil, tokens, k, v)
		if err != nil {
			t.Fatal(err)
		}
		ks, vs, sections = append(ks, k), append(vs, v), append(sections, s)
	}
	blob, err := Encode(Header{Layout: l, Tokens: tokens, PositionBase: 17}, sections)
	if err != nil {
		t.Fatal(err)
	}
	return blob, ks, vs
}

func TestRoundTripEveryDType(t *testing.T) {
	const tokens = 5
	for _, l := range layouts() {
		t.Run(l.DType.String()+"/"+l.KScale.String(), func(t *testing.T) {
			blob, ks, vs := buildBlob(t, l, tokens, 7)
			if int64(len(blob)) != int64(HeaderSize(l.Layers))+int64(l.Layers)*l.LayerBytes(tokens) {
				t.Fatalf("blob size %d", len(blob))
			}
			h, sections, err := Decode(blob)
			if err != nil {
				t.Fatal(err)
			}
			if h.Layout != l || h.Tokens != tokens || h.PositionBase != 17 {
				t.Fatalf("header %+v", h)
			}
			k := make([]float32, l.Elems(tokens))
			v := make([]float32, l.Elems(tokens))
			for i, s := range sections {
				if !bytes.Equal(s, blob[h.LayerOffset(i):h.LayerOffset(i)+h.LayerBytes()]) {
					t.Fatalf("layer %d not at its offset", i)
				}
				if err := l.DecodeLayer(s, tokens, k, v); err != nil {
					t.Fatal(err)
				}
				checkClose(t, l, tokens, ks[i], k, l.KScale)
				checkClose(t, l, tokens, vs[i], v, l.VScale)
				// Re-encoding the decoded values gives the same bytes: a stored chunk
				// survives decode/encode bit-exactly.
				again, err := l.AppendLayer(nil, tokens, k, v)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again, s) {
					t.Fatalf("layer %d: re-encoding decoded values changed the bytes", i)
				}
			}
		})
	}
}

// checkClose bounds the conversion error by the dtype's precision.
func checkClose(t *testing.T, l Layout, tokens int, want, got []float32, mode ScaleMode) {
	t.Helper()
	ch := l.Channels()
	scale := func(i int) float64 { // max |x| over the scale group of element i
		m := 0.0
		for j := range want {
			if (mode == ScalePerToken && j/ch == i/ch) || (mode == ScalePerChannel && j%ch == i%ch) {
				m = math.Max(m, math.Abs(float64(want[j])))
			}
		}
		return m / 127
	}
	for i := range want {
		w, g := float64(want[i]), float64(got[i])
		var tol float64
		switch l.DType {
		case F32:
			tol = 0
		case F16:
			tol = math.Abs(w) * math.Pow(2, -11)
		case BF16:
			tol = math.Abs(w) * math.Pow(2, -8)
		case Int8:
			tol = scale(i)/2 + 1e-6*math.Abs(w)
		}
		if math.Abs(w-g) > tol {
			t.Fatalf("%v element %d: got %v want %v (tolerance %v)", l.DType, i, g, w, tol)
		}
	}
}

// The blob format relies on these properties of internal/kernels' conversions.
func TestF16Conversion(t *testing.T) {
	// Every finite f16 value survives f16→f32→f16.
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := kernels.F16ToF32(h)
		if math.IsNaN(float64(f)) {
			if h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
				t.Fatalf("%04x decoded to NaN", h)
			}
			continue
		}
		if got := kernels.F32ToF16(f); got != h {
			t.Fatalf("f16 %04x -> %v -> %04x", h, f, got)
		}
	}
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00}, {1e9, 0x7c00},
		{float32(math.Ldexp(1, -24)), 0x0001}, {float32(math.Ldexp(1, -25)), 0x0000},
		{float32(math.Ldexp(3, -26)), 0x0001}, {float32(1 + math.Ldexp(1, -11)), 0x3c00},
		{float32(1 + 3*math.Ldexp(1, -11)), 0x3c02}, {float32(math.Ldexp(1, -14)), 0x0400},
	}
	for _, c := range cases {
		if got := kernels.F32ToF16(c.in); got != c.want {
			t.Errorf("kernels.F32ToF16(%v) = %04x, want %04x", c.in, got, c.want)
		}
	}
	// Random values round to a nearest representable neighbour.
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		x := float32(math.Ldexp(r.Float64()*2-1, r.IntN(40)-25))
		h := kernels.F32ToF16(x)
		if h&0x7c00 == 0x7c00 {
			continue
		}
		d := math.Abs(float64(kernels.F16ToF32(h)) - float64(x))
		for _, nb := range []uint16{h + 1, h - 1} {
			if nb&0x7c00 == 0x7c00 || (nb^h)&0x8000 != 0 {
				continue
			}
			if dn := math.Abs(float64(kernels.F16ToF32(nb)) - float64(x)); dn < d {
				t.Fatalf("kernels.F32ToF16(%v) = %04x, but %04x is nearer", x, h, nb)
			}
		}
	}
}

func TestBF16Conversion(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := kernels.BF16ToF32(h)
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(kernels.BF16ToF32(kernels.F32ToBF16(f)))) {
				t.Fatalf("NaN %04x lost", h)
			}
			continue
		}
		if got := kernels.F32ToBF16(f); got != h {
			t.Fatalf("bf16 %04x -> %v -> %04x", h, f, got)
		}
	}
	if got := kernels.F32ToBF16(float32(1 + math.Ldexp(1, -8))); got != 0x3f80 {
		t.Errorf("tie rounds to even: got %04x", got)
	}
	if got := kernels.F32ToBF16(float32(1 + 3*math.Ldexp(1, -8))); got != 0x3f82 {
		t.Errorf("tie rounds to even (up): got %04x", got)
	}
}

func TestDecodeRejectsTruncationAndCorruption(t *testing.T) {
	for _, l := range append(layouts(), groupedLayouts()...) {
		blob, _, _ := buildBlob(t, l, 3, 9)
		for n := 0; n < len(blob); n++ {
			if _, _, err := Decode(blob[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: truncated to %d of %d: err %v, want ErrCorrupt", l.DType, n, len(blob), err)
			}
		}
		if _, _, err := Decode(append(append([]byte(nil), blob...), 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%v: trailing byte accepted: %v", l.DType, err)
		}
		for i := range blob {
			bad := append([]byte(nil), blob...)
			bad[i] ^= 0x20
			if _, _, err := Decode(bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: flipped bit in byte %d accepted: %v", l.DType, i, err)
			}
		}
	}
}

func TestHeaderAndLayerValidation(t *testing.T) {
	ok := Layout{Layers: 2, KVHeads: 2, HeadDim: 4, DType: F16}
	bad := []Layout{
		{Layers: 2, KVHeads: 2, HeadDim: 4, DType: 9},
		{Layers: 0, KVHeads: 2, HeadDim: 4, DType: F16},
		{Layers: 2, KVHeads: 0, HeadDim: 4, DType: F16},
		{Layers: 2, KVHeads: 2, HeadDim: MaxHeadDim + 1, DType: F16},
		{Layers: 2, KVHeads: 2, HeadDim: 4, DType: F16, KScale: ScalePerToken},
		{Layers: 2, KVHeads: 2, HeadDim: 4, DType: Int8, KScale: ScalePerToken, VScale: 7},
	}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, l := range bad {
		if err := l.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalid", l, err)
		}
	}
	if err := ok.ValidateTokens(0); !errors.Is(err, ErrInvalid) {
		t.Errorf("0 tokens accepted: %v", err)
	}
	n := ok.Elems(3)
	if _, err := ok.AppendLayer(nil, 3, make([]float32, n), make([]float32, n-1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("short V accepted: %v", err)
	}
	tb := ok.TensorBytes(3)
	if _, err := ok.AppendRaw(nil, 3, LayerParts{K: make([]byte, tb), V: make([]byte, tb+2)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("long V accepted: %v", err)
	}
	q := Layout{Layers: 1, KVHeads: 1, HeadDim: 2, DType: Int8, KScale: ScalePerToken, VScale: ScalePerToken}
	nanScale := []byte{0, 0, 0xc0, 0x7f}
	if _, err := q.AppendRaw(nil, 1, LayerParts{K: make([]byte, 2), V: make([]byte, 2), KScales: nanScale, VScales: make([]byte, 4)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NaN scale accepted: %v", err)
	}
	if _, err := q.AppendLayer(nil, 1, []float32{float32(math.Inf(1)), 0}, []float32{0, 0}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Inf quantized: %v", err)
	}
	if _, err := ParseDType("f8"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseDType(f8) = %v", err)
	}
}

func TestInt8ZeroAndExtremes(t *testing.T) {
	l := Layout{Layers: 1, KVHeads: 1, HeadDim: 4, DType: Int8, KScale: ScalePerChannel, VScale: ScalePerToken}
	k := []float32{0, 0, 0, 0, 1, -1, 0.5, 0}
	v := []float32{-8, 8, 4, 0, 0, 0, 0, 0}
	s, err := l.AppendLayer(nil, 2, k, v)
	if err != nil {
		t.Fatal(err)
	}
	gk, gv := make([]float32, 8), make([]float32, 8)
	if err := l.DecodeLayer(s, 2, gk, gv); err != nil {
		t.Fatal(err)
	}
	for i := range k {
		if math.Abs(float64(gk[i]-k[i])) > 1.0/254+1e-7 {
			t.Fatalf("k[%d] = %v want %v", i, gk[i], k[i])
		}
	}
	if gv[0] != -8 || gv[1] != 8 || gv[4] != 0 {
		t.Fatalf("v = %v", gv)
	}
}

func FuzzDecode(f *testing.F) {
	for i, l := range append(layouts(), groupedLayouts()...) {
		blob, _, _ := buildBlob(f, l, 1+i, uint64(i))
		f.Add(blob)
		f.Add(blob[:len(blob)/2])
		if i%3 == 0 { // with the pre-RoPE header flag
			h, secs, err := Decode(blob)
			if err != nil {
				f.Fatal(err)
			}
			h.PreRoPE = true
			pre, err := Encode(h, secs)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(pre)
		}
	}
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, blob []byte) {
		h, sections, err := Decode(blob)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		again, err := Encode(h, sections)
		if err != nil {
			t.Fatalf("decoded blob does not re-encode: %v", err)
		}
		if !bytes.Equal(again, blob) {
			t.Fatal("decode/encode is not the identity")
		}
		k := make([]float32, h.Elems(h.Tokens))
		v := make([]float32, h.Elems(h.Tokens))
		for _, s := range sections {
			// A CRC-valid section can still be inconsistent (a Mixed bitmap): only
			// ErrCorrupt is allowed.
			if err := h.DecodeLayer(s, h.Tokens, k, v); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatal(err)
			}
		}
	})
}
