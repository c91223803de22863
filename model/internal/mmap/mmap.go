// Package mmap gives the model file readers (model/gguf, model/internal/safetensors) a
// file's bytes without copying them: the file is memory-mapped read-only
// (golang.org/x/sys/unix.Mmap) where the platform allows, so that tensor data aliases
// the page cache; elsewhere, or when mapping fails, the file is read into memory.
package mmap

import (
	"fmt"
	"io"
	"os"
)

// ReadFile returns the contents of the file at path and a function that releases them.
// The bytes must never be written, and not be used after release.
func ReadFile(path string) (data []byte, release func() error, err error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, nil, err
	}
	size := st.Size()
	if int64(int(size)) != size {
		return nil, nil, fmt.Errorf("%s: %d bytes is too large to map", path, size)
	}
	if size > 0 {
		if b, unmap, err := mmap(fd, int(size)); err == nil {
			return b, unmap, nil
		}
	}
	b, err := io.ReadAll(fd)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return nil }, nil
}
