// Package shared locates the models and datasets that ragkv's tests, evals and
// benchmarks read but the repository never copies: the folder named by $RAGKV_SHARED,
// or else the folder "shared" beside the module root (../shared from the repository).
package shared

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// EnvVar names the environment variable that overrides the default location.
const EnvVar = "RAGKV_SHARED"

// ErrNotFound is returned by Dir when the shared folder does not exist.
var ErrNotFound = errors.New("shared data folder not found")

// Dir returns the shared folder: $RAGKV_SHARED if set, else ../shared relative to the
// directory holding go.mod above the working directory.
func Dir() (string, error) {
	if d := os.Getenv(EnvVar); d != "" {
		if _, err := os.Stat(d); err != nil {
			return "", fmt.Errorf("%w: %s=%s: %v", ErrNotFound, EnvVar, d, err)
		}
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("%w: no go.mod above the working directory and %s unset", ErrNotFound, EnvVar)
		}
		dir = parent
	}
	d := filepath.Join(filepath.Dir(dir), "shared")
	if _, err := os.Stat(d); err != nil {
		return "", fmt.Errorf("%w: %s (set %s)", ErrNotFound, d, EnvVar)
	}
	return d, nil
}

// Path returns the shared folder joined with elem, and skips the test or benchmark
// (with the reason) where the folder is absent.
func Path(tb testing.TB, elem ...string) string {
	tb.Helper()
	d, err := Dir()
	if err != nil {
		tb.Skipf("shared data: %v", err)
	}
	return filepath.Join(append([]string{d}, elem...)...)
}
