package lexical

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzIndex opens arbitrary bytes as an index file and runs every read path on it:
// corrupt input gives errors, never a panic or an out-of-range read.
func FuzzIndex(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "s")
	docs, _ := zipfCorpus(150, 5) // small: the fuzzer minimizes every new input
	if _, err := Build(context.Background(), dir, append(docs, corpus...)); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, indexFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:headerSize])
	small := filepath.Join(f.TempDir(), "t")
	if _, err := Build(context.Background(), small, corpus[:2]); err != nil {
		f.Fatal(err)
	}
	sb, _ := os.ReadFile(filepath.Join(small, indexFile))
	f.Add(sb)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := newShard(data)
		if err != nil {
			return
		}
		q, _ := Analyze("w1x w2x w10x quick fox dog w250x")
		rs, err := s.Resolve(q)
		if err != nil {
			return
		}
		df := make([]int64, len(q.Terms))
		rs.AddDocFreqs(df)
		st := s.Stats()
		if st.Docs == 0 {
			return
		}
		p := GlobalParams(q, st, df)
		ctx := context.Background()
		_, _, _ = rs.TopK(ctx, p, 5, func(o uint32) bool { return o%7 == 0 })
		acc := make([]float64, st.Docs)
		_, _ = rs.Accumulate(ctx, p, acc, nil)
		out := make([]float64, 3)
		_ = rs.Scores(p, []uint32{0, uint32(st.Docs - 1), uint32(st.Docs / 2)}, out)
		_ = rs.SubtractDeadDocFreqs(ctx, func(o uint32) bool { return o%3 == 0 }, df)
		for o := 0; o < int(st.Docs) && o < 10; o++ {
			_ = s.Len(o)
		}
	})
}
