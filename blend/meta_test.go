package blend

import (
	"errors"
	"testing"
)

func testMeta() *Meta {
	return &Meta{
		KVPrev: []Hash{TokenHash([]int{1, 2, 3})},
		Stats: NewCraftStats([]Hash{TokenHash([]int{4}), TokenHash([]int{5, 6})}, [][]float32{
			{0, 0.5, 1, 0.25}, {0.125, 0.75, 0.001, 0.999},
		}),
	}
}

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []*Meta{{}, {KVPrev: []Hash{{1}}}, testMeta()} {
		b, err := EncodeMeta(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMeta(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.KVPrev) != len(m.KVPrev) || (m.Stats == nil) != (got.Stats == nil) {
			t.Fatalf("round trip %+v -> %+v", m, got)
		}
		for i := range m.KVPrev {
			if got.KVPrev[i] != m.KVPrev[i] {
				t.Fatal("hash changed")
			}
		}
		if m.Stats == nil {
			continue
		}
		if got.Stats.CtxPrev[1] != m.Stats.CtxPrev[1] || got.Stats.Tokens() != 4 || got.Stats.CCI() != m.Stats.CCI() {
			t.Fatalf("stats %+v", got.Stats)
		}
		for l := range m.Stats.Outside {
			for j, v := range m.Stats.Outside[l] {
				if d := got.Stats.Outside[l][j] - v; d > 1.0/65535 || d < -1.0/65535 {
					t.Fatalf("outside[%d][%d] %v -> %v", l, j, v, got.Stats.Outside[l][j])
				}
			}
		}
	}
}

func TestMetaCorrupt(t *testing.T) {
	good, err := EncodeMeta(testMeta())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(good); i++ {
		if _, err := DecodeMeta(good[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := DecodeMeta(append(append([]byte(nil), good...), 0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing byte: %v", err)
	}
	bad := append([]byte(nil), good...)
	bad[4] = 9 // version
	if _, err := DecodeMeta(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad version: %v", err)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []*Meta{{}, testMeta()} {
		b, _ := EncodeMeta(m)
		f.Add(b)
	}
	f.Add([]byte("RKBM\x01\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// What decodes re-encodes to the same bytes.
		out, err := EncodeMeta(m)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != string(b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestAllocate(t *testing.T) {
	cases := []struct {
		B    int
		w    []float64
		caps []int
		want []int
	}{
		{10, []float64{0, 1, 1}, []int{10, 10, 10}, []int{0, 5, 5}},
		{10, []float64{0, 1, 3}, []int{10, 10, 10}, []int{0, 3, 7}}, // 2.5/7.5 rounded by remainder
		{10, []float64{0, 1, 100}, []int{10, 10, 4}, []int{0, 6, 4}},
		{25, []float64{0, 1, 1}, []int{10, 10, 10}, []int{5, 10, 10}}, // leftover to the exact one
		{0, []float64{1, 1}, []int{5, 5}, []int{0, 0}},
		{7, []float64{0, 0}, []int{5, 5}, []int{5, 2}},
	}
	for i, c := range cases {
		got := allocate(c.B, c.w, c.caps)
		sum := 0
		for j := range got {
			sum += got[j]
			if got[j] > c.caps[j] {
				t.Fatalf("case %d: %v exceeds caps %v", i, got, c.caps)
			}
		}
		if sum != min(c.B, 30) && i != 5 || (i == 5 && sum != 7) {
			t.Fatalf("case %d: %v sums to %d", i, got, sum)
		}
		for j := range got {
			if got[j] != c.want[j] {
				t.Fatalf("case %d: got %v, want %v", i, got, c.want)
			}
		}
	}
}

func TestOverlap(t *testing.T) {
	a, b, c, d := Hash{1}, Hash{2}, Hash{3}, Hash{4}
	cases := []struct {
		was, now []Hash
		want     float64
	}{
		{nil, nil, 1},
		{nil, []Hash{a}, 0},
		{[]Hash{a}, []Hash{a, b}, 0.5},
		{[]Hash{a, b, c}, []Hash{a, b, c}, 1},
		{[]Hash{a, b, c}, []Hash{c, b, a}, 1.0 / 3}, // order matters
		{[]Hash{a, b}, []Hash{a, d, b}, 2.0 / 3},
	}
	for i, c := range cases {
		if got := overlap(c.was, c.now); got != c.want {
			t.Errorf("case %d: β = %g, want %g", i, got, c.want)
		}
	}
}

func TestSchedule(t *testing.T) {
	if got := schedule(10, 100, 4, 1, 0); got[0] != 10 || got[3] != 10 {
		t.Fatalf("plain: %v", got)
	}
	got := schedule(30, 300, 29, 2, 1)
	sum := 0
	for _, s := range got {
		sum += s
	}
	if got[0] <= got[1] || got[1] != got[28] || sum < 29*30-29 || sum > 29*30+29 {
		t.Fatalf("gradual: %v (sum %d, want ≈ %d)", got, sum, 29*30)
	}
	if got := schedule(50, 50, 4, 2, 1); got[0] != 50 || got[3] != 50 {
		t.Fatalf("everything selected: %v", got)
	}
}
