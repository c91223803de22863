package blend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestPrefillTooLongComputesNothing: a prompt whose chunks exceed the context fails with
// ErrTooLong before any chunk is computed or stored, however many are missing.
func TestPrefillTooLongComputesNothing(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	ctx := context.Background()
	ctxLen := e.Model().Config.Ctx
	var chunks []ChunkRef
	for i := 0; i < 4*ctxLen/8+8; i++ {
		chunks = append(chunks, ChunkRef{Text: fmt.Sprintf("Tom had dog number %d and it was big.", i)})
	}
	_, err := e.Prefill(ctx, &PrefillInput{System: "A story.", Chunks: chunks, Query: "The dog"})
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "nothing computed") {
		t.Fatalf("prefill of a prompt longer than the context (%d): %v", ctxLen, err)
	}
	if st := e.st.cache.Stats(); st.Chunks != 0 {
		t.Fatalf("a refused prefill stored %d chunks", st.Chunks)
	}
	// One chunk too long by itself: refused too.
	long := strings.Repeat("Tom had a big dog. ", ctxLen)
	if _, err := e.Prefill(ctx, &PrefillInput{Chunks: []ChunkRef{{Text: long}}, Query: "x"}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("one over-long chunk: %v", err)
	}
}
