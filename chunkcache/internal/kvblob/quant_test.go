package kvblob

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func groupedLayouts() []Layout {
	return []Layout{
		{Layers: 2, KVHeads: 2, HeadDim: 8, DType: Q4, Group: 4},
		{Layers: 2, KVHeads: 2, HeadDim: 8, DType: Q2, Group: 3},
		{Layers: 2, KVHeads: 2, HeadDim: 8, DType: Q2, Group: 32, Rotate: true},
		{Layers: 2, KVHeads: 2, HeadDim: 8, DType: Q2, Group: 8, Rotate: true, KPerToken: true},
		{Layers: 2, KVHeads: 1, HeadDim: 5, DType: Q4, Group: 2}, // odd channels: unaligned rows
		{Layers: 2, KVHeads: 2, HeadDim: 4, DType: Mixed, Group: 4, HiBits: 4, MixCentibits: 250},
		{Layers: 1, KVHeads: 2, HeadDim: 4, DType: Mixed, Group: 8, HiBits: 8, MixCentibits: 300, Rotate: true},
	}
}

// groupTol is the error bound of element (t, c) of a plain grouped layout without
// rotation: one quantization step of its group plus the f16 rounding of the minimum.
func groupTol(l Layout, x []float32, tokens, t, c int, perChannel bool, b int) float64 {
	C := l.Channels()
	mn, mx := math.Inf(1), math.Inf(-1)
	if perChannel {
		g0 := t / l.Group * l.Group
		for r := g0; r < min(tokens, g0+l.Group); r++ {
			mn, mx = math.Min(mn, float64(x[r*C+c])), math.Max(mx, float64(x[r*C+c]))
		}
	} else {
		c0 := c / l.Group * l.Group
		for j := c0; j < min(C, c0+l.Group); j++ {
			mn, mx = math.Min(mn, float64(x[t*C+j])), math.Max(mx, float64(x[t*C+j]))
		}
	}
	step := (mx - mn) / float64(int(1)<<b-1)
	return step*(0.5+1.0/512) + math.Abs(mn)*math.Pow(2, -10) + 1e-6
}

func TestGroupedRoundTrip(t *testing.T) {
	for _, tokens := range []int{1, 5, 9, 33} {
		for _, l := range []Layout{
			{Layers: 1, KVHeads: 2, HeadDim: 8, DType: Q4, Group: 4},
			{Layers: 1, KVHeads: 2, HeadDim: 8, DType: Q2, Group: 3},
			{Layers: 1, KVHeads: 3, HeadDim: 3, DType: Q4, Group: 32},
			{Layers: 1, KVHeads: 3, HeadDim: 3, DType: Q2, Group: 2},
		} {
			r := rand.New(rand.NewPCG(uint64(tokens), 3))
			k, v := randKV(r, l.Elems(tokens)), randKV(r, l.Elems(tokens))
			s, err := l.AppendLayer(nil, tokens, k, v)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(s)) != l.LayerBytes(tokens) {
				t.Fatalf("%v: section %d bytes, LayerBytes %d", l.Format(), len(s), l.LayerBytes(tokens))
			}
			gk, gv := make([]float32, len(k)), make([]float32, len(v))
			if err := l.DecodeLayer(s, tokens, gk, gv); err != nil {
				t.Fatal(err)
			}
			C := l.Channels()
			for i := range k {
				tt, c := i/C, i%C
				if d := math.Abs(float64(gk[i] - k[i])); d > groupTol(l, k, tokens, tt, c, true, l.bitsOf()) {
					t.Fatalf("%v T=%d: K[%d] = %v, want %v", l.Format(), tokens, i, gk[i], k[i])
				}
				if d := math.Abs(float64(gv[i] - v[i])); d > groupTol(l, v, tokens, tt, c, false, l.bitsOf()) {
					t.Fatalf("%v T=%d: V[%d] = %v, want %v", l.Format(), tokens, i, gv[i], v[i])
				}
			}
			// Decoding and re-encoding is stable: the second decode equals the first.
			s2, err := l.AppendLayer(nil, tokens, gk, gv)
			if err != nil {
				t.Fatal(err)
			}
			hk, hv := make([]float32, len(k)), make([]float32, len(v))
			if err := l.DecodeLayer(s2, tokens, hk, hv); err != nil {
				t.Fatal(err)
			}
			for i := range hk {
				if math.Abs(float64(hk[i]-gk[i])) > 1e-3*(1+math.Abs(float64(gk[i]))) || math.Abs(float64(hv[i]-gv[i])) > 1e-3*(1+math.Abs(float64(gv[i]))) {
					t.Fatalf("%v: re-encoding moved element %d: %v→%v, %v→%v", l.Format(), i, gk[i], hk[i], gv[i], hv[i])
				}
			}
		}
	}
}

