// Package mmapfile maps immutable shard files read-only into memory, so that their
// bytes live in the OS page cache (evictable, shared, not counted as the process's
// anonymous memory) rather than on the Go heap. Where memory mapping is not available
// the file is read into memory instead, with the same API.
package mmapfile

import (
	"fmt"
	"os"
)

// File is a read-only mapping of a whole file. Its bytes must not be written, nor used
// after Close.
type File struct {
	b      []byte
	mapped bool
}

// Open maps the file at path.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mmapfile: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mmapfile: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return &File{}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("mmapfile: %s: %d bytes do not fit the address space", path, size)
	}
	b, mapped, err := mapFile(f, int(size))
	if err != nil {
		return nil, fmt.Errorf("mmapfile: map %s: %w", path, err)
	}
	return &File{b: b, mapped: mapped}, nil
}

// Bytes returns the file's contents.
func (f *File) Bytes() []byte { return f.b }

// Len returns the file's size.
func (f *File) Len() int { return len(f.b) }

// Close unmaps the file.
func (f *File) Close() error {
	if f == nil || f.b == nil {
		return nil
	}
	b := f.b
	f.b = nil
	if !f.mapped {
		return nil
	}
	if err := unmap(b); err != nil {
		return fmt.Errorf("mmapfile: unmap: %w", err)
	}
	return nil
}
