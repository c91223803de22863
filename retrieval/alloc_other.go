//go:build !unix

package retrieval

import "io/fs"

// allocatedBytes is the file's size (allocated blocks are not known here).
func allocatedBytes(info fs.FileInfo) int64 { return info.Size() }

// cpuSeconds is not measured here.
func cpuSeconds() float64 { return 0 }