func TestGroupedSizes(t *testing.T) {
	// stories260K's shape: 4 kv heads × 8 = 32 channels.
	q4 := Layout{Layers: 5, KVHeads: 4, HeadDim: 8, DType: Q4, Group: 32}
	// K 64·32/2 + V 64·32/2 + K pairs 2 groups·32·4 + V pairs 64·1·4.
	if got := q4.LayerBytes(64); got != 1024+1024+256+256 {
		t.Fatalf("q4 layer bytes %d", got)
	}
	q2 := q4
	q2.DType = Q2
	if got := q2.LayerBytes(64); got != 512+512+256+256 {
		t.Fatalf("q2 layer bytes %d", got)
	}
	mx := Layout{Layers: 5, KVHeads: 4, HeadDim: 8, DType: Mixed, Group: 32, HiBits: 4, MixCentibits: 250}
	if h := mx.HiTokens(64); h != 16 {
		t.Fatalf("mixed keeps %d of 64 tokens at 4 bits, want 16", h)
	}
	// bitmap 8 + K (16·32/2 + 48·32/4) + V the same + K pairs (1+2)·32·4 + V pairs 64·4.
	if got := mx.LayerBytes(64); got != 8+(256+384)*2+384+256 {
		t.Fatalf("mixed layer bytes %d", got)
	}
	if b := mx.AvgBits(64); b != 2.5 {
		t.Fatalf("mixed average bits %v", b)
	}
	if b := mx.AvgBits(10); b > 2.5 {
		t.Fatalf("mixed average bits %v above target", b)
	}
}

func TestHadamard(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 8, 64} {
		x := randKV(r, n)
		y := append([]float32(nil), x...)
		hadamard(y)
		var nx, ny float64
		for i := range x {
			nx += float64(x[i]) * float64(x[i])
			ny += float64(y[i]) * float64(y[i])
		}
		if math.Abs(nx-ny) > 1e-4*nx {
			t.Fatalf("n=%d: norm %v → %v", n, nx, ny)
		}
		hadamard(y)
		for i := range x {
			if math.Abs(float64(x[i]-y[i])) > 1e-5*(1+math.Abs(float64(x[i]))) {
				t.Fatalf("n=%d: H·H·x[%d] = %v, want %v", n, i, y[i], x[i])
			}
		}
	}
	if _, err := (Layout{Layers: 1, KVHeads: 1, HeadDim: 6, DType: Q4, Group: 4, Rotate: true}).AppendLayer(nil, 1, make([]float32, 6), make([]float32, 6)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("rotation with head dim 6 accepted: %v", err)
	}
}

// Rotation spreads an outlier channel over its head: on values with one large channel
// per head, q2 with rotation reconstructs V (per-token groups) better than without.
func TestRotationHelpsOutliers(t *testing.T) {
	const tokens = 16
	l := Layout{Layers: 1, KVHeads: 2, HeadDim: 16, DType: Q2, Group: 16}
	r := rand.New(rand.NewPCG(5, 5))
	k, v := randKV(r, l.Elems(tokens)), randKV(r, l.Elems(tokens))
	for i := 0; i < len(v); i += l.HeadDim {
		v[i] *= 20
	}
	rmse := func(l Layout) float64 {
		s, err := l.AppendLayer(nil, tokens, k, v)
		if err != nil {
			t.Fatal(err)
		}
		gk, gv := make([]float32, len(k)), make([]float32, len(v))
		if err := l.DecodeLayer(s, tokens, gk, gv); err != nil {
			t.Fatal(err)
		}
		var e float64
		for i := range v {
			e += math.Pow(float64(gv[i]-v[i]), 2)
		}
		return math.Sqrt(e / float64(len(v)))
	}
	plain := rmse(l)
	l.Rotate = true
	rot := rmse(l)
	if !(rot < plain) {
		t.Fatalf("V RMSE with rotation %v, without %v", rot, plain)
	}
	// Rotation is exact in effect: a decoded rotated layer is a valid unrotated KV
	// (re-rotating for RoPE happens after decoding), and its error stays bounded.
	if rot > 1.0 {
		t.Fatalf("rotated q2 V RMSE %v", rot)
	}
}

