package retrieval

import (
	"bytes"
	"errors"
	"testing"

	"github.com/ragkv/ragkv/retrieval/beir"
)

func FuzzReadToolFiles(f *testing.F) {
	f.Add([]byte(`[{"name":"A","description":"x"}]`))
	f.Add([]byte(`{"_id":"1","query":"q","tool":"A"}` + "\n" + `{"query":"r","tool":"B"}`))
	f.Add([]byte(`[{"name":""}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if tools, err := ReadTools(bytes.NewReader(b), "fuzz"); err == nil {
			for _, tl := range tools {
				if tl.Name == "" {
					t.Fatal("tool without a name accepted")
				}
			}
		} else if !errors.Is(err, beir.ErrMalformed) {
			t.Fatalf("ReadTools error does not wrap ErrMalformed: %v", err)
		}
		if qs, err := ReadToolQueries(bytes.NewReader(b), "fuzz"); err == nil {
			for _, q := range qs {
				if q.Query == "" || q.Tool == "" || q.ID == "" {
					t.Fatalf("accepted %+v", q)
				}
			}
		} else if !errors.Is(err, beir.ErrMalformed) {
			t.Fatalf("ReadToolQueries error does not wrap ErrMalformed: %v", err)
		}
	})
}

func FuzzDecodePassage(f *testing.F) {
	f.Add(encodePassage(3, &passageRecord{Doc: "d", Title: "t", Text: "x", Vector: []float32{1, 2}}))
	f.Add(encodePassage(1, &passageRecord{Doc: "d", Text: ""}))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		gen, p, err := decodePassage(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		again := encodePassage(gen, p)
		if g2, p2, err := decodePassage(again); err != nil || g2 != gen || p2.Text != p.Text || len(p2.Vector) != len(p.Vector) {
			t.Fatalf("re-encoded passage does not round-trip: %v", err)
		}
	})
}
