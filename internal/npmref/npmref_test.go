package npmref

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPinsAgree: the Makefile's npm target and .ci/run install exactly Packages.
func TestPinsAgree(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join(Packages, " ")
	for _, f := range []string{"Makefile", filepath.Join(".ci", "run")} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		src := strings.ReplaceAll(string(b), "\\\n", " ")
		m := regexp.MustCompile(`NPM_PACKAGES\s*\??=\s*"?([^"\n]+)`).FindStringSubmatch(src)
		if m == nil {
			t.Fatalf("%s: no NPM_PACKAGES", f)
		}
		if got := strings.Join(strings.Fields(m[1]), " "); got != want {
			t.Errorf("%s pins %q, internal/npmref %q", f, got, want)
		}
	}
}
