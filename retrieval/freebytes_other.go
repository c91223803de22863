//go:build !unix

package retrieval

// freeBytes is unknown here: the free-space check is skipped.
func freeBytes(string) (int64, bool, error) { return 0, false, nil }
