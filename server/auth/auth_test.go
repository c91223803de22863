package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckRejectsBadFiles(t *testing.T) {
	h := HashToken("t")
	for name, c := range map[string]struct{ yaml, want string }{
		"empty":          {"", "no identities"},
		"unknown field":  {"identities:\n  - name: a\n    role: reader\n    token: secret\n", "token"},
		"no name":        {"identities:\n  - role: reader\n    token_sha256: " + h + "\n", "name is empty"},
		"bad role":       {"identities:\n  - name: a\n    role: root\n    token_sha256: " + h + "\n", `unknown role "root"`},
		"no credential":  {"identities:\n  - name: a\n    role: reader\n", "needs token_sha256 or cert_subject"},
		"short hash":     {"identities:\n  - name: a\n    role: reader\n    token_sha256: abcd\n", "64 hex digits"},
		"duplicate name": {"identities:\n  - {name: a, role: reader, token_sha256: " + h + "}\n  - {name: a, role: reader, cert_subject: x}\n", "second identity"},
		"shared token":   {"identities:\n  - {name: a, role: reader, token_sha256: " + h + "}\n  - {name: b, role: admin, token_sha256: " + h + "}\n", "same token as a"},
		"negative rate":  {"identities:\n  - {name: a, role: reader, token_sha256: " + h + ", rate_per_second: -1}\n", "negative"},
		"quota pattern":  {"identities:\n  - {name: a, role: reader, token_sha256: " + h + "}\nnamespace_quotas:\n  tenant-*: {memory: 1GiB}\n", "not a pattern"},
		"quota tier":     {"identities:\n  - {name: a, role: reader, token_sha256: " + h + "}\nnamespace_quotas:\n  a: {remote: 1GiB}\n", `tier "remote"`},
		"quota zero":     {"identities:\n  - {name: a, role: reader, token_sha256: " + h + "}\nnamespace_quotas:\n  a: {disk: 0}\n", "not a size > 0"},
		"quota size":     {"identities:\n  - {name: a, role: reader, token_sha256: " + h + "}\nnamespace_quotas:\n  a: {memory: lots}\n", "not a size > 0"},
		"quota no tier":  {"identities:\n  - {name: a, role: reader, token_sha256: " + h + "}\nnamespace_quotas:\n  a: {}\n", "no tier"},
	} {
		_, err := Check([]byte(c.yaml))
		if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want ErrInvalidFile mentioning %q", name, err, c.want)
		}
	}
}

func TestScopesAndRoles(t *testing.T) {
	id := &Identity{Name: "x", Role: Writer, Namespaces: []string{"tenant-*", "shared"}, Collections: []string{"*"}}
	for ns, want := range map[string]bool{"tenant-a": true, "tenant-": true, "shared": true, "sharedx": false, "other": false, "tenant": false} {
		if id.Namespace(ns) != want {
			t.Errorf("Namespace(%q) = %v, want %v", ns, !want, want)
		}
	}
	if !id.Collection("anything") || id.Registry("r") {
		t.Error("collections * must match everything; no registries must match nothing")
	}
	if !id.Allows(Reader) || !id.Allows(Writer) || id.Allows(Admin) {
		t.Error("a writer allows reader and writer, not admin")
	}
	var none *Identity
	if none.Allows(Reader) || none.Namespace("a") {
		t.Error("a nil identity allows nothing")
	}
}

// TestNamespaceQuotasLoadedOnce: namespace_quotas parse to bytes; a reload that changes
// them keeps the first load's quotas and reports the change.
func TestNamespaceQuotasLoadedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.yaml")
	write := func(q string) {
		y := "identities:\n  - {name: a, role: writer, token_sha256: " + HashToken("t") + ", namespaces: [a]}\nnamespace_quotas:\n" + q
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("  a: {memory: 2MiB, disk: 1.5GB}\n")
	st, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	q := st.NamespaceQuotas()
	if q["a"]["memory"] != 2<<20 || q["a"]["disk"] != 1500000000 || len(q) != 1 || st.QuotasChanged() {
		t.Fatalf("quotas %v, changed %v", q, st.QuotasChanged())
	}
	if err := st.Reload(); err != nil || st.QuotasChanged() {
		t.Fatalf("reload of the same file: %v, changed %v", err, st.QuotasChanged())
	}
	write("  a: {memory: 4MiB}\n")
	if err := st.Reload(); err != nil {
		t.Fatal(err)
	}
	if !st.QuotasChanged() || st.NamespaceQuotas()["a"]["memory"] != 2<<20 {
		t.Fatalf("after a reload with new quotas: changed %v, running %v", st.QuotasChanged(), st.NamespaceQuotas())
	}
}
