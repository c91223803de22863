// Package deps pins, during early development, the modules ragkv's packages are about to
// import, so that go.mod and go.sum are complete before the importing code lands.
// Remove a line once a real package imports it.
package deps

import (
	_ "github.com/blevesearch/bleve/v2"
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/klauspost/cpuid/v2"
	_ "github.com/schollz/progressbar/v3"
	_ "gonum.org/v1/gonum/mat"
	_ "pgregory.net/rapid"
)
