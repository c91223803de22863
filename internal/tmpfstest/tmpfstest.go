// Package tmpfstest mounts small tmpfs file systems for disk-full tests: a real file
// system that runs out of space at a known size (the Badger tier, the retrieval store and
// the server are tested against it rather than against an injected ENOSPC). Mounting
// needs root; tests skip with a clear message where it fails.
package tmpfstest

import (
	"os/exec"
	"testing"
)

// Mount mounts a tmpfs of size (mount's syntax: "32m", "48m") on a new temporary
// directory and returns it; it is unmounted at cleanup (before the directory is removed).
// The test is skipped when the mount fails.
func Mount(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}
