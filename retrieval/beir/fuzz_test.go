package beir

import (
	"bytes"
	"errors"
	"testing"
)

// The readers parse untrusted files: they must never panic, and every error for bad
// content must wrap ErrMalformed.

func FuzzReadCorpus(f *testing.F) {
	f.Add([]byte(`{"_id":"1","title":"t","text":"x"}` + "\n" + `{"_id":2,"text":"y"}`))
	f.Add([]byte(`{"_id":"1","text":"x"} trailing`))
	f.Add([]byte(`{"_id":null}`))
	f.Add([]byte("\n\n{\"_id\":\"\\u0000\",\"text\":\"\\ud800\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := ReadCorpus(bytes.NewReader(b), "fuzz", func(d Doc) error {
			if d.ID == "" {
				t.Fatal("document with an empty id accepted")
			}
			n++
			return nil
		})
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
	})
}

func FuzzReadQueries(f *testing.F) {
	f.Add([]byte(`{"_id":"0","text":"q"}`))
	f.Add([]byte(`{"_id":1.5e3,"text":"q"}`))
	f.Add([]byte(`{"text":"q"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		qs, err := ReadQueries(bytes.NewReader(b), "fuzz")
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
		for _, q := range qs {
			if q.ID == "" || q.Text == "" {
				t.Fatalf("accepted %+v", q)
			}
		}
	})
}

func FuzzReadQrels(f *testing.F) {
	f.Add([]byte("query-id\tcorpus-id\tscore\n0\td\t1\n"))
	f.Add([]byte("h\n0 d 2\n\n1\te\t-1\n"))
	f.Add([]byte("0\td\t1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ReadQrels(bytes.NewReader(b), "fuzz")
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
	})
}
