package eviction

import (
	"flag"
	"os"
	"testing"
)

// TestMain raises rapid's defaults (100 checks of ~30 steps) so the state-machine
// tests explore longer operation sequences; explicit -rapid.* flags still win.
func TestMain(m *testing.M) {
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["rapid.checks"] {
		_ = flag.Set("rapid.checks", "1000")
	}
	if !set["rapid.steps"] {
		_ = flag.Set("rapid.steps", "200")
	}
	os.Exit(m.Run())
}
