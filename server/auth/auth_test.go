package auth

import (
	"errors"
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