// Mixed stores the chosen tokens exactly as HiBits-bit grouped values of those tokens
// alone, and the others as q2 of the rest.
func TestMixedMatchesItsParts(t *testing.T) {
	for _, hiBits := range []int{4, 8} {
		const tokens = 13
		l := Layout{Layers: 1, KVHeads: 2, HeadDim: 4, DType: Mixed, Group: 4, HiBits: hiBits, MixCentibits: 300}
		r := rand.New(rand.NewPCG(9, uint64(hiBits)))
		k, v := randKV(r, l.Elems(tokens)), randKV(r, l.Elems(tokens))
		score := make([]float32, tokens)
		for i := range score {
			score[i] = float32(r.IntN(5)) // ties
		}
		s, err := l.AppendLayerScored(nil, tokens, k, v, score)
		if err != nil {
			t.Fatal(err)
		}
		gk, gv := make([]float32, len(k)), make([]float32, len(v))
		if err := l.DecodeLayer(s, tokens, gk, gv); err != nil {
			t.Fatal(err)
		}
		h := l.HiTokens(tokens)
		hi := hiSet(score, h)
		C := l.Channels()
		split := func(x []float32) (a, b []float32) {
			for t := range tokens {
				if hi[t] {
					a = append(a, x[t*C:(t+1)*C]...)
				} else {
					b = append(b, x[t*C:(t+1)*C]...)
				}
			}
			return
		}
		kh, kl := split(k)
		vh, vl := split(v)
		dec := func(d DType, n int, kk, vv []float32) ([]float32, []float32) {
			pl := Layout{Layers: 1, KVHeads: 2, HeadDim: 4, DType: d, Group: 4}
			var ok, ov []float32 = make([]float32, len(kk)), make([]float32, len(vv))
			if hiBits == 8 && d == Q4 {
				// No plain q8 dtype: decode through the generic helpers.
				q, sc := make([]byte, packedBytes(n*C, 8)), make([]byte, pl.kGroupBytes(n))
				if err := groupCodes(q, sc, kk, n, C, 4, 8, true); err != nil {
					t.Fatal(err)
				}
				groupDecode(ok, q, sc, n, C, 4, 8, true)
				q, sc = make([]byte, packedBytes(n*C, 8)), make([]byte, pl.vGroupBytes(n))
				if err := groupCodes(q, sc, vv, n, C, 4, 8, false); err != nil {
					t.Fatal(err)
				}
				groupDecode(ov, q, sc, n, C, 4, 8, false)
				return ok, ov
			}
			sec, err := pl.AppendLayer(nil, n, kk, vv)
			if err != nil {
				t.Fatal(err)
			}
			if err := pl.DecodeLayer(sec, n, ok, ov); err != nil {
				t.Fatal(err)
			}
			return ok, ov
		}
		wkh, wvh := dec(Q4, h, kh, vh)
		wkl, wvl := dec(Q2, tokens-h, kl, vl)
		gkh, gkl := split(gk)
		gvh, gvl := split(gv)
		for name, p := range map[string][2][]float32{"hi K": {wkh, gkh}, "hi V": {wvh, gvh}, "lo K": {wkl, gkl}, "lo V": {wvl, gvl}} {
			if !equalF32(p[0], p[1]) {
				t.Fatalf("hi=%d %s: mixed decode differs from its part", hiBits, name)
			}
		}
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMixedBitmapChecked(t *testing.T) {
	l := Layout{Layers: 1, KVHeads: 1, HeadDim: 4, DType: Mixed, Group: 4, HiBits: 4, MixCentibits: 250}
	const tokens = 12
	r := rand.New(rand.NewPCG(3, 3))
	k, v := randKV(r, l.Elems(tokens)), randKV(r, l.Elems(tokens))
	s, err := l.AppendLayer(nil, tokens, k, v)
	if err != nil {
		t.Fatal(err)
	}
	// The default signal is the key norm: the bitmap marks the highest-norm tokens.
	norms := l.KeyNorms(tokens, k)
	hi := hiSet(norms, l.HiTokens(tokens))
	for tt := range tokens {
		if (s[tt/8]>>(tt%8)&1 != 0) != hi[tt] {
			t.Fatalf("token %d: bitmap disagrees with the key-norm ranking", tt)
		}
	}
	gk, gv := make([]float32, len(k)), make([]float32, len(v))
	for _, mutate := range []func(b []byte){
		func(b []byte) { b[0] ^= 1 },    // one token more or less
		func(b []byte) { b[1] |= 0x80 }, // padding bit
	} {
		bad := append([]byte(nil), s...)
		mutate(bad)
		if err := l.DecodeLayer(bad, tokens, gk, gv); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bad bitmap decoded: %v", err)
		}
		p, _ := l.Split(bad, tokens)
		if _, err := l.AppendRaw(nil, tokens, p); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad bitmap accepted by AppendRaw: %v", err)
		}
	}
	p, _ := l.Split(s, tokens)
	again, err := l.AppendRaw(nil, tokens, p)
	if err != nil || !bytes.Equal(again, s) {
		t.Fatalf("AppendRaw of a valid section: %v", err)
	}
	bad := append([]byte(nil), s...)
	pb, _ := l.Split(bad, tokens)
	binary.LittleEndian.PutUint16(pb.KScales, 0x7e00) // NaN scale
	if _, err := l.AppendRaw(nil, tokens, pb); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NaN group scale accepted: %v", err)
	}
	if _, err := l.AppendLayerScored(nil, tokens, k, v, make([]float32, 3)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short score accepted: %v", err)
	}
	if _, err := (Layout{Layers: 1, KVHeads: 1, HeadDim: 2, DType: Q4, Group: 2}).AppendLayer(nil, 1, []float32{1e6, 0}, []float32{0, 0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("value beyond f16 accepted: %v", err)
	}
	if _, err := (Layout{Layers: 1, KVHeads: 1, HeadDim: 2, DType: Q2, Group: 2}).AppendLayer(nil, 1, []float32{float32(math.NaN()), 0}, []float32{0, 0}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NaN accepted: %v", err)
	}
}

