//go:build unix

package mmapfile

import (
	"os"

	"golang.org/x/sys/unix"
)

func mapFile(f *os.File, size int) ([]byte, bool, error) {
	b, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, false, err
	}
	// Searches touch postings and vectors at random: no read-ahead.
	_ = unix.Madvise(b, unix.MADV_RANDOM)
	return b, true, nil
}

func unmap(b []byte) error { return unix.Munmap(b) }
