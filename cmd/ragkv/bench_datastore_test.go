package main

import (
	"errors"
	"strings"
	"testing"
)

func TestBenchDatastoreBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--passages", "10"}, "--passages"},
		{[]string{"--batch", "5"}, "--batch"},
		{[]string{"--shards", "0"}, "--shards"},
		{[]string{"--build-memory", "-1"}, "--build-memory"},
		{[]string{"--ann-threshold", "-2"}, "--ann-threshold"},
		{[]string{"--k", "0"}, "--k"},
		{[]string{"--dense-index", "hnsw"}, "--dense-index"},
		{[]string{"--embeddings", "/nonexistent/glove.txt.gz"}, "--embeddings"},
	} {
		// Flags persist on the global command between runs: reset the checked ones.
		base := []string{"bench", "datastore", "--passages", "100000", "--batch", "500000", "--shards", "2", "--build-memory", "0",
			"--ann-threshold", "40000", "--k", "10", "--queries", "200", "--threads", "2", "--dense-index", "auto"}
		_, err := runCLI(t, append(base, tc.args...)...)
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%v: error %v, want a usage error naming %s", tc.args, err, tc.flag)
		}
	}
}
