package main

import (
	"strings"
	"testing"
)

func TestOrderComponents(t *testing.T) {
	cs := []serveComponent{{name: "inference", needs: []string{"chunkcache"}}, {name: "retrieval"}, {name: "chunkcache"}}
	got, err := orderComponents(cs)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range got {
		names = append(names, c.name)
	}
	if strings.Join(names, ",") != "chunkcache,inference,retrieval" {
		t.Fatalf("order %v", names)
	}
	if _, err := orderComponents([]serveComponent{{name: "a", needs: []string{"b"}}}); err == nil || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("missing dependency: %v", err)
	}
	if _, err := orderComponents([]serveComponent{{name: "a", needs: []string{"b"}}, {name: "b", needs: []string{"a"}}}); err == nil || !strings.Contains(err.Error(), "circular") {
		t.Fatalf("cycle: %v", err)
	}
}
