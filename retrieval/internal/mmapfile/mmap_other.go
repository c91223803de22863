//go:build !unix

package mmapfile

import (
	"io"
	"os"
)

func mapFile(f *os.File, size int) ([]byte, bool, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, false, err
	}
	return b, false, nil
}

func unmap([]byte) error { return nil }
