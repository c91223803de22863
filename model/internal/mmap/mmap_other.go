//go:build !unix

package mmap

import (
	"errors"
	"os"
)

func mmap(*os.File, int) ([]byte, func() error, error) {
	return nil, nil, errors.New("mmap not supported")
}
