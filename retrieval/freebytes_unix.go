//go:build unix

package retrieval

import "syscall"

// freeBytes is the space available to unprivileged writers on dir's filesystem.
func freeBytes(dir string) (int64, bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return int64(st.Bavail) * int64(st.Bsize), true, nil
}