func TestVersionedHeaders(t *testing.T) {
	for _, l := range append(layouts(), groupedLayouts()...) {
		blob, _, _ := buildBlob(t, l, 7, 1)
		want := VersionBase
		if l.DType.Grouped() {
			want = Version
		}
		if v := int(binary.LittleEndian.Uint16(blob[4:])); v != want {
			t.Fatalf("%v written as version %d, want %d", l.Format(), v, want)
		}
		h, _, err := Decode(blob)
		if err != nil {
			t.Fatal(err)
		}
		if h.Layout != l {
			t.Fatalf("header layout %+v, want %+v", h.Layout, l)
		}
		if h.LayerOffset(0) != int64(l.HeaderSize()) {
			t.Fatal("offset")
		}
	}
	// A grouped dtype in a version-1 header is corrupt (re-sign the header so only
	// the version is wrong).
	l := groupedLayouts()[0]
	blob, _, _ := buildBlob(t, l, 3, 1)
	hs := l.HeaderSize()
	bad := append([]byte(nil), blob[:hs]...)
	binary.LittleEndian.PutUint16(bad[4:], 1)
	binary.LittleEndian.PutUint32(bad[hs-4:], Checksum(bad[:hs-4]))
	if _, _, err := DecodeHeader(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("q4 in a v1 header: %v", err)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Layout{
		"f16":                  {DType: F16},
		"int8":                 {DType: Int8, KScale: ScalePerChannel, VScale: ScalePerToken},
		"q4":                   {DType: Q4, Group: 32},
		"q2r":                  {DType: Q2, Group: 32, Rotate: true},
		"q2:group=64,rot=1":    {DType: Q2, Group: 64, Rotate: true},
		"mixed":                {DType: Mixed, Group: 32, HiBits: 4, MixCentibits: 250},
		"mixed:bits=2.25,hi=8": {DType: Mixed, Group: 32, HiBits: 8, MixCentibits: 225},
	} {
		got, err := ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if err == nil {
			again, err := ParseFormat(got.Format())
			if err != nil || again != got {
				t.Errorf("Format round trip of %q: %q → %+v, %v", in, got.Format(), again, err)
			}
		}
	}
	for _, in := range []string{"q3", "f16:group=2", "q4:bits=3", "mixed:bits=2", "mixed:bits=5", "mixed:hi=6", "q4:group=0", "q4:x=1", "q4:group"} {
		if _, err := ParseFormat(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseFormat(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

// FuzzDecodeLayerGrouped feeds arbitrary sections (no CRC in the way) to the grouped
// decoders: they must never panic, and only a Mixed bitmap may be reported (as
// ErrCorrupt).
func FuzzDecodeLayerGrouped(f *testing.F) {
	for i, l := range groupedLayouts() {
		r := rand.New(rand.NewPCG(uint64(i), 0))
		s, err := l.AppendLayer(nil, 5, randKV(r, l.Elems(5)), randKV(r, l.Elems(5)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), uint8(5), s)
	}
	f.Fuzz(func(t *testing.T, which, tokens uint8, sec []byte) {
		ls := groupedLayouts()
		l := ls[int(which)%len(ls)]
		n := 1 + int(tokens)%40
		want := int(l.LayerBytes(n))
		if len(sec) < want {
			sec = append(sec, make([]byte, want-len(sec))...)
		}
		sec = sec[:want]
		k, v := make([]float32, l.Elems(n)), make([]float32, l.Elems(n))
		if err := l.DecodeLayer(sec, n, k, v); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		if err := l.DecodeLayer(sec[:want-1], n, k, v); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("short section: %v", err)
		}
	})
}

// BenchmarkDecodeLayer decodes one layer of a 512-token chunk in smollm-135m's shape
// (3 KV heads × 64) in each dtype; b.SetBytes counts the float32 output.
func BenchmarkDecodeLayer(b *testing.B) {
	const tokens = 512
	for _, f := range []string{"f16", "int8", "q4", "q4r", "q2", "mixed"} {
		lf, err := ParseFormat(f)
		if err != nil {
			b.Fatal(err)
		}
		l := Layout{Layers: 1, KVHeads: 3, HeadDim: 64}.WithFormat(lf)
		r := rand.New(rand.NewPCG(1, 1))
		k, v := randKV(r, l.Elems(tokens)), randKV(r, l.Elems(tokens))
		s, err := l.AppendLayer(nil, tokens, k, v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(f, func(b *testing.B) {
			b.SetBytes(int64(8 * l.Elems(tokens)))
			for b.Loop() {
				if err := l.DecodeLayer(s, tokens, k, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPreRoPEFlag: Header.PreRoPE round-trips in both header versions (byte 11 bit
// 0), leaves blobs without it byte for byte as before, and other bits of byte 11 are
// corrupt.
func TestPreRoPEFlag(t *testing.T) {
	for _, l := range []Layout{layouts()[0], groupedLayouts()[0]} {
		blob, _, _ := buildBlob(t, l, 5, 1)
		if blob[11] != 0 {
			t.Fatalf("%v: byte 11 = %d without the flag", l.Format(), blob[11])
		}
		h, secs, err := Decode(blob)
		if err != nil {
			t.Fatal(err)
		}
		if h.PreRoPE {
			t.Fatalf("%v: PreRoPE set on a blob written without it", l.Format())
		}
		h.PreRoPE = true
		pre, err := Encode(h, secs)
		if err != nil {
			t.Fatal(err)
		}
		if pre[11] != 1 || !bytes.Equal(pre[l.HeaderSize():], blob[l.HeaderSize():]) {
			t.Fatalf("%v: flag byte %d, or the sections changed", l.Format(), pre[11])
		}
		h2, _, err := Decode(pre)
		if err != nil || !h2.PreRoPE || h2.Layout != l {
			t.Fatalf("%v: decoded %+v, %v", l.Format(), h2, err)
		}
		hs := l.HeaderSize()
		for _, b := range []byte{2, 0x81} {
			bad := append([]byte(nil), pre[:hs]...)
			bad[11] = b
			binary.LittleEndian.PutUint32(bad[hs-4:], Checksum(bad[:hs-4]))
			if _, _, err := DecodeHeader(bad); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: byte 11 = %#x accepted: %v", l.Format(), b, err)
			}
		}
	}
}
