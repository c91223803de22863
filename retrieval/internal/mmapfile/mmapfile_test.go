package mmapfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenMapsContents(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("ragkv"), 5000)
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Bytes(), want) || f.Len() != len(want) {
		t.Fatal("mapped bytes differ from the file")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Bytes() != nil {
		t.Fatal("bytes still visible after Close")
	}
	empty := filepath.Join(dir, "e")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Open(empty)
	if err != nil || e.Len() != 0 {
		t.Fatalf("empty file: %v, %d bytes", err, e.Len())
	}
	_ = e.Close()
	if _, err := Open(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file opened")
	}
}
